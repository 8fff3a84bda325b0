//! Deletion receipts: what a deletion removed (which store, which tables, how many rows, when),
//! never the data itself. Account deletions, purges of soft-deleted objects and retention
//! pruning each produce one, and each is recorded in the audit log as `data.deleted`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_engine::Timestamp;

use crate::NewAuditEvent;

/// Rows removed (or stripped of their payloads) from one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// The database kind: `sqlite` or `postgres`.
    pub store: String,
    pub table: String,
    pub rows: u64,
}

/// The receipt of one deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionReceipt {
    /// What was deleted: `user:<id>`, `workspace:<id>`, `flow:<id>`, `connection:<id>`, or a
    /// retention category such as `retention:payloads`.
    pub subject: String,
    /// Why: `account deleted`, `purged 30 days after deletion`, `retention policy`, ...
    pub reason: String,
    pub at: Timestamp,
    pub tables: Vec<TableCount>,
}

impl DeletionReceipt {
    /// Total rows touched.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The audit entry that lists this receipt (`data.deleted`).
    pub fn audit_event(&self, workspace: Option<&str>, actor: &str) -> NewAuditEvent {
        let (object_type, object_id) = self.subject.split_once(':').unwrap_or((&self.subject, ""));
        NewAuditEvent {
            workspace: workspace.map(str::to_owned),
            actor: actor.to_owned(),
            action: "data.deleted".into(),
            object_type: object_type.to_owned(),
            object_id: (!object_id.is_empty()).then(|| object_id.to_owned()),
            source: None,
            details: json!({ "reason": self.reason, "tables": self.tables, "rows": self.rows() }),
            now: self.at,
        }
    }
}
