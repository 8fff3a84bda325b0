//! SQL and row mapping for retention, shared by both backends (the trait implementations are
//! in [`crate::shared`]): workspace policies, the selection of expired runs, purges of
//! soft-deleted objects and the removal of old audit entries.

use steward_engine::Timestamp;
use steward_store::{
    Category, Error, FlowSource, ObjectKind, PolicySettings, PrunedRange, Purgeable, Result, TableCount,
    WorkspacePolicy,
};

use crate::error::from_json;
use crate::rows::RowExt;

// Policies.

pub(crate) const POLICY: &str = "SELECT workspace_id, payload_days, error_days, metadata_days, audit_days, \
     transcript_days, egress_hosts, updated_at, updated_by FROM workspace_policies WHERE workspace_id = $1";
pub(crate) const UPSERT_POLICY: &str = "INSERT INTO workspace_policies (workspace_id, payload_days, \
     error_days, metadata_days, audit_days, transcript_days, egress_hosts, updated_at, updated_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (workspace_id) DO UPDATE SET \
     payload_days = excluded.payload_days, error_days = excluded.error_days, \
     metadata_days = excluded.metadata_days, audit_days = excluded.audit_days, \
     transcript_days = excluded.transcript_days, egress_hosts = excluded.egress_hosts, \
     updated_at = excluded.updated_at, updated_by = excluded.updated_by";

// What there is to prune.

pub(crate) const WORKSPACES: &str = "SELECT workspace_id AS id FROM flows UNION SELECT id FROM workspaces \
     UNION SELECT workspace_id FROM connections UNION SELECT workspace_id FROM workspace_policies \
     UNION SELECT workspace_id FROM agent_threads ORDER BY 1";
/// Each flow with its newest version's source.
pub(crate) const FLOW_SOURCES: &str = "SELECT f.id, f.name, f.deleted_at, v.source \
     FROM flows f JOIN flow_versions v ON v.flow_id = f.id WHERE f.workspace_id = $1 \
     AND v.version = (SELECT MAX(m.version) FROM flow_versions m WHERE m.flow_id = f.id) ORDER BY f.name";

/// A flow's finished runs that ended in `($3, $4]`, after the cursor `$5`, `$6` at most.
macro_rules! expired_runs {
    ($extra:literal) => {
        concat!(
            "SELECT id, inputs, output, error FROM runs WHERE workspace_id = $1 AND flow_name = $2 \
             AND status IN ('succeeded', 'failed', 'cancelled') \
             AND COALESCE(finished_at, updated_at) > $3 AND COALESCE(finished_at, updated_at) <= $4 \
             AND id > $5",
            $extra,
            " ORDER BY id LIMIT $6"
        )
    };
}

const EXPIRED_RUNS: &str = expired_runs!("");
const EXPIRED_PAYLOADS: &str = expired_runs!(" AND payloads_pruned_at IS NULL");
const EXPIRED_ERRORS: &str = expired_runs!(" AND errors_pruned_at IS NULL");

/// The runs a category applies to.
pub(crate) fn expired_runs(category: Category) -> &'static str {
    match category {
        Category::Metadata => EXPIRED_RUNS,
        Category::Errors => EXPIRED_ERRORS,
        Category::Payloads => EXPIRED_PAYLOADS,
    }
}

// Changing runs.

pub(crate) const RUN_SIGNALS: &str = "SELECT id, data FROM run_signals WHERE run_id = $1 ORDER BY id";
pub(crate) const REWRITE_SIGNAL: &str = "UPDATE run_signals SET data = $2 WHERE id = $1";
pub(crate) const STRIP_RUN_PAYLOADS: &str =
    "UPDATE runs SET inputs = $2, output = $3, payloads_pruned_at = $4 WHERE id = $1";
pub(crate) const STRIP_RUN_ERROR: &str = "UPDATE runs SET error = $2, errors_pruned_at = $3 WHERE id = $1";
/// Deleting runs: their journals, signals, their children's links to them, then the rows.
/// `{ids}` stands for the numbered placeholders of the batch's ids ([`for_ids`]).
pub(crate) const DELETE_RUNS: &[(&str, &str)] = &[
    ("run_events", "DELETE FROM run_events WHERE run_id IN ({ids})"),
    ("run_signals", "DELETE FROM run_signals WHERE run_id IN ({ids})"),
    ("", "UPDATE runs SET parent_run_id = NULL WHERE parent_run_id IN ({ids})"),
    ("runs", "DELETE FROM runs WHERE id IN ({ids})"),
];

/// `statement` with `{ids}` replaced by `$1, ..., $n`: the text holds placeholders only.
pub(crate) fn for_ids(statement: &str, n: usize) -> String {
    let list: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    statement.replace("{ids}", &list.join(", "))
}

// Purges.

pub(crate) const PURGEABLE: &str = "SELECT 'flow' AS kind, workspace_id, id, name, deleted_at FROM flows \
     WHERE deleted_at <= $1 \
     UNION ALL SELECT 'connection', workspace_id, id, name, deleted_at FROM connections WHERE deleted_at <= $1 \
     UNION ALL SELECT 'agent', workspace_id, name, name, MAX(deleted_at) FROM agent_versions \
     WHERE deleted_at <= $1 GROUP BY workspace_id, name \
     UNION ALL SELECT 'workspace', id, id, name, deleted_at FROM workspaces WHERE deleted_at <= $1 \
     ORDER BY 5, 3";

