//! Engine transitions under a fake clock. Each test drives the engine the way the executor
//! does (start → ready → begin → outcome → tick) and checks that replaying the journal
//! rebuilds exactly the state the engine holds.

use serde_json::{Value, json};
use steward_engine::*;

struct Sim {
    plan: Plan,
    state: RunState,
    journal: Vec<Entry>,
    now: i64,
}

impl Sim {
    fn new(yaml: &str) -> Self {
        let flow = steward_flow::load("t.yaml", yaml).expect("valid flow").flow;
        let mut sim =
            Sim { plan: Plan::new(&flow), state: RunState::default(), journal: Vec::new(), now: 1_000 };
        let events = Engine::new(&sim.plan).start(&mut sim.state, "run-1", json!({}), Timestamp(sim.now));
        sim.record(events);
        sim
    }

    fn record(&mut self, events: Vec<Event>) {
        for event in events {
            let seq = self.journal.len() as u64 + 1;
            self.journal.push(Entry { seq, at: Timestamp(self.now), event });
        }
        assert_eq!(RunState::replay(&self.plan, &self.journal), self.state, "replay must rebuild the state");
    }

    fn engine(&self) -> Engine<'_> {
        // The plan lives as long as the simulation; tests never change it.
        Engine::new(&self.plan)
    }

    fn ready(&self) -> Vec<String> {
        self.engine().ready(&self.state).into_iter().map(|w| w.key).collect()
    }

    /// Starts a ready step and returns its attempt number.
    fn begin(&mut self, key: &str) -> u32 {
        let plan = self.plan.clone();
        let work = Engine::new(&plan)
            .ready(&self.state)
            .into_iter()
            .find(|w| w.key == key)
            .unwrap_or_else(|| panic!("{key} is not ready; ready: {:?}", self.ready()));
        let events = Engine::new(&plan).begin(&mut self.state, &work, Timestamp(self.now));
        self.record(events);
        work.attempt
    }

    fn outcome(&mut self, key: &str, outcome: Outcome) {
        let plan = self.plan.clone();
        let events = Engine::new(&plan).outcome(&mut self.state, key, outcome, Timestamp(self.now));
        self.record(events);
    }

    fn run_step(&mut self, key: &str, output: Value) {
        self.begin(key);
        self.outcome(key, Outcome::Succeeded(output));
    }

    fn tick_at(&mut self, now: i64) {
        self.now = now;
        let plan = self.plan.clone();
        let events = Engine::new(&plan).tick(&mut self.state, Timestamp(now));
        self.record(events);
    }

    fn status(&self, key: &str) -> StepStatus {
        self.state.step(key).map(|s| s.status).unwrap_or_else(|| panic!("no step {key}"))
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.journal.iter().map(|e| e.event.kind()).collect()
    }
}

fn net_error() -> StepError {
    StepError::new(ErrorKind::Network, "connection refused")
}

#[test]
fn linear_steps_run_one_after_another_and_the_last_output_is_the_result() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - {id: a, transform: '1'}\n  - {id: b, transform: '2'}\n  - {id: c, transform: '3'}\n",
    );
    assert_eq!(sim.ready(), vec!["a"]);
    sim.run_step("a", json!(1));
    assert_eq!(sim.ready(), vec!["b"], "b waits for a, c waits for b");
    sim.run_step("b", json!(2));
    sim.run_step("c", json!(3));
    assert_eq!(sim.state.finished, Some(RunStatus::Succeeded));
    assert_eq!(sim.state.output, Some(json!(3)));
    insta::assert_snapshot!(sim.kinds().join("\n"));
}

#[test]
fn steps_with_empty_needs_start_together() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - {id: a, transform: '1'}\n  - {id: b, needs: [], transform: '2'}\n  - {id: c, needs: [a, b], transform: '3'}\n",
    );
    assert_eq!(sim.ready(), vec!["a", "b"]);
    sim.run_step("b", json!(2));
    assert_eq!(sim.ready(), vec!["a"], "c still needs a");
    sim.run_step("a", json!(1));
    assert_eq!(sim.ready(), vec!["c"]);
}

