//! The transitions: given a run's state, an input and the time, which events happen next.
//! Every function appends events through [`Tx`], which applies each one to the state as it
//! goes, so the state the caller holds afterwards equals a replay of the journal.

use serde_json::{Value, json};

use crate::error::{ErrorKind, StepError};
use crate::event::{Entry, Event, RunStatus};
use crate::plan::{ErrorMode, NodeId, NodeKind, Plan};
use crate::retry;
use crate::state::{Role, RunState, StepStatus};
use crate::time::Timestamp;

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
        let mut tx = Tx::new(self.plan, state, now);
        tx.emit(Event::RunStarted { run_id: run_id.to_owned(), inputs });
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
            .steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Scheduled)
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
        state.steps.values().filter(|s| !s.status.is_terminal()).filter_map(|s| s.wake_at).min()
    }

    /// Whether any step is in flight or ready, that is, the run needs an executor now.
    pub fn has_work(&self, state: &RunState) -> bool {
        self.needs_output(state)
            || state.steps.values().any(|s| matches!(s.status, StepStatus::Scheduled | StepStatus::Running))
    }
}

/// Accumulates events for one transition, applying each to the state.
struct Tx<'a> {
    plan: &'a Plan,
    state: &'a mut RunState,
    now: Timestamp,
    events: Vec<Event>,
}

impl<'a> Tx<'a> {
    fn new(plan: &'a Plan, state: &'a mut RunState, now: Timestamp) -> Self {
        Self { plan, state, now, events: Vec::new() }
    }

    fn emit(&mut self, event: Event) {
        let entry = Entry { seq: self.state.last_seq + 1, at: self.now, event };
        self.state.apply(self.plan, &entry);
        self.events.push(entry.event);
    }

    fn status(&self, key: &str) -> Option<StepStatus> {
        self.state.step(key).map(|s| s.status)
    }

    fn keys_with(&self, status: StepStatus) -> Vec<String> {
        self.state.steps.iter().filter(|(_, s)| s.status == status).map(|(k, _)| k.clone()).collect()
    }

    fn on_outcome(&mut self, key: &str, outcome: Outcome) {
        let k = key.to_owned();
        match outcome {
            Outcome::Succeeded(output) => self.emit(Event::StepSucceeded { key: k, output }),
            Outcome::Skipped => self.emit(Event::StepSkipped { key: k }),
            Outcome::Failed(e) => self.fail_step(key, e, true),
            Outcome::Branch(None) => {
                self.emit(Event::BranchTaken { key: k.clone(), case: None });
                self.emit(Event::StepSucceeded { key: k, output: Value::Null });
            }
            Outcome::Branch(case) => self.emit(Event::BranchTaken { key: k, case }),
            Outcome::Items(items) => self.emit(Event::ItemsResolved { key: k, items }),
            Outcome::WaitUntil(until) => self.emit(Event::StepWaiting { key: k, until }),
            Outcome::Suspend { message, timeout_at } => {
                self.emit(Event::StepSuspended { key: k, message, timeout_at })
            }
            Outcome::ChildStarted(id) => self.emit(Event::ChildStarted { key: k, child_run_id: id }),
        }
    }

    /// A step failed: retry it, or apply its `on_error`.
    fn fail_step(&mut self, key: &str, error: StepError, from_attempt: bool) {
        let Some(s) = self.state.step(key) else { return };
        let node = self.plan.node(s.node);
        let attempt = s.attempt;
        if from_attempt && attempt < node.retry.attempts && error.retryable(&node.retry.on) {
            let seed = format!("{}/{key}", self.state.run_id);
            let delay = retry::delay_ms(&node.retry, attempt, &seed);
            let retry_at = self.now.plus_millis(delay);
            self.emit(Event::StepRetrying { key: key.to_owned(), attempt, error, retry_at });
            return;
        }
        let mut error = error;
        error.step.get_or_insert_with(|| key.to_owned());
        match node.on_error {
            ErrorMode::Fail => self.emit(Event::StepFailed { key: key.to_owned(), error, continued: false }),
            ErrorMode::Continue => {
                self.emit(Event::StepFailed { key: key.to_owned(), error, continued: true })
            }
            ErrorMode::Handle(_) => self.emit(Event::HandlerStarted { key: key.to_owned(), error }),
        }
    }

