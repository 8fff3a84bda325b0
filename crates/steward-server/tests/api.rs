//! The API in process: sessions and CSRF, throttling, flows, runs and payload redaction,
//! approvals, the live stream, limits and errors, the audit log and the API description.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use steward_auth::Role;
use steward_server::Config;
use support::{Db, ECHO_FLOW, HELLO_FLOW, TestApp, WS};

const CANARY: &str = "canary-4b1d-personal-data";

fn login_request(email: &str, password: &str) -> Request<Body> {
    Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "email": email, "password": password }).to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_for_changes_and_log_out_everywhere() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let ada = app.user_with_password("ada@example.com", "correct horse battery").await;
    app.store.set_member(WS, &ada, Role::Editor, app.executor.now()).await.unwrap();

    let (status, headers, body) = app.raw(login_request("ADA@example.com", "correct horse battery")).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests");
    let session: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(session["workspaces"][0]["role"], "editor");
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();
    let sid = cookie.split(';').next().unwrap().to_owned();

    let with_cookie = |method: Method, path: &str, csrf: Option<&str>| {
        let mut r = Request::builder().method(method).uri(path).header(header::COOKIE, &sid);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "source": HELLO_FLOW }).to_string()))
            .unwrap()
    };
    let flows = format!("/api/v1/workspaces/{WS}/flows");
    assert_eq!(
        app.send(with_cookie(Method::GET, &flows, None)).await.0,
        StatusCode::OK,
        "reads need no CSRF token"
    );
    let (status, err) = app.send(with_cookie(Method::POST, &flows, None)).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    assert_eq!(app.send(with_cookie(Method::POST, &flows, Some("wrong"))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.send(with_cookie(Method::POST, &flows, Some(&csrf))).await.0, StatusCode::CREATED);

    // A second session, then "log out everywhere" ends both.
    let (_, headers2, _) = app.raw(login_request("ada@example.com", "correct horse battery")).await;
    let sid2 = headers2[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let everywhere = Request::post("/api/v1/auth/logout-everywhere")
        .header(header::COOKIE, &sid)
        .header("x-csrf-token", &csrf)
        .body(Body::empty())
        .unwrap();
    let (status, ended) = app.send(everywhere).await;
    assert_eq!((status, ended["sessions"].as_u64()), (StatusCode::OK, Some(2)));
    let me = |sid: &str| Request::get("/api/v1/me").header(header::COOKIE, sid).body(Body::empty()).unwrap();
    assert_eq!(app.send(me(&sid)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.send(me(&sid2)).await.0, StatusCode::UNAUTHORIZED);

    let (_, log) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/audit"), Some(&owner.token), None).await;
    let actions: Vec<&str> = log.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"flow.applied"), "{actions:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_and_audited() {
    let config = Config { login_attempts: 3, ..support::unlimited() };
    let app = TestApp::with_config(Db::Sqlite, config).await;
    app.user_with_password("ada@example.com", "correct horse battery").await;
    for _ in 0..3 {
        let (status, err) = app.send(login_request("ada@example.com", "guess guess guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(err["error"]["message"], "wrong e-mail address or password");
    }
    let (status, headers, _) = app.raw(login_request("ada@example.com", "correct horse battery")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(headers[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() > 0);
    // Unknown accounts answer exactly like wrong passwords.
    let (status, err) = app.send(login_request("nobody@example.com", "guess guess guess")).await;
    assert_eq!(
        (status, err["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong e-mail address or password"))
    );
    let failed =
        app.store.audit_chain(0, 100).await.unwrap().iter().filter(|e| e.action == "login.failed").count();
    assert_eq!(failed, 4);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_are_versioned_disabled_deleted_and_restored() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let flows = format!("/api/v1/workspaces/{WS}/flows");

    let broken = json!({ "source": "name: broken\nsteps:\n  - id: a\n    transfrom: '1'\n", "file_name": "broken.yaml" });
    let (status, err) = app.call(Method::POST, &flows, Some(&owner.token), Some(broken)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    insta::assert_json_snapshot!("invalid_flow", err);

    let first = app.apply(&owner.token, HELLO_FLOW).await;
    assert_eq!((first["changed"].as_bool(), first["version"]["version"].as_i64()), (Some(true), Some(1)));
    let again = app.apply(&owner.token, HELLO_FLOW).await;
    assert_eq!(again["changed"], false);
    let edited = app.apply(&owner.token, &HELLO_FLOW.replace("world", "there")).await;
    assert_eq!(edited["version"]["version"], 2);
    let (_, versions) =
        app.call(Method::GET, &format!("{flows}/hello/versions"), Some(&owner.token), None).await;
    assert_eq!(
        versions.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(),
        [2, 1]
    );
    let (_, shown) = app.call(Method::GET, &format!("{flows}/hello"), Some(&owner.token), None).await;
    assert!(shown["latest"]["source"].as_str().unwrap().contains("there"));

    let start = format!("{flows}/hello/runs");
    app.call(Method::POST, &format!("{flows}/hello/disable"), Some(&owner.token), None).await;
    let (status, err) = app.call(Method::POST, &start, Some(&owner.token), Some(json!({}))).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("flow_disabled")));
    app.call(Method::POST, &format!("{flows}/hello/enable"), Some(&owner.token), None).await;
    let (status, started) =
        app.call(Method::POST, &start, Some(&owner.token), Some(json!({ "inputs": {} }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let run = app.wait_finished(&owner.token, started["run_id"].as_str().unwrap()).await;
    assert_eq!(run["run"]["output"], "hello there", "runs use the newest version");

    app.call(Method::DELETE, &format!("{flows}/hello"), Some(&owner.token), None).await;
    let (_, listed) = app.call(Method::GET, &flows, Some(&owner.token), None).await;
    assert_eq!(listed, json!([]));
    assert_eq!(
        app.call(Method::POST, &start, Some(&owner.token), Some(json!({}))).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, with_deleted) =
        app.call(Method::GET, &format!("{flows}?deleted=true"), Some(&owner.token), None).await;
    assert_eq!(with_deleted[0]["name"], "hello");
    app.call(Method::POST, &format!("{flows}/hello/restore"), Some(&owner.token), None).await;
    assert_eq!(
        app.call(Method::POST, &start, Some(&owner.token), Some(json!({}))).await.0,
        StatusCode::CREATED
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_hidden_without_permission_and_approvals_resume_runs() {
    let app = TestApp::new(Db::Postgres).await;
    let owner = app.workspace(WS).await;
    let operator = app.member(WS, Role::Operator).await;
    app.apply(&owner.token, ECHO_FLOW).await;
    let start = format!("/api/v1/workspaces/{WS}/flows/echo/runs");
    let (status, started) = app
        .call(Method::POST, &start, Some(&operator.token), Some(json!({ "inputs": { "secret": CANARY } })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let run = started["run_id"].as_str().unwrap().to_owned();
    let run_path = format!("/api/v1/workspaces/{WS}/runs/{run}");

    // Wait for the approval, as the operator sees it.
    for _ in 0..200 {
        let seen = app.call(Method::GET, &run_path, Some(&operator.token), None).await.1;
        if seen["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["key"] == "approve" && s["status"] == "suspended"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let approve = format!("{run_path}/steps/approve/approve");
    let (status, _) = app
        .call(Method::POST, &approve, Some(&operator.token), Some(json!({ "reason": "looks fine" })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app.call(Method::POST, &approve, Some(&operator.token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    let done = app.wait_finished(&owner.token, &run).await;
    assert_eq!(done["run"]["output"], CANARY, "the owner sees the output");
    assert_eq!(done["inputs"]["secret"], CANARY);

    let as_operator = [
        app.call(Method::GET, &run_path, Some(&operator.token), None).await.1,
        app.call(Method::GET, &format!("{run_path}/events"), Some(&operator.token), None).await.1,
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs"), Some(&operator.token), None).await.1,
    ];
    for body in &as_operator {
        assert!(!body.to_string().contains(CANARY), "payload leaked to an operator: {body}");
    }
    assert_eq!(as_operator[0]["run"]["status"], "succeeded", "statuses are visible");
    let events = as_operator[1].as_array().unwrap();
    let decided = events.iter().find(|e| e["event"]["type"] == "approval_decided").unwrap();
    assert_eq!(decided["event"]["by"], operator.email.as_str());
    assert_eq!(decided["event"]["reason"], Value::Null);
    let (_, owner_events) =
        app.call(Method::GET, &format!("{run_path}/events"), Some(&owner.token), None).await;
    assert!(owner_events.to_string().contains(CANARY));

    // The live stream replays the journal and ends with the run.
    let stream = Request::get(format!("{run_path}/stream"))
        .header(header::AUTHORIZATION, format!("Bearer {}", operator.token))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = app.raw(stream).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.matches("event: entry").count(), events.len());
    assert!(text.trim_end().ends_with("data: {\"status\":\"succeeded\"}"), "{text}");
    assert!(!text.contains(CANARY));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_with_cursors_and_filters() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HELLO_FLOW).await;
    let start = format!("/api/v1/workspaces/{WS}/flows/hello/runs");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, s) = app.call(Method::POST, &start, Some(&owner.token), Some(json!({}))).await;
        ids.push(s["run_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.wait_finished(&owner.token, id).await;
    }
    let runs = format!("/api/v1/workspaces/{WS}/runs");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{runs}?limit=2&cursor={c}"),
            None => format!("{runs}?limit=2"),
        };
        let (_, page) = app.call(Method::GET, &path, Some(&owner.token), None).await;
        seen.extend(page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let (_, failed) = app.call(Method::GET, &format!("{runs}?status=failed"), Some(&owner.token), None).await;
    assert_eq!(failed["runs"], json!([]));
    let (status, err) = app.call(Method::GET, &format!("{runs}?status=done"), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_errors_headers_and_the_api_description() {
    let config = Config { body_limit: 4096, ..support::unlimited() };
    let app = TestApp::with_config(Db::Sqlite, config).await;
    let owner = app.workspace(WS).await;
    let flows = format!("/api/v1/workspaces/{WS}/flows");
    let big = json!({ "source": "x".repeat(10_000) });
    let (status, err) = app.call(Method::POST, &flows, Some(&owner.token), Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    insta::assert_json_snapshot!("too_large", err);
    let (status, err) = app.call(Method::GET, "/api/v1/nothing", Some(&owner.token), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let malformed = Request::post(&flows)
        .header(header::AUTHORIZATION, format!("Bearer {}", owner.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"source\": "))
        .unwrap();
    let (status, err) = app.send(malformed).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")));
    let (status, err) = app.call(Method::GET, &flows, Some("stw_not-a-real-token"), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));

    let (status, headers, body) = app.raw(Request::get("/api/docs").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("/api/docs/docs.js") && !page.contains("https://"), "served from the binary");
    let (_, doc) = app.send(Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await;
    let mut paths: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            paths.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    paths.sort();
    insta::assert_json_snapshot!("openapi_operations", paths);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_create_accounts_and_memberships() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let admin = app.member(WS, Role::Admin).await;
    let invitations = format!("/api/v1/workspaces/{WS}/invitations");
    let (status, _) = app
        .call(
            Method::POST,
            &invitations,
            Some(&admin.token),
            Some(json!({ "email": "x@example.com", "role": "owner" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only owners make owners");
    let (status, inv) = app
        .call(
            Method::POST,
            &invitations,
            Some(&owner.token),
            Some(json!({ "email": "Bea@Example.com", "role": "editor" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let code = inv["code"].as_str().unwrap().to_owned();
    let (_, open) = app.call(Method::GET, &invitations, Some(&owner.token), None).await;
    assert!(open[0].get("code").is_none(), "the code is shown once");

    let accept = |body: Value| {
        Request::post("/api/v1/invitations/accept")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _) = app.send(accept(json!({ "code": code, "password": "short" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, session) =
        app.send(accept(json!({ "code": code, "password": "a long enough password" }))).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["email"], "bea@example.com");
    assert_eq!(session["workspaces"][0]["role"], "editor");
    let (status, _) = app.send(accept(json!({ "code": code, "password": "a long enough password" }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "used once");
    let (status, _) = app.send(login_request("bea@example.com", "a long enough password")).await;
    assert_eq!(status, StatusCode::OK);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_runs_steps_and_the_queue() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HELLO_FLOW).await;
    let start = format!("/api/v1/workspaces/{WS}/flows/hello/runs");
    for _ in 0..3 {
        let (_, s) = app.call(Method::POST, &start, Some(&owner.token), Some(json!({}))).await;
        app.wait_finished(&owner.token, s["run_id"].as_str().unwrap()).await;
    }
    // The collector sees commits through a channel; give it a moment.
    let mut text = String::new();
    for _ in 0..50 {
        let (status, headers, body) = app.raw(Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
        text = String::from_utf8(body).unwrap();
        if text.contains("steward_runs_finished_total{status=\"succeeded\"} 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for line in [
        "steward_runs_started_total{trigger=\"api\"} 3",
        "steward_runs_finished_total{status=\"succeeded\"} 3",
        "steward_steps_total{status=\"succeeded\"} 3",
        "steward_step_duration_seconds_count 3",
        "steward_queue_runs{state=\"due\"} 0",
        "steward_queue_runs{state=\"running\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    app.finish().await;
}
