//! A run's state: the fold of its journal. `apply` is the only way state changes, so replaying
//! the same events always rebuilds the same state.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::StepError;
use crate::event::{Entry, Event, RunStatus};
use crate::index::{Flags, Index};
use crate::plan::{BlockId, BlockRole, ErrorMode, NodeId, NodeKind, Plan, ROOT};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Ready to start.
    Scheduled,
    /// An attempt is in flight.
    Running,
    /// Failed; the next attempt is due at `wake_at`.
    Retrying,
    /// A wait step, due at `wake_at`.
    Waiting,
    /// An approval step waiting for a person (or its timeout at `wake_at`).
    Suspended,
    /// A flow step waiting for its child run.
    AwaitingChild,
    /// A branch or loop whose nested steps are running.
    Expanded,
    /// The error handler steps are running.
    Handling,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Waiting => "waiting",
            Self::Suspended => "suspended",
            Self::AwaitingChild => "awaiting_child",
            Self::Expanded => "expanded",
            Self::Handling => "handling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One step instance.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub node: NodeId,
    /// The loop scope of the instance: `""`, or `items[2].` inside a loop.
    pub prefix: String,
    pub status: StepStatus,
    /// The attempt in flight or last made (0 before the first).
    pub attempt: u32,
    /// The attempt number the next start uses.
    pub next_attempt: u32,
    pub interruptions: u32,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    /// Continue past this failure.
    pub continued: bool,
    pub wake_at: Option<Timestamp>,
    pub items: Option<Vec<Value>>,
    pub approval_message: Option<String>,
    pub child_run_id: Option<String>,
    /// What the step recorded of its progress (`step_recorded`), and the decisions made on
    /// its suspensions, in journal order. Shared, so that handing them to each pass of a
    /// long agent step copies nothing.
    pub records: std::sync::Arc<Vec<Value>>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl StepState {
    /// A step instance of `node` that was just scheduled.
    pub(crate) fn new(node: NodeId, prefix: String) -> Self {
        Self {
            node,
            prefix,
            status: StepStatus::Scheduled,
            attempt: 0,
            next_attempt: 1,
            interruptions: 0,
            output: None,
            error: None,
            continued: false,
            wake_at: None,
            items: None,
            approval_message: None,
            child_run_id: None,
            records: Default::default(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Done in a way that lets dependent steps run.
    pub fn lets_dependents_run(&self) -> bool {
        match self.status {
            StepStatus::Succeeded | StepStatus::Skipped => true,
            StepStatus::Failed => self.continued,
            _ => false,
        }
    }
}

/// Why a block of steps is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Case,
    Item(usize),
    Handler,
}

/// A running instance of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockInstance {
    pub block: BlockId,
    /// Prefix of the keys of the steps in this instance.
    pub prefix: String,
    /// The container step, for all but the root.
    pub owner: Option<String>,
    pub role: Role,
    pub done: bool,
    /// The `seq` of the event that opened the instance.
    pub opened_at: u64,
    /// How many of its steps have finished (in any way), how many so that dependents may run,
    /// and how many failed for good; kept by `apply` so that whether the block is done is
    /// known without looking at every step.
    pub finished: usize,
    pub passed: usize,
    pub failed: usize,
}

impl BlockInstance {
    pub(crate) fn new(
        block: BlockId,
        prefix: String,
        owner: Option<String>,
        role: Role,
        opened_at: u64,
    ) -> Self {
        Self { block, prefix, owner, role, done: false, opened_at, finished: 0, passed: 0, failed: 0 }
    }
}

/// Everything known about a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunState {
    pub run_id: String,
    pub finished: Option<RunStatus>,
    pub inputs: Value,
    /// What a trigger delivered, for `.trigger`; `None` for runs started by hand.
    pub trigger: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    pub cancel_reason: Option<String>,
    pub steps: BTreeMap<String, StepState>,
    pub blocks: BTreeMap<String, BlockInstance>,
    pub last_seq: u64,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub(crate) index: Index,
}

impl RunState {
    /// Rebuilds a run's state from its journal.
    pub fn replay(plan: &Plan, entries: &[Entry]) -> Self {
        let mut state = RunState::default();
        for e in entries {
            state.apply(plan, e);
        }
        state
    }

    pub fn step(&self, key: &str) -> Option<&StepState> {
        self.steps.get(key)
    }

    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Every step of the block instance has finished in a way that lets the flow go on.
    pub fn block_succeeded(&self, plan: &Plan, b: &BlockInstance) -> bool {
        b.passed == plan.blocks[b.block].nodes.len()
    }

