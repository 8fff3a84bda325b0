//! Chat threads over the API, against a fake provider on loopback: a reply streamed as
//! Server-Sent Events (tokens, tool calls, the answer), the conversation remembered from one
//! message to the next, an approval decided while the reply streams, and threads kept to
//! their workspace and to those who may read payloads.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use steward_auth::Role;
use steward_testkit::model::{FakeProvider, Reply};
use support::{Db, OTHER_WS, TestApp, WS};

fn path(rest: &str) -> String {
    format!("/api/v1/workspaces/{WS}{rest}")
}

async fn setup(extra: &str) -> (TestApp, String, FakeProvider) {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let p = FakeProvider::start().await;
    let source = format!(
        "name: helper\ninstructions: Be brief.\nmodel: {{provider: openai, base_url: '{}', name: m1}}\n{extra}",
        p.openai_url()
    );
    let (status, body) =
        app.call(Method::POST, &path("/agents"), Some(&owner.token), Some(json!({ "source": source }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, owner.token, p)
}

async fn thread(app: &TestApp, token: &str) -> String {
    let (status, made) = app.call(Method::POST, &path("/agents/helper/threads"), Some(token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["title"], "Conversation with helper");
    made["id"].as_str().unwrap().to_owned()
}

/// Sends a message and reads the whole reply stream: its events as (name, data).
async fn send(app: &TestApp, token: &str, thread: &str, content: &str) -> Vec<(String, Value)> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path(&format!("/threads/{thread}/messages")))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "content": content }).to_string()))
        .unwrap();
    let (status, headers, body) = app.raw(req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let text = String::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    let mut out: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_streams_and_the_thread_remembers_the_conversation() {
    let (app, token, p) = setup("tools: [{builtin: current_time}]\n").await;
    let id = thread(&app, &token).await;
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})));
    p.enqueue(Reply::text("It is noon, more or less."));
    let events = send(&app, &token, &id, "What time is it?").await;
    assert_eq!(names(&events), vec!["started", "tool_call", "tool_result", "token", "message", "done"]);
    assert_eq!(events[1].1["name"], "current_time");
    let tokens: String =
        events.iter().filter(|(n, _)| n == "token").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert_eq!(tokens, "It is noon, more or less.");
    assert!(events.iter().filter(|(n, _)| n == "token").count() > 1, "the answer came in pieces");
    assert_eq!(events[events.len() - 2].1["content"], "It is noon, more or less.");
    assert_eq!(events.last().unwrap().1["status"], "succeeded");
    assert!(p.requests()[1].streamed(), "someone listened, so the model call streamed");

    p.enqueue(Reply::text("Noon again."));
    let events = send(&app, &token, &id, "And tomorrow?").await;
    assert_eq!(events.last().unwrap().1["status"], "succeeded");
    let said: Vec<(String, String)> = p.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("system", "Be brief."),
        ("user", "What time is it?"),
        ("assistant", "It is noon, more or less."),
        ("user", "And tomorrow?"),
    ];
    assert_eq!(said, expected.map(|(r, c)| (r.to_owned(), c.to_owned())));

    let (_, detail) = app.call(Method::GET, &path(&format!("/threads/{id}")), Some(&token), None).await;
    let messages: Vec<(&str, &str)> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        vec![
            ("user", "What time is it?"),
            ("assistant", "It is noon, more or less."),
            ("user", "And tomorrow?"),
            ("assistant", "Noon again.")
        ]
    );
    let (_, list) = app.call(Method::GET, &path("/threads?agent=helper"), Some(&token), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, _) = app.call(Method::DELETE, &path(&format!("/threads/{id}")), Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, &path(&format!("/threads/{id}")), Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_approved_while_the_reply_streams() {
    let (app, token, p) = setup("tools: [{builtin: current_time, approval: required}]\n").await;
    let id = thread(&app, &token).await;
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})));
    p.enqueue(Reply::text("Done."));
    let app = std::sync::Arc::new(app);
    let streaming = tokio::spawn({
        let (app, token, id) = (app.clone(), token.clone(), id.clone());
        async move { send(&app, &token, &id, "Check the clock.").await }
    });
    let mut run = None;
    for _ in 0..400 {
        let (_, list) = app.call(Method::GET, &path("/approvals"), Some(&token), None).await;
        if let Some(first) = list.as_array().and_then(|l| l.first()) {
            run = first["run_id"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = run.expect("the tool call waits for approval");
    let approve = path(&format!("/runs/{run}/steps/agent/approve"));
    assert_eq!(app.call(Method::POST, &approve, Some(&token), None).await.0, StatusCode::ACCEPTED);
    let events = streaming.await.unwrap();
    assert_eq!(
        names(&events),
        vec!["started", "tool_call", "approval", "decision", "tool_result", "token", "message", "done"]
    );
    let approval = &events.iter().find(|(n, _)| n == "approval").unwrap().1;
    assert_eq!((approval["run_id"].as_str(), approval["step"].as_str()), (Some(run.as_str()), Some("agent")));
    assert!(approval["message"].as_str().unwrap().contains("current_time"));
    assert_eq!(events.iter().find(|(n, _)| n == "decision").unwrap().1["approved"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_stay_in_their_workspace_and_need_payload_access() {
    let (app, token, p) = setup("").await;
    let id = thread(&app, &token).await;
    p.enqueue(Reply::text("hi"));
    send(&app, &token, &id, "hello").await;
    let empty = json!({ "content": "  " });
    let (status, _) =
        app.call(Method::POST, &path(&format!("/threads/{id}/messages")), Some(&token), Some(empty)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an empty message is refused");
    let big = json!({ "content": "x".repeat(70 * 1024) });
    let (status, _) =
        app.call(Method::POST, &path(&format!("/threads/{id}/messages")), Some(&token), Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "an oversized message is refused");
    assert_eq!(p.count(), 1, "refused messages reach no model");

    let operator = app.member(WS, Role::Operator).await;
    let (status, _) =
        app.call(Method::GET, &path(&format!("/threads/{id}")), Some(&operator.token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a transcript is a payload");
    let outsider = app.workspace(OTHER_WS).await;
    let theirs = format!("/api/v1/workspaces/{OTHER_WS}/threads/{id}");
    let (status, _) = app.call(Method::GET, &theirs, Some(&outsider.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .call(Method::GET, &format!("/api/v1/workspaces/{OTHER_WS}/threads"), Some(&outsider.token), None)
        .await;
    assert_eq!(list, json!([]));
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{theirs}/messages"),
            Some(&outsider.token),
            Some(json!({"content": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(p.count(), 1);

    // A secret pasted into a message is kept and sent only as its placeholder.
    let connection = json!({ "name": "billing", "kind": "bearer", "hosts": ["api.example.com"], "secret": "sk_live_CANARY_7731" });
    let (status, made) = app.call(Method::POST, &path("/connections"), Some(&token), Some(connection)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    p.enqueue(Reply::text("noted"));
    send(&app, &token, &id, "my key is sk_live_CANARY_7731, keep it").await;
    let sent = p.last().unwrap().body.to_string();
    assert!(!sent.contains("sk_live_CANARY_7731") && sent.contains("[redacted:billing]"), "{sent}");
    let (_, detail) = app.call(Method::GET, &path(&format!("/threads/{id}")), Some(&token), None).await;
    let kept = detail.to_string();
    assert!(!kept.contains("sk_live_CANARY_7731") && kept.contains("[redacted:billing]"), "{kept}");
    if let Some(db) = app.sqlite_path() {
        let bytes = std::fs::read(db).unwrap();
        assert!(
            !bytes.windows(19).any(|w| w == b"sk_live_CANARY_7731"),
            "the database never holds the secret"
        );
    }
    app.finish().await;
}