#[test]
fn a_flow_output_is_rendered_by_the_executor_before_the_run_finishes() {
    let mut sim =
        Sim::new("name: t\nsteps:\n  - {id: a, transform: '1'}\noutput: '${{ .steps.a.output }}'\n");
    sim.run_step("a", json!(1));
    assert!(sim.engine().needs_output(&sim.state));
    assert_eq!(sim.state.finished, None);
    let plan = sim.plan.clone();
    let events = Engine::new(&plan).finish(&mut sim.state, Ok(json!({"x": 1})), Timestamp(sim.now));
    sim.record(events);
    assert_eq!(sim.state.output, Some(json!({"x": 1})));
}

#[test]
fn retries_wait_for_the_backoff_then_use_the_next_attempt() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    retry: {attempts: 3, backoff: exponential, initial: 1s, max: 10s, jitter: false}\n",
    );
    assert_eq!(sim.begin("a"), 1);
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.status("a"), StepStatus::Retrying);
    assert_eq!(sim.engine().next_wake(&sim.state), Some(Timestamp(2_000)));
    sim.tick_at(1_999);
    assert!(sim.ready().is_empty(), "not before the backoff");
    sim.tick_at(2_000);
    assert_eq!(sim.begin("a"), 2);
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.engine().next_wake(&sim.state), Some(Timestamp(4_000)), "second delay doubles");
    sim.tick_at(4_000);
    assert_eq!(sim.engine().next_wake(&sim.state), None, "a fired timer does not stay due");
    assert_eq!(sim.begin("a"), 3);
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.state.finished, Some(RunStatus::Failed), "three attempts and no more");
    assert_eq!(sim.state.error.as_ref().map(|e| e.step.clone()), Some(Some("a".into())));
}

#[test]
fn errors_the_policy_does_not_select_are_not_retried() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    retry: {attempts: 5, on: [http_5xx]}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(StepError::http(404, "not found")));
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    retry: {attempts: 5, on: [http_5xx]}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(StepError::http(503, "unavailable")));
    assert_eq!(sim.status("a"), StepStatus::Retrying);
}

#[test]
fn timeouts_are_retried_by_default_policy_classes() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    timeout: 1s\n    retry: {attempts: 2, initial: 100ms, jitter: false}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(StepError::new(ErrorKind::Timeout, "timed out after 1s")));
    assert_eq!(sim.engine().next_wake(&sim.state), Some(Timestamp(1_100)));
}

#[test]
fn on_error_continue_lets_dependents_run() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - {id: a, transform: '1', on_error: continue}\n  - {id: b, transform: '2'}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.status("a"), StepStatus::Failed);
    assert_eq!(sim.ready(), vec!["b"]);
    sim.run_step("b", json!(2));
    assert_eq!(sim.state.finished, Some(RunStatus::Succeeded));
}

#[test]
fn on_error_handler_steps_recover_the_step() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    on_error:\n      steps:\n        - {id: fix, transform: '\"fixed\"'}\n  - {id: b, transform: '.steps.a.output'}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.status("a"), StepStatus::Handling);
    assert_eq!(sim.ready(), vec!["fix"]);
    sim.run_step("fix", json!("fixed"));
    assert_eq!(sim.status("a"), StepStatus::Succeeded);
    assert_eq!(sim.state.step("a").and_then(|s| s.output.clone()), Some(json!("fixed")));
    assert!(sim.state.step("a").and_then(|s| s.error.clone()).is_some(), "the original error is kept");
    sim.run_step("b", json!("fixed"));
    assert_eq!(sim.state.finished, Some(RunStatus::Succeeded));
}

#[test]
fn a_failing_handler_fails_the_step() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: a\n    transform: '1'\n    on_error:\n      steps:\n        - {id: fix, transform: '1'}\n",
    );
    sim.begin("a");
    sim.outcome("a", Outcome::Failed(net_error()));
    sim.begin("fix");
    sim.outcome("fix", Outcome::Failed(StepError::new(ErrorKind::Expression, "bad")));
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
}

#[test]
fn a_failure_cancels_parallel_siblings() {
    let mut sim =
        Sim::new("name: t\nsteps:\n  - {id: a, transform: '1'}\n  - {id: b, needs: [], transform: '2'}\n");
    sim.begin("a");
    sim.begin("b");
    sim.outcome("a", Outcome::Failed(net_error()));
    assert_eq!(sim.status("b"), StepStatus::Cancelled);
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
    sim.outcome("b", Outcome::Succeeded(json!(2)));
    assert_eq!(sim.status("b"), StepStatus::Cancelled, "late outcomes are ignored");
}

