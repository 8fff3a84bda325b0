//! MCP tools over stdio and streamable HTTP, against the test servers of `steward_testkit::mcp`.
//!
//! The stdio server is this test executable itself: the stdio tests start it again with
//! arguments that run only [`stdio_server_entry`], which serves the test tools on stdin and
//! stdout. So the server always exists and is current whenever these tests run, with no other
//! binary to build first (cargo builds no binaries of a dependency). The few lines the test
//! harness prints on stdout around it are not JSON, and MCP clients skip such lines.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use serde_json::json;
use steward_agent::mcp::{McpError, McpServerSpec, McpSession, McpTransport};
use steward_testkit::mcp::{COUNT_FILE_ENV, McpHttpServer};

/// Set in the environment of the stdio server started from this executable.
const SERVE_ENV: &str = "STEWARD_TEST_MCP_STDIO";
/// Generous: the machine may be busy building or running other tests.
const CONNECT: Duration = Duration::from_secs(30);
const CALL: Duration = Duration::from_secs(10);

/// Not a test: the stdio MCP server the tests below start this executable as. Ignored in
/// ordinary runs, and does nothing when run without [`SERVE_ENV`].
#[tokio::test]
#[ignore = "the stdio tests start it as their MCP server"]
async fn stdio_server_entry() {
    if std::env::var_os(SERVE_ENV).is_none() {
        return;
    }
    steward_testkit::mcp::serve_stdio().await.unwrap();
}

fn stdio_spec(allow: Option<&[&str]>, env: &[(&str, &str)]) -> McpServerSpec {
    let exe = std::env::current_exe().unwrap();
    let args = ["stdio_server_entry", "--exact", "--ignored", "--quiet", "--test-threads=1"];
    let mut env: Vec<(String, String)> =
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    env.push((SERVE_ENV.to_owned(), "1".to_owned()));
    McpServerSpec {
        name: "local".into(),
        transport: McpTransport::Stdio {
            command: exe.to_str().unwrap().to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
        },
        allow: allow.map(|names| names.iter().map(|n| (*n).to_owned()).collect()),
    }
}

fn http_spec(url: &str, allow: Option<&[&str]>, headers: &[(&str, &str)]) -> McpServerSpec {
    McpServerSpec {
        name: "remote".into(),
        transport: McpTransport::Http {
            url: url.to_owned(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        },
        allow: allow.map(|names| names.iter().map(|n| (*n).to_owned()).collect()),
    }
}

fn alive(pid: u32) -> bool {
    // A process that exited but was not reaped yet is a zombie: gone for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(tools: &[steward_agent::provider::ToolSpec]) -> Vec<&str> {
    tools.iter().map(|t| t.name.as_str()).collect()
}

#[tokio::test]
async fn stdio_tools_are_listed_through_the_allowlist_and_called() {
    let session =
        McpSession::connect(&stdio_spec(Some(&["add", "echo", "fail"]), &[]), CONNECT).await.unwrap();
    let pid = session.pid().unwrap();
    assert!(alive(pid));

    let tools = session.tools().await.unwrap();
    assert_eq!(names(&tools), ["add", "echo", "fail"]);
    let add = &tools[0];
    assert_eq!(add.description, "Adds two numbers.");
    assert_eq!(add.parameters["properties"]["a"]["type"], "number");
    assert_eq!(add.parameters["required"], json!(["a", "b"]));

    let sum = session.call("add", json!({"a": 2, "b": 40}), CALL).await.unwrap();
    assert_eq!((sum.content.as_str(), sum.is_error), ("42", false));
    let echoed = session.call("echo", json!({"text": "héllo\nworld"}), CALL).await.unwrap();
    assert_eq!(echoed.content, "héllo\nworld");

    let failed = session.call("fail", json!({}), CALL).await.unwrap();
    assert!(failed.is_error);
    assert_eq!(failed.content, "the fail tool always fails");

    // Bad arguments are the server's refusal, not a tool result.
    let refused = session.call("add", json!({"a": 1}), CALL).await.unwrap_err();
    assert!(matches!(&refused, McpError::Refused { message, .. } if message.contains('b')), "{refused}");

    session.close().await;
    wait_gone(pid).await;
}

#[tokio::test]
async fn stdio_tool_runs_once_per_call_and_sees_only_the_given_environment() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count");
    let count_path = count_file.to_str().unwrap();
    let spec = stdio_spec(None, &[(COUNT_FILE_ENV, count_path), ("GREETING", "hi")]);
    let session = McpSession::connect(&spec, CONNECT).await.unwrap();

    let counted = session.call("count", json!({}), CALL).await.unwrap();
    assert_eq!(counted.content, "counted");
    assert_eq!(std::fs::read_to_string(&count_file).unwrap().lines().count(), 1);
    session.call("count", serde_json::Value::Null, CALL).await.unwrap();
    assert_eq!(std::fs::read_to_string(&count_file).unwrap().lines().count(), 2);

    let getenv = |name: &'static str| session.call("getenv", json!({ "name": name }), CALL);
    assert_eq!(getenv("GREETING").await.unwrap().content, "hi");
    // Ours are not passed on, but for a few such as PATH.
    let inherited = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];
    let (ours, _) = std::env::vars()
        .find(|(k, v)| !v.is_empty() && !inherited.contains(&k.as_str()) && k != "GREETING")
        .expect("the test process has a variable to keep from the server");
    let hidden = session.call("getenv", json!({ "name": ours }), CALL).await.unwrap();
    assert_eq!(hidden.content, "", "{ours} reached the server");
    assert!(!getenv("PATH").await.unwrap().content.is_empty());
    session.close().await;
}

