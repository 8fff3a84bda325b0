//! Tenant isolation and roles, for every workspace endpoint in the OpenAPI document, on SQLite
//! and PostgreSQL.
//!
//! Each operation documents the permission it needs as its security scope. For every
//! operation, on a fresh database:
//! - each role that lacks the permission gets 403 and nothing changes;
//! - the owner of another workspace, and a token of another workspace, get 404 (the workspace
//!   is not revealed);
//! - no credentials get 401;
//! - the least powerful role that holds the permission gets past authorization.
//!
//! The last check also proves each handler asks for no more than it documents; the first
//! that it asks for no less.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use steward_auth::{Permission, Role};
use support::{Db, HELLO_FLOW, OTHER_WS, TestApp, WS};

/// Roles from least to most powerful, for picking the weakest allowed one.
const ROLES: &[Role] = &[Role::Viewer, Role::Auditor, Role::Operator, Role::Editor, Role::Admin, Role::Owner];

struct Operation {
    method: Method,
    path: String,
    scope: Option<Permission>,
}

fn operations() -> Vec<Operation> {
    let doc: Value = serde_json::from_str(&steward_server::openapi_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/workspaces/{workspace}") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let scopes: Vec<&str> = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} documents no security"))
                .iter()
                .flat_map(|req| req.as_object().unwrap().values())
                .flat_map(|list| list.as_array().unwrap().iter().map(|s| s.as_str().unwrap()))
                .collect();
            let scope = scopes.first().map(|s| s.parse::<Permission>().unwrap());
            assert!(
                scopes.iter().all(|s| Some(s.parse::<Permission>().unwrap()) == scope),
                "{method} {path}"
            );
            out.push(Operation { method: method.to_uppercase().parse().unwrap(), path: path.clone(), scope });
        }
    }
    assert!(out.len() >= 25, "only {} workspace operations found", out.len());
    out
}

/// An agent named like the flow, so that `{name}` finds both.
const HELLO_AGENT: &str = "name: hello\ninstructions: Greet.\nmodel: {provider: openai, base_url: 'http://127.0.0.1:9/v1', name: m}\n";

/// Objects the paths name, made in the workspace under test.
struct Fixture {
    run: String,
    member: String,
    token_id: String,
    invitation: String,
}

