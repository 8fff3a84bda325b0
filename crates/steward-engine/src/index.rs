//! Indexes over a run's state, so that a transition looks only at what it may affect instead
//! of every step of the run: which steps are scheduled, which have a timer, which loops are
//! running, and which block instances changed since the engine last looked at them.
//! [`RunState::apply`](crate::state::RunState::apply) keeps them up to date, so the first three
//! are a function of the journal like the rest of the state; the last is only a hint of where to
//! look (see [`Pending`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::NodeId;
use crate::state::{BlockInstance, StepState, StepStatus};

/// Step keys by what the engine looks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Index {
    /// Steps ready to start.
    pub(crate) scheduled: BTreeSet<String>,
    /// Steps with a `wake_at`.
    pub(crate) timers: BTreeSet<String>,
    /// Loops whose items are running.
    pub(crate) loops: BTreeSet<String>,
    pub(crate) pending: Pending,
}

/// What of a step the indexes and block counters follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    status: Option<StepStatus>,
    timer: bool,
    looping: bool,
    finished: bool,
    passed: bool,
    failed: bool,
}

impl Flags {
    pub(crate) fn of(step: Option<&StepState>) -> Self {
        Self {
            status: step.map(|s| s.status),
            timer: step.is_some_and(|s| s.wake_at.is_some()),
            looping: step.is_some_and(|s| s.status == StepStatus::Expanded && s.items.is_some()),
            finished: step.is_some_and(|s| s.status.is_terminal()),
            passed: step.is_some_and(StepState::lets_dependents_run),
            failed: step.is_some_and(|s| s.status == StepStatus::Failed && !s.continued),
        }
    }
}

impl Flags {
    /// Whether the step now lets its dependents run and did not before.
    pub(crate) fn passes_since(self, before: Flags) -> bool {
        self.passed && !before.passed
    }
}

impl Index {
    /// Moves `key` between the sets after its step changed from `before` to `after`.
    pub(crate) fn update(&mut self, key: &str, before: Flags, after: Flags) {
        let scheduled = |f: Flags| f.status == Some(StepStatus::Scheduled);
        toggle(&mut self.scheduled, key, scheduled(before), scheduled(after));
        toggle(&mut self.timers, key, before.timer, after.timer);
        toggle(&mut self.loops, key, before.looping, after.looping);
    }
}

fn toggle(set: &mut BTreeSet<String>, key: &str, was: bool, is: bool) {
    match (was, is) {
        (false, true) => {
            set.insert(key.to_owned());
        }
        (true, false) => {
            set.remove(key);
        }
        _ => {}
    }
}

impl BlockInstance {
    /// Counts a change of one of this instance's steps, as node `node`. Returns whether the
    /// engine must look at the instance again: it may be able to schedule the node's
    /// dependents, or to close.
    pub(crate) fn count(&mut self, before: Flags, after: Flags) -> bool {
        let step = |n: &mut usize, was: bool, is: bool| match (was, is) {
            (false, true) => *n += 1,
            (true, false) => *n = n.saturating_sub(1),
            _ => {}
        };
        step(&mut self.finished, before.finished, after.finished);
        step(&mut self.passed, before.passed, after.passed);
        step(&mut self.failed, before.failed, after.failed);
        before.finished != after.finished || before.passed != after.passed || before.failed != after.failed
    }
}

/// Block instances to look at again, by id, with the nodes that finished in a way that may
/// let their dependents run.
///
/// This is a hint, not state: a replayed run has every instance its journal touched here,
/// a live one only those changed since the engine last settled, and looking at an instance
/// with nothing to do emits nothing. So it is left out of equality (`RunState::replay(journal)
/// == state` compares what the run is, not where the engine will look).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending(BTreeMap<String, Changes>);

/// What changed in a block instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    /// The instance was just opened: its steps without dependencies can start.
    pub(crate) opened: bool,
    pub(crate) passed: Vec<NodeId>,
}

impl PartialEq for Pending {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Pending {
    pub(crate) fn opened(&mut self, block: &str) {
        self.0.entry(block.to_owned()).or_default().opened = true;
    }

    pub(crate) fn changed(&mut self, block: &str, passed: Option<NodeId>) {
        let changes = match self.0.get_mut(block) {
            Some(changes) => changes,
            None => self.0.entry(block.to_owned()).or_default(),
        };
        changes.passed.extend(passed);
    }

    /// The first instance after `after` (in id order) with changes.
    pub(crate) fn next_after(&self, after: Option<&str>) -> Option<&str> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        self.0.range::<str, _>((start, Unbounded)).next().map(|(id, _)| id.as_str())
    }

    pub(crate) fn take(&mut self, block: &str) -> Changes {
        self.0.remove(block).unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_instances_come_in_id_order_and_collect_their_changes() {
        let mut p = Pending::default();
        p.changed("b", Some(3));
        p.opened("a");
        p.changed("b", Some(4));
        p.changed("c", None);
        assert_eq!(p.next_after(None), Some("a"));
        assert_eq!(p.next_after(Some("a")), Some("b"));
        assert_eq!(p.take("b"), Changes { opened: false, passed: vec![3, 4] });
        assert_eq!(p.next_after(Some("a")), Some("c"));
        assert_eq!(p.next_after(Some("c")), None);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn counting_reports_only_changes_that_matter() {
        let mut b = BlockInstance::new(0, String::new(), None, crate::state::Role::Root, 1);
        let none = Flags::of(None);
        let mut s = StepState::new(0, String::new());
        let scheduled = Flags::of(Some(&s));
        assert!(!b.count(none, scheduled), "a scheduled step changes nothing a block waits for");
        s.status = StepStatus::Succeeded;
        assert!(b.count(scheduled, Flags::of(Some(&s))));
        assert_eq!((b.finished, b.passed, b.failed), (1, 1, 0));
    }
}
