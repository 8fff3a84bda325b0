//! SQL text shared by both backends.
//!
//! SQLite accepts PostgreSQL's `$1` placeholders, and both understand `RETURNING`,
//! `ON CONFLICT` and partial indexes, so most statements are written once. Where PostgreSQL
//! needs row locks it has its own variant of a statement (`..._LOCKED`).

use sqlx::{Database, Encode, QueryBuilder, Type};
use steward_store::RunFilter;

/// Statuses of runs that are not finished.
macro_rules! unfinished {
    () => {
        "('queued', 'running', 'waiting')"
    };
}

macro_rules! run_cols {
    () => {
        "id, workspace_id, flow_version_id, flow_name, status, output, error, parent_run_id, \
         parent_step_key, created_at, updated_at, finished_at, wake_at, lease_owner, lease_expires_at"
    };
}

macro_rules! version_select {
    () => {
        version_select!("")
    };
    ($extra:literal) => {
        concat!(
            "SELECT v.id, v.workspace_id, v.flow_id, f.name, v.version, v.file_name, v.source, \
             v.digest, v.concurrency, v.created_at",
            $extra,
            " FROM flow_versions v JOIN flows f ON f.id = v.flow_id "
        )
    };
}

// Flows.

/// Creates the flow or revives a deleted one; on PostgreSQL it also locks the flow row so
/// concurrent saves of one flow number their versions one after the other.
pub(crate) const UPSERT_FLOW: &str = "INSERT INTO flows (id, workspace_id, name, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (workspace_id, name) DO UPDATE SET deleted_at = NULL RETURNING id";

pub(crate) const NEWEST_VERSION: &str =
    concat!(version_select!(), "WHERE v.flow_id = $1 ORDER BY v.version DESC LIMIT 1");

pub(crate) const INSERT_VERSION: &str = "INSERT INTO flow_versions \
     (id, workspace_id, flow_id, version, file_name, source, digest, concurrency, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const TOUCH_FLOW: &str = "UPDATE flows SET updated_at = $2 WHERE id = $1";

pub(crate) const VERSION: &str = concat!(version_select!(), "WHERE v.workspace_id = $1 AND v.id = $2");

macro_rules! latest_version {
    ($extra:literal) => {
        concat!(
            version_select!($extra),
            "WHERE f.workspace_id = $1 AND f.name = $2 AND f.deleted_at IS NULL \
             ORDER BY v.version DESC LIMIT 1"
        )
    };
}

pub(crate) const LATEST_VERSION: &str = latest_version!("");

/// [`LATEST_VERSION`] and the flow's `disabled_at`, unless the flow's workspace is deleted:
/// every way of starting runs asks here, so a deleted workspace's webhooks and schedules
/// start nothing.
pub(crate) const STARTABLE: &str = concat!(
    version_select!(", f.disabled_at"),
    "WHERE f.workspace_id = $1 AND f.name = $2 AND f.deleted_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.id = f.workspace_id AND w.deleted_at IS NOT NULL) \
     ORDER BY v.version DESC LIMIT 1"
);

macro_rules! flow_summary_select {
    () => {
        "SELECT f.id, f.name, f.updated_at, f.disabled_at, f.deleted_at, MAX(v.version) AS latest_version \
         FROM flows f JOIN flow_versions v ON v.flow_id = f.id "
    };
}

/// `$2` true lists deleted flows too.
pub(crate) const LIST_FLOWS: &str = concat!(
    flow_summary_select!(),
    "WHERE f.workspace_id = $1 AND (f.deleted_at IS NULL OR $2) \
     GROUP BY f.id, f.name, f.updated_at, f.disabled_at, f.deleted_at ORDER BY f.name"
);

pub(crate) const FLOW: &str = concat!(
    flow_summary_select!(),
    "WHERE f.workspace_id = $1 AND f.name = $2 \
     GROUP BY f.id, f.name, f.updated_at, f.disabled_at, f.deleted_at"
);

pub(crate) const VERSIONS: &str =
    concat!(version_select!(), "WHERE f.workspace_id = $1 AND f.name = $2 ORDER BY v.version DESC");

/// `$3` is the time to set or NULL to clear; only flows that are not deleted.
pub(crate) const SET_FLOW_DISABLED: &str = "UPDATE flows SET disabled_at = $3, updated_at = $4 \
     WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL";

pub(crate) const SET_FLOW_DELETED: &str =
    "UPDATE flows SET deleted_at = $3, updated_at = $4 WHERE workspace_id = $1 AND name = $2";

// Runs.

