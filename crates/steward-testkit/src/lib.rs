//! Fixtures shared by the integration tests of several crates: a real HTTP server on loopback
//! whose behaviour a test scripts, fresh PostgreSQL databases, and records to store.

pub mod mcp;
pub mod model;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub name: String,
    pub idempotency_key: Option<String>,
    pub body: String,
}

#[derive(Debug, Default)]
struct Script {
    hits: Vec<Hit>,
    /// Names whose next request hangs (once each).
    hang_once: HashSet<String>,
    /// Names whose next N requests answer 503.
    fail: HashMap<String, usize>,
    /// Names that answer after this delay.
    delay: HashMap<String, Duration>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A loopback server answering `ANY /hit/{name}` with `{"name": ..., "count": n}`.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub base: String,
    script: Arc<Mutex<Script>>,
}

impl Recorder {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new().route("/hit/{name}", any(hit)).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, script }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        let mut s = self.script.lock().expect("script lock");
        f(&mut s)
    }

    /// The next request to `name` never answers (until the server is dropped).
    pub fn hang_once(&self, name: &str) {
        self.with(|s| s.hang_once.insert(name.to_owned()));
    }

    /// The next `times` requests to `name` answer 503.
    pub fn fail(&self, name: &str, times: usize) {
        self.with(|s| s.fail.insert(name.to_owned(), times));
    }

    pub fn delay(&self, name: &str, delay: Duration) {
        self.with(|s| s.delay.insert(name.to_owned(), delay));
    }

    pub fn hits(&self, name: &str) -> Vec<Hit> {
        self.with(|s| s.hits.iter().filter(|h| h.name == name).cloned().collect())
    }

    pub fn count(&self, name: &str) -> usize {
        self.hits(name).len()
    }

    pub fn all_hits(&self) -> Vec<Hit> {
        self.with(|s| s.hits.clone())
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.with(|s| s.max_in_flight)
    }

    /// Waits until `name` has been requested `n` times.
    pub async fn wait_for(&self, name: &str, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count(name) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} requests to {name}; saw {}",
                self.count(name)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn hit(
    State(script): State<Arc<Mutex<Script>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (count, hang, fail, delay) = {
        let mut s = script.lock().expect("script lock");
        s.hits.push(Hit { name: name.clone(), idempotency_key, body });
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let count = s.hits.iter().filter(|h| h.name == name).count();
        let hang = s.hang_once.remove(&name);
        let fail = match s.fail.get_mut(&name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        (count, hang, fail, s.delay.get(&name).copied())
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    script.lock().expect("script lock").in_flight -= 1;
    if fail {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "try again"}))).into_response();
    }
    axum::Json(json!({ "name": name, "count": count })).into_response()
}

/// The PostgreSQL server tests use: `STEWARD_TEST_DATABASE_URL`, or the local default.
pub fn pg_server_url() -> String {
    std::env::var("STEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates an empty database and returns its URL. Fails the test if PostgreSQL is unreachable.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let server = pg_server_url();
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .expect("PostgreSQL must be running for this test (see README)");
    let name = format!("steward_t_{}", uuid::Uuid::now_v7().simple());
    // The name is generated here from a UUID, never from input.
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut conn).await.expect("create test database");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// A bearer connection to `api.example.com` holding `sealed`, as of `now`.
pub fn connection(
    workspace: &str,
    name: &str,
    sealed: String,
    now: steward_engine::Timestamp,
) -> steward_store::Connection {
    steward_store::Connection {
        id: format!("{workspace}-{name}"),
        workspace_id: workspace.to_owned(),
        name: name.to_owned(),
        kind: "bearer".into(),
        hosts: vec!["api.example.com".into()],
        settings: json!({}),
        sealed,
        created_by: "user:1".into(),
        created_at: now,
        updated_at: now,
        rotated_at: None,
        revoked_at: None,
        deleted_at: None,
    }
}

/// The guarded ranges tests allow, so that flows may reach the loopback servers they start
/// (production refuses loopback addresses).
pub const LOOPBACK_EGRESS: &str = "127.0.0.0/8,::1/128";

/// A command for the `steward` binary at `bin` that may reach loopback servers.
pub fn steward_command(bin: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.env("STEWARD_EGRESS_ALLOW", LOOPBACK_EGRESS);
    c
}

/// An egress policy that allows loopback addresses, for executors in tests.
pub fn loopback_egress() -> steward_steps::egress::EgressPolicy {
    steward_steps::egress::EgressPolicy::parse(LOOPBACK_EGRESS.split(',')).expect("loopback ranges")
}
