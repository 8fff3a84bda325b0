//! The workspace export over the API (streamed newline-delimited JSON, audited, never a
//! secret, only with `workspace:export`) and a person's own data (`/api/v1/me/export`).

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use steward_auth::Role;
use steward_store::AuditFilter;
use support::{Db, HELLO_FLOW, OTHER_WS, TestApp, WS};

const EXPORT: &str = "/api/v1/workspaces/acme/export";

async fn export(app: &TestApp, token: &str) -> (StatusCode, String, String) {
    let req = Request::get(EXPORT).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let (status, headers, body) = app.raw(req.body(Body::empty()).unwrap()).await;
    let kind = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, kind, String::from_utf8(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_streams_every_table_without_secrets_and_is_audited() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HELLO_FLOW).await;
    let runs = format!("/api/v1/workspaces/{WS}/flows/hello/runs");
    let (_, started) = app.call(Method::POST, &runs, Some(&owner.token), Some(json!({}))).await;
    app.wait_finished(&owner.token, started["run_id"].as_str().unwrap()).await;
    let connection_secret = format!("canary-export-{}", uuid::Uuid::now_v7());
    let signing_secret = format!("canary-signing-{}", uuid::Uuid::now_v7());
    let body = json!({ "name": "github", "kind": "bearer", "hosts": ["api.github.com"], "secret": connection_secret });
    let path = format!("/api/v1/workspaces/{WS}/connections");
    assert_eq!(app.call(Method::POST, &path, Some(&owner.token), Some(body)).await.0, StatusCode::CREATED);
    let body = json!({ "scheme": "github", "secret": signing_secret });
    let path = format!("/api/v1/workspaces/{WS}/flows/hello/webhooks");
    assert_eq!(app.call(Method::POST, &path, Some(&owner.token), Some(body)).await.0, StatusCode::CREATED);

    let (status, kind, text) = export(&app, &owner.token).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(kind, "application/x-ndjson");
    assert!(!text.contains(&connection_secret) && !text.contains(&signing_secret), "a secret leaked");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["format"], "steward-export-v1");
    assert_eq!(lines[0]["workspace"], WS);
    assert!(lines[0]["exported_at"].as_i64().unwrap() > 0);
    let rows = |table: &str| lines[1..].iter().filter(|l| l["table"] == table).count();
    for table in ["workspaces", "members", "flows", "flow_versions", "runs", "run_events", "connections"] {
        assert!(rows(table) >= 1, "{table}: {text}");
    }
    assert_eq!(rows("webhooks"), 1);
    let connection = lines.iter().find(|l| l["table"] == "connections").unwrap();
    assert!(connection["row"].get("sealed").is_none() && connection["row"]["name"] == "github");

    let filter = AuditFilter { action: Some("workspace.exported".into()), before: None, limit: 10 };
    let entries = app.store.audit(WS, &filter).await.unwrap();
    assert_eq!(entries.len(), 1);
    let keys: Vec<&String> = entries[0].details.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["format", "counts"], "format and row counts only");
    assert_eq!(entries[0].details["counts"]["runs"], 1);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_needs_workspace_export_in_that_workspace() {
    let app = TestApp::new(Db::Sqlite).await;
    app.workspace(WS).await;
    let outsider = app.workspace(OTHER_WS).await;
    let viewer = app.member(WS, Role::Viewer).await;
    let editor = app.member(WS, Role::Editor).await;
    let admin = app.member(WS, Role::Admin).await;
    let (status, _, body) = export(&app, &viewer.token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("workspace:export"), "{body}");
    assert_eq!(export(&app, &editor.token).await.0, StatusCode::FORBIDDEN);
    assert_eq!(export(&app, &outsider.token).await.0, StatusCode::NOT_FOUND);
    assert_eq!(export(&app, &admin.token).await.0, StatusCode::OK);
    app.finish().await;
}

fn login(email: &str) -> Request<Body> {
    Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "email": email, "password": "correct horse battery" }).to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_exports_their_own_data_and_nobody_elses() {
    let app = TestApp::new(Db::Postgres).await;
    let owner = app.workspace(WS).await;
    let ada = app.user_with_password("ada@example.com", "correct horse battery").await;
    let bob = app.user_with_password("bob@example.com", "correct horse battery").await;
    for user in [&ada, &bob] {
        app.store.set_member(WS, user, Role::Editor, app.executor.now()).await.unwrap();
    }
    let ada_token = app.token(&ada, WS, Role::Editor.permissions()).await;
    let bob_token = app.token(&bob, WS, Role::Editor.permissions()).await;
    app.apply(&ada_token, HELLO_FLOW).await;
    app.apply(&bob_token, &HELLO_FLOW.replace("name: hello", "name: bobs")).await;
    app.apply(&owner.token, &HELLO_FLOW.replace("name: hello", "name: owners")).await;

    let (status, headers, _) = app.raw(login("ada@example.com")).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let req = Request::get("/api/v1/me/export").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    let (status, _, body) = app.raw(req).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(data["format"], "steward-personal-export-v1");
    assert_eq!(data["account"]["email"], "ada@example.com");
    assert_eq!(data["memberships"], json!([{ "workspace": WS, "name": WS, "role": "editor" }]));
    assert_eq!(data["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(data["tokens"].as_array().unwrap().len(), 1);
    let audit = data["audit"].as_array().unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"flow.applied") && actions.contains(&"login.succeeded"), "{actions:?}");
    let token_id = data["tokens"][0]["id"].as_str().unwrap();
    for entry in audit {
        let actor = entry["actor"].as_str().unwrap();
        assert!(actor == format!("user:{ada}") || actor == format!("token:{token_id}"), "{entry}");
    }
    for foreign in [bob.as_str(), "bob@example.com", "bobs", "owners", &owner.user_id] {
        assert!(!text.contains(foreign), "{foreign} in {text}");
    }
    for secret in ["password", "csrf", "$argon2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(data["tokens"][0].get("digest").is_none());
    let session: Vec<&String> = data["sessions"][0].as_object().unwrap().keys().collect();
    assert_eq!(session, ["created_at", "expires_at"]);

    let req = Request::get("/api/v1/me/export").header(header::AUTHORIZATION, format!("Bearer {ada_token}"));
    let (status, _, _) = app.raw(req.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a token spans one workspace, the export all of them");
    let req = Request::get("/api/v1/me/export").body(Body::empty()).unwrap();
    assert_eq!(app.raw(req).await.0, StatusCode::UNAUTHORIZED);
    app.finish().await;
}