/// Inserts a run of a version of the same workspace; inserts nothing when there is none.
pub(crate) const INSERT_RUN: &str = "INSERT INTO runs (id, workspace_id, flow_version_id, flow_name, status, \
     inputs, parent_run_id, parent_step_key, concurrency_key, concurrency_limit, created_at, \
     updated_at, wake_at, lease_owner, lease_expires_at) \
     SELECT $1, $2, v.id, f.name, CASE WHEN $10 IS NULL THEN 'queued' ELSE 'running' END, \
     $4, $5, $6, $7, $8, $9, $9, $9, $10, $11 \
     FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
     WHERE v.id = $3 AND v.workspace_id = $2";

/// [`INSERT_RUN`] of a run that ends in its first commit: the row as it ends (`$10` status,
/// `$11` output, `$12` error, `$13` finished at, `$14` updated at), with no lease or due time.
pub(crate) const INSERT_FINISHED_RUN: &str = "INSERT INTO runs (id, workspace_id, flow_version_id, \
     flow_name, status, inputs, output, error, parent_run_id, parent_step_key, concurrency_key, \
     concurrency_limit, created_at, updated_at, finished_at) \
     SELECT $1, $2, v.id, f.name, $10, $4, $11, $12, $5, $6, $7, $8, $9, $14, $13 \
     FROM flow_versions v JOIN flows f ON f.id = v.flow_id \
     WHERE v.id = $3 AND v.workspace_id = $2";

pub(crate) const RUN: &str =
    concat!("SELECT ", run_cols!(), " FROM runs WHERE workspace_id = $1 AND id = $2");

/// Due runs without a live lease after the cursor `($2, $3)`, skipping runs whose
/// concurrency key is already at its limit. `$1` is now, `$4` the batch size.
macro_rules! claim_candidates {
    () => {
        concat!(
            "SELECT r.id, r.wake_at, r.concurrency_key, r.concurrency_limit FROM runs r \
             WHERE r.status IN ",
            unfinished!(),
            " AND r.wake_at IS NOT NULL AND r.wake_at <= $1 \
             AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= $1) \
             AND (r.wake_at > $2 OR (r.wake_at = $2 AND r.id > $3)) \
             AND (r.concurrency_key IS NULL OR r.concurrency_limit IS NULL OR r.concurrency_limit > \
                  (SELECT COUNT(*) FROM runs o WHERE o.concurrency_key = r.concurrency_key \
                   AND o.lease_expires_at > $1 AND o.status IN ",
            unfinished!(),
            ")) ORDER BY r.wake_at, r.id LIMIT $4"
        )
    };
}

pub(crate) const CLAIM_CANDIDATES: &str = claim_candidates!();

/// PostgreSQL: the candidates, locked, leaving out those another executor is claiming.
pub(crate) const CLAIM_CANDIDATES_LOCKED: &str = concat!(claim_candidates!(), " FOR UPDATE OF r SKIP LOCKED");

/// Other runs of a concurrency key under a live lease.
pub(crate) const COUNT_LEASED: &str = concat!(
    "SELECT COUNT(*) FROM runs WHERE concurrency_key = $1 AND id <> $2 AND lease_expires_at > $3 \
     AND status IN ",
    unfinished!()
);

pub(crate) const TAKE_RUN: &str = concat!(
    "UPDATE runs SET lease_owner = $2, lease_expires_at = $3, status = 'running', updated_at = $4 \
     WHERE id = $1 RETURNING ",
    run_cols!()
);

pub(crate) const HEARTBEAT: &str = concat!(
    "UPDATE runs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status IN ",
    unfinished!()
);

pub(crate) const JOURNAL: &str = "SELECT seq, at, data FROM run_events WHERE run_id = $1 ORDER BY seq";

pub(crate) const LEASE: &str = "SELECT status, lease_owner FROM runs WHERE id = $1";

/// PostgreSQL: [`LEASE`], locking the run until the transaction ends.
pub(crate) const LEASE_LOCKED: &str = "SELECT status, lease_owner FROM runs WHERE id = $1 FOR UPDATE";

/// [`LEASE`] or, when writers take row locks, [`LEASE_LOCKED`].
pub(crate) fn lease(row_locks: bool) -> &'static str {
    if row_locks { LEASE_LOCKED } else { LEASE }
}

/// [`CLAIM_CANDIDATES`] or, when writers take row locks, [`CLAIM_CANDIDATES_LOCKED`].
pub(crate) fn claim_candidates(row_locks: bool) -> &'static str {
    if row_locks { CLAIM_CANDIDATES_LOCKED } else { CLAIM_CANDIDATES }
}

/// [`LEASE`] and the journal's last `seq` in one round trip, for `append`.
pub(crate) const LEASE_AND_SEQ: &str = "SELECT status, lease_owner, \
     (SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1) AS last_seq FROM runs WHERE id = $1";

/// PostgreSQL: [`LEASE_AND_SEQ`], locking the run until the transaction ends.
pub(crate) const LEASE_AND_SEQ_LOCKED: &str = "SELECT status, lease_owner, \
     (SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1) AS last_seq FROM runs WHERE id = $1 \
     FOR UPDATE OF runs";

