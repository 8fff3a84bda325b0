//! Webhook deliveries: signatures and replays, idempotency, sync answers, body kinds, limits,
//! revocation, and a burst of deliveries each becoming exactly one completed run.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use steward_server::Config;
use steward_server::webhook_signature::sign;
use support::{Db, TestApp, WS};

const SECRET: &str = "whsec_test_secret";
/// Echoes what the trigger delivered.
const HOOK_FLOW: &str = "name: hook\nsteps:\n  - id: seen\n    transform: '{ kind: .trigger.kind, body: .trigger.body, agent: .trigger.headers[\"user-agent\"] }'\n  - id: check\n    if: '${{ (.trigger.body | type) == \"object\" and .trigger.body.n != null }}'\n    transform: '.trigger.body.n * 2'\noutput: '${{ { seen: .steps.seen.output, doubled: .steps.check.output } }}'\n";

async fn hook(app: &TestApp, token: &str, body: Value) -> String {
    let path = format!("/api/v1/workspaces/{WS}/flows/hook/webhooks");
    let (status, created) = app.call(Method::POST, &path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = created["url"].as_str().unwrap();
    url[url.find("/hooks/").unwrap()..].to_owned()
}

fn signed(path: &str, body: &str, at: i64, extra: &[(&str, &str)]) -> Request<Body> {
    let t = at.to_string();
    let sig = sign(SECRET.as_bytes(), &[t.as_bytes(), b".", body.as_bytes()]);
    let mut r = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-steward-timestamp", &t)
        .header("x-steward-signature", format!("v1={sig}"))
        .header(header::USER_AGENT, "tests/1.0");
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.body(Body::from(body.to_owned())).unwrap()
}

fn now_secs(app: &TestApp) -> i64 {
    app.executor.now().0 / 1000
}

async fn run_count(app: &TestApp, token: &str) -> usize {
    let (_, page) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs?limit=200"), Some(token), None).await;
    page["runs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_start_runs_once_and_bad_ones_are_refused() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HOOK_FLOW).await;
    let path = hook(&app, &owner.token, json!({ "scheme": "generic", "secret": SECRET })).await;
    let body = r#"{"n": 21}"#;
    // The signing secret is stored sealed, not as given.
    let stored = app.store.webhooks(WS, None).await.unwrap();
    let sealed = stored[0].signing_secret.as_deref().unwrap();
    assert!(sealed.starts_with("s1.") && !sealed.contains(SECRET), "{sealed}");

    let (status, err) = app
        .send(
            Request::post(&path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_signature")));
    assert!(err["error"]["message"].as_str().unwrap().contains("X-Steward-Timestamp"));
    let forged = signed(&path, r#"{"n": 22}"#, now_secs(&app), &[]);
    let (status, _) = app
        .send(
            Request::post(&path)
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-steward-timestamp", forged.headers()["x-steward-timestamp"].clone())
                .header("x-steward-signature", forged.headers()["x-steward-signature"].clone())
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a signature of another body");
    let (status, err) = app.send(signed(&path, body, now_secs(&app) - 3600, &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replay an hour later: {err}");
    assert_eq!(run_count(&app, &owner.token).await, 0, "refused deliveries start nothing");

    let (status, first) =
        app.send(signed(&path, body, now_secs(&app), &[("idempotency-key", "delivery-1")])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["duplicate"], false);
    let (status, again) =
        app.send(signed(&path, body, now_secs(&app), &[("idempotency-key", "delivery-1")])).await;
    assert_eq!((status, again["duplicate"].as_bool()), (StatusCode::ACCEPTED, Some(true)));
    assert_eq!(again["run_id"], first["run_id"]);
    let done = app.wait_finished(&owner.token, first["run_id"].as_str().unwrap()).await;
    assert_eq!(
        done["run"]["output"],
        json!({ "seen": { "kind": "webhook", "body": { "n": 21 }, "agent": "tests/1.0" }, "doubled": 42 })
    );
    assert_eq!(run_count(&app, &owner.token).await, 1);

    // The trigger is a payload: hidden from roles without runs:read_payloads.
    let operator = app.member(WS, steward_auth::Role::Operator).await;
    let run_path = format!("/api/v1/workspaces/{WS}/runs/{}/events", first["run_id"].as_str().unwrap());
    let (_, events) = app.call(Method::GET, &run_path, Some(&operator.token), None).await;
    assert_eq!(events[0]["event"]["trigger"], Value::Null);

    // Revoked: the URL is gone.
    let (_, hooks) = app
        .call(Method::GET, &format!("/api/v1/workspaces/{WS}/flows/hook/webhooks"), Some(&owner.token), None)
        .await;
    let id = hooks[0]["id"].as_str().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/v1/workspaces/{WS}/webhooks/{id}"), Some(&owner.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.send(signed(&path, body, now_secs(&app), &[])).await.0, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_webhooks_answer_with_the_output_and_take_forms_and_text() {
    let config = Config { body_limit: 2048, ..support::unlimited() };
    let app = TestApp::with_config(Db::Sqlite, config).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HOOK_FLOW).await;
    let path = hook(&app, &owner.token, json!({ "mode": "sync" })).await;

    let (status, output) = app
        .send(
            Request::post(&path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"n": 5}"#))
                .unwrap(),
        )
        .await;
    assert_eq!((status, &output["doubled"]), (StatusCode::OK, &json!(10)));
    let form = Request::post(&path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("a=1&b=two+words"))
        .unwrap();
    let (status, output) = app.send(form).await;
    assert_eq!((status, &output["seen"]["body"]), (StatusCode::OK, &json!({ "a": "1", "b": "two words" })));
    let text =
        Request::post(&path).header(header::CONTENT_TYPE, "text/plain").body(Body::from("hello")).unwrap();
    let (status, output) = app.send(text).await;
    assert_eq!((status, &output["seen"]["body"]), (StatusCode::OK, &json!("hello")));

    let big = Request::post(&path)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("x".repeat(4096)))
        .unwrap();
    let (status, err) = app.send(big).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let broken = Request::post(&path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{nope"))
        .unwrap();
    assert_eq!(app.send(broken).await.0, StatusCode::BAD_REQUEST);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_deliveries_are_deduplicated_by_delivery_id() {
    let app = TestApp::new(Db::Postgres).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HOOK_FLOW).await;
    let path = hook(&app, &owner.token, json!({ "scheme": "github", "secret": SECRET })).await;
    let body = r#"{"action": "opened"}"#;
    let deliver = |id: &str| {
        Request::post(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-github-delivery", id)
            .header("x-hub-signature-256", format!("sha256={}", sign(SECRET.as_bytes(), &[body.as_bytes()])))
            .body(Body::from(body))
            .unwrap()
    };
    let (_, a) = app.send(deliver("d-1")).await;
    let (_, b) = app.send(deliver("d-1")).await;
    let (_, c) = app.send(deliver("d-2")).await;
    assert_eq!(a["run_id"], b["run_id"], "the redelivery was answered with {b}");
    assert_ne!(a["run_id"], c["run_id"]);
    assert_eq!((a["duplicate"].as_bool(), b["duplicate"].as_bool()), (Some(false), Some(true)));
    for run in [&a, &c] {
        app.wait_finished(&owner.token, run["run_id"].as_str().unwrap()).await;
    }
    assert_eq!(run_count(&app, &owner.token).await, 2);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_a_thousand_deliveries_makes_a_thousand_completed_runs() {
    let app = Arc::new(TestApp::new(Db::Sqlite).await);
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HOOK_FLOW).await;
    let path = Arc::new(hook(&app, &owner.token, json!({})).await);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (app, path) = (app.clone(), path.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..1000 / 16 + usize::from(worker < 1000 % 16) {
                let body = json!({ "n": worker * 1000 + i }).to_string();
                let req = Request::post(path.as_str())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap();
                let (status, out) = app.send(req).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{out}");
                ids.push(out["run_id"].as_str().unwrap().to_owned());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(batch) = tasks.join_next().await {
        ids.extend(batch.unwrap());
    }
    assert_eq!(ids.len(), 1000);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 1000);
    for id in &ids {
        let done = app.wait_finished(&owner.token, id).await;
        assert_eq!(done["run"]["status"], "succeeded");
    }
    let depth = app.store.queue_depth(app.executor.now()).await.unwrap();
    assert_eq!(depth, steward_store::QueueDepth::default(), "nothing left queued");
}
