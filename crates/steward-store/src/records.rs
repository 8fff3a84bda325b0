//! The records the storage traits take and return.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_engine::{Entry, RunStatus, StepError, Timestamp};

/// The workspace a single-user installation uses until accounts exist.
pub const DEFAULT_WORKSPACE: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct NewFlowVersion {
    pub workspace: String,
    pub name: String,
    /// The file it came from, for messages (`flows/enrich.yaml`).
    pub file_name: String,
    pub source: String,
    /// A digest of `source`, to skip saving unchanged files as new versions.
    pub digest: String,
    pub concurrency: Option<u32>,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowVersion {
    pub id: String,
    pub workspace: String,
    pub flow_id: String,
    pub name: String,
    pub version: i64,
    pub file_name: String,
    pub source: String,
    pub digest: String,
    pub concurrency: Option<u32>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowSummary {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub updated_at: Timestamp,
    /// When set, no new runs start (runs already started go on).
    pub disabled_at: Option<Timestamp>,
    /// When set, the flow is soft-deleted: hidden, restorable.
    pub deleted_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub id: String,
    pub workspace: String,
    pub flow_version_id: String,
    pub inputs: Value,
    /// The run that started this one from a `flow` step, and that step's key.
    pub parent: Option<(String, String)>,
    /// Usually the flow id: runs sharing it count against `concurrency_limit`.
    pub concurrency_key: Option<String>,
    pub concurrency_limit: Option<u32>,
    pub now: Timestamp,
    /// Set when the executor creating the run drives it itself: the run starts `running`
    /// under this lease (owner, expiry) instead of `queued`, so no other executor claims it.
    pub leased_to: Option<(String, Timestamp)>,
}

/// A new run's journal: `events` numbered from 1, recorded at `now`.
pub fn first_entries(events: &[steward_engine::Event], now: Timestamp) -> Vec<steward_engine::Entry> {
    (1..)
        .zip(events)
        .map(|(seq, event)| steward_engine::Entry { seq, at: now, event: event.clone() })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub workspace: String,
    pub flow_version_id: String,
    pub flow_name: String,
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    pub parent_run_id: Option<String>,
    pub parent_step_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub wake_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
}

/// A change to a run row that goes with appended events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    pub finished_at: Option<Timestamp>,
    /// Signals the appended events answer; marked consumed in the same transaction.
    pub consumed_signals: Vec<i64>,
}

/// Events to append to a run's journal.
#[derive(Debug)]
pub struct Append<'a> {
    pub run_id: &'a str,
    pub owner: &'a str,
    /// The journal's last `seq` as the caller knows it; the new entries follow it.
    pub after_seq: u64,
    pub entries: &'a [Entry],
    pub update: RunUpdate,
    pub now: Timestamp,
}

/// Something that happens to a run from outside its executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    Cancel { reason: String },
    Approval { step: String, approved: bool, by: String, reason: Option<String> },
    ChildFinished { step: String, child_run_id: String, output: Option<Value>, error: Option<StepError> },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub flow: Option<String>,
    pub status: Option<RunStatus>,
    pub since: Option<Timestamp>,
    /// Runs created before this run id (for cursor pagination, newest first).
    pub before: Option<String>,
    pub limit: usize,
}
