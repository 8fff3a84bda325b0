//! Crash tests: a real `steward worker` process is killed with SIGKILL at several points of a
//! run whose steps call a loopback server that counts requests; a new worker finishes the run.
//! Completed steps never run again; the interrupted step runs again with the same
//! idempotency key.

mod support;

use std::sync::Arc;
use std::time::Duration;

use steward_engine::{Event, RunStatus};
use steward_store::Store;
use steward_testkit::Recorder;
use support::{Env, finished};

const FLOW: &str = r#"
name: crashy
inputs: { base: { type: string } }
steps:
  - id: first
    http: { method: POST, url: "${{ .inputs.base }}/hit/first" }
  - id: pause
    wait: 2s
  - id: spin
    code: |
      export default () => { let x = 0; for (let i = 0; i < 1e7; i++) { x += i % 7 } return x }
  - id: second
    http: { method: POST, url: "${{ .inputs.base }}/hit/second" }
  - id: third
    http: { method: POST, url: "${{ .inputs.base }}/hit/third" }
output: '${{ .steps.third.output.body.count }}'
"#;

/// Queues a run of the flow and returns its id.
fn queue(env: &Env, base: &str) -> String {
    let file = env.dir.path().join("crashy.yaml");
    std::fs::write(&file, FLOW).expect("write flow");
    let input = format!(r#"{{"base": "{base}"}}"#);
    env.steward(&["run", "--detach", "--input", &input, file.to_str().expect("utf8 path")]).trim().to_owned()
}

async fn wait_for_event(store: &Arc<dyn Store>, run: &str, pred: impl Fn(&Event) -> bool) {
    for _ in 0..1000 {
        if store.journal(run).await.expect("journal").iter().any(|e| pred(&e.event)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the expected event never came in run {run}");
}

/// Kills the worker when `at` has happened, restarts one, and checks the run's end state.
async fn crash_and_resume(env: Env, at: &str) {
    let srv = Recorder::start().await;
    if at == "http" {
        srv.hang_once("second");
    }
    let store = env.store().await;
    let run = queue(&env, &srv.base);
    let mut worker = env.worker();
    match at {
        "wait" => {
            wait_for_event(&store, &run, |e| matches!(e, Event::StepWaiting { key, .. } if key == "pause"))
                .await
        }
        "between" => {
            wait_for_event(&store, &run, |e| matches!(e, Event::StepStarted { key, .. } if key == "spin"))
                .await
        }
        _ => srv.wait_for("second", 1, Duration::from_secs(15)).await,
    }
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    let mut restarted = env.worker();
    let record = finished(&store, &run, Duration::from_secs(30)).await;
    restarted.kill().expect("stop worker");
    let _ = restarted.wait();

    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    assert_eq!(srv.count("first"), 1, "a step completed before the crash never runs again");
    assert_eq!(srv.count("third"), 1);
    let second = srv.hits("second");
    match at {
        "http" => {
            assert_eq!(second.len(), 2, "the interrupted request is sent again");
            assert_eq!(second[0].idempotency_key, second[1].idempotency_key, "with the same idempotency key");
        }
        _ => assert_eq!(second.len(), 1),
    }
    let journal = store.journal(&run).await.expect("journal");
    let interrupted: Vec<&str> = journal
        .iter()
        .filter_map(|e| match &e.event {
            Event::StepInterrupted { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    match at {
        "between" => assert_eq!(interrupted, vec!["spin"]),
        "http" => assert_eq!(interrupted, vec!["second"]),
        _ => assert!(interrupted.is_empty(), "a waiting run has nothing in flight: {interrupted:?}"),
    }
}

#[tokio::test]
async fn sqlite_killed_during_a_wait() {
    crash_and_resume(Env::sqlite(), "wait").await;
}

#[tokio::test]
async fn sqlite_killed_between_http_steps() {
    crash_and_resume(Env::sqlite(), "between").await;
}

#[tokio::test]
async fn sqlite_killed_during_an_http_step() {
    crash_and_resume(Env::sqlite(), "http").await;
}

#[tokio::test]
async fn postgres_killed_during_a_wait() {
    crash_and_resume(Env::postgres().await, "wait").await;
}

#[tokio::test]
async fn postgres_killed_between_http_steps() {
    crash_and_resume(Env::postgres().await, "between").await;
}

#[tokio::test]
async fn postgres_killed_during_an_http_step() {
    crash_and_resume(Env::postgres().await, "http").await;
}
