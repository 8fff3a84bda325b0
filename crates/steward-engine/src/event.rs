//! Journal events: the only record of a run. A run's state is the fold of its events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StepError;
use crate::time::Timestamp;

/// One thing that happened to a run. Step events name the step instance by its key
/// (`lookup`, or `items[2].fetch` inside a loop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        inputs: Value,
        /// What started the run (a webhook delivery, a schedule tick), as `.trigger` shows it;
        /// absent for runs started by hand.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<Value>,
    },
    /// The step's dependencies are done; it may start.
    StepScheduled {
        key: String,
    },
    /// An attempt began (committed before any side effect).
    StepStarted {
        key: String,
        attempt: u32,
    },
    StepSucceeded {
        key: String,
        output: Value,
    },
    /// The step's `if` was false.
    StepSkipped {
        key: String,
    },
    /// The attempt failed and another comes at `retry_at`.
    StepRetrying {
        key: String,
        attempt: u32,
        error: StepError,
        retry_at: Timestamp,
    },
    /// The step failed for good. With `continued`, the flow goes on regardless.
    StepFailed {
        key: String,
        error: StepError,
        continued: bool,
    },
    /// The executor died during the attempt; it is run again.
    StepInterrupted {
        key: String,
    },
    StepWaiting {
        key: String,
        until: Timestamp,
    },
    /// An approval step is waiting for a person.
    StepSuspended {
        key: String,
        message: Option<String>,
        timeout_at: Option<Timestamp>,
    },
    ApprovalDecided {
        key: String,
        approved: bool,
        by: String,
        reason: Option<String>,
    },
    BranchTaken {
        key: String,
        case: Option<usize>,
    },
    ItemsResolved {
        key: String,
        items: Vec<Value>,
    },
    /// A loop starts its body for item `index`.
    ItemStarted {
        key: String,
        index: usize,
    },
    ChildStarted {
        key: String,
        child_run_id: String,
    },
    /// The step's error handler steps start.
    HandlerStarted {
        key: String,
        error: StepError,
    },
    StepCancelled {
        key: String,
    },
    RunCancelled {
        reason: String,
    },
    RunFinished {
        status: RunStatus,
        output: Option<Value>,
        error: Option<StepError>,
    },
    /// A running step recorded a piece of work it completed (an agent's model turn or tool
    /// call). The records of a step are kept across its attempts, so that running it again
    /// after a crash, an approval or a retry continues after the last record instead of
    /// repeating what it did. Resets the step's interruption count: it made progress.
    StepRecorded {
        key: String,
        record: Value,
    },
    /// Data went to an outside processor during an attempt of the step (a data-flow receipt
    /// entry, one per host a request reached): the host, the connections whose credentials
    /// went along, the bytes sent and the categories of data the request was built from
    /// (`inputs`, `steps.<id>`, ...). Never the data itself. Does not change the run's state.
    DataSent {
        key: String,
        host: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        connections: Vec<String>,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        categories: Vec<String>,
    },
}

/// A run's overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not yet picked up by an executor.
    Queued,
    Running,
    /// Nothing to do until a timer or a person: no executor holds it.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

impl Event {
    /// The step key, for step events.
    pub fn key(&self) -> Option<&str> {
        use Event::*;
        match self {
            StepScheduled { key }
            | StepStarted { key, .. }
            | StepSucceeded { key, .. }
            | StepSkipped { key }
            | StepRetrying { key, .. }
            | StepFailed { key, .. }
            | StepInterrupted { key }
            | StepWaiting { key, .. }
            | StepSuspended { key, .. }
            | ApprovalDecided { key, .. }
            | BranchTaken { key, .. }
            | ItemsResolved { key, .. }
            | ItemStarted { key, .. }
            | ChildStarted { key, .. }
            | HandlerStarted { key, .. }
            | StepCancelled { key }
            | DataSent { key, .. }
            | StepRecorded { key, .. } => Some(key),
            RunStarted { .. } | RunCancelled { .. } | RunFinished { .. } => None,
        }
    }

    /// The event's type name as stored.
    pub fn kind(&self) -> &'static str {
        use Event::*;
        match self {
            RunStarted { .. } => "run_started",
            StepScheduled { .. } => "step_scheduled",
            StepStarted { .. } => "step_started",
            StepSucceeded { .. } => "step_succeeded",
            StepSkipped { .. } => "step_skipped",
            StepRetrying { .. } => "step_retrying",
            StepFailed { .. } => "step_failed",
            StepInterrupted { .. } => "step_interrupted",
            StepWaiting { .. } => "step_waiting",
            StepSuspended { .. } => "step_suspended",
            ApprovalDecided { .. } => "approval_decided",
            BranchTaken { .. } => "branch_taken",
            ItemsResolved { .. } => "items_resolved",
            ItemStarted { .. } => "item_started",
            ChildStarted { .. } => "child_started",
            HandlerStarted { .. } => "handler_started",
            StepCancelled { .. } => "step_cancelled",
            RunCancelled { .. } => "run_cancelled",
            RunFinished { .. } => "run_finished",
            DataSent { .. } => "data_sent",
            StepRecorded { .. } => "step_recorded",
        }
    }
}

/// An event as stored: its place in the journal and when it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at: Timestamp,
    pub event: Event,
}