#[test]
fn cancelling_cancels_open_steps_and_finishes_the_run() {
    let mut sim = Sim::new("name: t\nsteps:\n  - {id: a, transform: '1'}\n  - {id: b, transform: '2'}\n");
    sim.begin("a");
    let plan = sim.plan.clone();
    let events = Engine::new(&plan).cancel(&mut sim.state, "by test", Timestamp(sim.now));
    sim.record(events);
    assert_eq!(sim.status("a"), StepStatus::Cancelled);
    assert_eq!(sim.state.finished, Some(RunStatus::Cancelled));
    assert!(sim.ready().is_empty());
    assert!(sim.state.step("b").is_none(), "b never started");
}

#[test]
fn a_guard_that_is_false_skips_the_step_and_dependents_still_run() {
    let mut sim =
        Sim::new("name: t\nsteps:\n  - {id: a, if: 'false', transform: '1'}\n  - {id: b, transform: '2'}\n");
    sim.begin("a");
    sim.outcome("a", Outcome::Skipped);
    assert_eq!(sim.status("a"), StepStatus::Skipped);
    assert_eq!(sim.ready(), vec!["b"]);
}

#[test]
fn waits_hold_until_their_time() {
    let mut sim = Sim::new("name: t\nsteps:\n  - {id: w, wait: 10s}\n  - {id: b, transform: '2'}\n");
    sim.begin("w");
    sim.outcome("w", Outcome::WaitUntil(Timestamp(11_000)));
    assert_eq!(sim.status("w"), StepStatus::Waiting);
    assert!(!sim.engine().has_work(&sim.state), "a waiting run needs no executor");
    assert_eq!(sim.engine().next_wake(&sim.state), Some(Timestamp(11_000)));
    sim.tick_at(10_999);
    assert_eq!(sim.status("w"), StepStatus::Waiting);
    sim.tick_at(11_000);
    assert_eq!(sim.status("w"), StepStatus::Succeeded);
    assert_eq!(sim.ready(), vec!["b"]);
}

fn approval_sim(extra: &str) -> Sim {
    let mut sim = Sim::new(&format!(
        "name: t\nsteps:\n  - id: ok\n    approval: {{ message: 'ship?'{extra} }}\n  - {{id: b, transform: '2'}}\n"
    ));
    sim.begin("ok");
    sim.outcome(
        "ok",
        Outcome::Suspend { message: Some("ship?".into()), timeout_at: Some(Timestamp(61_000)) },
    );
    assert_eq!(sim.status("ok"), StepStatus::Suspended);
    sim
}

#[test]
fn approval_approved_continues_with_who_and_why() {
    let mut sim = approval_sim("");
    sim.now = 5_000;
    let plan = sim.plan.clone();
    let events = Engine::new(&plan)
        .decide(&mut sim.state, "ok", true, "ann@example.com", Some("looks good".into()), Timestamp(5_000))
        .expect("suspended");
    sim.record(events);
    assert_eq!(
        sim.state.step("ok").and_then(|s| s.output.clone()),
        Some(json!({"approved": true, "by": "ann@example.com", "reason": "looks good"}))
    );
    assert_eq!(sim.ready(), vec!["b"]);
    let again = Engine::new(&plan).decide(&mut sim.state, "ok", false, "bob", None, Timestamp(5_000));
    assert!(matches!(again, Err(EngineError::NotAwaitingApproval { .. })), "decided once only");
}

#[test]
fn approval_rejected_fails_the_step() {
    let mut sim = approval_sim("");
    sim.now = 5_000;
    let plan = sim.plan.clone();
    let events = Engine::new(&plan)
        .decide(&mut sim.state, "ok", false, "bob", Some("not today".into()), Timestamp(5_000))
        .expect("suspended");
    sim.record(events);
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
    let err = sim.state.error.clone().expect("error");
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(err.message, "rejected by bob: not today");
}

#[test]
fn approval_timeout_decides_by_policy() {
    let mut sim = approval_sim("");
    sim.tick_at(61_000);
    assert_eq!(sim.state.finished, Some(RunStatus::Failed), "rejected on timeout by default");
    let mut sim = approval_sim(", on_timeout: approve");
    sim.tick_at(61_000);
    assert_eq!(sim.status("ok"), StepStatus::Succeeded);
}

