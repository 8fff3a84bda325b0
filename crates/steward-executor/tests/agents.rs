//! Agent steps against a fake provider on loopback that speaks the OpenAI and Anthropic
//! protocols: the loop of model turns and tool calls, its records in the journal, approvals,
//! budgets, fallbacks and usage counting. Budgets, MCP tools, the Anthropic protocol and what
//! keeps a run safe (approval timeouts, secrets) have modules of their own.

#![expect(clippy::unwrap_used, reason = "tests")]

mod common;

#[path = "agents/anthropic.rs"]
mod anthropic;
#[path = "agents/budgets.rs"]
mod budgets;
#[path = "agents/mcp.rs"]
mod mcp;
#[path = "agents/safety.rs"]
mod safety;

use std::time::Duration;

use common::{Harness, succeeded};
use serde_json::{Value, json};
use steward_engine::{Event, RunStatus};
use steward_store::{DEFAULT_WORKSPACE, Signal};
use steward_testkit::model::{FakeProvider, Reply};

const SECS: Duration = Duration::from_secs(20);

async fn agent(h: &Harness, yaml: &str) {
    let def = steward_agent::definition::load("a.yaml", yaml).expect("valid agent");
    let now = steward_engine::Timestamp(1);
    h.store
        .save_agent(DEFAULT_WORKSPACE, def.name.as_str(), yaml, &format!("{:x}", yaml.len()), now)
        .await
        .unwrap();
}

fn flow(input: &str) -> String {
    format!(
        "name: ask\ninputs: {{q: {{required: false}}, secret_plan: {{required: false}}}}\n\
         steps:\n  - id: ask\n    agent: {{name: helper, input: '{input}'}}\n"
    )
}

fn definition(provider: &FakeProvider, extra: &str) -> String {
    format!(
        "name: helper\ninstructions: Be brief.\nmodel: {{provider: openai, base_url: '{}', name: m1}}\n{extra}",
        provider.openai_url()
    )
}

fn records(journal: &[steward_engine::Entry]) -> Vec<Value> {
    journal
        .iter()
        .filter_map(|e| match &e.event {
            Event::StepRecorded { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect()
}

/// The types of the run's records, in order.
async fn kinds(h: &Harness, run: &str) -> Vec<String> {
    records(&h.journal(run).await).iter().map(|r| r["type"].as_str().unwrap().to_owned()).collect()
}

/// Not a test: the stdio MCP server that the MCP tests start this executable as (see
/// `mcp::server_command`). Ignored in ordinary runs, and does nothing without its variable.
#[tokio::test]
#[ignore = "the MCP tests start it as their stdio server"]
async fn stdio_server_entry() {
    if std::env::var_os(mcp::SERVE_ENV).is_none() {
        return;
    }
    steward_testkit::mcp::serve_stdio().await.unwrap();
}

#[tokio::test]
async fn a_tool_call_runs_once_and_the_model_sees_its_result() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: run_inputs}]\n")).await;
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::text("The ticket is about billing."));
    let run = h.run(&flow("${{ .inputs.q }}"), json!({"q": "what is it about?"})).await;
    assert_eq!(succeeded(&run), &json!("The ticket is about billing."));
    let seen = p.requests();
    assert_eq!(seen.len(), 2, "one model call per turn");
    let messages = seen[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(messages[1]["content"], json!("what is it about?"));
    assert_eq!(messages[3]["role"], json!("tool"));
    assert_eq!(messages[3]["tool_call_id"], json!("call_1"));
    assert!(
        messages[3]["content"].as_str().unwrap().contains("what is it about?"),
        "the tool's result: {messages:?}"
    );
    assert_eq!(kinds(&h, &run.id).await, ["begin", "turn", "tool", "turn"]);
    let usage = h.store.usage(DEFAULT_WORKSPACE, "2000-01-01", "2999-12-31").await.unwrap();
    assert_eq!((usage[0].model_calls, usage[0].tool_calls), (2, 1));
    assert!(usage[0].input_tokens > 0, "the provider's usage is counted");
}