/// Whether the object is still deleted as it was when found (not restored, nor deleted again).
pub(crate) fn still_deleted(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Flow => "SELECT 1 FROM flows WHERE id = $1 AND workspace_id = $2 AND deleted_at = $3",
        ObjectKind::Connection => {
            "SELECT 1 FROM connections WHERE id = $1 AND workspace_id = $2 AND deleted_at = $3"
        }
        ObjectKind::Agent => {
            "SELECT 1 FROM agent_versions WHERE name = $1 AND workspace_id = $2 AND deleted_at = $3 LIMIT 1"
        }
        ObjectKind::Workspace => "SELECT 1 FROM workspaces WHERE id = $1 AND id = $2 AND deleted_at = $3",
    }
}

/// Up to `$3` runs of the object (`$1` its id, `$2` its workspace).
pub(crate) fn runs_of(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Flow => Some(
            "SELECT id FROM runs WHERE workspace_id = $2 \
             AND flow_version_id IN (SELECT id FROM flow_versions WHERE flow_id = $1) ORDER BY id LIMIT $3",
        ),
        ObjectKind::Workspace => Some("SELECT id FROM runs WHERE workspace_id = $2 ORDER BY id LIMIT $3"),
        // An agent's runs belong to its runner flow, deleted and purged as a flow.
        ObjectKind::Connection | ObjectKind::Agent => None,
    }
}

/// What is left of the object once its runs are gone, in an order foreign keys accept; `$1` is
/// its id, `$2` its workspace, `$3` its name.
pub(crate) fn purge_rest(kind: ObjectKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ObjectKind::Flow => &[
            ("webhooks", "DELETE FROM webhooks WHERE workspace_id = $2 AND flow_name = $3"),
            ("schedules", "DELETE FROM schedules WHERE workspace_id = $2 AND flow_name = $3"),
            ("flow_versions", "DELETE FROM flow_versions WHERE flow_id = $1 AND workspace_id = $2"),
            ("flows", "DELETE FROM flows WHERE id = $1 AND workspace_id = $2"),
        ],
        ObjectKind::Connection => {
            &[("connections", "DELETE FROM connections WHERE id = $1 AND workspace_id = $2")]
        }
        // Usage counters stay: they are counts, not content.
        ObjectKind::Agent => &[
            (
                "agent_thread_messages",
                "DELETE FROM agent_thread_messages WHERE workspace_id = $2 AND thread_id IN \
                 (SELECT id FROM agent_threads WHERE workspace_id = $2 AND agent = $3)",
            ),
            ("agent_threads", "DELETE FROM agent_threads WHERE workspace_id = $2 AND agent = $3"),
            ("agent_versions", "DELETE FROM agent_versions WHERE workspace_id = $2 AND name = $3"),
        ],
        ObjectKind::Workspace => &[
            ("run_signals", "DELETE FROM run_signals WHERE workspace_id = $2"),
            ("webhooks", "DELETE FROM webhooks WHERE workspace_id = $2"),
            ("schedules", "DELETE FROM schedules WHERE workspace_id = $2"),
            ("agent_thread_messages", "DELETE FROM agent_thread_messages WHERE workspace_id = $2"),
            ("agent_threads", "DELETE FROM agent_threads WHERE workspace_id = $2"),
            ("agent_versions", "DELETE FROM agent_versions WHERE workspace_id = $2"),
            ("agent_usage", "DELETE FROM agent_usage WHERE workspace_id = $2"),
            ("flow_versions", "DELETE FROM flow_versions WHERE workspace_id = $2"),
            ("flows", "DELETE FROM flows WHERE workspace_id = $2"),
            ("connections", "DELETE FROM connections WHERE workspace_id = $2"),
            ("workspace_keys", "DELETE FROM workspace_keys WHERE workspace_id = $2"),
            ("workspace_policies", "DELETE FROM workspace_policies WHERE workspace_id = $2"),
            ("api_tokens", "DELETE FROM api_tokens WHERE workspace_id = $2"),
            ("invitations", "DELETE FROM invitations WHERE workspace_id = $2"),
            ("memberships", "DELETE FROM memberships WHERE workspace_id = $2"),
            ("workspaces", "DELETE FROM workspaces WHERE id = $2"),
        ],
    }
}

// The audit log.

/// Entries after `$1` (never the newest) older than their workspace's audit days at `$2`
/// (`$3` days without a policy); only workspace `$4` unless it is empty.
pub(crate) const EXPIRED_AUDIT: &str = "SELECT a.seq, a.workspace_id, a.prev_hash, a.hash FROM audit_log a \
     LEFT JOIN workspace_policies p ON p.workspace_id = a.workspace_id \
     WHERE a.seq > $1 AND a.seq < (SELECT MAX(h.seq) FROM audit_log h) \
     AND a.at <= $2 - COALESCE(p.audit_days, $3) * 86400000 \
     AND ($4 = '' OR a.workspace_id = $4) ORDER BY a.seq LIMIT $5";