#[test]
fn for_each_respects_parallelism_and_keeps_item_order() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: loop\n    for_each:\n      items: '${{ [1,2,3,4,5] }}'\n      parallelism: 2\n      steps:\n        - {id: double, transform: '.item * 2'}\n",
    );
    sim.begin("loop");
    sim.outcome("loop", Outcome::Items((1..=5).map(|i| json!(i)).collect()));
    assert_eq!(sim.ready(), vec!["loop[0].double", "loop[1].double"]);
    sim.begin("loop[0].double");
    sim.begin("loop[1].double");
    sim.outcome("loop[1].double", Outcome::Succeeded(json!(4)));
    assert_eq!(sim.ready(), vec!["loop[2].double"], "one slot freed");
    let mut max_active = 0;
    for i in [0, 2, 3, 4] {
        let key = format!("loop[{i}].double");
        if sim.state.step(&key).map(|s| s.status) != Some(StepStatus::Running) {
            sim.begin(&key);
        }
        let active = sim.state.steps.values().filter(|s| s.status == StepStatus::Running).count();
        max_active = max_active.max(active);
        sim.outcome(&key, Outcome::Succeeded(json!((i + 1) * 2)));
    }
    assert!(max_active <= 2, "at most two items at once, saw {max_active}");
    assert_eq!(sim.state.output, Some(json!([2, 4, 6, 8, 10])));
}

#[test]
fn for_each_over_no_items_yields_an_empty_list() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: loop\n    for_each: { items: '${{ [] }}', steps: [{id: x, transform: '1'}] }\n",
    );
    sim.begin("loop");
    sim.outcome("loop", Outcome::Items(vec![]));
    assert_eq!(sim.state.output, Some(json!([])));
}

#[test]
fn a_failing_item_fails_the_loop_and_cancels_other_items() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: loop\n    for_each: { items: '${{ [1,2] }}', parallelism: 2, steps: [{id: x, transform: '1'}] }\n",
    );
    sim.begin("loop");
    sim.outcome("loop", Outcome::Items(vec![json!(1), json!(2)]));
    sim.begin("loop[0].x");
    sim.begin("loop[1].x");
    sim.outcome("loop[0].x", Outcome::Failed(net_error()));
    assert_eq!(sim.status("loop[1].x"), StepStatus::Cancelled);
    assert_eq!(sim.status("loop"), StepStatus::Failed);
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
}

#[test]
fn branches_run_only_the_chosen_case() {
    let yaml = "name: t\nsteps:\n  - id: pick\n    branch:\n      if: .inputs.vip\n      then: [{id: yes, transform: '\"vip\"'}]\n      else: [{id: no, transform: '\"std\"'}]\n  - {id: after, transform: '.steps.pick.output'}\n";
    let mut sim = Sim::new(yaml);
    sim.begin("pick");
    sim.outcome("pick", Outcome::Branch(Some(1)));
    assert_eq!(sim.ready(), vec!["no"]);
    sim.run_step("no", json!("std"));
    assert_eq!(sim.state.step("pick").and_then(|s| s.output.clone()), Some(json!("std")));
    assert!(sim.state.step("yes").is_none());
    assert_eq!(sim.ready(), vec!["after"]);
}

#[test]
fn a_switch_with_no_matching_case_and_no_default_succeeds_with_null() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: s\n    switch: { value: '${{ 1 }}', cases: { a: [{id: x, transform: '1'}] } }\n",
    );
    sim.begin("s");
    sim.outcome("s", Outcome::Branch(None));
    assert_eq!(sim.state.finished, Some(RunStatus::Succeeded));
    assert_eq!(sim.state.output, Some(Value::Null));
}

#[test]
fn interrupted_steps_run_again_with_the_same_attempt_until_the_limit() {
    let mut sim = Sim::new("name: t\nsteps:\n  - {id: a, transform: '1'}\n");
    for round in 1..MAX_INTERRUPTIONS {
        assert_eq!(sim.begin("a"), 1, "round {round}: same attempt number");
        let plan = sim.plan.clone();
        let events = Engine::new(&plan).recover(&mut sim.state, Timestamp(sim.now));
        sim.record(events);
        assert_eq!(sim.status("a"), StepStatus::Scheduled);
    }
    sim.begin("a");
    let plan = sim.plan.clone();
    let events = Engine::new(&plan).recover(&mut sim.state, Timestamp(sim.now));
    sim.record(events);
    assert_eq!(sim.state.error.as_ref().map(|e| e.kind), Some(ErrorKind::Interrupted));
}

