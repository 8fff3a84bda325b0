//! Connections used by flows: the credential reaches the service and nothing else. An echo
//! service that returns every header it got shows that the run's output, journal and errors
//! hold `[redacted:<connection>]` instead; handles go only to their connection's hosts; revoked
//! connections are refused; OAuth2 tokens come from a real token endpoint; every request leaves
//! a data-flow receipt without values. The database file is scanned for the secrets last.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{any, post};
use serde_json::{Map, Value, json};
use support::{Db, TestApp, WS};

const CANARY: &str = "canary-bearer-5f0c9e27";
const CLIENT_SECRET: &str = "canary-client-8a1d";
const TOKEN: &str = "canary-token-c41b";

/// Headers every request to the echo service carried, in order.
type Seen = Arc<Mutex<Vec<Map<String, Value>>>>;

/// Answers with the headers and query it received (as an API that echoes requests would), and
/// issues OAuth2 tokens at `/token` for `client:CLIENT_SECRET`.
async fn echo_service() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let router = Router::new()
        .route(
            "/token",
            post(|headers: HeaderMap| async move {
                use base64::Engine as _;
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("client:{CLIENT_SECRET}"));
                let ok = headers.get("authorization").is_some_and(|v| v == format!("Basic {basic}").as_str());
                if ok {
                    (
                        StatusCode::OK,
                        axum::Json(
                            json!({"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600}),
                        ),
                    )
                } else {
                    (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
                }
            }),
        )
        .fallback(any(move |uri: Uri, headers: HeaderMap| {
            let record = record.clone();
            async move {
                let got: Map<String, Value> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
                    .collect();
                record.lock().unwrap().push(got.clone());
                axum::Json(json!({"headers": got, "query": uri.query(), "path": uri.path()}))
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, seen)
}

async fn connect(app: &TestApp, token: &str, body: Value) {
    let path = format!("/api/v1/workspaces/{WS}/connections");
    let (status, made) = app.call(Method::POST, &path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
}

async fn run_flow(app: &TestApp, token: &str, flow: &str, inputs: Value) -> (String, Value) {
    let (status, started) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{WS}/flows/{flow}/runs"),
            Some(token),
            Some(json!({"inputs": inputs})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["run_id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(token, &id).await;
    (id, done)
}

async fn journal(app: &TestApp, token: &str, run: &str) -> Value {
    app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs/{run}/events"), Some(token), None).await.1
}

async fn check(db: Db) {
    let app = TestApp::new(db).await;
    let owner = app.workspace(WS).await;
    let t = owner.token.as_str();
    let (base, seen) = echo_service().await;
    connect(&app, t, json!({"name": "api", "kind": "bearer", "hosts": ["127.0.0.1"], "secret": CANARY}))
        .await;
    connect(
        &app,
        t,
        json!({"name": "elsewhere", "kind": "api_key", "hosts": ["api.example.com"],
        "settings": {"header": "x-api-key"}, "secret": "canary-elsewhere-77"}),
    )
    .await;
    connect(
        &app,
        t,
        json!({"name": "crm", "kind": "oauth2_client_credentials", "hosts": ["127.0.0.1"],
        "settings": {"token_url": format!("{base}/token"), "client_id": "client"}, "secret": CLIENT_SECRET}),
    )
    .await;

    // The connection's credential goes to its host, and the echo of it is redacted.
    app.apply(t, &format!(
        "name: uses\ninputs:\n  id: {{}}\nsteps:\n  - id: call\n    http:\n      url: '{base}/items/${{{{ .inputs.id }}}}'\n      connection: api\n  - id: copy\n    transform: '.steps.call.output.body.headers.authorization'\noutput: '${{{{ .steps.copy.output }}}}'\n"
    )).await;
    let (run, done) = run_flow(&app, t, "uses", json!({"id": 7})).await;
    assert_eq!(done["run"]["status"], "succeeded", "{done}");
    assert_eq!(seen.lock().unwrap().last().unwrap()["authorization"], format!("Bearer {CANARY}"));
    assert_eq!(done["run"]["output"], "Bearer [redacted:api]");
    let events = journal(&app, t, &run).await;
    let receipt = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == "data_sent")
        .unwrap_or_else(|| panic!("a receipt in {events}"));
    assert_eq!(receipt["host"], "127.0.0.1");
    assert_eq!(receipt["connections"], json!(["api"]));
    assert_eq!(receipt["categories"], json!(["inputs"]));
    assert!(receipt["bytes"].as_u64().unwrap() > 0);
    let (_, r) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs/{run}/receipt"), Some(t), None).await;
    assert_eq!(r["processors"][0]["host"], "127.0.0.1", "{r}");
    assert_eq!(
        (r["processors"][0]["requests"].as_u64(), r["transfers"][0]["step"].as_str()),
        (Some(1), Some("call"))
    );
    assert_eq!(r["processors"][0]["bytes"], receipt["bytes"]);

    // secret() is a handle everywhere but in the request; a transform or code step sees only it.
    app.apply(t, &format!(
        "name: handles\nsteps:\n  - id: peek\n    transform: 'secret(\"api\")'\n  - id: js\n    code: 'export default ({{ steps }}) => steps.peek.output + \"!\"'\n  - id: call\n    http:\n      url: '{base}/h'\n      headers: {{X-Key: 'K ${{{{ secret(\"api\") }}}}'}}\noutput: {{peek: '${{{{ .steps.peek.output }}}}', js: '${{{{ .steps.js.output }}}}', echoed: '${{{{ .steps.call.output.body.headers[\"x-key\"] }}}}'}}\n"
    )).await;
    let (_, done) = run_flow(&app, t, "handles", json!({})).await;
    assert_eq!(done["run"]["status"], "succeeded", "{done}");
    assert_eq!(
        done["run"]["output"],
        json!({"peek": "⟦secret:api⟧", "js": "⟦secret:api⟧!", "echoed": "K [redacted:api]"})
    );
    assert_eq!(seen.lock().unwrap().last().unwrap()["x-key"], format!("K {CANARY}"));

    // A handle for a connection whose hosts do not include the request's host is refused.
    app.apply(t, &format!(
        "name: misdirected\nsteps:\n  - id: call\n    http:\n      url: '{base}/steal'\n      headers: {{X-Key: '${{{{ secret(\"elsewhere\") }}}}'}}\n"
    )).await;
    let before = seen.lock().unwrap().len();
    let (_, done) = run_flow(&app, t, "misdirected", json!({})).await;
    assert_eq!(done["run"]["status"], "failed");
    let error = done["run"]["error"].to_string();
    assert!(
        error.contains("connection `elsewhere` may only be sent to api.example.com")
            && error.contains("`127.0.0.1`"),
        "{error}"
    );
    assert!(error.contains("refused"), "the error kind says a policy refused it: {error}");
    assert_eq!(seen.lock().unwrap().len(), before, "nothing was sent");

    // OAuth2 client credentials: a token from the endpoint, sent as a bearer token, redacted.
    app.apply(t, &format!(
        "name: oauth\nsteps:\n  - id: call\n    http:\n      url: '{base}/crm'\n      connection: crm\noutput: '${{{{ .steps.call.output.body.headers.authorization }}}}'\n"
    )).await;
    let (oauth_run, done) = run_flow(&app, t, "oauth", json!({})).await;
    assert_eq!(done["run"]["status"], "succeeded", "{done}");
    assert_eq!(seen.lock().unwrap().last().unwrap()["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(done["run"]["output"], "Bearer [redacted:crm]");
    // The token request is in the receipt too: the client credentials went to the endpoint.
    let path = format!("/api/v1/workspaces/{WS}/runs/{oauth_run}/receipt");
    let (_, r) = app.call(Method::GET, &path, Some(t), None).await;
    let transfers: Vec<(&Value, &Value, &Value)> = r["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (&x["step"], &x["connections"], &x["categories"]))
        .collect();
    let (call, crm, none) = (json!("call"), json!(["crm"]), json!([]));
    assert_eq!(transfers, [(&call, &crm, &none), (&call, &crm, &none)], "token request, then the call: {r}");

    // A secret pasted into a run's inputs is replaced before the run is stored.
    let (_, done) = run_flow(&app, t, "uses", json!({"id": CANARY})).await;
    assert!(!done.to_string().contains(CANARY), "{done}");

    // A revoked connection is refused with a message that says what to do.
    app.call(Method::POST, &format!("/api/v1/workspaces/{WS}/connections/api/revoke"), Some(t), None).await;
    // Executors use an opened connection for half a second before reading it again.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, done) = run_flow(&app, t, "uses", json!({"id": 1})).await;
    assert_eq!(done["run"]["status"], "failed");
    assert!(done["run"]["error"].to_string().contains("connection `api` is revoked"), "{done}");

    // The record of processing counts every run that sent data, per processor.
    let (_, record) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/processing"), Some(t), None).await;
    let local = &record["processors"][0];
    assert_eq!(local["host"], "127.0.0.1", "{record}");
    assert_eq!(local["senders"], json!(["handles", "oauth", "uses"]), "{record}");
    assert_eq!(local["connections"], json!(["api", "crm"]), "{record}");
    assert!(local["runs"].as_u64().unwrap() >= 4, "{record}");
    let (status, _) = app
        .call(Method::GET, &format!("/api/v1/workspaces/{WS}/processing?from=10&to=5"), Some(t), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    if let Some(path) = app.sqlite_path() {
        scan_files(&path);
    }
    app.finish().await;
}

/// No secret, token or client secret in the database's files (WAL included).
fn scan_files(db: &std::path::Path) {
    let dir = db.parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [CANARY, TOKEN, CLIENT_SECRET, "canary-elsewhere-77"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found on disk");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_flows_on_sqlite() {
    check(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_flows_on_postgres() {
    check(Db::Postgres).await;
}
