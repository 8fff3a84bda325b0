//! Storage traits and records: what the executor and the CLI need from a database, without
//! saying which database. Implementations live in `steward-store-sql` (SQLite and
//! PostgreSQL) and are checked by one conformance suite.
//!
//! Invariants every implementation keeps:
//! - A run's journal is append-only and gap-free (`seq` 1, 2, 3, ...); `append` is atomic with
//!   the run-row update it carries, and fails with [`Error::Conflict`] if the caller no longer
//!   holds the run's lease or another writer appended first.
//! - At most one executor holds a run's lease at a time; a lease that is not renewed expires
//!   and the run can be claimed again.
//! - Every row belongs to one workspace, and reads take the workspace they are for.

mod accounts;
mod agents;
mod audit;
mod dataflow;
mod days;
mod export;
pub mod prune;
mod receipts;
mod records;
mod retention;
mod threads;
mod triggers;
mod vault;

pub use accounts::*;
pub use agents::*;
pub use audit::*;
pub use dataflow::*;
pub use days::{day_before, day_of, usage_total};
pub use export::*;
pub use receipts::*;
pub use records::*;
pub use retention::*;
pub use threads::{Thread, ThreadMessage, ThreadStore};
pub use triggers::*;
pub use vault::*;

use async_trait::async_trait;
use steward_engine::{Entry, Event, Timestamp};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    /// The lease is gone or the journal moved on: the caller must stop working on the run.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed; the message is for the server log.
    #[error("storage error: {0}")]
    Backend(String),
}

/// Flow definitions and their immutable versions.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores `source` as the newest version of the flow `name`, creating the flow if needed.
    /// When the newest version already has the same digest, returns it instead of adding one.
    async fn save_version(&self, new: NewFlowVersion) -> Result<FlowVersion>;

    async fn version(&self, workspace: &str, id: &str) -> Result<FlowVersion>;

    /// The newest version of a flow that is not deleted.
    async fn latest_version(&self, workspace: &str, name: &str) -> Result<Option<FlowVersion>>;

    /// What starting a run of `name` needs, in one read: the newest version of the flow if
    /// neither it nor its workspace is deleted, and when the flow was disabled if it is.
    async fn startable(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Option<(FlowVersion, Option<Timestamp>)>>;

    /// The workspace's flows; deleted ones too when `deleted` is set.
    async fn list_flows(&self, workspace: &str, deleted: bool) -> Result<Vec<FlowSummary>>;

    /// One flow by name, deleted or not.
    async fn flow(&self, workspace: &str, name: &str) -> Result<FlowSummary>;

    /// Every version of a flow, newest first.
    async fn versions(&self, workspace: &str, name: &str) -> Result<Vec<FlowVersion>>;

    /// Disables (no new runs start) or enables a flow that is not deleted.
    async fn set_flow_disabled(
        &self,
        workspace: &str,
        name: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<FlowSummary>;

    /// Soft-deletes (`deleted`) or restores a flow. Runs and versions stay.
    async fn set_flow_deleted(
        &self,
        workspace: &str,
        name: &str,
        deleted: bool,
        now: Timestamp,
    ) -> Result<FlowSummary>;
}

/// Runs, their journals, leases and signals.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts a run and its first journal entries in one transaction: queued and due at once
    /// (and executors are woken), or, with `run.leased_to`, running under that lease (and
    /// nobody is woken).
    async fn create_run(&self, run: NewRun, events: &[Event]) -> Result<()>;

    /// Takes up to `limit` due runs for `owner` until `now + lease_ms`: runs that are queued,
    /// running with an expired lease, or waiting with `wake_at <= now`, oldest due first,
    /// skipping runs whose flow already has `concurrency_limit` runs under a live lease.
    async fn claim(&self, owner: &str, now: Timestamp, lease_ms: u64, limit: usize)
    -> Result<Vec<RunRecord>>;

    /// Extends the leases `owner` still holds on `runs` to `until`; returns the runs whose
    /// lease was lost (taken over or finished elsewhere).
    async fn heartbeat(&self, owner: &str, runs: &[String], until: Timestamp) -> Result<Vec<String>>;

    async fn journal(&self, run_id: &str) -> Result<Vec<Entry>>;

    /// Appends events after `after_seq` and applies `update` to the run row, atomically, if
    /// `owner` holds the lease.
    async fn append(&self, append: Append<'_>) -> Result<()>;

    /// [`RunStore::create_run`] of a run leased to `append.owner` (`run.leased_to`), then
    /// [`RunStore::append`], in one transaction: a run created by the executor that drives
    /// it goes in with its first commit. Wakes nobody.
    async fn create_run_with(&self, run: NewRun, events: &[Event], append: Append<'_>) -> Result<()>;

    /// Gives up the lease: the run waits until `wake_at` (or a signal, when `None`).
    async fn release(&self, run_id: &str, owner: &str, wake_at: Option<Timestamp>) -> Result<()>;

    /// Records a signal (cancel, approval decision, child result) for a run, makes the run due
    /// now, and wakes executors. Fails with `NotFound` for unknown runs.
    async fn signal(&self, workspace: &str, run_id: &str, signal: &Signal, now: Timestamp) -> Result<()>;

    /// Unconsumed signals of a run, oldest first.
    async fn signals(&self, run_id: &str) -> Result<Vec<(i64, Signal)>>;

    /// The earliest `wake_at` of a run no executor holds, for sleeping until then.
    async fn next_due(&self) -> Result<Option<Timestamp>>;

    async fn run(&self, workspace: &str, id: &str) -> Result<RunRecord>;

    async fn list_runs(&self, workspace: &str, filter: &RunFilter) -> Result<Vec<RunRecord>>;

    /// Replaces stored events (to drop payloads a step does not retain once its run is done).
    async fn rewrite_events(&self, run_id: &str, events: &[Entry]) -> Result<()>;
}

/// Wakes executors when work arrives: `LISTEN/NOTIFY` on PostgreSQL, in-process on SQLite.
#[async_trait]
pub trait Wakeup: Send + Sync {
    /// Returns when work may have arrived, or after `timeout_ms`.
    async fn wait(&self, timeout_ms: u64);
}

/// Everything the executor needs, in one handle.
pub trait Store: FlowStore + RunStore + Wakeup + PolicyStore + AgentStore {}
impl<T: FlowStore + RunStore + Wakeup + PolicyStore + AgentStore> Store for T {}

/// Counts for monitoring.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Unfinished runs of every workspace by state at `now`.
    async fn queue_depth(&self, now: Timestamp) -> Result<QueueDepth>;
}

/// Unfinished runs, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Due and not held by any executor: work waiting for a free executor.
    pub due: u64,
    /// Held by an executor under a live lease.
    pub running: u64,
    /// Parked until a time or a signal (waits, approvals, child runs).
    pub waiting: u64,
}

/// Everything the server needs: the executor's store, accounts, the audit log and counts.
pub trait ServerStore:
    Store
    + AccountStore
    + AuditStore
    + StatsStore
    + TriggerStore
    + ScheduleStore
    + VaultStore
    + ExportStore
    + DataFlowStore
    + RetentionStore
    + ThreadStore
{
}
impl<
    T: Store
        + AccountStore
        + AuditStore
        + StatsStore
        + TriggerStore
        + ScheduleStore
        + VaultStore
        + ExportStore
        + DataFlowStore
        + RetentionStore
        + ThreadStore,
> ServerStore for T
{
}