#[test]
fn child_flow_results_complete_the_calling_step() {
    let mut sim = Sim::new("name: t\nsteps:\n  - id: call\n    flow: { name: other }\n");
    sim.begin("call");
    sim.outcome("call", Outcome::ChildStarted("child-1".into()));
    assert_eq!(sim.status("call"), StepStatus::AwaitingChild);
    assert!(!sim.engine().has_work(&sim.state));
    let plan = sim.plan.clone();
    let events = Engine::new(&plan).child_finished(
        &mut sim.state,
        "call",
        Ok(json!({"ok": true})),
        Timestamp(sim.now),
    );
    sim.record(events);
    assert_eq!(sim.state.output, Some(json!({"ok": true})));
}

#[test]
fn a_failing_branch_case_runs_the_branch_error_handler_once() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: pick\n    branch:\n      if: .inputs.vip\n      then: [{id: yes, transform: '1'}]\n      else: [{id: no, transform: '2'}, {id: no2, transform: '3'}]\n    on_error:\n      steps:\n        - {id: fix, transform: '\"fixed\"'}\n",
    );
    sim.begin("pick");
    sim.outcome("pick", Outcome::Branch(Some(1)));
    sim.begin("no");
    sim.outcome("no", Outcome::Failed(net_error()));
    let handled = sim.kinds().iter().filter(|k| **k == "handler_started").count();
    assert_eq!(handled, 1, "{:?}", sim.kinds());
    assert_eq!(sim.status("pick"), StepStatus::Handling);
    assert_eq!(sim.ready(), vec!["fix"]);
    sim.run_step("fix", json!("fixed"));
    assert_eq!(sim.state.finished, Some(RunStatus::Succeeded));
    assert_eq!(sim.state.output, Some(json!("fixed")));
    assert!(sim.state.step("no2").is_none(), "the failed case went no further");
}

#[test]
fn a_loop_that_failed_schedules_nothing_more() {
    // The item fails through a nested branch, so the loop hears of it one pass late, after it
    // started the next item.
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: loop\n    for_each:\n      items: '${{ [1,2] }}'\n      parallelism: 1\n      steps:\n        - id: inner\n          branch: {if: .inputs.vip, then: [{id: boom, transform: '1'}], else: [{id: calm, transform: '2'}]}\n    on_error: continue\n  - {id: after, transform: '3'}\n",
    );
    sim.begin("loop");
    sim.outcome("loop", Outcome::Items(vec![json!(1), json!(2)]));
    sim.begin("loop[0].inner");
    sim.outcome("loop[0].inner", Outcome::Branch(Some(0)));
    sim.begin("loop[0].boom");
    sim.outcome("loop[0].boom", Outcome::Failed(net_error()));
    assert_eq!(sim.status("loop"), StepStatus::Failed);
    assert!(sim.state.step("loop[1].inner").is_none(), "no step of a failed loop is scheduled");
    assert_eq!(sim.ready(), vec!["after"]);
}

#[test]
fn a_branch_cancelled_with_its_loop_item_is_not_completed_by_its_case() {
    let mut sim = Sim::new(
        "name: t\nsteps:\n  - id: loop\n    for_each:\n      items: '${{ [1,2] }}'\n      parallelism: 2\n      steps:\n        - id: pick\n          branch: {if: .inputs.vip, then: [{id: yes, transform: '1'}], else: [{id: no, transform: '2'}]}\n",
    );
    sim.begin("loop");
    sim.outcome("loop", Outcome::Items(vec![json!(1), json!(2)]));
    sim.begin("loop[0].pick");
    sim.begin("loop[1].pick");
    sim.outcome("loop[1].pick", Outcome::Branch(Some(0)));
    sim.begin("loop[1].yes");
    sim.outcome("loop[0].pick", Outcome::Failed(net_error()));
    assert_eq!(sim.status("loop[1].pick"), StepStatus::Cancelled);
    assert_eq!(sim.status("loop[1].yes"), StepStatus::Cancelled);
    assert_eq!(sim.kinds().iter().filter(|k| **k == "step_succeeded").count(), 0, "{:?}", sim.kinds());
    assert_eq!(sim.state.finished, Some(RunStatus::Failed));
}