    /// Every step of the block instance has finished, one way or another.
    pub fn block_finished(&self, plan: &Plan, b: &BlockInstance) -> bool {
        b.finished == plan.blocks[b.block].nodes.len()
    }

    /// Applies one journal entry.
    pub fn apply(&mut self, plan: &Plan, entry: &Entry) {
        self.last_seq = entry.seq;
        let key = entry.event.key();
        let before = Flags::of(key.and_then(|k| self.steps.get(k)));
        self.apply_event(plan, entry);
        if let Some(key) = key {
            self.reindex(plan, key, before);
        }
        self.close_finished_blocks(plan, entry);
    }

    fn apply_event(&mut self, plan: &Plan, entry: &Entry) {
        let at = entry.at;
        match &entry.event {
            Event::RunStarted { run_id, inputs, trigger } => {
                self.run_id = run_id.clone();
                self.inputs = inputs.clone();
                self.trigger = trigger.clone();
                self.started_at = Some(at);
                self.open_block("", ROOT, String::new(), None, Role::Root);
            }
            Event::StepScheduled { key } => self.on_scheduled(plan, key),
            Event::RunCancelled { reason } => self.cancel_reason = Some(reason.clone()),
            Event::RunFinished { status, output, error } => {
                self.finished = Some(*status);
                self.output = output.clone();
                self.error = error.clone();
                self.finished_at = Some(at);
            }
            Event::ItemStarted { key, index } => {
                if let Some(s) = self.steps.get(key)
                    && let NodeKind::ForEach { body, .. } = plan.node(s.node).kind
                {
                    let prefix = format!("{key}[{index}].");
                    let id = format!("{key}[{index}]");
                    self.open_block(&id, body, prefix, Some(key.clone()), Role::Item(*index));
                }
            }
            Event::BranchTaken { key, case: Some(case) } => {
                if let Some(s) = self.steps.get_mut(key) {
                    s.status = StepStatus::Expanded;
                    if let NodeKind::Branch { cases } = &plan.node(s.node).kind {
                        let (block, prefix) = (cases[*case], s.prefix.clone());
                        self.open_block(&format!("{key}#case"), block, prefix, Some(key.clone()), Role::Case);
                    }
                }
            }
            Event::HandlerStarted { key, error } => {
                if let Some(s) = self.steps.get_mut(key) {
                    s.status = StepStatus::Handling;
                    s.error = Some(error.clone());
                    if let ErrorMode::Handle(block) = plan.node(s.node).on_error {
                        let prefix = s.prefix.clone();
                        self.open_block(
                            &format!("{key}#handler"),
                            block,
                            prefix,
                            Some(key.clone()),
                            Role::Handler,
                        );
                    }
                }
            }
            event => {
                if let Some(key) = event.key()
                    && let Some(s) = self.steps.get_mut(key)
                {
                    step_event(s, event, at);
                }
            }
        }
    }

    fn open_block(&mut self, id: &str, block: BlockId, prefix: String, owner: Option<String>, role: Role) {
        self.blocks.insert(id.to_owned(), BlockInstance::new(block, prefix, owner, role, self.last_seq));
        self.index.pending.opened(id);
    }

    fn on_scheduled(&mut self, plan: &Plan, key: &str) {
        if let Some(s) = self.steps.get_mut(key) {
            s.status = StepStatus::Scheduled;
            // A retry's timer has fired; left set, it would make the run look due until the
            // step finishes.
            s.wake_at = None;
            return;
        }
        let Some((prefix, id)) = split_key(key) else { return };
        let Some(node) = steward_flow::StepId::parse(id).ok().and_then(|id| plan.find(&id)) else { return };
        self.steps.insert(key.to_owned(), StepState::new(node, prefix.to_owned()));
    }

    /// Updates the indexes and the counters of the step's block instance after an event about
    /// step `key`, whose flags were `before`.
    fn reindex(&mut self, plan: &Plan, key: &str, before: Flags) {
        let Some(s) = self.steps.get(key) else { return };
        let after = Flags::of(Some(s));
        if before == after {
            return;
        }
        self.index.update(key, before, after);
        let node = s.node;
        let instance = instance_of(plan, node, &s.prefix);
        if let Some(b) = self.blocks.get_mut(instance.as_ref())
            && b.count(before, after)
        {
            self.index.pending.changed(&instance, after.passes_since(before).then_some(node));
        }
    }

