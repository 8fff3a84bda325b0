//! The executor end to end on a real SQLite file (and the same checks on PostgreSQL where the
//! behaviour depends on the store), against a real HTTP server on loopback.

#![expect(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, succeeded};
use serde_json::json;
use steward_engine::{ErrorKind, Event, RunStatus};
use steward_store::{DEFAULT_WORKSPACE, Signal};
use steward_testkit::Recorder;

const SECS: Duration = Duration::from_secs(10);

#[tokio::test]
async fn transforms_code_and_expressions_produce_the_output() {
    let h = Harness::sqlite().await;
    let yaml = r#"
name: calc
inputs: { n: { type: integer } }
vars: { twice: "${{ .inputs.n * 2 }}" }
steps:
  - id: add
    transform: '.vars.twice + 1'
  - id: js
    code: |
      export default ({ steps, inputs }) => ({ sum: steps.add.output + inputs.n })
output: '${{ .steps.js.output.sum }}'
"#;
    let run = h.run(yaml, json!({"n": 20})).await;
    assert_eq!(succeeded(&run), &json!(61));
}

#[tokio::test]
async fn http_retries_reuse_the_idempotency_key_and_then_succeed() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.fail("flaky", 2);
    let yaml = r#"
name: flaky
inputs: { base: { type: string } }
steps:
  - id: call
    http: { method: POST, url: "${{ .inputs.base }}/hit/flaky", json: { hello: "world" } }
    retry: { attempts: 3, initial: 10ms, max: 50ms }
output: '${{ .steps.call.output.body }}'
"#;
    let run = h.run(yaml, json!({"base": srv.base})).await;
    assert_eq!(succeeded(&run), &json!({"name": "flaky", "count": 3}));
    let hits = srv.hits("flaky");
    assert_eq!(hits.len(), 3);
    let key = hits[0].idempotency_key.clone().expect("key sent");
    assert!(
        hits.iter().all(|h| h.idempotency_key.as_deref() == Some(key.as_str())),
        "same key on every attempt: {hits:?}"
    );
    assert_eq!(key, format!("{}:call", run.id));
    let kinds: Vec<&str> =
        h.journal(&run.id).await.iter().map(|e| e.event.kind()).filter(|k| *k == "step_retrying").collect();
    assert_eq!(kinds.len(), 2);
}

#[tokio::test]
async fn a_failing_step_fails_the_run_with_its_error() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.fail("down", 10);
    let yaml = "name: down\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/down' }\n  - id: never\n    transform: '1'\n";
    let run = h.run(yaml, json!({"base": srv.base})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let err = run.error.expect("error");
    assert_eq!(err.kind, ErrorKind::Http);
    assert_eq!(err.status, Some(503));
    assert_eq!(err.step.as_deref(), Some("call"));
    assert!(
        !h.journal(&run.id).await.iter().any(|e| e.event.key() == Some("never")),
        "no step after the failure"
    );
}