pub(crate) const DELETE_AUDIT_SPAN: &str = "DELETE FROM audit_log WHERE seq >= $1 AND seq <= $2";
pub(crate) const PRUNED_ENDING_AT: &str = "SELECT first_seq, prev_hash FROM audit_pruned WHERE last_seq = $1";
pub(crate) const PRUNED_STARTING_AT: &str =
    "SELECT last_seq, last_hash FROM audit_pruned WHERE first_seq = $1";
pub(crate) const DELETE_PRUNED: &str = "DELETE FROM audit_pruned WHERE first_seq = $1";
pub(crate) const INSERT_PRUNED: &str = "INSERT INTO audit_pruned (first_seq, last_seq, prev_hash, last_hash, \
     pruned_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const AUDIT_PRUNED: &str =
    "SELECT first_seq, last_seq, prev_hash, last_hash, pruned_at FROM audit_pruned ORDER BY first_seq";

// Rows.

fn days(row: &impl RowExt, col: &str) -> Result<Option<u32>> {
    row.opt_int(col)?.map(|d| crate::error::narrow(d, col)).transpose()
}

pub(crate) fn policy(row: &impl RowExt) -> Result<WorkspacePolicy> {
    let hosts = row.opt_text("egress_hosts")?;
    let settings = PolicySettings {
        payload_days: days(row, "payload_days")?,
        error_days: days(row, "error_days")?,
        metadata_days: days(row, "metadata_days")?,
        audit_days: days(row, "audit_days")?,
        transcript_days: days(row, "transcript_days")?,
        egress_hosts: hosts.map(|h| from_json(&h, "egress hosts")).transpose()?,
    };
    Ok(WorkspacePolicy {
        workspace: row.text("workspace_id")?,
        days: settings.days(),
        settings,
        updated_at: Some(Timestamp(row.int("updated_at")?)),
        updated_by: Some(row.text("updated_by")?),
    })
}

/// A day count as a bound SQL integer.
pub(crate) fn bind_days(days: Option<u32>) -> Option<i64> {
    days.map(i64::from)
}

pub(crate) fn flow_source(row: &impl RowExt) -> Result<FlowSource> {
    Ok(FlowSource {
        flow_id: row.text("id")?,
        name: row.text("name")?,
        source: row.text("source")?,
        deleted_at: row.opt_int("deleted_at")?.map(Timestamp),
    })
}

pub(crate) fn purgeable(row: &impl RowExt) -> Result<Purgeable> {
    let kind = match row.text("kind")?.as_str() {
        "flow" => ObjectKind::Flow,
        "connection" => ObjectKind::Connection,
        "agent" => ObjectKind::Agent,
        "workspace" => ObjectKind::Workspace,
        other => return Err(Error::Backend(format!("unknown kind of deleted object {other}"))),
    };
    Ok(Purgeable {
        kind,
        workspace: row.text("workspace_id")?,
        id: row.text("id")?,
        name: row.text("name")?,
        deleted_at: Timestamp(row.int("deleted_at")?),
    })
}

pub(crate) fn pruned_range(row: &impl RowExt) -> Result<PrunedRange> {
    Ok(PrunedRange {
        first_seq: row.int("first_seq")?,
        last_seq: row.int("last_seq")?,
        prev_hash: row.text("prev_hash")?,
        last_hash: row.text("last_hash")?,
        pruned_at: Timestamp(row.int("pruned_at")?),
    })
}

/// Rows touched per table, in the order tables were first touched.
#[derive(Debug, Default)]
pub(crate) struct Counts(Vec<(&'static str, u64)>);

impl Counts {
    pub(crate) fn add(&mut self, table: &'static str, rows: u64) {
        if table.is_empty() || rows == 0 {
            return;
        }
        match self.0.iter_mut().find(|(t, _)| *t == table) {
            Some((_, n)) => *n += rows,
            None => self.0.push((table, rows)),
        }
    }

    pub(crate) fn tables(self, store: &str) -> Vec<TableCount> {
        self.0
            .into_iter()
            .map(|(table, rows)| TableCount { store: store.to_owned(), table: table.to_owned(), rows })
            .collect()
    }
}

/// Consecutive `seq`s of a batch of audit entries, as `(first index, last index)` pairs.
pub(crate) fn spans(seqs: &[i64]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        match out.last_mut() {
            Some((_, last)) if seqs[*last] + 1 == *seq => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_group_consecutive_entries() {
        assert_eq!(spans(&[1, 2, 3, 7, 9, 10]), vec![(0, 2), (3, 3), (4, 5)]);
        assert!(spans(&[]).is_empty());
    }

    #[test]
    fn counts_skip_zeros_and_add_up() {
        let mut c = Counts::default();
        c.add("runs", 2);
        c.add("run_events", 0);
        c.add("", 5);
        c.add("runs", 1);
        let tables = c.tables("sqlite");
        assert_eq!(tables.len(), 1);
        assert_eq!((tables[0].table.as_str(), tables[0].rows), ("runs", 3));
    }
}