#[test]
fn long_chains_settle_from_what_changed() {
    let mut yaml = String::from("name: t\nsteps:\n  - {id: s0, transform: '0'}\n");
    for i in 1..300 {
        yaml.push_str(&format!("  - {{id: s{i}, transform: '1'}}\n"));
    }
    let mut sim = Sim::new(&yaml);
    for i in 0..300 {
        assert_eq!(sim.ready(), vec![format!("s{i}")]);
        sim.run_step(&format!("s{i}"), json!(i));
    }
    assert_eq!(sim.state.output, Some(json!(299)));
}

fn agent_sim() -> Sim {
    Sim::new("name: t\nsteps:\n  - id: ask\n    agent: {name: helper}\n  - {id: b, transform: '2'}\n")
}

fn record(sim: &mut Sim, key: &str, records: Vec<Value>) {
    let plan = sim.plan.clone();
    let events = Engine::new(&plan).record(&mut sim.state, key, records, Timestamp(sim.now));
    sim.record(events);
}

#[test]
fn an_agent_step_keeps_its_records_across_continuations_with_one_attempt_number() {
    let mut sim = agent_sim();
    assert_eq!(sim.begin("ask"), 1);
    record(&mut sim, "ask", vec![json!({"turn": 1})]);
    sim.outcome("ask", Outcome::Continue);
    assert_eq!(sim.status("ask"), StepStatus::Scheduled, "it runs again");
    assert_eq!(sim.begin("ask"), 1, "a continuation is not a new attempt");
    record(&mut sim, "ask", vec![json!({"turn": 2}), json!({"tool": "x"})]);
    sim.outcome("ask", Outcome::Succeeded(json!("done")));
    let s = sim.state.step("ask").expect("step");
    assert_eq!(*s.records, vec![json!({"turn": 1}), json!({"turn": 2}), json!({"tool": "x"})]);
    assert_eq!(sim.ready(), vec!["b"]);
}

#[test]
fn records_of_a_step_that_is_not_running_are_ignored() {
    let mut sim = agent_sim();
    record(&mut sim, "ask", vec![json!({"turn": 1})]);
    assert!(sim.state.step("ask").expect("scheduled").records.is_empty());
    assert!(!sim.kinds().contains(&"step_recorded"));
}

#[test]
fn an_agent_hears_an_approval_or_a_rejection_and_runs_again_either_way() {
    for approved in [true, false] {
        let mut sim = agent_sim();
        sim.begin("ask");
        sim.outcome("ask", Outcome::Suspend { message: Some("send?".into()), timeout_at: None });
        assert_eq!(sim.status("ask"), StepStatus::Suspended);
        let plan = sim.plan.clone();
        let events = Engine::new(&plan)
            .decide(&mut sim.state, "ask", approved, "ann", Some("why".into()), Timestamp(sim.now))
            .expect("suspended");
        sim.record(events);
        assert_eq!(sim.status("ask"), StepStatus::Scheduled, "approved={approved}");
        assert_eq!(sim.state.finished, None, "a rejection does not fail the agent");
        let decision = sim.state.step("ask").and_then(|s| s.records.last().cloned()).expect("record");
        assert_eq!(decision, json!({"type": "decision", "approved": approved, "by": "ann", "reason": "why"}));
    }
}

#[test]
fn an_agent_approval_that_times_out_is_a_rejection_the_agent_hears() {
    let mut sim = agent_sim();
    sim.begin("ask");
    sim.outcome("ask", Outcome::Suspend { message: None, timeout_at: Some(Timestamp(9_000)) });
    sim.tick_at(9_000);
    assert_eq!(sim.status("ask"), StepStatus::Scheduled);
    let decision = sim.state.step("ask").and_then(|s| s.records.last().cloned()).expect("record");
    assert_eq!(decision["approved"], json!(false));
    assert_eq!(decision["by"], json!("timeout"));
}

#[test]
fn progress_resets_the_interruption_count() {
    let mut sim = agent_sim();
    for _ in 0..MAX_INTERRUPTIONS + 2 {
        sim.begin("ask");
        record(&mut sim, "ask", vec![json!({"turn": 1})]);
        let plan = sim.plan.clone();
        let events = Engine::new(&plan).recover(&mut sim.state, Timestamp(sim.now));
        sim.record(events);
    }
    assert_eq!(sim.status("ask"), StepStatus::Scheduled, "an agent that progresses is not stuck");
}