    fn approval(&mut self, key: &str, approved: bool, by: &str, reason: Option<String>) {
        self.emit(Event::ApprovalDecided {
            key: key.to_owned(),
            approved,
            by: by.to_owned(),
            reason: reason.clone(),
        });
        if approved {
            let output = json!({ "approved": true, "by": by, "reason": reason });
            self.emit(Event::StepSucceeded { key: key.to_owned(), output });
        } else {
            let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
            let e = StepError::new(ErrorKind::Rejected, format!("rejected by {by}{why}"));
            self.fail_step(key, e, false);
        }
    }

    /// Repeats timers and block bookkeeping until nothing more happens.
    fn settle(&mut self) {
        loop {
            let before = self.events.len();
            if self.state.is_finished() {
                return;
            }
            self.fire_timers();
            let open: Vec<String> =
                self.state.blocks.iter().filter(|(_, b)| !b.done).map(|(k, _)| k.clone()).collect();
            for id in open {
                self.advance_block(&id);
                if self.state.is_finished() {
                    return;
                }
            }
            self.advance_loops();
            if self.events.len() == before {
                return;
            }
        }
    }

    fn fire_timers(&mut self) {
        let due: Vec<(String, StepStatus)> = self
            .state
            .steps
            .iter()
            .filter(|(_, s)| s.wake_at.is_some_and(|w| w <= self.now))
            .map(|(k, s)| (k.clone(), s.status))
            .collect();
        for (key, status) in due {
            match status {
                StepStatus::Retrying => self.emit(Event::StepScheduled { key }),
                StepStatus::Waiting => {
                    let until = self.state.steps[&key].wake_at.unwrap_or(self.now);
                    self.emit(Event::StepSucceeded {
                        key,
                        output: json!({ "waited_until": until.millis() }),
                    });
                }
                StepStatus::Suspended => {
                    let node = self.plan.node(self.state.steps[&key].node);
                    let approve = matches!(node.kind, NodeKind::Approval { approve_on_timeout: true });
                    self.approval(
                        &key,
                        approve,
                        "timeout",
                        Some("no decision before the timeout".to_owned()),
                    );
                }
                _ => {}
            }
        }
    }

    /// Schedules ready steps of a block instance, or closes it when done or failed.
    fn advance_block(&mut self, id: &str) {
        let Some(b) = self.state.blocks.get(id).cloned() else { return };
        let nodes = &self.plan.blocks[b.block].nodes;
        let key_of = |n: NodeId| format!("{}{}", b.prefix, self.plan.node(n).id);
        let failed = nodes.iter().map(|n| key_of(*n)).find_map(|k| {
            self.state
                .step(&k)
                .filter(|s| s.status == StepStatus::Failed && !s.continued)
                .map(|s| s.error.clone())
        });
        if let Some(error) = failed {
            let error = error.unwrap_or_else(|| StepError::new(ErrorKind::Internal, "a step failed"));
            self.close_block(id, Err(error));
            return;
        }
        let mut all_done = true;
        for &n in nodes {
            let key = key_of(n);
            match self.state.step(&key) {
                Some(s) if s.status.is_terminal() => {}
                Some(_) => all_done = false,
                None => {
                    all_done = false;
                    let deps_done = self
                        .plan
                        .node(n)
                        .deps
                        .iter()
                        .all(|d| self.state.step(&key_of(*d)).is_some_and(|s| s.lets_dependents_run()));
                    if deps_done {
                        self.emit(Event::StepScheduled { key });
                    }
                }
            }
        }
        if all_done {
            let output =
                nodes.last().and_then(|n| self.state.step(&key_of(*n))).and_then(|s| s.output.clone());
            self.close_block(id, Ok(output.unwrap_or(Value::Null)));
        }
    }

