//! Several executors on one database: every run is executed by exactly one of them, and when
//! one dies the others take its runs over once the lease expires.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Harness, options, succeeded};
use serde_json::json;
use steward_engine::RunStatus;
use steward_testkit::Recorder;

const FLOW: &str = r#"
name: work
inputs: { base: {} }
steps:
  - id: before
    http: { method: POST, url: "${{ .inputs.base }}/hit/before", body: "${{ .run.id }}" }
  - id: work
    http: { method: POST, url: "${{ .inputs.base }}/hit/work", body: "${{ .run.id }}" }
  - id: after
    http: { method: POST, url: "${{ .inputs.base }}/hit/after", body: "${{ .run.id }}" }
"#;

async fn takeover_after_a_crash(mut a: Harness, open_b: impl AsyncFnOnce() -> Harness) {
    let srv = Recorder::start().await;
    srv.hang_once("work");
    let id = a.start_run(FLOW, json!({"base": srv.base})).await;
    srv.wait_for("work", 1, Duration::from_secs(10)).await;
    a.crash();
    let b = open_b().await;
    let run = b.finished(&id, Duration::from_secs(20)).await;
    succeeded(&run);
    assert_eq!(srv.count("before"), 1, "a completed step never runs again");
    let work = srv.hits("work");
    assert_eq!(work.len(), 2, "the interrupted step ran again");
    assert_eq!(work[0].idempotency_key, work[1].idempotency_key, "with the same idempotency key");
    assert_eq!(srv.count("after"), 1);
}

#[tokio::test]
async fn sqlite_a_dead_executors_run_is_taken_over_after_its_lease() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("steward.db").to_string_lossy().into_owned();
    let a = Harness::start(steward_store_sql::open(&path).await.expect("open"), options("exec-a"), None);
    takeover_after_a_crash(a, async || {
        Harness::start(steward_store_sql::open(&path).await.expect("open"), options("exec-b"), None)
    })
    .await;
}

#[tokio::test]
async fn postgres_a_dead_executors_run_is_taken_over_after_its_lease() {
    let url = steward_testkit::fresh_pg_database().await;
    let a = Harness::start(steward_store_sql::open(&url).await.expect("open"), options("exec-a"), None);
    takeover_after_a_crash(a, async || {
        Harness::start(steward_store_sql::open(&url).await.expect("open"), options("exec-b"), None)
    })
    .await;
}

#[tokio::test]
async fn postgres_two_executors_run_each_run_exactly_once() {
    let url = steward_testkit::fresh_pg_database().await;
    let a = Harness::start(steward_store_sql::open(&url).await.expect("open"), options("exec-a"), None);
    let b = Harness::start(steward_store_sql::open(&url).await.expect("open"), options("exec-b"), None);
    let srv = Recorder::start().await;
    let version = a.apply(FLOW).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        // Start runs through both handles, as two servers would.
        let h = if i % 2 == 0 { &a } else { &b };
        ids.push(h.executor.start_run(&version, json!({"base": srv.base})).await.expect("start"));
    }
    for id in &ids {
        assert_eq!(a.finished(id, Duration::from_secs(30)).await.status, RunStatus::Succeeded);
    }
    for step in ["before", "work", "after"] {
        let mut per_run: HashMap<String, usize> = HashMap::new();
        for hit in srv.hits(step) {
            *per_run.entry(hit.body).or_default() += 1;
        }
        assert_eq!(per_run.len(), ids.len(), "every run reached {step}");
        assert!(per_run.values().all(|n| *n == 1), "{step} ran exactly once per run: {per_run:?}");
    }
}