#[tokio::test]
async fn step_timeouts_fail_the_attempt() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.delay("slow", Duration::from_secs(5));
    let yaml = "name: slow\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/slow' }\n    timeout: 200ms\n";
    let started = Instant::now();
    let run = h.run(yaml, json!({"base": srv.base})).await;
    assert_eq!(run.error.map(|e| e.kind), Some(ErrorKind::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn cancelling_stops_an_in_flight_step_promptly() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.hang_once("hang");
    let yaml = "name: hang\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/hang' }\n  - id: after\n    transform: '1'\n";
    let id = h.start_run(yaml, json!({"base": srv.base})).await;
    srv.wait_for("hang", 1, SECS).await;
    let asked = Instant::now();
    h.executor
        .signal(DEFAULT_WORKSPACE, &id, &Signal::Cancel { reason: "test".into() })
        .await
        .expect("signal");
    let run = h.finished(&id, SECS).await;
    assert!(asked.elapsed() < Duration::from_secs(1), "cancelled in {:?}", asked.elapsed());
    assert_eq!(run.status, RunStatus::Cancelled);
    let journal = h.journal(&id).await;
    assert!(journal.iter().any(|e| matches!(&e.event, Event::StepCancelled { key } if key == "call")));
    assert!(!journal.iter().any(|e| e.event.key() == Some("after")));
}

#[tokio::test]
async fn cancelling_stops_a_chain_of_steps_that_finish_in_place() {
    let h = Harness::sqlite().await;
    let mut yaml = String::from("name: chain\nsteps:\n  - {id: s0, transform: '0'}\n");
    for i in 1..400 {
        yaml.push_str(&format!("  - {{id: s{i}, transform: '.steps.s{}.output + 1'}}\n", i - 1));
    }
    let version = h.apply(&yaml).await;
    h.executor.compiled(&version.workspace, &version.id).await.expect("compiles");
    let mut progress = h.executor.subscribe();
    let id = h.executor.start_run(&version, json!({})).await.expect("start");
    let third =
        |e: &steward_engine::Entry| matches!(&e.event, Event::StepSucceeded { key, .. } if key == "s3");
    while !progress.recv().await.expect("progress").entries.iter().any(third) {}
    h.executor
        .signal(DEFAULT_WORKSPACE, &id, &Signal::Cancel { reason: "test".into() })
        .await
        .expect("signal");
    let run = h.finished(&id, SECS).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    let journal = h.journal(&id).await;
    assert!(!journal.iter().any(|e| e.event.key() == Some("s399")), "the cancel was noticed between steps");
}

#[tokio::test]
async fn approvals_suspend_without_an_executor_and_resume_on_decision() {
    let h = Harness::sqlite().await;
    let yaml = "name: gate\nsteps:\n  - id: ok\n    approval: { message: 'ship it?' }\n  - id: done\n    transform: '.steps.ok.output.by'\n";
    let id = h.start_run(yaml, json!({})).await;
    let waiting = h.until(&id, SECS, |r| r.status == RunStatus::Waiting).await;
    assert_eq!(waiting.lease_owner, None, "a suspended run holds no lease");
    assert_eq!(waiting.wake_at, None, "and no timer");
    let signal = Signal::Approval { step: "ok".into(), approved: true, by: "ann".into(), reason: None };
    h.executor.signal(DEFAULT_WORKSPACE, &id, &signal).await.expect("signal");
    let run = h.finished(&id, SECS).await;
    assert_eq!(succeeded(&run), &json!("ann"));
}

#[tokio::test]
async fn approval_timeouts_reject() {
    let h = Harness::sqlite().await;
    let yaml = "name: gate\nsteps:\n  - id: ok\n    approval: { timeout: 300ms }\n";
    let run = h.run(yaml, json!({})).await;
    assert_eq!(run.error.map(|e| e.kind), Some(ErrorKind::Rejected));
}

#[tokio::test]
async fn waits_release_the_run_and_resume_on_time() {
    let h = Harness::sqlite().await;
    let yaml = "name: nap\nsteps:\n  - id: nap\n    wait: 1s\n  - id: after\n    transform: '\"awake\"'\n";
    let started = Instant::now();
    let id = h.start_run(yaml, json!({})).await;
    let waiting = h.until(&id, SECS, |r| r.status == RunStatus::Waiting).await;
    assert_eq!(waiting.lease_owner, None, "a waiting run holds no lease");
    assert!(waiting.wake_at.is_some());
    let run = h.finished(&id, SECS).await;
    assert_eq!(succeeded(&run), &json!("awake"));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn for_each_runs_items_in_parallel_up_to_the_bound() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.delay("item", Duration::from_millis(150));
    let yaml = r#"
name: fan
inputs: { base: {} }
steps:
  - id: each
    for_each:
      items: '${{ [range(8)] }}'
      parallelism: 3
      steps:
        - id: call
          http: { url: "${{ .inputs.base }}/hit/item?i=${{ .item }}" }
        - id: pick
          transform: '.index'
output: '${{ .steps.each.output }}'
"#;
    let run = h.run(yaml, json!({"base": srv.base})).await;
    assert_eq!(succeeded(&run), &json!([0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(srv.count("item"), 8);
    assert!(srv.max_in_flight() <= 3, "at most 3 at once, saw {}", srv.max_in_flight());
    assert!(srv.max_in_flight() >= 2, "items did run in parallel");
}

#[tokio::test]
async fn error_handlers_and_continue() {
    let h = Harness::sqlite().await;
    let yaml = r#"
name: handled
steps:
  - id: boom
    transform: 'error("bad thing")'
    on_error:
      steps:
        - id: explain
          transform: '"handled: " + .error.message'
  - id: shrug
    transform: '.x.y.z | error("again")'
    on_error: continue
  - id: summary
    transform: '{ boom: .steps.boom.output, shrug: .steps.shrug.status }'
output: '${{ .steps.summary.output }}'
"#;
    let run = h.run(yaml, json!({})).await;
    let out = succeeded(&run);
    assert!(
        out["boom"].as_str().is_some_and(|s| s.starts_with("handled: ") && s.contains("bad thing")),
        "{out}"
    );
    assert_eq!(out["shrug"], json!("failed"));
}

#[tokio::test]
async fn switches_and_branches_pick_cases() {
    let h = Harness::sqlite().await;
    let yaml = r#"
name: route
inputs: { tier: {} }
steps:
  - id: by_tier
    switch:
      value: '${{ .inputs.tier }}'
      cases:
        gold: [{ id: g, transform: '"gold path"' }]
        silver: [{ id: s, transform: '"silver path"' }]
      default: [{ id: d, transform: '"default path"' }]
  - id: check
    if: '.inputs.tier == "gold"'
    transform: '"only for gold"'
output: { route: '${{ .steps.by_tier.output }}', check: '${{ .steps.check.status }}' }
"#;
    let gold = h.run(yaml, json!({"tier": "gold"})).await;
    assert_eq!(succeeded(&gold), &json!({"route": "gold path", "check": "succeeded"}));
    let other = h.run(yaml, json!({"tier": "bronze"})).await;
    assert_eq!(succeeded(&other), &json!({"route": "default path", "check": "skipped"}));
}

#[tokio::test]
async fn flow_steps_call_other_flows_and_use_their_output() {
    let h = Harness::sqlite().await;
    h.apply(
        "name: double\ninputs: { n: { type: integer } }\nsteps:\n  - { id: d, transform: '.inputs.n * 2' }\n",
    )
    .await;
    let yaml = "name: caller\nsteps:\n  - id: call\n    flow: { name: double, inputs: { n: 21 } }\noutput: '${{ .steps.call.output }}'\n";
    let run = h.run(yaml, json!({})).await;
    assert_eq!(succeeded(&run), &json!(42));
    let child = h.journal(&run.id).await.iter().find_map(|e| match &e.event {
        Event::ChildStarted { child_run_id, .. } => Some(child_run_id.clone()),
        _ => None,
    });
    let child = h.get(&child.expect("child started")).await;
    assert_eq!(child.parent_run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(child.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_failing_child_fails_the_calling_step() {
    let h = Harness::sqlite().await;
    h.apply("name: broken\nsteps:\n  - { id: d, transform: 'error(\"nope\")' }\n").await;
    let run = h.run("name: caller2\nsteps:\n  - id: call\n    flow: { name: broken }\n", json!({})).await;
    let err = run.error.expect("failed");
    assert_eq!(err.kind, ErrorKind::Child);
    assert!(err.message.contains("nope"), "{}", err.message);
}

#[tokio::test]
async fn concurrency_limits_how_many_runs_execute_at_once() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.delay("one", Duration::from_millis(200));
    let yaml = "name: single\nconcurrency: 1\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/one' }\n";
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(h.start_run(yaml, json!({"base": srv.base})).await);
    }
    for id in &ids {
        assert_eq!(h.finished(id, SECS).await.status, RunStatus::Succeeded);
    }
    assert_eq!(srv.count("one"), 4);
    assert_eq!(srv.max_in_flight(), 1, "runs of a flow with concurrency 1 never overlap");
}

#[tokio::test]
async fn retain_none_and_metadata_drop_payloads_when_the_run_ends() {
    let h = Harness::sqlite().await;
    let yaml = r#"
name: private
steps:
  - id: secret
    transform: '{ ssn: "123-45-6789" }'
    retain: none
  - id: shape
    transform: '{ email: "person@example.com" }'
    retain: metadata
  - id: public
    transform: '.steps.secret.output.ssn | length'
output: '${{ .steps.public.output }}'
"#;
    let run = h.run(yaml, json!({})).await;
    assert_eq!(succeeded(&run), &json!(11), "payloads were available while the run was in progress");
    let journal = serde_json::to_string(&h.journal(&run.id).await).expect("json");
    assert!(!journal.contains("123-45-6789"), "retain: none leaves nothing");
    assert!(!journal.contains("person@example.com"), "retain: metadata leaves no content");
    assert!(journal.contains(r#""retained":"metadata""#), "{journal}");
}

#[tokio::test]
async fn bad_inputs_are_refused_before_a_run_exists() {
    let h = Harness::sqlite().await;
    let version = h
        .apply("name: typed\ninputs: { n: { type: integer } }\nsteps:\n  - { id: a, transform: '1' }\n")
        .await;
    let err = h.executor.start_run(&version, json!({"n": "x"})).await.expect_err("refused");
    assert!(err.to_string().contains("input `n` must be an integer"), "{err}");
    let version = h.apply("name: vars\ninputs: { n: {} }\nvars: { v: '${{ .inputs.n + \"x\" }}' }\nsteps:\n  - { id: a, transform: '1' }\n").await;
    let err = h.executor.start_run(&version, json!({"n": 1})).await.expect_err("refused");
    assert!(err.to_string().contains("var `v` cannot be computed"), "{err}");
    let runs = h.store.list_runs(DEFAULT_WORKSPACE, &Default::default()).await.expect("list");
    assert!(runs.is_empty());
}

#[tokio::test]
async fn many_runs_execute_concurrently_to_completion() {
    let h = Harness::sqlite().await;
    let yaml = "name: three\ninputs: { n: {} }\nsteps:\n  - { id: a, transform: '.inputs.n + 1' }\n  - { id: b, transform: '.steps.a.output * 2' }\n  - { id: c, transform: '.steps.b.output - 1' }\noutput: '${{ .steps.c.output }}'\n";
    let version = h.apply(yaml).await;
    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push((n, h.executor.start_run(&version, json!({"n": n})).await.expect("start")));
    }
    for (n, id) in ids {
        let run = h.finished(&id, Duration::from_secs(60)).await;
        assert_eq!(succeeded(&run), &json!((n + 1) * 2 - 1));
    }
}

#[tokio::test]
async fn graceful_shutdown_commits_in_flight_steps_and_hands_runs_back() {
    let mut h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.delay("slow", Duration::from_millis(500));
    let yaml = "name: drain\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/slow' }\n  - id: next\n    http: { url: '${{ .inputs.base }}/hit/next' }\n";
    let id = h.start_run(yaml, json!({"base": srv.base})).await;
    srv.wait_for("slow", 1, SECS).await;
    h.shutdown().await;
    let run = h.get(&id).await;
    assert_eq!(run.lease_owner, None, "the lease was handed back");
    assert!(
        h.journal(&id)
            .await
            .iter()
            .any(|e| matches!(&e.event, Event::StepSucceeded { key, .. } if key == "call")),
        "the in-flight step was committed"
    );
    assert_eq!(srv.count("next"), 0, "nothing new started while draining");
    let h2 = Harness::start(h.store.clone(), common::options("exec-b"), None);
    assert_eq!(
        succeeded(&h2.finished(&id, SECS).await)["status"],
        json!(200),
        "the last step's response is the output"
    );
    assert_eq!(srv.count("slow"), 1, "the committed step did not run again");
    assert_eq!(srv.count("next"), 1);
}

#[tokio::test]
async fn in_place_steps_share_a_commit_and_effects_start_only_after_it() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    let mut progress = h.executor.subscribe();
    let yaml = r#"
name: chain
inputs: { base: { type: string } }
steps:
  - id: a
    transform: '1'
  - id: b
    transform: '.steps.a.output + 1'
  - id: call
    http: { url: "${{ .inputs.base }}/hit/chain" }
  - id: c
    transform: '.steps.b.output + 1'
  - id: d
    if: '.steps.c.output > 2'
    transform: '.steps.c.output * 2'
output: '${{ .steps.d.output }}'
"#;
    let run = h.run(yaml, json!({"base": srv.base})).await;
    assert_eq!(succeeded(&run), &json!(6));
    assert_eq!(srv.count("chain"), 1);
    // Each commit as the (kind, key) of its entries.
    let mut commits: Vec<Vec<(String, String)>> = Vec::new();
    while let Ok(p) = progress.try_recv() {
        if p.run_id == run.id {
            let entries =
                p.entries.iter().map(|e| (e.event.kind().to_owned(), e.event.key().unwrap_or("").to_owned()));
            commits.push(entries.collect());
        }
    }
    let commit_of = |kind: &str, key: &str| {
        commits
            .iter()
            .position(|c| c.iter().any(|(k, s)| k == kind && s == key))
            .unwrap_or_else(|| panic!("no {kind} {key} in {commits:?}"))
    };
    let started_call = commit_of("step_started", "call");
    assert_eq!(
        commit_of("step_succeeded", "a"),
        started_call,
        "a, b and the start of call share one commit: {commits:?}"
    );
    assert_eq!(commit_of("step_succeeded", "b"), started_call);
    // The outcome of a step with effects is recorded before anything else runs.
    let call_done = commit_of("step_succeeded", "call");
    assert_eq!(commit_of("step_started", "c"), call_done, "{commits:?}");
    assert!(!commits[call_done].iter().any(|(k, s)| k == "step_succeeded" && s == "c"), "{commits:?}");
    let finished = commit_of("run_finished", "");
    assert_eq!(commit_of("step_succeeded", "c"), finished, "c, d and the end share one commit: {commits:?}");
    assert_eq!(commit_of("step_succeeded", "d"), finished);
    assert_eq!(commits.len(), 3, "three commits after the run was queued: {commits:?}");
}

#[tokio::test]
async fn a_run_started_here_is_driven_here_at_once_and_queued_when_there_is_no_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = steward_store_sql::open(&dir.path().join("s.db").to_string_lossy()).await.unwrap();
    let opts = steward_executor::ExecutorOptions { max_runs: 1, ..common::options("exec-here") };
    let h = Harness::start(store, opts, Some(dir));
    let srv = Recorder::start().await;
    srv.delay("slow", Duration::from_millis(400));
    let yaml = "name: slow\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/slow' }\n";
    let version = h.apply(yaml).await;
    // The loop has started once it answers: wait for it to take hand-offs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = h.executor.start_run(&version, json!({"base": srv.base})).await.unwrap();
    let rec = h.get(&first).await;
    assert_eq!(
        (rec.status, rec.lease_owner.as_deref()),
        (RunStatus::Running, Some("exec-here")),
        "created running under this executor's lease"
    );
    let second = h.executor.start_run(&version, json!({"base": srv.base})).await.unwrap();
    let rec = h.get(&second).await;
    assert_eq!((rec.status, rec.lease_owner), (RunStatus::Queued, None), "no room: queued for a claim");
    for id in [&first, &second] {
        assert_eq!(h.finished(id, SECS).await.status, RunStatus::Succeeded);
    }
    assert_eq!(srv.count("slow"), 2);
}

#[tokio::test]
async fn a_run_started_here_whose_executor_dies_is_taken_over_when_the_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db").to_string_lossy().into_owned();
    let store = steward_store_sql::open(&path).await.unwrap();
    let mut h = Harness::start(store.clone(), common::options("exec-dies"), Some(dir));
    let srv = Recorder::start().await;
    srv.hang_once("hang");
    let yaml = "name: hang\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/hang' }\noutput: '${{ .steps.call.output.status }}'\n";
    let version = h.apply(yaml).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = h.executor.start_run(&version, json!({"base": srv.base})).await.unwrap();
    srv.wait_for("hang", 1, SECS).await;
    h.crash();
    let other = Harness::start(store, common::options("exec-b"), None);
    let started = Instant::now();
    let run = other.finished(&id, SECS).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(started.elapsed() >= Duration::from_millis(1500), "taken over only after the 2 s lease");
    assert_eq!(srv.count("hang"), 2, "the interrupted call ran again");
}

#[tokio::test]
async fn a_second_start_with_a_running_runs_id_is_a_conflict_and_leaves_the_first_in_hand() {
    let h = Harness::sqlite().await;
    let srv = Recorder::start().await;
    srv.hang_once("hang");
    let yaml = "name: hang\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/hang' }\n";
    let version = h.apply(yaml).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let inputs = json!({"base": srv.base});
    let trigger = json!({"kind": "webhook"});
    let id = h
        .executor
        .start_triggered(&version, inputs.clone(), "redelivered".into(), trigger.clone())
        .await
        .unwrap();
    srv.wait_for("hang", 1, SECS).await;
    let again = h.executor.start_triggered(&version, inputs, id.clone(), trigger).await;
    assert!(
        matches!(again, Err(steward_executor::Error::Store(steward_store::Error::Conflict(_)))),
        "{again:?}"
    );
    // The first run is still driven here: a cancel reaches its in-flight step at once.
    let asked = Instant::now();
    h.executor.signal(DEFAULT_WORKSPACE, &id, &Signal::Cancel { reason: "test".into() }).await.unwrap();
    let run = h.finished(&id, SECS).await;
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(1), "cancelled in {:?}", asked.elapsed());
    assert_eq!(srv.count("hang"), 1, "the second start sent nothing");
}
