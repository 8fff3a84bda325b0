//! Agent crash tests: a real `steward worker` process runs an agent whose model is a fake
//! provider on loopback and whose one tool is an HTTP endpoint that counts requests. The
//! worker is killed with SIGKILL while the model call after the tool call is in flight; a new
//! worker rebuilds the conversation from the journal, calls the model again and finishes the
//! run. The tool is not called again and the interrupted model call leaves no record.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward_engine::{Event, RunStatus};
use steward_store::Store;
use steward_testkit::Recorder;
use steward_testkit::model::{FakeProvider, Reply};
use support::{Env, finished};

const INSTRUCTIONS: &str = "You look things up with the lookup tool.";
const TASK: &str = "Look up order 42";
const FINAL: &str = "Order 42 was found after the restart.";

/// The agent's definition: the fake provider's model and one HTTP tool on the recorder.
fn definition(model_url: &str, tool_base: &str) -> String {
    format!(
        r#"name: looker
description: Looks things up
instructions: "{INSTRUCTIONS}"
model: {{provider: openai, base_url: "{model_url}", name: fake-model}}
tools:
  - name: lookup
    description: Looks up an order
    parameters: {{type: object, properties: {{order: {{type: integer}}}}, required: [order]}}
    http: {{method: POST, url: "{tool_base}/hit/tool", json: "${{{{ .args }}}}"}}
"#
    )
}

/// Applies the agent and queues a run of it; returns the run's id.
fn queue(env: &Env, model_url: &str, tool_base: &str) -> String {
    let file = env.dir.path().join("looker.yaml");
    std::fs::write(&file, definition(model_url, tool_base)).expect("write agent");
    env.steward(&["agents", "apply", file.to_str().expect("utf8 path")]);
    let run = env.steward(&["agents", "run", "looker", TASK, "--detach"]).trim().to_owned();
    assert!(!run.is_empty(), "`agents run --detach` printed no run id");
    run
}

/// The records journaled for the step `key`, in order.
async fn records(store: &Arc<dyn Store>, run: &str, key: &str) -> Vec<Value> {
    store
        .journal(run)
        .await
        .expect("journal")
        .into_iter()
        .filter_map(|e| match e.event {
            Event::StepRecorded { key: k, record } if k == key => Some(record),
            _ => None,
        })
        .collect()
}

fn types(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["type"].as_str().unwrap_or("?")).collect()
}

/// Polls `ready` every 20 ms until it holds; panics with `what` after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !ready().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the worker while the model call after the tool call is in flight, restarts one, and
/// checks the run's end state, the journal and what the model was sent.
async fn killed_during_a_model_call(env: Env) {
    let started = Instant::now();
    let tool = Recorder::start().await;
    let model = FakeProvider::start().await;
    model.enqueue(Reply::tool_call("call_1", "lookup", json!({"order": 42})));
    // Taken by the call the worker is killed during; the killed worker never sees it.
    model.enqueue(Reply::text("an answer nobody receives").delay(Duration::from_secs(30)));
    model.enqueue(Reply::text(FINAL));

    let store = env.store().await;
    let run = queue(&env, &model.openai_url(), &tool.base);
    let mut worker = env.worker();
    wait_until("the second model call", Duration::from_secs(30), || async { model.count() >= 2 }).await;
    wait_until("the tool's record", Duration::from_secs(10), || async {
        types(&records(&store, &run, "agent").await).contains(&"tool")
    })
    .await;
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    let killed_at = Instant::now();
    assert_eq!(
        types(&records(&store, &run, "agent").await),
        ["begin", "turn", "tool"],
        "the call in flight has no record yet"
    );

    let mut restarted = env.worker();
    let record = finished(&store, &run, Duration::from_secs(30)).await;
    restarted.kill().expect("stop worker");
    let _ = restarted.wait();
    eprintln!(
        "run finished {:?} after the kill, {:?} after the start",
        killed_at.elapsed(),
        started.elapsed()
    );

    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    assert_eq!(record.output, Some(json!(FINAL)), "the answer of the call made after the restart");

    let hits = tool.hits("tool");
    assert_eq!(hits.len(), 1, "a tool call that was recorded never runs again: {hits:?}");
    let sent: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(sent, json!({"order": 42}), "the tool got the model's arguments");

    let requests = model.requests();
    assert_eq!(requests.len(), 3, "one call before the tool, the interrupted one, one after the restart");
    let messages = |i: usize| requests[i].body["messages"].as_array().cloned().unwrap();
    let last = messages(2);
    assert_eq!(last.len(), 4, "the rebuilt conversation: {last:#?}");
    assert_eq!(last[0], json!({"role": "system", "content": INSTRUCTIONS}));
    assert_eq!(last[1], json!({"role": "user", "content": TASK}));
    assert_eq!(last[2]["role"], "assistant");
    let calls = last[2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["name"], "lookup");
    let arguments: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"order": 42}));
    assert_eq!(last[3]["role"], "tool");
    assert_eq!(last[3]["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(last[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"name": "tool", "count": 1}), "the recorder's answer to the one call");
    assert_eq!(messages(1), last, "the conversation after the restart is the one sent before the crash");
    assert_eq!(requests[2].body["tools"], requests[1].body["tools"], "the same tools are offered");

    let agent_records = records(&store, &run, "agent").await;
    assert_eq!(types(&agent_records), ["begin", "turn", "tool", "turn"], "{agent_records:#?}");
    assert_eq!(agent_records[3]["text"], FINAL);
    let journal = store.journal(&run).await.expect("journal");
    let interrupted: Vec<&str> = journal
        .iter()
        .filter_map(|e| match &e.event {
            Event::StepInterrupted { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(interrupted, ["agent"], "the agent step was interrupted once");
}

#[tokio::test]
async fn sqlite_agent_killed_during_a_model_call() {
    killed_during_a_model_call(Env::sqlite()).await;
}

#[tokio::test]
async fn postgres_agent_killed_during_a_model_call() {
    killed_during_a_model_call(Env::postgres().await).await;
}
