//! What keeps an agent's run safe without a person watching: a call nobody approves in time
//! counts as rejected (and the tool never runs), and a conversation holding a secret of the
//! workspace is never sent.

use std::sync::Arc;

use serde_json::json;
use steward_engine::{ErrorKind, Event, RunStatus};
use steward_store::{DEFAULT_WORKSPACE, ServerStore};
use steward_testkit::model::{FakeProvider, Reply};
use steward_vault::{Keyring, MasterKey, Secret};

use super::common::{Harness, succeeded};
use super::{SECS, agent, definition, flow, kinds, records};

#[tokio::test]
async fn a_call_nobody_approves_in_time_is_rejected_by_the_timeout() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let tools = "tools: [{builtin: run_inputs, approval: required}]\napproval_timeout: 1s\n";
    agent(&h, &definition(&p, tools)).await;
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::text("Nobody approved, so I stopped."));
    let id = h.start_run(&flow("go"), json!({"secret_plan": 42})).await;
    let waiting = h.until(&id, SECS, |r| r.status == RunStatus::Waiting || r.status.is_finished()).await;
    assert_eq!(waiting.status, RunStatus::Waiting, "the call first waits for a person");
    let run = h.finished(&id, SECS).await;
    assert_eq!(succeeded(&run), &json!("Nobody approved, so I stopped."));

    let journal = h.journal(&id).await;
    let decided: Vec<(bool, String)> = journal
        .iter()
        .filter_map(|e| match &e.event {
            Event::ApprovalDecided { approved, by, .. } => Some((*approved, by.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(decided, [(false, "timeout".to_owned())]);
    assert_eq!(kinds(&h, &id).await, ["begin", "turn", "approval_requested", "tool", "turn"]);
    let tool = records(&journal).into_iter().find(|r| r["type"] == "tool").unwrap();
    assert_eq!(tool["is_error"], json!(true), "{tool}");

    assert_eq!(p.count(), 2, "the model is asked again after the timeout");
    let told = &p.last().unwrap().body["messages"][3];
    assert_eq!(told["role"], json!("tool"));
    assert_eq!(told["tool_call_id"], json!("call_1"));
    let content = told["content"].as_str().unwrap();
    assert!(content.contains("rejected by timeout: no decision before the timeout"), "{content}");
    assert!(!content.contains("42"), "the tool never ran: {content}");
    let usage = h.store.usage(DEFAULT_WORKSPACE, "2000-01-01", "2999-12-31").await.unwrap();
    assert_eq!((usage[0].model_calls, usage[0].tool_calls), (2, 0), "no tool call was counted");
}

/// A value no test input holds by chance.
const SECRET: &str = "sk-live-7f3c9a1e5b2d4068";

/// An executor with a vault whose workspace has the connection `billing` holding [`SECRET`].
async fn with_secret() -> Harness {
    let mut vault: Option<Arc<dyn ServerStore>> = None;
    let mut keyring: Option<Arc<Keyring>> = None;
    let h = Harness::sqlite_with(|store, o| {
        let k = Arc::new(Keyring::new(MasterKey::generate().unwrap(), store.clone()));
        o.keyring = Some(k.clone());
        keyring = Some(k);
        vault = Some(store.clone());
    })
    .await;
    let (vault, keyring) = (vault.unwrap(), keyring.unwrap());
    let now = h.executor.now();
    let sealed = keyring.seal(DEFAULT_WORKSPACE, "billing", &Secret::from(SECRET), now).await.unwrap();
    let connection = steward_testkit::connection(DEFAULT_WORKSPACE, "billing", sealed, now);
    vault.create_connection(&connection).await.unwrap();
    h
}

/// The run's records as JSON text, which must not hold the secret.
async fn records_without_secret(h: &Harness, run: &str) -> Vec<serde_json::Value> {
    let records = records(&h.journal(run).await);
    let journaled = serde_json::to_string(&records).unwrap();
    assert!(!journaled.contains(SECRET), "{journaled}");
    records
}

#[tokio::test]
async fn a_conversation_holding_a_workspace_secret_is_never_sent_to_the_model() {
    let h = with_secret().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "")).await;
    p.enqueue(Reply::text("never sent"));
    // Written into the flow itself, the secret is in the task the agent starts from.
    let run = h.run(&flow(&format!("Why does the billing API refuse the key {SECRET}?")), json!({})).await;

    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.output);
    let error = run.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Refused, "{}", error.message);
    assert!(
        error.message.contains("holds a secret of this workspace, so it was not sent to the model"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(SECRET));
    assert_eq!(p.count(), 0, "the provider heard nothing");
    let journal = h.journal(&run.id).await;
    assert!(
        !journal.iter().any(|e| matches!(e.event, Event::DataSent { .. })),
        "nothing is in the data-flow receipt"
    );
    let records = records_without_secret(&h, &run.id).await;
    assert_eq!(records.len(), 1, "only the task was recorded: {records:?}");
    assert!(records[0]["task"].as_str().unwrap().contains("[redacted:billing]"), "{records:?}");
}

#[tokio::test]
async fn instructions_holding_a_workspace_secret_are_never_sent_to_the_model() {
    let h = with_secret().await;
    let p = FakeProvider::start().await;
    let def = definition(&p, "").replace("Be brief.", &format!("Use the key {SECRET} when asked."));
    agent(&h, &def).await;
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.output);
    assert_eq!(run.error.unwrap().kind, ErrorKind::Refused);
    assert_eq!(p.count(), 0, "the provider heard nothing");
    records_without_secret(&h, &run.id).await;
}

#[tokio::test]
async fn a_secret_in_the_runs_inputs_reaches_the_model_only_redacted() {
    let h = with_secret().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: run_inputs}]\n")).await;
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::text("The key was redacted."));
    let task = format!("Why does the billing API refuse the key {SECRET}?");
    // Inputs are redacted before the run is stored: neither the task nor a tool reading the
    // inputs can hand the secret to the model.
    let run = h.run(&flow("${{ .inputs.q }}"), json!({"q": task})).await;
    assert_eq!(succeeded(&run), &json!("The key was redacted."));
    let seen = p.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        let sent = r.body.to_string();
        assert!(!sent.contains(SECRET), "{sent}");
    }
    let messages = &seen[1].body["messages"];
    assert_eq!(messages[1]["content"], json!("Why does the billing API refuse the key [redacted:billing]?"));
    assert!(messages[3]["content"].as_str().unwrap().contains("[redacted:billing]"), "{messages}");
    records_without_secret(&h, &run.id).await;
}