    /// Marks block instances done when they are over: all of them when the run finishes, those
    /// of a step when it finishes, and its case or loop items when it fails into its error
    /// handler (their failure is being handled; they must not be closed again).
    fn close_finished_blocks(&mut self, plan: &Plan, entry: &Entry) {
        if let Event::RunFinished { .. } = entry.event {
            self.blocks.values_mut().for_each(|b| b.done = true);
            return;
        }
        let Some(key) = entry.event.key() else { return };
        let Some(s) = self.steps.get(key) else { return };
        let node = plan.node(s.node);
        let owns = matches!(node.kind, NodeKind::Branch { .. } | NodeKind::ForEach { .. })
            || matches!(node.on_error, ErrorMode::Handle(_));
        let (over, handling) = (s.status.is_terminal(), s.status == StepStatus::Handling);
        if !owns || !(over || handling) {
            return;
        }
        for b in self.blocks.values_mut().filter(|b| b.owner.as_deref() == Some(key)) {
            if over || matches!(b.role, Role::Case | Role::Item(_)) {
                b.done = true;
            }
        }
    }
}

/// The id of the block instance that step instance `node` (with key prefix `prefix`) runs in:
/// `""` for the root, `items[2]` for a loop item, `pick#case` and `pick#handler` for the
/// blocks of step `pick` (ids as [`RunState::apply`] gives them when opening the blocks).
fn instance_of<'a>(plan: &Plan, node: NodeId, prefix: &'a str) -> Cow<'a, str> {
    match plan.blocks[plan.node(node).block].owner {
        None => Cow::Borrowed(""),
        Some((_, BlockRole::Body)) => Cow::Borrowed(prefix.strip_suffix('.').unwrap_or(prefix)),
        Some((owner, BlockRole::Case)) => Cow::Owned(format!("{prefix}{}#case", plan.node(owner).id)),
        Some((owner, BlockRole::Handler)) => Cow::Owned(format!("{prefix}{}#handler", plan.node(owner).id)),
    }
}

fn step_event(s: &mut StepState, event: &Event, at: Timestamp) {
    match event {
        Event::StepStarted { attempt, .. } => {
            s.status = StepStatus::Running;
            s.attempt = *attempt;
            s.next_attempt = *attempt;
            s.started_at.get_or_insert(at);
        }
        Event::StepSucceeded { output, .. } => {
            // A retried attempt's error is history; a handled error stays visible.
            if s.status != StepStatus::Handling {
                s.error = None;
            }
            s.status = StepStatus::Succeeded;
            s.output = Some(output.clone());
            s.wake_at = None;
            s.finished_at = Some(at);
        }
        Event::StepSkipped { .. } => {
            s.status = StepStatus::Skipped;
            s.finished_at = Some(at);
        }
        Event::StepRetrying { attempt, error, retry_at, .. } => {
            s.status = StepStatus::Retrying;
            s.error = Some(error.clone());
            s.next_attempt = attempt + 1;
            s.wake_at = Some(*retry_at);
        }
        Event::StepFailed { error, continued, .. } => {
            s.status = StepStatus::Failed;
            s.error = Some(error.clone());
            s.continued = *continued;
            s.wake_at = None;
            s.finished_at = Some(at);
        }
        Event::StepInterrupted { .. } => {
            s.status = StepStatus::Scheduled;
            s.interruptions += 1;
        }
        Event::StepWaiting { until, .. } => {
            s.status = StepStatus::Waiting;
            s.wake_at = Some(*until);
        }
        Event::StepSuspended { message, timeout_at, .. } => {
            s.status = StepStatus::Suspended;
            s.approval_message = message.clone();
            s.wake_at = *timeout_at;
        }
        Event::BranchTaken { case: None, .. } => s.status = StepStatus::Expanded,
        Event::ItemsResolved { items, .. } => {
            s.status = StepStatus::Expanded;
            s.items = Some(items.clone());
        }
        Event::ChildStarted { child_run_id, .. } => {
            s.status = StepStatus::AwaitingChild;
            s.child_run_id = Some(child_run_id.clone());
        }
        Event::StepRecorded { record, .. } => {
            std::sync::Arc::make_mut(&mut s.records).push(record.clone());
            s.interruptions = 0;
        }
        Event::ApprovalDecided { approved, by, reason, .. } => {
            std::sync::Arc::make_mut(&mut s.records).push(serde_json::json!({
                "type": "decision",
                "approved": approved,
                "by": by,
                "reason": reason,
            }))
        }
        Event::StepCancelled { .. } => {
            s.status = StepStatus::Cancelled;
            s.wake_at = None;
            s.finished_at = Some(at);
        }
        _ => {}
    }
}

/// Splits `items[2].fetch` into (`items[2].`, `fetch`).
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    match key.rfind('.') {
        Some(i) => Some((&key[..=i], &key[i + 1..])),
        None => Some(("", key)),
    }
}