async fn fixture(app: &TestApp, owner: &str) -> Fixture {
    app.apply(owner, HELLO_FLOW).await;
    let (status, agent) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{WS}/agents"),
            Some(owner),
            Some(json!({ "source": HELLO_AGENT })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let (_, started) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{WS}/flows/hello/runs"),
            Some(owner),
            Some(json!({})),
        )
        .await;
    let run = started["run_id"].as_str().unwrap().to_owned();
    let member = app.member(WS, Role::Viewer).await.user_id;
    let (_, tokens) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/tokens"), Some(owner), None).await;
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    let body = json!({ "email": "new@example.com", "role": "viewer" });
    let (_, inv) = app
        .call(Method::POST, &format!("/api/v1/workspaces/{WS}/invitations"), Some(owner), Some(body))
        .await;
    let invitation = inv["id"].as_str().unwrap().to_owned();
    let (status, made) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{WS}/connections"),
            Some(owner),
            Some(connection_body("github")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    Fixture { run, member, token_id, invitation }
}

fn concrete(path: &str, workspace: &str, f: &Fixture) -> String {
    let id = if path.contains("/tokens/") {
        &f.token_id
    } else if path.contains("/invitations/") {
        &f.invitation
    } else {
        &f.run
    };
    path.replace("{workspace}", workspace)
        .replace("{name}", "hello")
        .replace("{id}", id)
        .replace("{user}", &f.member)
        .replace("{step}", "greet")
        .replace("{connection}", "github")
}

fn connection_body(name: &str) -> Value {
    json!({ "name": name, "kind": "bearer", "hosts": ["api.github.com"], "secret": "ghp_matrix" })
}

/// A body that passes validation where the operation takes one.
fn body(method: &Method, path: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    Some(if path.ends_with("/flows") {
        json!({ "source": HELLO_FLOW })
    } else if path.ends_with("/agents") {
        json!({ "source": HELLO_AGENT })
    } else if path.ends_with("/agents/{name}/runs") {
        json!({ "task": "hi" })
    } else if path.ends_with("/invitations") {
        json!({ "email": "someone@example.com", "role": "viewer" })
    } else if path.ends_with("/tokens") {
        json!({ "name": "t", "permissions": ["flows:read"] })
    } else if path.ends_with("/connections") {
        connection_body("another")
    } else if path.ends_with("/messages") {
        json!({ "content": "hi" })
    } else if path.ends_with("/rotate") {
        json!({ "secret": "ghp_rotated" })
    } else if path.ends_with("/schedules") {
        json!({ "cron": "0 9 * * *" })
    } else if path.contains("/members/") {
        json!({ "role": "operator" })
    } else {
        json!({})
    })
}

async fn matrix(db: Db) {
    let ops = operations();
    for op in &ops {
        let app = TestApp::new(db).await;
        let owner = app.workspace(WS).await;
        let outsider = app.workspace(OTHER_WS).await;
        let f = fixture(&app, &owner.token).await;
        let path = concrete(&op.path, WS, &f);
        let body = body(&op.method, &op.path);
        let what = format!("{} {}", op.method, op.path);

        let (status, _) = app.call(op.method.clone(), &path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} without credentials");

        let (status, err) = app.call(op.method.clone(), &path, Some(&outsider.token), body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what} with another workspace's token: {err}");
        // The outsider's token, aimed at its own workspace's URL, still cannot reach this one's
        // objects: they are not found there.
        let (status, _) = app
            .call(op.method.clone(), &concrete(&op.path, OTHER_WS, &f), Some(&outsider.token), body.clone())
            .await;
        if ["{id}", "{user}", "{name}", "{connection}"].iter().any(|p| op.path.contains(p)) {
            assert!(
                matches!(
                    status,
                    StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "{what} naming another workspace's object from one's own: {status}"
            );
        }

        let mut weakest_allowed = None;
        for role in ROLES {
            let allowed = op.scope.is_none_or(|p| role.permissions().contains(p));
            if allowed {
                weakest_allowed.get_or_insert(*role);
                continue;
            }
            let member = app.member(WS, *role).await;
            let (status, err) = app.call(op.method.clone(), &path, Some(&member.token), body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {err}");
            assert_eq!(err["error"]["code"], "forbidden");
        }
        let role = weakest_allowed.unwrap_or_else(|| panic!("{what}: no role may call it"));
        let member = app.member(WS, role).await;
        let (status, err) = app.call(op.method.clone(), &path, Some(&member.token), body.clone()).await;
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{what} as {role}, which holds {:?}: {status} {err}",
            op.scope
        );
        assert!(
            !err["error"]["message"].as_str().unwrap_or("").contains("workspace"),
            "{what} as {role}: {err}"
        );
        app.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_tenants_on_sqlite() {
    matrix(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_tenants_on_postgres() {
    matrix(Db::Postgres).await;
}

/// A token can do no more than its scope, and no more than its owner's role now allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_bounded_by_scope_and_role() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let editor = app.member(WS, Role::Editor).await;
    let narrow =
        app.token(&editor.user_id, WS, steward_auth::Permissions::of(&[Permission::FlowsRead])).await;
    let flows = format!("/api/v1/workspaces/{WS}/flows");
    assert_eq!(app.call(Method::GET, &flows, Some(&narrow), None).await.0, StatusCode::OK);
    let apply = Some(json!({ "source": HELLO_FLOW }));
    assert_eq!(app.call(Method::POST, &flows, Some(&narrow), apply.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call(Method::POST, &flows, Some(&editor.token), apply.clone()).await.0,
        StatusCode::CREATED
    );

    // Demoted to viewer: the editor's full token loses what viewers lack.
    let path = format!("/api/v1/workspaces/{WS}/members/{}", editor.user_id);
    let (status, _) =
        app.call(Method::PUT, &path, Some(&owner.token), Some(json!({ "role": "viewer" }))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call(Method::POST, &flows, Some(&editor.token), apply.clone()).await.0,
        StatusCode::FORBIDDEN
    );

    // A token cannot mint a token with more than it holds.
    let tokens = format!("/api/v1/workspaces/{WS}/tokens");
    let grab = json!({ "name": "more", "permissions": ["flows:write"] });
    let (status, err) = app.call(Method::POST, &tokens, Some(&editor.token), Some(grab)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");

    // Removed from the workspace: every token of theirs there stops working.
    let (status, _) = app.call(Method::DELETE, &path, Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::GET, &flows, Some(&narrow), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked with the membership");
    app.finish().await;
}