/// [`LEASE_AND_SEQ`] or, when writers take row locks, [`LEASE_AND_SEQ_LOCKED`].
pub(crate) fn lease_and_seq(row_locks: bool) -> &'static str {
    if row_locks { LEASE_AND_SEQ_LOCKED } else { LEASE_AND_SEQ }
}

/// An insert of `n` events in one statement (six parameters each, numbered in order).
pub(crate) fn insert_events(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let b = i * 6;
            format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6)
        })
        .collect();
    format!("INSERT INTO run_events (run_id, seq, at, kind, step_key, data) VALUES {}", rows.join(", "))
}

/// Applies a `RunUpdate`; `$7` says the run finished, which ends its lease and timer.
/// The run row change of most appends: only `updated_at`, so no indexed column is written.
pub(crate) const TOUCH_RUN: &str = "UPDATE runs SET updated_at = $2 WHERE id = $1";

pub(crate) const UPDATE_RUN: &str = "UPDATE runs SET status = COALESCE($2, status), \
     output = COALESCE($3, output), error = COALESCE($4, error), \
     finished_at = COALESCE($5, finished_at), updated_at = $6, \
     lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, \
     lease_expires_at = CASE WHEN $7 THEN NULL ELSE lease_expires_at END, \
     wake_at = CASE WHEN $7 THEN NULL ELSE wake_at END \
     WHERE id = $1";

pub(crate) const CONSUME_SIGNAL: &str =
    "UPDATE run_signals SET consumed_at = $3 WHERE id = $1 AND run_id = $2 AND consumed_at IS NULL";

pub(crate) const FIRST_PENDING_SIGNAL: &str =
    "SELECT MIN(created_at) FROM run_signals WHERE run_id = $1 AND consumed_at IS NULL";

pub(crate) const RELEASE: &str = "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, \
     status = 'waiting', wake_at = $2 WHERE id = $1";

pub(crate) const RUN_STATUS: &str = "SELECT status FROM runs WHERE id = $1 AND workspace_id = $2";

pub(crate) const INSERT_SIGNAL: &str =
    "INSERT INTO run_signals (run_id, workspace_id, data, created_at) VALUES ($1, $2, $3, $4)";

/// Makes an unfinished run due at `$2` at the latest.
pub(crate) const WAKE_RUN: &str = concat!(
    "UPDATE runs SET wake_at = CASE WHEN wake_at IS NOT NULL AND wake_at < $2 THEN wake_at ELSE $2 END \
     WHERE id = $1 AND status IN ",
    unfinished!()
);

pub(crate) const SIGNALS: &str =
    "SELECT id, data FROM run_signals WHERE run_id = $1 AND consumed_at IS NULL ORDER BY id";

/// The earliest time an unfinished run is due; a leased run is due when its lease expires.
pub(crate) const NEXT_DUE: &str = concat!(
    "SELECT MIN(CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at > wake_at \
     THEN lease_expires_at ELSE wake_at END) FROM runs \
     WHERE wake_at IS NOT NULL AND status IN ",
    unfinished!()
);

pub(crate) const REWRITE_EVENT: &str =
    "UPDATE run_events SET at = $3, kind = $4, step_key = $5, data = $6 WHERE run_id = $1 AND seq = $2";

/// Runs per page when a filter asks for none.
const DEFAULT_LIMIT: usize = 50;

/// `list_runs`: the workspace's runs matching `filter`, newest first.
pub(crate) fn list_runs<DB>(workspace: &str, filter: &RunFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(concat!("SELECT ", run_cols!(), " FROM runs WHERE workspace_id = "));
    q.push_bind(workspace.to_owned());
    if let Some(flow) = &filter.flow {
        q.push(" AND flow_name = ").push_bind(flow.clone());
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str().to_owned());
    }
    if let Some(since) = filter.since {
        q.push(" AND created_at >= ").push_bind(since.0);
    }
    if let Some(before) = &filter.before {
        q.push(" AND (created_at, id) < (SELECT c.created_at, c.id FROM runs c WHERE c.workspace_id = ")
            .push_bind(workspace.to_owned())
            .push(" AND c.id = ")
            .push_bind(before.clone())
            .push(")");
    }
    let limit = if filter.limit == 0 { DEFAULT_LIMIT } else { filter.limit };
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    q
}

/// How many candidates `claim` reads at a time: a few more than it wants, since some may be
/// skipped for their concurrency limit or (PostgreSQL) taken by another executor.
pub(crate) fn claim_batch(limit: usize) -> i64 {
    i64::try_from(limit.saturating_mul(2).clamp(8, 1000)).unwrap_or(1000)
}
