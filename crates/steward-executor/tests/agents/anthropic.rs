//! An agent on the Anthropic messages API: the system prompt on its own, tools with an
//! `input_schema`, and a tool's result as a `tool_result` block of the next user turn that
//! names the `tool_use` it answers.

use serde_json::json;
use steward_testkit::model::{FakeProvider, Reply, Wire};

use super::common::{Harness, succeeded};
use super::{agent, flow, kinds};

#[tokio::test]
async fn an_anthropic_agent_sends_tool_results_as_blocks_of_the_next_user_turn() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let def = format!(
        "name: helper\ninstructions: Be brief.\n\
         model: {{provider: anthropic, base_url: '{}', name: claude-test, max_tokens: 512}}\n\
         tools: [{{builtin: run_inputs}}]\n",
        p.anthropic_url()
    );
    agent(&h, &def).await;
    p.enqueue(Reply::tool_call("toolu_01", "run_inputs", json!({})).with_text("Let me look."));
    p.enqueue(Reply::text("It is about billing."));
    let run = h.run(&flow("${{ .inputs.q }}"), json!({"q": "what is it about?"})).await;
    assert_eq!(succeeded(&run), &json!("It is about billing."));

    let seen = p.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(r.wire, Wire::Anthropic);
        assert_eq!(r.path, "/v1/messages");
        assert!(r.headers.contains_key("anthropic-version"), "{:?}", r.headers);
    }
    let first = &seen[0].body;
    assert_eq!(first["system"], json!("Be brief."));
    assert_eq!(first["max_tokens"], json!(512));
    assert_eq!(
        first["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "what is it about?"}]}])
    );
    assert_eq!(first["tools"][0]["name"], json!("run_inputs"));
    assert_eq!(first["tools"][0]["input_schema"]["type"], json!("object"));

    let messages = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "user, assistant, user: {messages:?}");
    assert!(messages.iter().all(|m| m["role"] != "system" && m["role"] != "tool"), "{messages:?}");
    assert_eq!(messages[1]["role"], json!("assistant"));
    assert_eq!(
        messages[1]["content"],
        json!([
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "run_inputs", "input": {}}
        ])
    );
    assert_eq!(messages[2]["role"], json!("user"));
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], json!("tool_result"));
    assert_eq!(result["tool_use_id"], json!("toolu_01"), "it answers the call");
    assert_eq!(result["is_error"], json!(false));
    assert_eq!(result["content"], json!(r#"{"q":"what is it about?"}"#));
    assert_eq!(kinds(&h, &run.id).await, ["begin", "turn", "tool", "turn"]);
}
