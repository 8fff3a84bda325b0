//! Agents over the API, against a fake provider on loopback: apply (with errors that name the
//! line), list, show, run directly with a conversation's history, usage, delete and restore;
//! and the approvals an agent's tool calls wait for, listed and decided one after another.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use steward_auth::Role;
use steward_testkit::model::{FakeProvider, Reply};
use support::{Db, OTHER_WS, TestApp, WS};

fn agent(p: &FakeProvider, extra: &str) -> String {
    format!(
        "name: helper\ndescription: Answers briefly\ninstructions: Be brief.\nmodel: {{provider: openai, base_url: '{}', name: m1}}\n{extra}",
        p.openai_url()
    )
}

fn path(rest: &str) -> String {
    format!("/api/v1/workspaces/{WS}{rest}")
}

async fn start(app: &TestApp, token: &str, body: Value) -> String {
    let (status, started) =
        app.call(Method::POST, &path("/agents/helper/runs"), Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    started["run_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_applied_listed_run_counted_and_deleted() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let p = FakeProvider::start().await;
    let agents = path("/agents");
    let apply = |source: String| {
        let body = json!({ "source": source, "file_name": "helper.yaml" });
        app.call(Method::POST, &agents, Some(&owner.token), Some(body))
    };

    let (status, err) = apply(agent(&p, "").replace("provider: openai", "provider: opnai")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("helper.yaml:4:") && message.contains("opnai"), "{message}");
    let (status, err) =
        apply(agent(&p, "").replace("instructions: Be brief.", "instructions_file: brief.md")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["error"]["message"].as_str().unwrap().contains("reads no files"), "{err}");

    let (status, applied) = apply(agent(&p, "")).await;
    assert_eq!(status, StatusCode::CREATED, "{applied}");
    assert_eq!(
        (applied["changed"].clone(), applied["runner_flow"].clone()),
        (json!(true), json!("agent.helper"))
    );
    let (status, again) = apply(agent(&p, "")).await;
    assert_eq!((status, again["changed"].clone()), (StatusCode::OK, json!(false)));
    let (_, list) = app.call(Method::GET, &path("/agents"), Some(&owner.token), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        (list[0]["model"].clone(), list[0]["description"].clone()),
        (json!("openai/m1"), json!("Answers briefly"))
    );
    let (_, shown) = app.call(Method::GET, &path("/agents/helper"), Some(&owner.token), None).await;
    assert!(shown["source"].as_str().unwrap().contains("Be brief."));

    // People cannot take the runner flows' names for their own flows.
    let (status, err) = app
        .call(
            Method::POST,
            &path("/flows"),
            Some(&owner.token),
            Some(json!({ "source": "name: agent.helper\nsteps:\n  - id: a\n    transform: '1'\n" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("belong to the flows that run agents"),
        "{err}"
    );

    p.enqueue(Reply::text("Hello Ann.").usage(120, 8));
    let history =
        json!([{ "role": "user", "content": "I am Ann." }, { "role": "assistant", "content": "Hi!" }]);
    let run = start(&app, &owner.token, json!({ "task": "Greet me by name.", "history": history })).await;
    let detail = app.wait_finished(&owner.token, &run).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(detail["run"]["output"], json!("Hello Ann."));
    assert_eq!(detail["run"]["flow"], json!("agent.helper"));
    let sent = &p.last().unwrap().body["messages"];
    let said: Vec<(&str, &str)> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        vec![
            ("system", "Be brief."),
            ("user", "I am Ann."),
            ("assistant", "Hi!"),
            ("user", "Greet me by name.")
        ]
    );

    let (_, usage) = app.call(Method::GET, &path("/usage"), Some(&owner.token), None).await;
    assert_eq!(usage["days"][0]["agent"], "helper");
    assert_eq!(
        (usage["total"]["input_tokens"].clone(), usage["total"]["output_tokens"].clone()),
        (json!(120), json!(8))
    );
    assert_eq!(usage["total"]["model_calls"], 1);
    let (status, _) = app.call(Method::GET, &path("/usage?from=2026-02-30"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, old) =
        app.call(Method::GET, &path("/usage?from=2001-01-01&to=2001-01-31"), Some(&owner.token), None).await;
    assert_eq!((old["days"].clone(), old["total"]["model_calls"].clone()), (json!([]), json!(0)));

    // Another workspace sees neither the agent nor its usage.
    let outsider = app.workspace(OTHER_WS).await;
    let other = |rest: &str| format!("/api/v1/workspaces/{OTHER_WS}{rest}");
    let (_, theirs) = app.call(Method::GET, &other("/agents"), Some(&outsider.token), None).await;
    assert_eq!(theirs, json!([]));
    let (status, _) = app.call(Method::GET, &other("/agents/helper"), Some(&outsider.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, their_usage) = app.call(Method::GET, &other("/usage"), Some(&outsider.token), None).await;
    assert_eq!(their_usage["total"]["model_calls"], 0);

    let (status, _) = app.call(Method::DELETE, &path("/agents/helper"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, &path("/agents/helper"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::POST, &path("/agents/helper/runs"), Some(&owner.token), Some(json!({"task": "x"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.call(Method::GET, &path("/agents"), Some(&owner.token), None).await;
    assert_eq!(list, json!([]));
    let (_, flow) = app.call(Method::GET, &path("/flows/agent.helper"), Some(&owner.token), None).await;
    assert!(flow["flow"]["deleted_at"].is_i64(), "the runner flow is deleted with it: {flow}");

    // Restoring brings back the agent and its runner.
    let (app_ref, token) = (&app, owner.token.as_str());
    let restore = |name: &str| {
        let p = path(&format!("/agents/{name}/restore"));
        async move { app_ref.call(Method::POST, &p, Some(token), None).await }
    };
    assert_eq!(restore("nobody").await.0, StatusCode::NOT_FOUND);
    let (status, restored) = restore("helper").await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!((restored["name"].clone(), restored["version"].clone()), (json!("helper"), json!(1)));
    assert_eq!(restore("helper").await.0, StatusCode::NOT_FOUND, "it is no longer deleted");
    let (_, flow) = app.call(Method::GET, &path("/flows/agent.helper"), Some(&owner.token), None).await;
    assert_eq!(flow["flow"]["deleted_at"], Value::Null, "{flow}");
    p.enqueue(Reply::text("restored"));
    let run = start(&app, &owner.token, json!({ "task": "hi" })).await;
    assert_eq!(app.wait_finished(&owner.token, &run).await["run"]["output"], json!("restored"));
    let audit = path("/audit?action=agent.restored");
    let (_, entries) = app.call(Method::GET, &audit, Some(&owner.token), None).await;
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");

    // Applying it again after a deletion brings it back too.
    let (status, _) = app.call(Method::DELETE, &path("/agents/helper"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(apply(agent(&p, "")).await.0, StatusCode::OK, "unchanged: no new version");
    p.enqueue(Reply::text("back"));
    let run = start(&app, &owner.token, json!({ "task": "hi" })).await;
    assert_eq!(app.wait_finished(&owner.token, &run).await["run"]["output"], json!("back"));
    app.finish().await;
}

async fn pending(app: &TestApp, token: &str, n: usize) -> Value {
    for _ in 0..400 {
        let (_, list) = app.call(Method::GET, &path("/approvals"), Some(token), None).await;
        if list.as_array().is_some_and(|l| l.len() == n) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never {n} pending approvals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_tool_calls_wait_in_the_approvals_list_one_after_another() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let operator = app.member(WS, Role::Operator).await;
    let p = FakeProvider::start().await;
    let source = agent(&p, "tools: [{builtin: run_inputs, approval: required}]\n");
    let (status, _) =
        app.call(Method::POST, &path("/agents"), Some(&owner.token), Some(json!({ "source": source }))).await;
    assert_eq!(status, StatusCode::CREATED);
    p.enqueue(Reply::tool_call("call_1", "run_inputs", json!({})));
    p.enqueue(Reply::tool_call("call_2", "run_inputs", json!({"again": true})));
    p.enqueue(Reply::text("both done"));
    let run = start(&app, &owner.token, json!({ "task": "look twice" })).await;

    let list = pending(&app, &owner.token, 1).await;
    assert_eq!(
        (list[0]["run_id"].as_str(), list[0]["step"].as_str(), list[0]["tool"].as_str()),
        (Some(run.as_str()), Some("agent"), Some("run_inputs"))
    );
    assert!(list[0]["message"].as_str().unwrap().contains("wants to call `run_inputs`"), "{list}");
    assert!(list[0]["timeout_at"].as_i64().unwrap() > list[0]["requested_at"].as_i64().unwrap());
    // An operator decides without seeing what runs carry: the call's arguments stay hidden.
    let (_, theirs) = app.call(Method::GET, &path("/approvals"), Some(&operator.token), None).await;
    assert_eq!(theirs[0]["tool"], "run_inputs");
    assert!(theirs[0].get("message").is_none(), "{theirs}");

    let approve = path(&format!("/runs/{run}/steps/agent/approve"));
    let (status, err) = app.call(Method::POST, &approve, Some(&operator.token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{err}");
    // The second call of the same step waits for its own decision.
    let list = pending(&app, &owner.token, 1).await;
    assert!(list[0]["message"].as_str().unwrap().contains("again"), "{list}");
    let reject = path(&format!("/runs/{run}/steps/agent/reject"));
    let (status, _) = app
        .call(Method::POST, &reject, Some(&operator.token), Some(json!({"reason": "once is enough"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let detail = app.wait_finished(&owner.token, &run).await;
    assert_eq!(detail["run"]["output"], json!("both done"));
    let last = p.last().unwrap();
    let tools: Vec<&str> = last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert!(tools[0].contains("look twice"), "the approved call ran: {tools:?}");
    assert!(tools[1].contains("once is enough"), "the rejected call did not: {tools:?}");
    let (status, _) = app.call(Method::POST, &approve, Some(&operator.token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing waits any more");
    assert_eq!(pending(&app, &owner.token, 0).await, json!([]));
    app.finish().await;
}
