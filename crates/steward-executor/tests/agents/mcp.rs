//! MCP tools of an agent, over stdio, through the executor: the server's tools are offered as
//! `<server>__<tool>` (only those its allowlist names), a call runs on the server and its
//! result is the model's next message.
//!
//! The server is this test executable, started again to run only `stdio_server_entry` (so it
//! always exists and is current, with no other binary to build). A server gets only a few of
//! our variables, so the command goes through `env` to set the ones the entry needs.

use std::path::Path;

use serde_json::{Value, json};
use steward_store::DEFAULT_WORKSPACE;
use steward_testkit::mcp::COUNT_FILE_ENV;
use steward_testkit::model::{FakeProvider, ProviderRequest, Reply};

use super::common::{Harness, succeeded};
use super::{agent, definition, flow, kinds};

/// Set in the environment of the stdio server started from this executable.
pub(crate) const SERVE_ENV: &str = "STEWARD_TEST_MCP_STDIO";

/// An agent's `tools` with the test server as MCP server `local`; its `count` tool appends a
/// line to `count_file`.
fn mcp_tools(count_file: &Path, allow: Option<&[&str]>) -> String {
    let exe = std::env::current_exe().unwrap();
    let command = [
        "env".to_owned(),
        format!("{SERVE_ENV}=1"),
        format!("{COUNT_FILE_ENV}={}", count_file.display()),
        exe.to_str().unwrap().to_owned(),
        "stdio_server_entry".to_owned(),
        "--exact".to_owned(),
        "--ignored".to_owned(),
        "--quiet".to_owned(),
        "--test-threads=1".to_owned(),
    ];
    // JSON is YAML, and quotes whatever the path holds.
    let command = serde_json::to_string(&command).unwrap();
    let allow = allow.map(|a| format!(", allow: {}", serde_json::to_string(a).unwrap())).unwrap_or_default();
    format!("tools: [{{mcp: {{name: local, command: {command}{allow}}}}}]\n")
}

/// The names of the tools a request offered.
fn offered(request: &ProviderRequest) -> Vec<String> {
    let tools = request.body["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()
}

/// The tool result answering `call_id` in a request.
fn tool_result(request: &ProviderRequest, call_id: &str) -> Value {
    let messages = request.body["messages"].as_array().unwrap();
    let found = messages.iter().find(|m| m["role"] == "tool" && m["tool_call_id"] == call_id);
    found.cloned().unwrap_or_else(|| panic!("no result for {call_id} in {messages:?}"))
}

fn lines(file: &Path) -> usize {
    std::fs::read_to_string(file).map(|t| t.lines().count()).unwrap_or(0)
}

#[tokio::test]
async fn an_agent_calls_an_mcp_server_over_stdio_and_the_model_reads_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, &mcp_tools(&count_file, None))).await;
    p.enqueue(Reply::tool_call("call_1", "local__add", json!({"a": 2, "b": 3})));
    p.enqueue(Reply::tool_call("call_2", "local__count", json!({})));
    p.enqueue(Reply::text("2 + 3 = 5, and counted."));
    let run = h.run(&flow("add 2 and 3"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("2 + 3 = 5, and counted."));

    let seen = p.requests();
    assert_eq!(seen.len(), 3);
    let mut names = offered(&seen[0]);
    names.sort();
    let all = ["add", "count", "echo", "fail", "getenv", "header", "sleep"].map(|t| format!("local__{t}"));
    assert_eq!(names, all, "every tool of a server without an allowlist");
    let add =
        seen[0].body["tools"].as_array().unwrap().iter().find(|t| t["function"]["name"] == "local__add");
    assert_eq!(add.unwrap()["function"]["parameters"]["required"], json!(["a", "b"]), "the server's schema");
    assert_eq!(tool_result(&seen[1], "call_1")["content"], json!("5"));
    assert_eq!(tool_result(&seen[2], "call_2")["content"], json!("counted"));
    // A server is started for every pass that needs the tools; the call itself ran once.
    assert_eq!(lines(&count_file), 1, "the count tool ran once");
    assert_eq!(kinds(&h, &run.id).await, ["begin", "turn", "tool", "turn", "tool", "turn"]);
    let usage = h.store.usage(DEFAULT_WORKSPACE, "2000-01-01", "2999-12-31").await.unwrap();
    assert_eq!((usage[0].model_calls, usage[0].tool_calls), (3, 2));
}

#[tokio::test]
async fn an_mcp_tool_outside_the_allowlist_is_neither_offered_nor_run() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, &mcp_tools(&count_file, Some(&["add"])))).await;
    // A model may ask for a tool it was not offered.
    p.enqueue(Reply::tool_call("call_1", "local__count", json!({})));
    p.enqueue(Reply::text("I cannot count."));
    let run = h.run(&flow("count"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("I cannot count."));

    let seen = p.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(offered(&seen[0]), ["local__add"], "only the allowed tool is offered");
    assert_eq!(offered(&seen[1]), ["local__add"]);
    let told = tool_result(&seen[1], "call_1")["content"].as_str().unwrap().to_owned();
    assert!(told.contains("There is no tool named `local__count`"), "{told}");
    assert_eq!(lines(&count_file), 0, "the server never heard of the call");
}

#[tokio::test]
async fn an_agent_calls_an_mcp_server_over_http_through_the_egress_guard() {
    let server = steward_testkit::mcp::McpHttpServer::start().await;
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let tools = format!("tools: [{{mcp: {{name: remote, url: '{}', allow: [add]}}}}]\n", server.url);
    agent(&h, &definition(&p, &tools)).await;
    p.enqueue(Reply::tool_call("call_1", "remote__add", json!({"a": 20, "b": 22})));
    p.enqueue(Reply::text("42"));
    let run = h.run(&flow("add"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("42"));
    assert_eq!(offered(&p.requests()[0]), ["remote__add"]);
    assert_eq!(tool_result(&p.requests()[1], "call_1")["content"], json!("42"));
    assert_eq!(server.calls("add"), 1);
}

#[tokio::test]
async fn an_mcp_server_at_an_address_the_egress_guard_refuses_is_not_reached() {
    let server = steward_testkit::mcp::McpHttpServer::start().await;
    // The executor's default policy: loopback and private ranges are refused.
    let h = Harness::sqlite_with(|_, opts| opts.egress = steward_steps::egress::EgressPolicy::strict()).await;
    let p = FakeProvider::start().await;
    for url in [server.url.clone(), server.url.replace("127.0.0.1", "localhost")] {
        let tools = format!("tools: [{{mcp: {{name: remote, url: '{url}'}}}}]\n");
        agent(&h, &definition(&p, &tools)).await;
        let run = h.run(&flow("add"), json!({})).await;
        assert_eq!(run.status, steward_engine::RunStatus::Failed, "{url}");
        let error = run.error.unwrap();
        assert_eq!(error.kind, steward_engine::ErrorKind::Refused, "{url}: {}", error.message);
        assert!(
            error.message.contains("MCP server `remote`") && error.message.contains("loopback"),
            "{}",
            error.message
        );
    }
    assert_eq!(server.total_calls(), 0);
    assert_eq!(p.count(), 0, "nothing was sent to the model either");
}
