//! Connections over the API: secrets go in and never come out (responses, the audit log, the
//! database's bytes), settings are checked per kind, and rotation, revocation, deletion and
//! restoring work and are audited.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Db, TestApp, WS};

const CANARY: &str = "ghp_canary_7d1e0b4a";

fn path(rest: &str) -> String {
    format!("/api/v1/workspaces/{WS}/connections{rest}")
}

async fn check(db: Db) {
    let app = TestApp::new(db).await;
    let owner = app.workspace(WS).await;
    let t = Some(owner.token.as_str());
    let body = json!({ "name": "github", "kind": "bearer", "hosts": ["API.GitHub.com"], "secret": CANARY });
    let (status, made) = app.call(Method::POST, &path(""), t, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!((made["name"].as_str(), made["hosts"][0].as_str()), (Some("github"), Some("api.github.com")));
    assert!(made.get("secret").is_none() && made.get("sealed").is_none(), "{made}");
    let (status, dup) = app.call(Method::POST, &path(""), t, Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    let (_, listed) = app.call(Method::GET, &path(""), t, None).await;
    let (_, shown) = app.call(Method::GET, &path("/github"), t, None).await;
    let (status, rotated) = app
        .call(Method::POST, &path("/github/rotate"), t, Some(json!({ "secret": format!("{CANARY}-2") })))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["rotated_at"].is_i64());
    let (_, revoked) = app.call(Method::POST, &path("/github/revoke"), t, None).await;
    assert!(revoked["revoked_at"].is_i64());
    let (_, deleted) = app.call(Method::DELETE, &path("/github"), t, None).await;
    assert!(deleted["deleted_at"].is_i64());
    let (_, after_delete) = app.call(Method::GET, &path(""), t, None).await;
    assert_eq!(after_delete.as_array().unwrap().len(), 0);
    let (_, restored) = app.call(Method::POST, &path("/github/restore"), t, None).await;
    assert!(restored["deleted_at"].is_null());

    // The secret is nowhere in what the API said, nor in the audit log.
    let (_, audit) = app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/audit"), t, None).await;
    let said = [&made, &listed, &shown, &rotated, &revoked, &deleted, &restored, &audit]
        .map(Value::to_string)
        .join("\n");
    assert!(!said.contains("canary"), "{said}");
    for action in [
        "connection.created",
        "connection.rotated",
        "connection.revoked",
        "connection.deleted",
        "connection.restored",
    ] {
        assert!(said.contains(action), "{action} audited");
    }
    // It is stored sealed, and opens to the rotated value.
    let stored = app.store.connection(WS, "github").await.unwrap();
    assert!(!stored.sealed.contains("canary"));
    let opened = app.state.keyring().open(&stored, app.executor.now()).await.unwrap();
    assert_eq!(opened.expose(), format!("{CANARY}-2").as_bytes());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_in_and_never_come_out_on_sqlite() {
    check(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_in_and_never_come_out_on_postgres() {
    check(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_are_refused_with_the_reason() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let cases = [
        (
            json!({ "name": "has space", "kind": "bearer", "hosts": ["a.com"], "secret": "x" }),
            "connection name",
        ),
        (json!({ "name": "a", "kind": "magic", "hosts": ["a.com"], "secret": "x" }), "kind is one of"),
        (json!({ "name": "a", "kind": "bearer", "hosts": [], "secret": "x" }), "at least one host"),
        (
            json!({ "name": "a", "kind": "bearer", "hosts": ["https://a.com/x"], "secret": "x" }),
            "not a host name",
        ),
        (json!({ "name": "a", "kind": "bearer", "hosts": ["a.com"], "secret": "" }), "secret is empty"),
        (
            json!({ "name": "a", "kind": "api_key", "hosts": ["a.com"], "secret": "x" }),
            "settings.header or settings.query",
        ),
        (json!({ "name": "a", "kind": "basic", "hosts": ["a.com"], "secret": "x" }), "settings.username"),
        (
            json!({ "name": "a", "kind": "headers", "hosts": ["a.com"], "secret": "x-api-key: 1" }),
            "JSON object of header",
        ),
        (
            json!({ "name": "a", "kind": "oauth2_client_credentials", "hosts": ["a.com"], "secret": "x", "settings": { "client_id": "c" } }),
            "token_url",
        ),
    ];
    for (body, reason) in cases {
        let (status, err) = app.call(Method::POST, &path(""), Some(&owner.token), Some(body.clone())).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid")),
            "{body}: {err}"
        );
        assert!(err["error"]["message"].as_str().unwrap().contains(reason), "{body}: {err}");
    }
    let ok = json!({ "name": "hooks", "kind": "headers", "hosts": ["*.example.com"], "secret": "{\"x-api-key\": \"k\"}" });
    assert_eq!(app.call(Method::POST, &path(""), Some(&owner.token), Some(ok)).await.0, StatusCode::CREATED);
    assert!(app.store.connections(WS, true).await.unwrap().len() == 1, "nothing else was stored");
    app.finish().await;
}
