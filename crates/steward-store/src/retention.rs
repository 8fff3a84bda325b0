//! Retention: how long each workspace keeps each category of data, and what the pruner asks
//! of a store to enforce it.
//!
//! A workspace's [`WorkspacePolicy`] says how many days run payloads, error details, run
//! metadata, audit entries and chat transcripts are kept (defaults in
//! [`RetentionDays::default`]); a flow file
//! may shorten or lengthen the run categories for its own runs (the pruner resolves that,
//! since only it reads flow files). The store then answers small, bounded requests, each one
//! transaction: [`RetentionStore::sweep_runs`] for one category of one flow's runs,
//! [`RetentionStore::purge_step`] for a soft-deleted object past its grace period, and
//! [`RetentionStore::sweep_audit`] for old audit entries. Every request can be a dry run,
//! which does the same work and rolls it back, so its counts are the real pass's counts.
//!
//! Audit entries form one hash chain, so removing some leaves gaps the verifier would report.
//! The store therefore records each removed stretch of the chain as a [`PrunedRange`] (its
//! first and last `seq`, the hash before it and its last hash) and the verifier steps over a
//! gap only where such a range links the entries on both sides.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use steward_engine::Timestamp;

use crate::{AuditStore, Result, TableCount};

/// One day in milliseconds, the unit of policies.
pub const DAY_MS: i64 = 86_400_000;
/// How long a soft-deleted flow, connection, agent or workspace can be restored before it is
/// purged.
pub const PURGE_AFTER_DAYS: i64 = 30;
/// The longest retention a policy may set (a hundred years).
pub const MAX_DAYS: u32 = 36_500;

/// Days each category is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDays {
    pub payload_days: u32,
    pub error_days: u32,
    pub metadata_days: u32,
    pub audit_days: u32,
    /// The messages people write in chat threads ([`crate::ThreadStore`]); the runs that
    /// answer them follow the run categories.
    pub transcript_days: u32,
}

impl Default for RetentionDays {
    /// The installation's defaults, which also apply to audit entries outside any workspace.
    fn default() -> Self {
        Self { payload_days: 90, error_days: 180, metadata_days: 365, audit_days: 365, transcript_days: 90 }
    }
}

/// A workspace's policy as stored: `None` means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySettings {
    pub payload_days: Option<u32>,
    pub error_days: Option<u32>,
    pub metadata_days: Option<u32>,
    pub audit_days: Option<u32>,
    pub transcript_days: Option<u32>,
    /// Hosts the workspace's flows may send requests to (`api.github.com`, `*.example.com`);
    /// `None` sets no allowlist.
    pub egress_hosts: Option<Vec<String>>,
}

impl PolicySettings {
    /// The days in effect: the settings, defaults where unset.
    pub fn days(&self) -> RetentionDays {
        let d = RetentionDays::default();
        RetentionDays {
            payload_days: self.payload_days.unwrap_or(d.payload_days),
            error_days: self.error_days.unwrap_or(d.error_days),
            metadata_days: self.metadata_days.unwrap_or(d.metadata_days),
            audit_days: self.audit_days.unwrap_or(d.audit_days),
            transcript_days: self.transcript_days.unwrap_or(d.transcript_days),
        }
    }

    /// Refuses days out of range, and payloads or error details kept longer than the run they
    /// belong to (deleting a run's metadata deletes them with it, so the promise would be
    /// false).
    pub fn check(&self) -> Result<(), String> {
        let named = [
            ("payload_days", self.payload_days),
            ("error_days", self.error_days),
            ("metadata_days", self.metadata_days),
            ("audit_days", self.audit_days),
            ("transcript_days", self.transcript_days),
        ];
        for (name, days) in named {
            if let Some(d) = days.filter(|d| !(1..=MAX_DAYS).contains(d)) {
                return Err(format!("{name} is {d}; it must be between 1 and {MAX_DAYS}"));
            }
        }
        let d = self.days();
        for (name, days) in [("payload_days", d.payload_days), ("error_days", d.error_days)] {
            if days > d.metadata_days {
                return Err(format!(
                    "{name} ({days}) is longer than metadata_days ({}): a run's payloads and error \
                     details are deleted with the run, so they cannot outlive it",
                    d.metadata_days
                ));
            }
        }
        Ok(())
    }
}

/// A workspace's policy, with the days in effect filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspacePolicy {
    pub workspace: String,
    /// What was set (`None`: the default).
    pub settings: PolicySettings,
    /// What applies.
    pub days: RetentionDays,
    /// Unset until the policy is first changed.
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

impl WorkspacePolicy {
    /// The policy of a workspace that never set one.
    pub fn default_for(workspace: &str) -> Self {
        Self {
            workspace: workspace.to_owned(),
            settings: PolicySettings::default(),
            days: RetentionDays::default(),
            updated_at: None,
            updated_by: None,
        }
    }
}

/// Workspace policies.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The workspace's policy; the defaults when it never set one.
    async fn policy(&self, workspace: &str) -> Result<WorkspacePolicy>;

    /// Replaces the workspace's policy (`Invalid` when [`PolicySettings::check`] refuses it).
    async fn set_policy(
        &self,
        workspace: &str,
        settings: &PolicySettings,
        by: &str,
        now: Timestamp,
    ) -> Result<WorkspacePolicy>;
}

