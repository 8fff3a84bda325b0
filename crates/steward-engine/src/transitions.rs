//! How one transition unfolds: [`Tx`] emits events one by one, applying each to the run state
//! as it goes, and follows their consequences (retries, error modes, blocks closing, loops
//! advancing) until nothing more happens at this moment.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::engine::Outcome;
use crate::error::{ErrorKind, StepError};
use crate::event::{Entry, Event, RunStatus};
use crate::index::Changes;
use crate::plan::{ErrorMode, NodeId, NodeKind, Plan};
use crate::retry;
use crate::state::{BlockInstance, Role, RunState, StepState, StepStatus};
use crate::time::Timestamp;

/// Accumulates events for one transition, applying each to the state.
pub(crate) struct Tx<'a> {
    plan: &'a Plan,
    pub(crate) state: &'a mut RunState,
    now: Timestamp,
    pub(crate) events: Vec<Event>,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(plan: &'a Plan, state: &'a mut RunState, now: Timestamp) -> Self {
        Self { plan, state, now, events: Vec::new() }
    }

    pub(crate) fn emit(&mut self, event: Event) {
        let entry = Entry { seq: self.state.last_seq + 1, at: self.now, event };
        self.state.apply(self.plan, &entry);
        self.events.push(entry.event);
    }

    pub(crate) fn status(&self, key: &str) -> Option<StepStatus> {
        self.state.step(key).map(|s| s.status)
    }

    pub(crate) fn keys_with(&self, status: StepStatus) -> Vec<String> {
        self.state.steps.iter().filter(|(_, s)| s.status == status).map(|(k, _)| k.clone()).collect()
    }

    pub(crate) fn on_outcome(&mut self, key: &str, outcome: Outcome) {
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
            Outcome::Continue => self.emit(Event::StepScheduled { key: k }),
        }
    }

    /// A step failed: retry it, or apply its `on_error`.
    pub(crate) fn fail_step(&mut self, key: &str, error: StepError, from_attempt: bool) {
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

    pub(crate) fn approval(&mut self, key: &str, approved: bool, by: &str, reason: Option<String>) {
        self.emit(Event::ApprovalDecided {
            key: key.to_owned(),
            approved,
            by: by.to_owned(),
            reason: reason.clone(),
        });
        // An agent hears the decision from its records and goes on either way.
        let agent = self.state.step(key).is_some_and(|s| self.plan.node(s.node).kind == NodeKind::Agent);
        if agent {
            self.emit(Event::StepScheduled { key: key.to_owned() });
        } else if approved {
            let output = json!({ "approved": true, "by": by, "reason": reason });
            self.emit(Event::StepSucceeded { key: key.to_owned(), output });
        } else {
            let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
            let e = StepError::new(ErrorKind::Rejected, format!("rejected by {by}{why}"));
            self.fail_step(key, e, false);
        }
    }

    /// Repeats timers and block bookkeeping until nothing more happens.
    ///
    /// A pass fires due timers, then advances the open block instances that changed since the
    /// engine last looked (in id order; one opened during the pass waits for the next pass),
    /// then the running loops. Only what changed is looked at, so a transition costs the same
    /// in a run's first step as in its thousandth.
    pub(crate) fn settle(&mut self) {
        loop {
            let before = self.events.len();
            if self.state.is_finished() {
                return;
            }
            self.fire_timers();
            let pass_start = self.state.last_seq;
            let mut cursor: Option<String> = None;
            while let Some(id) = self.state.index.pending.next_after(cursor.as_deref()).map(str::to_owned) {
                match self.state.blocks.get(&id) {
                    Some(b) if b.opened_at > pass_start => {}
                    Some(b) if !b.done => {
                        let changes = self.state.index.pending.take(&id);
                        self.advance_block(&id, &changes);
                        if self.state.is_finished() {
                            return;
                        }
                    }
                    // A block that is over has nothing left to do.
                    _ => drop(self.state.index.pending.take(&id)),
                }
                cursor = Some(id);
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
            .index
            .timers
            .iter()
            .filter_map(|k| Some((k, self.state.steps.get(k)?)))
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

    /// Schedules the steps of a block instance that `changes` made ready, or closes the
    /// instance when one of its steps failed or all have finished.
    fn advance_block(&mut self, id: &str, changes: &Changes) {
        let Some(b) = self.state.blocks.get(id) else { return };
        let nodes = &self.plan.blocks[b.block].nodes;
        let Some(&last) = nodes.last() else {
            self.close_block(id, Ok(Value::Null));
            return;
        };
        if b.failed > 0 {
            let error = self.first_failure(b, nodes);
            self.close_block(id, Err(error));
            return;
        }
        let ready = self.newly_ready(b, nodes, changes);
        let output = (b.finished == nodes.len()).then(|| {
            let key = step_key(&b.prefix, self.plan.node(last).id.as_str());
            self.state.step(&key).and_then(|s| s.output.clone())
        });
        for key in ready {
            self.emit(Event::StepScheduled { key });
        }
        if let Some(output) = output {
            self.close_block(id, Ok(output.unwrap_or(Value::Null)));
        }
    }

    /// The error of the first step, in file order, that failed for good.
    fn first_failure(&self, b: &BlockInstance, nodes: &[NodeId]) -> StepError {
        nodes
            .iter()
            .find_map(|n| {
                let s = self.state.step(&step_key(&b.prefix, self.plan.node(*n).id.as_str()))?;
                (s.status == StepStatus::Failed && !s.continued).then(|| s.error.clone())
            })
            .flatten()
            .unwrap_or_else(|| StepError::new(ErrorKind::Internal, "a step failed"))
    }

    /// Keys of the steps that can start now, in file order: those without dependencies when
    /// the instance just opened, and the dependents of steps that just finished, once all
    /// their dependencies let them run.
    fn newly_ready(&self, b: &BlockInstance, nodes: &[NodeId], changes: &Changes) -> Vec<String> {
        let roots = nodes.iter().copied().filter(|n| changes.opened && self.plan.node(*n).deps.is_empty());
        let followers = changes.passed.iter().flat_map(|n| self.plan.node(*n).dependents.iter().copied());
        let mut candidates: Vec<NodeId> = roots.chain(followers).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let passed = |n: NodeId| {
            let key = step_key(&b.prefix, self.plan.node(n).id.as_str());
            self.state.step(&key).is_some_and(StepState::lets_dependents_run)
        };
        candidates
            .into_iter()
            .filter(|n| self.plan.node(*n).deps.iter().all(|d| passed(*d)))
            .map(|n| step_key(&b.prefix, self.plan.node(n).id.as_str()).into_owned())
            .filter(|key| self.state.step(key).is_none())
            .collect()
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
        let loops: Vec<String> = self.state.index.loops.iter().cloned().collect();
        for key in loops {
            self.advance_loop(&key);
        }
    }

    fn advance_loop(&mut self, key: &str) {
        let s = &self.state.steps[key];
        let NodeKind::ForEach { body, parallelism } = self.plan.node(s.node).kind else { return };
        let total = s.items.as_ref().map_or(0, Vec::len);
        // Item instances are named `key[i]`, so they sort together.
        let items_from = format!("{key}[");
        let item_blocks: Vec<(usize, bool)> = self
            .state
            .blocks
            .range(items_from.clone()..)
            .take_while(|(id, _)| id.starts_with(&items_from))
            .map(|(_, b)| b)
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

/// The key of a step instance: the step id at the top level, `items[2].fetch` inside a loop.
fn step_key<'a>(prefix: &str, id: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() { Cow::Borrowed(id) } else { Cow::Owned(format!("{prefix}{id}")) }
}