#[tokio::test]
async fn an_unknown_command_is_named() {
    let spec = McpServerSpec {
        name: "ghost".into(),
        transport: McpTransport::Stdio {
            command: "steward-no-such-mcp-server".into(),
            args: vec![],
            env: vec![],
        },
        allow: None,
    };
    let err = McpSession::connect(&spec, CONNECT).await.unwrap_err();
    assert!(
        matches!(&err, McpError::Start { command, .. } if command == "steward-no-such-mcp-server"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("ghost") && message.contains("`steward-no-such-mcp-server`"), "{message}");
}

#[tokio::test]
async fn dropping_a_stdio_session_stops_its_process() {
    let session = McpSession::connect(&stdio_spec(None, &[]), CONNECT).await.unwrap();
    let pid = session.pid().unwrap();
    assert!(alive(pid));
    drop(session);
    wait_gone(pid).await;
}

#[tokio::test]
async fn a_silent_server_times_out_and_its_processes_are_killed() {
    // The command forks a sleeper of its own: both belong to the server's process group.
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = format!("sleep 60 & echo $$ $! > '{}'; echo starting >&2; wait", pids.display());
    let spec = McpServerSpec {
        name: "silent".into(),
        transport: McpTransport::Stdio { command: "sh".into(), args: vec!["-c".into(), script], env: vec![] },
        allow: None,
    };
    let started = Instant::now();
    let err = McpSession::connect(&spec, Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(err, McpError::HandshakeTimeout { ref server, .. } if server == "silent"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("its stderr ends with: starting"), "{err}");
    let pids = std::fs::read_to_string(&pids).unwrap();
    for pid in pids.split_whitespace() {
        wait_gone(pid.parse().unwrap()).await;
    }
}

#[tokio::test]
async fn a_server_that_exits_at_start_explains_itself() {
    let spec = McpServerSpec {
        name: "broken".into(),
        transport: McpTransport::Stdio {
            command: "sh".into(),
            args: vec!["-c".into(), "echo 'missing API key' >&2; exit 3".into()],
            env: vec![],
        },
        allow: None,
    };
    let err = McpSession::connect(&spec, CONNECT).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("broken") && message.contains("missing API key"), "{message}");
}

#[tokio::test]
async fn http_tools_are_listed_through_the_allowlist_and_called() {
    let server = McpHttpServer::start().await;
    let spec = http_spec(&server.url, Some(&["add", "fail", "header"]), &[("X-Api-Key", "secret-1")]);
    let session = McpSession::connect(&spec, CONNECT).await.unwrap();
    assert_eq!(session.pid(), None);

    let tools = session.tools().await.unwrap();
    assert_eq!(names(&tools), ["add", "fail", "header"]);

    let sum = session.call("add", json!({"a": 1.5, "b": 2}), CALL).await.unwrap();
    assert_eq!((sum.content.as_str(), sum.is_error), ("3.5", false));
    assert_eq!(server.calls("add"), 1);

    let failed = session.call("fail", json!({}), CALL).await.unwrap();
    assert!(failed.is_error);
    assert_eq!(failed.content, "the fail tool always fails");

    let header = session.call("header", json!({"name": "x-api-key"}), CALL).await.unwrap();
    assert_eq!(header.content, "secret-1");
    assert_eq!(server.total_calls(), 3);
    session.close().await;
}

#[tokio::test]
async fn http_refuses_tools_outside_the_allowlist_without_calling_the_server() {
    let server = McpHttpServer::start().await;
    let session =
        McpSession::connect(&http_spec(&server.url, Some(&["add", "missing"]), &[]), CONNECT).await.unwrap();

    let err = session.call("echo", json!({"text": "hi"}), CALL).await.unwrap_err();
    assert!(matches!(&err, McpError::NotAllowed { tool, .. } if tool == "echo"), "{err:?}");
    assert!(err.to_string().contains("`echo` is not allowed"), "{err}");

    let err = session.call("missing", json!({}), CALL).await.unwrap_err();
    assert!(matches!(&err, McpError::UnknownTool { tool, .. } if tool == "missing"), "{err:?}");

    let err = session.call("add", json!([1, 2]), CALL).await.unwrap_err();
    assert!(matches!(err, McpError::InvalidArguments { .. }), "{err:?}");
    assert_eq!(server.total_calls(), 0);

    session.call("add", json!({"a": 1, "b": 1}), CALL).await.unwrap();
    assert_eq!(server.total_calls(), 1);
}

#[tokio::test]
async fn a_slow_http_tool_times_out() {
    let server = McpHttpServer::start().await;
    let session = McpSession::connect(&http_spec(&server.url, None, &[]), CONNECT).await.unwrap();
    let started = Instant::now();
    let err = session.call("sleep", json!({"ms": 30_000}), Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(&err, McpError::CallTimeout { tool, .. } if tool == "sleep"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The session stays usable.
    let sum = session.call("add", json!({"a": 2, "b": 2}), CALL).await.unwrap();
    assert_eq!(sum.content, "4");
}

#[tokio::test]
async fn an_unreachable_http_server_is_a_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let err = McpSession::connect(&http_spec(&url, None, &[]), CONNECT).await.unwrap_err();
    assert!(matches!(err, McpError::Transport { .. }), "{err:?}");

    let err = McpSession::connect(&http_spec("ftp://example.com/mcp", None, &[]), CONNECT).await.unwrap_err();
    assert!(matches!(err, McpError::InvalidSpec { .. }), "{err:?}");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let spec = http_spec("http://127.0.0.1:1/mcp", None, &[("Authorization", "Bearer hunter2")]);
    let shown = format!("{spec:?}");
    assert!(shown.contains("Authorization") && !shown.contains("hunter2"), "{shown}");
    let spec = stdio_spec(None, &[("API_TOKEN", "hunter2")]);
    let shown = format!("{spec:?}");
    assert!(shown.contains("API_TOKEN") && !shown.contains("hunter2"), "{shown}");
    assert!(spec.allows("anything"));
    let narrow = http_spec("http://127.0.0.1:1/mcp", Some(&["add"]), &[]);
    assert!(narrow.allows("add") && !narrow.allows("echo"));
}
