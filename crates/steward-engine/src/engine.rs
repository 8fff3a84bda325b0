//! The transitions: given a run's state, an input and the time, which events happen next.
//! Every function appends events through [`Tx`], which applies each one to the state as it
//! goes, so the state the caller holds afterwards equals a replay of the journal.

use serde_json::Value;

use crate::error::{ErrorKind, StepError};
use crate::event::{Event, RunStatus};
use crate::plan::{NodeId, Plan};
use crate::state::{RunState, StepStatus};
use crate::time::Timestamp;
use crate::transitions::Tx;

/// How many times a step may be cut off by a dying executor before it fails.
pub const MAX_INTERRUPTIONS: u32 = 3;

/// What the executor reports after working on a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// The step's `if` was false.
    Skipped,
    Failed(StepError),
    /// A branch chose case `n` (or none).
    Branch(Option<usize>),
    /// A loop's items.
    Items(Vec<Value>),
    /// A wait step waits until this time.
    WaitUntil(Timestamp),
    /// An approval step asks a person.
    Suspend {
        message: Option<String>,
        timeout_at: Option<Timestamp>,
    },
    /// A flow step started its child run.
    ChildStarted(String),
    /// An agent step made progress (recorded before this outcome) and runs again.
    Continue,
}

/// A step the executor should start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub key: String,
    pub node: NodeId,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("step `{0}` does not exist in this run")]
    UnknownStep(String),
    #[error("step `{key}` is not waiting for an approval (it is {status})")]
    NotAwaitingApproval { key: String, status: &'static str },
    #[error("the run has already finished")]
    Finished,
}

/// The engine for one flow version.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'p> {
    plan: &'p Plan,
}

impl<'p> Engine<'p> {
    pub fn new(plan: &'p Plan) -> Self {
        Self { plan }
    }

    /// The first events of a new run.
    pub fn start(&self, state: &mut RunState, run_id: &str, inputs: Value, now: Timestamp) -> Vec<Event> {
        self.start_triggered(state, run_id, inputs, None, now)
    }