    fn close_block(&mut self, id: &str, result: Result<Value, StepError>) {
        let Some(b) = self.state.blocks.get(id).cloned() else { return };
        if result.is_err() {
            self.cancel_open_steps(&b.prefix, b.block);
        }
        let Some(owner) = b.owner.clone() else {
            match result {
                // The executor renders the flow's output, then calls `finish`.
                Ok(_) if self.plan.has_output => {}
                Ok(v) => self.emit(Event::RunFinished {
                    status: RunStatus::Succeeded,
                    output: Some(v),
                    error: None,
                }),
                Err(e) => {
                    self.emit(Event::RunFinished { status: RunStatus::Failed, output: None, error: Some(e) })
                }
            }
            return;
        };
        match (b.role, result) {
            (Role::Item(_), Ok(_)) => {} // the loop collects results in advance_loops
            (Role::Case | Role::Handler, Ok(v)) => self.emit(Event::StepSucceeded { key: owner, output: v }),
            (Role::Handler, Err(e)) => {
                self.emit(Event::StepFailed { key: owner, error: e, continued: false })
            }
            (Role::Case | Role::Item(_), Err(e)) => {
                self.cancel_items(&owner);
                self.fail_step(&owner, e, false);
            }
            (Role::Root, _) => {}
        }
    }

    /// Cancels the not-yet-finished steps of a block instance.
    fn cancel_open_steps(&mut self, prefix: &str, block: usize) {
        for &n in &self.plan.blocks[block].nodes {
            let key = format!("{prefix}{}", self.plan.node(n).id);
            if self.state.step(&key).is_some_and(|s| !s.status.is_terminal()) {
                self.cancel_owned(&key);
                self.emit(Event::StepCancelled { key });
            }
        }
    }

    /// Cancels the open nested blocks owned by a container step.
    fn cancel_owned(&mut self, owner: &str) {
        let owned: Vec<(String, String, usize)> = self
            .state
            .blocks
            .iter()
            .filter(|(_, b)| !b.done && b.owner.as_deref() == Some(owner))
            .map(|(id, b)| (id.clone(), b.prefix.clone(), b.block))
            .collect();
        for (_, prefix, block) in owned {
            self.cancel_open_steps(&prefix, block);
        }
    }

    fn cancel_items(&mut self, owner: &str) {
        self.cancel_owned(owner);
    }

    /// Starts loop items up to the parallelism bound and finishes loops whose items are done.
    fn advance_loops(&mut self) {
        let loops: Vec<String> = self
            .state
            .steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Expanded && s.items.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in loops {
            self.advance_loop(&key);
        }
    }

    fn advance_loop(&mut self, key: &str) {
        let s = &self.state.steps[key];
        let NodeKind::ForEach { body, parallelism } = self.plan.node(s.node).kind else { return };
        let total = s.items.as_ref().map_or(0, Vec::len);
        let item_blocks: Vec<(usize, bool)> = self
            .state
            .blocks
            .values()
            .filter(|b| b.owner.as_deref() == Some(key))
            .filter_map(|b| match b.role {
                Role::Item(i) => Some((i, self.state.block_finished(self.plan, b))),
                _ => None,
            })
            .collect();
        let started = item_blocks.len();
        let active = item_blocks.iter().filter(|(_, done)| !done).count();
        let free = (parallelism as usize).saturating_sub(active);
        for index in started..total.min(started + free) {
            self.emit(Event::ItemStarted { key: key.to_owned(), index });
        }
        if started == total && active == 0 {
            let last = self.plan.blocks[body].nodes.last().map(|n| self.plan.node(*n).id.clone());
            let results: Vec<Value> = (0..total)
                .map(|i| {
                    last.as_ref()
                        .and_then(|id| self.state.step(&format!("{key}[{i}].{id}")))
                        .and_then(|s| s.output.clone())
                        .unwrap_or(Value::Null)
                })
                .collect();
            self.emit(Event::StepSucceeded { key: key.to_owned(), output: Value::Array(results) });
        }
    }
}