#[tokio::test]
async fn a_rejected_call_is_not_run_and_the_model_is_told_why() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: run_inputs, approval: required}]\n")).await;
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::text("Understood, I will not."));
    let id = h.start_run(&flow("go"), json!({})).await;
    let waiting = h.until(&id, SECS, |r| r.status == RunStatus::Waiting).await;
    assert_eq!(waiting.lease_owner, None, "a run waiting for a person holds no executor");
    let signal =
        Signal::Approval { step: "ask".into(), approved: false, by: "ann".into(), reason: Some("no".into()) };
    h.executor.signal(DEFAULT_WORKSPACE, &id, &signal).await.unwrap();
    let run = h.finished(&id, SECS).await;
    assert_eq!(succeeded(&run), &json!("Understood, I will not."));
    let last = p.last().unwrap();
    let tool = &last.body["messages"][3];
    assert!(tool["content"].as_str().unwrap().contains("rejected by ann: no"), "{tool}");
    // The decision itself is the engine's `approval_decided` event.
    assert_eq!(kinds(&h, &run.id).await, ["begin", "turn", "approval_requested", "tool", "turn"]);
}

#[tokio::test]
async fn an_approved_call_runs() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: run_inputs, approval: required}]\n")).await;
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::text("done"));
    let id = h.start_run(&flow("go"), json!({"secret_plan": 42})).await;
    h.until(&id, SECS, |r| r.status == RunStatus::Waiting).await;
    let signal = Signal::Approval { step: "ask".into(), approved: true, by: "ann".into(), reason: None };
    h.executor.signal(DEFAULT_WORKSPACE, &id, &signal).await.unwrap();
    h.finished(&id, SECS).await;
    let tool = &p.last().unwrap().body["messages"][3];
    assert_eq!(tool["content"], json!(r#"{"secret_plan":42}"#));
}

#[tokio::test]
async fn a_failing_model_falls_back_to_the_next() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let def = definition(&p, "").replace(
        "name: m1}\n",
        &format!(
            "name: m1,\n  fallbacks: [{{provider: anthropic, base_url: '{}', name: m2}}]}}\n",
            p.anthropic_url()
        ),
    );
    agent(&h, &def).await;
    p.enqueue_for("m1", Reply::unknown_model());
    p.enqueue_for("m2", Reply::text("from the fallback"));
    let run = h.run(&flow("go"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("from the fallback"));
    let turn = records(&h.journal(&run.id).await).into_iter().find(|r| r["type"] == "turn").unwrap();
    assert_eq!(turn["provider"], json!("anthropic"));
    assert!(turn["fell_back"][0].as_str().unwrap().starts_with("m1:"), "{turn}");
}

#[tokio::test]
async fn an_answer_is_repaired_to_match_the_output_schema() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let schema = "output: {schema: {type: object, required: [urgency]}}\n";
    agent(&h, &definition(&p, schema)).await;
    p.enqueue(Reply::text("It is urgent."));
    p.enqueue(Reply::text("{\"urgency\": \"high\"}"));
    let run = h.run(&flow("go"), json!({})).await;
    assert_eq!(succeeded(&run), &json!({"urgency": "high"}));
    let repair = &p.last().unwrap().body["messages"][3];
    assert!(
        repair["content"].as_str().unwrap().contains("does not match the required JSON Schema"),
        "{repair}"
    );
}

#[tokio::test]
async fn personal_data_is_masked_for_the_provider_and_restored_in_the_answer() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "privacy: {mask_pii: true}\n")).await;
    p.enqueue(Reply::text("I will write to [email_1]."));
    let run = h.run(&flow("Contact ann.lee@example.com about card 4111 1111 1111 1111"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("I will write to ann.lee@example.com."));
    let sent = p.requests()[0].body.to_string();
    assert!(!sent.contains("ann.lee@example.com") && !sent.contains("4111"), "{sent}");
    assert!(sent.contains("[email_1]") && sent.contains("[card_1]"), "{sent}");
}

#[tokio::test]
async fn a_model_call_is_in_the_runs_data_flow_receipt() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "")).await;
    p.enqueue(Reply::text("ok"));
    let run = h.run(&flow("go"), json!({})).await;
    let sent: Vec<(String, u64)> = h
        .journal(&run.id)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::DataSent { host, bytes, .. } => Some((host, bytes)),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "127.0.0.1");
    assert!(sent[0].1 > 100, "the request's bytes are counted");
}