/// A category of run data, in the order the pruner applies them (deleting a run first spares
/// rewriting it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The run row and everything of it: journal, signals.
    Metadata,
    /// Error messages (kind and status stay).
    Errors,
    /// Inputs, outputs, loop items, triggers, approval messages (type and size stay).
    Payloads,
}

impl Category {
    pub const ALL: &[Category] = &[Category::Metadata, Category::Errors, Category::Payloads];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Metadata => "metadata",
            Category::Errors => "errors",
            Category::Payloads => "payloads",
        }
    }
}

/// One batch of a category over one flow's finished runs: those that finished in
/// `(finished_after, finished_until]`, after `cursor` in id order.
#[derive(Debug, Clone)]
pub struct RunSweep<'a> {
    pub workspace: &'a str,
    pub flow: &'a str,
    pub category: Category,
    /// Runs that finished at or before this are left alone: a broader category (metadata)
    /// deletes them, and a dry run must not count them twice.
    pub finished_after: Timestamp,
    pub finished_until: Timestamp,
    /// The last run id of the previous batch.
    pub cursor: Option<String>,
    pub limit: usize,
    pub dry_run: bool,
    pub now: Timestamp,
}

/// What one batch did (or, in a dry run, would have done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub tables: Vec<TableCount>,
    /// Where the next batch starts; `None` when this one found nothing more.
    pub cursor: Option<String>,
    /// No more batches are needed.
    pub done: bool,
}

/// What kind of soft-deleted object a purge removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Flow,
    Connection,
    /// An agent's versions and its chat threads (its runner flow is a flow of its own).
    Agent,
    Workspace,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Flow => "flow",
            ObjectKind::Connection => "connection",
            ObjectKind::Agent => "agent",
            ObjectKind::Workspace => "workspace",
        }
    }
}

/// A soft-deleted object whose grace period is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purgeable {
    pub kind: ObjectKind,
    pub workspace: String,
    /// The row id (for a workspace, the workspace id; for an agent, whose versions are
    /// rows of their own, its name).
    pub id: String,
    pub name: String,
    pub deleted_at: Timestamp,
}

/// One step of purging `target`: a batch of its runs, or, once none are left, the rest.
#[derive(Debug, Clone)]
pub struct PurgeStep<'a> {
    pub target: &'a Purgeable,
    pub limit: usize,
    /// A dry run does the whole purge in one transaction and rolls it back.
    pub dry_run: bool,
}

/// One batch of old audit entries: those after `after_seq` older than their workspace's
/// `audit_days` (entries outside any workspace, and of workspaces without a policy, use
/// `default_days`). The newest entry is never removed: the next append links to it.
#[derive(Debug, Clone)]
pub struct AuditSweep<'a> {
    pub now: Timestamp,
    pub default_days: u32,
    /// Only this workspace's entries (never those outside any workspace).
    pub workspace: Option<&'a str>,
    pub after_seq: i64,
    pub limit: usize,
    pub dry_run: bool,
}

/// What one audit batch removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSwept {
    /// The database kind, for receipts: `sqlite` or `postgres`.
    pub store: String,
    /// Entries removed per workspace (`None`: outside any workspace).
    pub removed: Vec<(Option<String>, u64)>,
    /// The last `seq` looked at; `None` when nothing was left.
    pub last_seq: Option<i64>,
}

/// A stretch of the audit chain removed by retention: the verifier steps from the entry
/// before it (whose hash is `prev_hash`) to the entry after it (whose `prev_hash` is
/// `last_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedRange {
    pub first_seq: i64,
    pub last_seq: i64,
    pub prev_hash: String,
    pub last_hash: String,
    /// When its last part was removed.
    pub pruned_at: Timestamp,
}

/// The newest version's source of a flow, for its `retention:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSource {
    pub flow_id: String,
    pub name: String,
    pub source: String,
    pub deleted_at: Option<Timestamp>,
}

/// What the retention pruner needs from a store.
#[async_trait]
pub trait RetentionStore: PolicyStore + AuditStore {
    /// Every workspace with stored data (flows, connections, chat threads, a workspace row or a
    /// policy).
    async fn retention_workspaces(&self) -> Result<Vec<String>>;

    /// The workspace's flows, deleted ones too, each with its newest version's source.
    async fn flow_sources(&self, workspace: &str) -> Result<Vec<FlowSource>>;

    /// Applies one category to one batch of a flow's finished runs, in one transaction.
    async fn sweep_runs(&self, sweep: &RunSweep<'_>) -> Result<Swept>;

    /// Flows, connections, agents and workspaces deleted at or before `deleted_before`.
    async fn purgeable(&self, deleted_before: Timestamp) -> Result<Vec<Purgeable>>;

    /// Purges part of (or, when `done`, the rest of) a soft-deleted object.
    async fn purge_step(&self, step: &PurgeStep<'_>) -> Result<Swept>;

    /// Removes one batch of old audit entries, recording the [`PrunedRange`]s they leave.
    async fn sweep_audit(&self, sweep: &AuditSweep<'_>) -> Result<AuditSwept>;

    /// Every stretch of the audit chain removed by retention, in `seq` order.
    async fn audit_pruned(&self) -> Result<Vec<PrunedRange>>;

    /// Makes deleted bytes unrecoverable from the database's files where the store can
    /// (SQLite: deleted content is zeroed, `secure_delete`, and the write-ahead log, which
    /// still holds the pages as they were, is checkpointed and truncated).
    async fn flush_deleted(&self) -> Result<()>;
}
