//! Deleting and restoring workspaces, and deleting accounts, on SQLite and PostgreSQL: what
//! a deleted workspace still answers, the 30-day restore window, the password and sole-owner
//! rules, the receipt, and that no row (nor, on SQLite, any byte of the files) keeps the
//! person's e-mail address.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Row};
use steward_auth::Role;
use steward_store::{RESTORE_WINDOW_MS, RunFilter};
use support::{Db, HELLO_FLOW, OTHER_WS, TestApp, WS};

const PASSWORD: &str = "correct horse battery";

/// A logged-in browser: the session cookie and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn log_in(app: &TestApp, email: &str) -> Browser {
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "email": email, "password": PASSWORD }).to_string()))
        .unwrap();
    let (status, headers, body) = app.raw(req).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session: Value = serde_json::from_slice(&body).unwrap();
    Browser { cookie, csrf: session["csrf_token"].as_str().unwrap().to_owned() }
}

impl Browser {
    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        app.send(req).await
    }
}

async fn runs_in(app: &TestApp, workspace: &str) -> usize {
    let filter = RunFilter { limit: 500, ..RunFilter::default() };
    app.store.list_runs(workspace, &filter).await.unwrap().len()
}

async fn audit_actions(app: &TestApp, token: &str, action: &str) -> Vec<Value> {
    let path = format!("/api/v1/workspaces/{WS}/audit?action={action}");
    let (status, entries) = app.call(Method::GET, &path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    entries.as_array().unwrap().clone()
}

async fn workspaces_delete_and_restore(db: Db) {
    let app = TestApp::new(db).await;
    let ada = app.user_with_password("ada@example.com", PASSWORD).await;
    app.store.create_workspace(WS, "Acme", &ada, app.executor.now()).await.unwrap();
    let token = app.token(&ada, WS, steward_auth::Permissions::all()).await;
    let outsider = app.workspace(OTHER_WS).await;
    let viewer = app.member(WS, Role::Viewer).await;
    let browser = log_in(&app, "ada@example.com").await;
    app.apply(&token, HELLO_FLOW).await;
    let hooks = format!("/api/v1/workspaces/{WS}/flows/hello/webhooks");
    let (status, hook) =
        app.call(Method::POST, &hooks, Some(&token), Some(json!({ "scheme": "none" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let url = hook["url"].as_str().unwrap();
    let hook_path = url[url.find("/hooks/").unwrap()..].to_owned();
    let deliver =
        || Request::post(&hook_path).header(header::CONTENT_TYPE, "application/json").body(Body::from("{}"));
    assert_eq!(app.send(deliver().unwrap()).await.0, StatusCode::ACCEPTED, "the webhook works before");
    let runs_before = runs_in(&app, WS).await;

    // Only owners delete.
    let this = format!("/api/v1/workspaces/{WS}");
    assert_eq!(app.call(Method::DELETE, &this, Some(&viewer.token), None).await.0, StatusCode::FORBIDDEN);
    let (status, deleted) = app.call(Method::DELETE, &this, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let deleted_at = deleted["deleted_at"].as_i64().unwrap();
    assert_eq!(deleted["restorable_until"].as_i64().unwrap(), deleted_at + RESTORE_WINDOW_MS);

    // Gone for everyone: sessions get 404 like an unknown workspace, tokens stop working,
    // the webhook starts nothing.
    let flows = format!("/api/v1/workspaces/{WS}/flows");
    let (status, err) = browser.call(&app, Method::GET, &flows, None).await;
    assert_eq!(
        (status, err["error"]["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("workspace acme not found"))
    );
    assert_eq!(browser.call(&app, Method::GET, &this, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, &flows, Some(&token), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", Some(&viewer.token), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.send(deliver().unwrap()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(runs_in(&app, WS).await, runs_before, "no run started");

    // Listed only to owners who ask for deleted ones.
    let (_, list) = browser.call(&app, Method::GET, "/api/v1/workspaces", None).await;
    assert_eq!(list, json!([]));
    let (_, list) = browser.call(&app, Method::GET, "/api/v1/workspaces?deleted=true", None).await;
    assert_eq!((list[0]["id"].as_str(), list[0]["deleted_at"].as_i64()), (Some(WS), Some(deleted_at)));
    let restore = format!("/api/v1/workspaces/{WS}/restore");
    let (status, _) = app.call(Method::POST, &restore, Some(&outsider.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "outsiders learn nothing");

    // Restored by its owner: everything works again.
    let (status, restored) = browser.call(&app, Method::POST, &restore, None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert!(restored.get("deleted_at").is_none(), "{restored}");
    assert_eq!(app.call(Method::GET, &flows, Some(&token), None).await.0, StatusCode::OK);
    assert_eq!(app.send(deliver().unwrap()).await.0, StatusCode::ACCEPTED);
    let (status, err) = browser.call(&app, Method::POST, &restore, None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    let deletions = audit_actions(&app, &token, "workspace.deleted").await;
    let restorations = audit_actions(&app, &token, "workspace.restored").await;
    assert_eq!((deletions.len(), restorations.len()), (1, 1));
    assert_eq!(restorations[0]["actor"], format!("user:{ada}"));

    // Deleted 31 days ago: too late to restore.
    let month_ago = steward_engine::Timestamp(app.executor.now().0 - RESTORE_WINDOW_MS - 24 * 3600 * 1000);
    app.store.set_workspace_deleted(WS, true, month_ago).await.unwrap();
    let (status, err) = browser.call(&app, Method::POST, &restore, None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::GONE, Some("gone")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("30 days"), "{err}");

    // The server's last workspace in use stays.
    let other = format!("/api/v1/workspaces/{OTHER_WS}");
    let (status, err) = app.call(Method::DELETE, &other, Some(&outsider.token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("this is the last"), "{err}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_delete_and_restore_on_sqlite() {
    workspaces_delete_and_restore(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_delete_and_restore_on_postgres() {
    workspaces_delete_and_restore(Db::Postgres).await;
}

/// The tables (and how many rows each) that hold `needle` in any column, read straight from
/// the database.
async fn rows_holding(app: &TestApp, needle: &str) -> Vec<(String, i64)> {
    let like = format!("%{needle}%");
    let mut found = Vec::new();
    if let Some(path) = app.sqlite_path() {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let tables =
            sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&mut conn).await;
        for table in tables.unwrap().iter().map(|r| r.get::<String, _>("name")) {
            let cols =
                sqlx::query("SELECT name FROM pragma_table_info($1)").bind(&table).fetch_all(&mut conn);
            let cols: Vec<String> = cols.await.unwrap().iter().map(|r| r.get("name")).collect();
            let matches: Vec<String> =
                cols.iter().map(|c| format!("CAST(\"{c}\" AS TEXT) LIKE $1")).collect();
            let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {}", matches.join(" OR "));
            let n: i64 =
                sqlx::query_scalar(AssertSqlSafe(sql)).bind(&like).fetch_one(&mut conn).await.unwrap();
            found.extend((n > 0).then(|| (table.clone(), n)));
        }
    } else {
        let schema = app.pg_schema().unwrap();
        let mut conn = sqlx::PgConnection::connect(&support::pg_url()).await.unwrap();
        let tables = sqlx::query(
            "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(schema)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for table in tables.iter().map(|r| r.get::<String, _>("name")) {
            let sql = format!("SELECT COUNT(*) FROM \"{schema}\".\"{table}\" t WHERE t::text LIKE $1");
            let n: i64 =
                sqlx::query_scalar(AssertSqlSafe(sql)).bind(&like).fetch_one(&mut conn).await.unwrap();
            found.extend((n > 0).then(|| (table.clone(), n)));
        }
    }
    found
}

/// How many rows of `table` match `filter` (with `$1` the user id and `$2` the e-mail).
async fn count(app: &TestApp, table: &str, filter: &str, user: &str, email: &str) -> u64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {filter}");
    let n: i64 = if let Some(path) = app.sqlite_path() {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(user).bind(email).fetch_one(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&support::pg_url()).await.unwrap();
        let path = format!(r#"SET search_path TO "{}""#, app.pg_schema().unwrap());
        sqlx::query(AssertSqlSafe(path)).execute(&mut conn).await.unwrap();
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(user).bind(email).fetch_one(&mut conn).await.unwrap()
    };
    u64::try_from(n).unwrap()
}

/// The rows an account deletion should remove, counted before it, per table.
async fn personal_rows(app: &TestApp, user: &str, email: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (table, filter) in [
        ("users", "id = $1 AND $2 <> ''"),
        ("sessions", "user_id = $1 AND $2 <> ''"),
        ("api_tokens", "user_id = $1 AND $2 <> ''"),
        ("memberships", "user_id = $1 AND $2 <> ''"),
        ("invitations", "email = $2 OR (invited_by = $1 AND accepted_at IS NULL)"),
    ] {
        out.push((table.to_owned(), count(app, table, filter, user, email).await));
    }
    out
}

async fn account_deletion(db: Db) {
    const EMAIL: &str = "ada.lovelace@example.com";
    let app = TestApp::new(db).await;
    let now = app.executor.now();
    let ada = app.user_with_password(EMAIL, PASSWORD).await;
    let bob = app.workspace(OTHER_WS).await;
    // Ada owns `acme` (Bob is a viewer there) and `solo` (alone); she is an editor in Bob's.
    app.store.create_workspace(WS, "Acme", &ada, now).await.unwrap();
    app.store.create_workspace("solo", "Solo", &ada, now).await.unwrap();
    app.store.set_member(WS, &bob.user_id, Role::Viewer, now).await.unwrap();
    app.store.set_member(OTHER_WS, &ada, Role::Editor, now).await.unwrap();
    let ada_token = app.token(&ada, WS, steward_auth::Permissions::all()).await;
    app.token(&ada, "solo", steward_auth::Permissions::all()).await;
    let browser = log_in(&app, EMAIL).await;
    // Her work in `acme`, an invitation she sent, one addressed to her.
    app.apply(&ada_token, HELLO_FLOW).await;
    let runs = format!("/api/v1/workspaces/{WS}/flows/hello/runs");
    assert_eq!(app.call(Method::POST, &runs, Some(&ada_token), Some(json!({}))).await.0, StatusCode::CREATED);
    let invite = json!({ "email": "carol@example.com", "role": "viewer" });
    let invitations = format!("/api/v1/workspaces/{WS}/invitations");
    assert_eq!(
        app.call(Method::POST, &invitations, Some(&ada_token), Some(invite)).await.0,
        StatusCode::CREATED
    );
    let invite = json!({ "email": EMAIL, "role": "viewer" });
    let theirs = format!("/api/v1/workspaces/{OTHER_WS}/invitations");
    assert_eq!(app.call(Method::POST, &theirs, Some(&bob.token), Some(invite)).await.0, StatusCode::CREATED);
    // A failed login leaves an audit entry too.
    let req = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "email": EMAIL, "password": "wrong" }).to_string()))
        .unwrap();
    assert_eq!(app.send(req).await.0, StatusCode::UNAUTHORIZED);

    // Not with a token, not without the password.
    let me = "/api/v1/me";
    let right = Some(json!({ "password": PASSWORD }));
    let (status, _) = app.call(Method::DELETE, me, Some(&ada_token), right.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, err) = browser.call(&app, Method::DELETE, me, Some(json!({ "password": "nope" }))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("wrong_password")));
    // Not while she is the only owner of a workspace with other members.
    let (status, err) = browser.call(&app, Method::DELETE, me, right.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("only owner of acme") && message.contains("owner there first"), "{message}");
    assert!(app.store.user(&ada).await.is_ok(), "nothing was deleted");

    // Bob becomes an owner of `acme`; now she may go.
    app.store.set_member(WS, &bob.user_id, Role::Owner, now).await.unwrap();
    let expected = personal_rows(&app, &ada, EMAIL).await;
    let mut holding = rows_holding(&app, EMAIL).await;
    holding.sort();
    assert_eq!(holding, [("invitations".to_owned(), 1), ("users".to_owned(), 1)], "the scan finds it");
    if let Some(path) = app.sqlite_path() {
        assert!(!files_holding(&path, EMAIL).is_empty(), "the file scan finds it");
    }
    let (status, headers, body) = {
        let req = Request::delete(me)
            .header(header::COOKIE, &browser.cookie)
            .header("x-csrf-token", &browser.csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(right.clone().unwrap().to_string()))
            .unwrap();
        app.raw(req).await
    };
    let done: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"), "the cookie is cleared");
    let receipt = &done["receipt"];
    assert_eq!(receipt["subject"], format!("user:{ada}"));
    let counted: Vec<(String, u64)> = receipt["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_owned(), t["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(counted, expected, "the receipt counts the rows that existed");
    assert_eq!(expected[1..3], [("sessions".to_owned(), 1), ("api_tokens".to_owned(), 2)]);
    assert_eq!(expected[4], ("invitations".to_owned(), 2));
    assert_eq!(done["workspaces_deleted"], json!(["solo"]));
    assert!(!done.to_string().contains(EMAIL), "the receipt holds no data");

    // She is gone everywhere; her session and tokens with her.
    assert_eq!(rows_holding(&app, EMAIL).await, []);
    assert_eq!(browser.call(&app, Method::GET, me, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.call(Method::GET, me, Some(&ada_token), None).await.0, StatusCode::UNAUTHORIZED);
    // What she did in `acme` stays with Bob.
    assert_eq!(runs_in(&app, WS).await, 1);
    let flows = format!("/api/v1/workspaces/{WS}/flows");
    assert_eq!(
        app.call(Method::GET, &flows, Some(&bob.token), None).await.0,
        StatusCode::NOT_FOUND,
        "his token is for his workspace"
    );
    let bob_here = app.token(&bob.user_id, WS, steward_auth::Permissions::all()).await;
    let (_, listed) = app.call(Method::GET, &flows, Some(&bob_here), None).await;
    assert_eq!(listed[0]["name"], "hello");
    assert!(matches!(app.store.workspace("solo").await, Err(steward_store::Error::NotFound(_))));

    // The receipt is in the audit log of each workspace it concerns, and the chain holds.
    let here = audit_actions(&app, &bob_here, "data.deleted").await;
    assert_eq!(here.len(), 1);
    assert_eq!(
        (here[0]["object_type"].as_str(), here[0]["object_id"].as_str()),
        (Some("user"), Some(ada.as_str()))
    );
    assert_eq!(here[0]["details"]["rows"], json!(3), "acme's part: a membership, a token, an invitation");
    let (_, theirs) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{OTHER_WS}/audit?action=data.deleted"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(theirs[0]["details"]["rows"], json!(2), "a membership and the invitation to her: {theirs}");
    let whole = app.store.audit_chain(0, 1000).await.unwrap();
    let whole: Vec<_> =
        whole.iter().filter(|e| e.action == "data.deleted" && e.workspace.is_none()).collect();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].details["tables"], receipt["tables"]);
    let (_, verified) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/audit/verify"), Some(&bob_here), None).await;
    assert_eq!(verified["intact"], true, "{verified}");

    // Not a byte of the SQLite files holds the address (deleted content is zeroed, the log
    // is checkpointed and truncated).
    if let Some(path) = app.sqlite_path() {
        assert_eq!(files_holding(&path, EMAIL), Vec::<String>::new());
    }
    app.finish().await;
}

/// The files next to the SQLite database `db` (the log included) whose bytes hold `needle`.
fn files_holding(db: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(file.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_on_sqlite() {
    account_deletion(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_on_postgres() {
    account_deletion(Db::Postgres).await;
}