    /// Starts a run that a trigger (webhook, schedule) started, recording what it delivered.
    pub fn start_triggered(
        &self,
        state: &mut RunState,
        run_id: &str,
        inputs: Value,
        trigger: Option<Value>,
        now: Timestamp,
    ) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        tx.emit(Event::RunStarted { run_id: run_id.to_owned(), inputs, trigger });
        tx.settle();
        tx.events
    }

    /// Fires due timers, schedules steps whose dependencies are done, closes finished blocks.
    pub fn tick(&self, state: &mut RunState, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        tx.settle();
        tx.events
    }

    /// Steps ready to start, in key order.
    pub fn ready(&self, state: &RunState) -> Vec<Work> {
        if state.is_finished() {
            return Vec::new();
        }
        state
            .index
            .scheduled
            .iter()
            .filter_map(|k| Some((k, state.steps.get(k)?)))
            .map(|(k, s)| Work { key: k.clone(), node: s.node, attempt: s.next_attempt })
            .collect()
    }

    /// Records that an attempt begins. Must be committed before the step's side effects.
    pub fn begin(&self, state: &mut RunState, work: &Work, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.status(&work.key) == Some(StepStatus::Scheduled) {
            tx.emit(Event::StepStarted { key: work.key.clone(), attempt: work.attempt });
        }
        tx.events
    }

    /// Applies what the executor found. Outcomes for steps no longer running (cancelled in the
    /// meantime) are ignored.
    pub fn outcome(&self, state: &mut RunState, key: &str, outcome: Outcome, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.status(key) == Some(StepStatus::Running) && !tx.state.is_finished() {
            tx.on_outcome(key, outcome);
            tx.settle();
        }
        tx.events
    }

    /// Records what a running step's attempt sent to outside processors (`data_sent` events),
    /// before its outcome. Other events, and receipts of steps no longer running, are ignored.
    pub fn receipts(&self, state: &mut RunState, key: &str, sent: Vec<Event>, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.status(key) == Some(StepStatus::Running) {
            for event in sent {
                if matches!(&event, Event::DataSent { key: k, .. } if k == key) {
                    tx.emit(event);
                }
            }
        }
        tx.events
    }

    /// Records the progress a running step made (`step_recorded` events), before its outcome.
    /// Records of steps no longer running are ignored.
    pub fn record(&self, state: &mut RunState, key: &str, records: Vec<Value>, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.status(key) == Some(StepStatus::Running) {
            for record in records {
                tx.emit(Event::StepRecorded { key: key.to_owned(), record });
            }
        }
        tx.events
    }

    /// Steps that were running when their executor died are run again (same attempt number),
    /// up to [`MAX_INTERRUPTIONS`] times.
    pub fn recover(&self, state: &mut RunState, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        let running: Vec<String> = tx.keys_with(StepStatus::Running);
        for key in running {
            let interruptions = tx.state.steps[&key].interruptions;
            if interruptions + 1 >= MAX_INTERRUPTIONS {
                let e = StepError::new(
                    ErrorKind::Interrupted,
                    format!("the executor stopped during this step {MAX_INTERRUPTIONS} times"),
                );
                tx.fail_step(&key, e, false);
            } else {
                tx.emit(Event::StepInterrupted { key });
            }
        }
        tx.settle();
        tx.events
    }

    pub fn cancel(&self, state: &mut RunState, reason: &str, now: Timestamp) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.state.is_finished() {
            return Vec::new();
        }
        tx.emit(Event::RunCancelled { reason: reason.to_owned() });
        let open: Vec<String> =
            tx.state.steps.iter().filter(|(_, s)| !s.status.is_terminal()).map(|(k, _)| k.clone()).collect();
        for key in open {
            tx.emit(Event::StepCancelled { key });
        }
        let error = StepError::new(ErrorKind::Cancelled, format!("cancelled: {reason}"));
        tx.emit(Event::RunFinished { status: RunStatus::Cancelled, output: None, error: Some(error) });
        tx.events
    }

    pub fn decide(
        &self,
        state: &mut RunState,
        key: &str,
        approved: bool,
        by: &str,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Vec<Event>, EngineError> {
        if state.is_finished() {
            return Err(EngineError::Finished);
        }
        let status = state.step(key).ok_or_else(|| EngineError::UnknownStep(key.to_owned()))?.status;
        if status != StepStatus::Suspended {
            return Err(EngineError::NotAwaitingApproval { key: key.to_owned(), status: status.as_str() });
        }
        let mut tx = Tx::new(self.plan, state, now);
        tx.approval(key, approved, by, reason);
        tx.settle();
        Ok(tx.events)
    }

    /// A child run started by a flow step finished.
    pub fn child_finished(
        &self,
        state: &mut RunState,
        key: &str,
        result: Result<Value, StepError>,
        now: Timestamp,
    ) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if tx.status(key) == Some(StepStatus::AwaitingChild) {
            match result {
                Ok(v) => tx.emit(Event::StepSucceeded { key: key.to_owned(), output: v }),
                Err(e) => tx.fail_step(key, e, true),
            }
            tx.settle();
        }
        tx.events
    }

    /// Finishes a run whose steps are done, with the rendered flow output.
    pub fn finish(
        &self,
        state: &mut RunState,
        output: Result<Value, StepError>,
        now: Timestamp,
    ) -> Vec<Event> {
        let mut tx = Tx::new(self.plan, state, now);
        if Engine::new(self.plan).needs_output(tx.state) {
            tx.emit(match output {
                Ok(v) => Event::RunFinished { status: RunStatus::Succeeded, output: Some(v), error: None },
                Err(e) => Event::RunFinished { status: RunStatus::Failed, output: None, error: Some(e) },
            });
        }
        tx.events
    }

    /// Whether the steps are done and the flow output must be rendered by the executor.
    pub fn needs_output(&self, state: &RunState) -> bool {
        self.plan.has_output
            && !state.is_finished()
            && state.blocks.get("").is_some_and(|root| state.block_succeeded(self.plan, root))
    }

    /// The earliest time a timer is due (retry, wait, approval timeout).
    pub fn next_wake(&self, state: &RunState) -> Option<Timestamp> {
        if state.is_finished() {
            return None;
        }
        let timers = state.index.timers.iter().filter_map(|k| state.steps.get(k));
        timers.filter(|s| !s.status.is_terminal()).filter_map(|s| s.wake_at).min()
    }

    /// Whether any step is in flight or ready, that is, the run needs an executor now.
    pub fn has_work(&self, state: &RunState) -> bool {
        self.needs_output(state)
            || state.steps.values().any(|s| matches!(s.status, StepStatus::Scheduled | StepStatus::Running))
    }
}
