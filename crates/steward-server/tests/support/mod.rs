//! An in-process server on a fresh SQLite file or PostgreSQL schema, with accounts made
//! directly in the store, and a client that calls the router without a socket.

#![allow(dead_code, reason = "each test file uses part of the support")]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use steward_auth::token::{Kind, Token};
use steward_auth::{Permissions, Role};
use steward_executor::{Executor, ExecutorOptions};
use steward_server::{AppState, Config};
use steward_store::{ApiToken, NewUser, ServerStore};
use tempfile::TempDir;
use tokio::sync::watch;
use tower::ServiceExt;

pub const WS: &str = "acme";
pub const OTHER_WS: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A member of a workspace and their full-permission API token.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub token: String,
}

pub struct TestApp {
    pub app: axum::Router,
    pub state: AppState,
    pub store: Arc<dyn ServerStore>,
    pub executor: Executor,
    stop: watch::Sender<bool>,
    /// The master key; a server beside this one uses it too.
    pub master: steward_vault::MasterKey,
    _dir: Option<TempDir>,
    pg_schema: Option<String>,
    owns_schema: bool,
}

impl TestApp {
    /// A server with the default configuration except rate limits, which are off: tests
    /// send requests much faster than people do (`tests/limits.rs` tests the limits).
    pub async fn new(db: Db) -> Self {
        Self::with_config(db, unlimited()).await
    }

    pub async fn with_config(db: Db, config: Config) -> Self {
        let schema = format!("t_srv_{}", uuid::Uuid::now_v7().simple());
        let master = steward_vault::MasterKey::generate().expect("master key");
        let mut app = Self::open(db, config, &schema, master).await;
        app.owns_schema = true;
        app
    }

    /// A second server on the same PostgreSQL schema as `self`.
    pub async fn beside(&self) -> Self {
        let schema = self.pg_schema.clone().expect("a PostgreSQL test app");
        Self::open(Db::Postgres, unlimited(), &schema, self.master.clone()).await
    }

    async fn open(db: Db, config: Config, schema: &str, master: steward_vault::MasterKey) -> Self {
        let (store, dir, pg_schema): (Arc<dyn ServerStore>, _, _) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("steward.db");
                let store =
                    steward_store_sql::open(path.to_str().expect("utf-8 path")).await.expect("open SQLite");
                (store, Some(dir), None)
            }
            Db::Postgres => {
                let store =
                    steward_store_sql::PgStore::connect_schema(&pg_url(), schema).await.expect("PostgreSQL");
                (Arc::new(store), None, Some(schema.to_owned()))
            }
        };
        let keyring = Arc::new(steward_vault::Keyring::new(master.clone(), store.clone()));
        let opts = ExecutorOptions {
            poll: Duration::from_millis(100),
            drain: Duration::from_secs(2),
            keyring: Some(keyring.clone()),
            egress: steward_testkit::loopback_egress(),
            ..ExecutorOptions::default()
        };
        let executor = Executor::new(store.clone(), opts).expect("executor");
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn({
            let executor = executor.clone();
            async move { executor.run(stop_rx).await }
        });
        let state = AppState::new(store.clone(), executor.clone(), config, keyring);
        tokio::spawn(steward_server::scheduler::run(state.clone(), stop.subscribe()));
        let app = steward_server::app(state.clone());
        Self { app, state, store, executor, stop, master, _dir: dir, pg_schema, owns_schema: false }
    }

    /// The PostgreSQL schema the server uses, for tests that read its tables directly.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_deref()
    }

    /// The SQLite database file, for tests that scan its bytes.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("steward.db"))
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(schema) = self.pg_schema.filter(|_| self.owns_schema) {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_url()).await {
                let drop = format!(r#"DROP SCHEMA "{schema}" CASCADE"#);
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await;
            }
        }
    }

    /// A new account (the password is not usable: tests call with tokens or log in with
    /// [`TestApp::user_with_password`]).
    pub async fn user(&self, email: &str) -> String {
        let new = NewUser {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.to_owned(),
            name: None,
            password_hash: "unusable".into(),
            now: self.executor.now(),
        };
        self.store.create_user(new).await.expect("create user").id
    }

    pub async fn user_with_password(&self, email: &str, password: &str) -> String {
        let new = NewUser {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.to_owned(),
            name: None,
            password_hash: steward_auth::password::hash(password).expect("hash"),
            now: self.executor.now(),
        };
        self.store.create_user(new).await.expect("create user").id
    }

    /// A token for `user` in `workspace` with `permissions`.
    pub async fn token(&self, user: &str, workspace: &str, permissions: Permissions) -> String {
        let secret = Token::generate(Kind::ApiToken).expect("random");
        let token = ApiToken {
            id: uuid::Uuid::now_v7().to_string(),
            digest: secret.digest(),
            workspace_id: workspace.to_owned(),
            user_id: user.to_owned(),
            name: "test".into(),
            permissions,
            created_at: self.executor.now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.create_token(&token).await.expect("create token");
        secret.reveal().to_owned()
    }

    /// Creates `workspace` owned by a new account; returns the owner.
    pub async fn workspace(&self, workspace: &str) -> Member {
        let email = format!("owner@{workspace}.example.com");
        let user_id = self.user(&email).await;
        self.store
            .create_workspace(workspace, workspace, &user_id, self.executor.now())
            .await
            .expect("workspace");
        let token = self.token(&user_id, workspace, Permissions::all()).await;
        Member { user_id, email, token }
    }

    /// Adds a new account with `role` to `workspace`.
    pub async fn member(&self, workspace: &str, role: Role) -> Member {
        let email = format!("{role}-{}@{workspace}.example.com", uuid::Uuid::now_v7().simple());
        let user_id = self.user(&email).await;
        self.store.set_member(workspace, &user_id, role, self.executor.now()).await.expect("member");
        let token = self.token(&user_id, workspace, role.permissions()).await;
        Member { user_id, email, token }
    }

    /// Calls the API with a bearer token (or none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, _, body) = self.raw(req).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.app.clone().oneshot(req).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, headers, body.to_vec())
    }

    /// Applies a flow file through the API.
    pub async fn apply(&self, token: &str, source: &str) -> Value {
        let path = format!("/api/v1/workspaces/{WS}/flows");
        let (status, body) =
            self.call(Method::POST, &path, Some(token), Some(json!({ "source": source }))).await;
        assert!(status.is_success(), "apply: {status} {body}");
        body
    }

    /// Waits until a run has finished; returns its status.
    pub async fn wait_finished(&self, token: &str, run: &str) -> Value {
        for _ in 0..200 {
            let (_, body) = self
                .call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs/{run}"), Some(token), None)
                .await;
            let status = body["run"]["status"].as_str().unwrap_or_default().to_owned();
            if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run} did not finish");
    }
}

/// The default configuration without rate limits.
pub fn unlimited() -> Config {
    use steward_server::rate_limit::Rate;
    Config {
        rate_limit_address: Rate::Off,
        rate_limit_token: Rate::Off,
        rate_limit_webhook: Rate::Off,
        ..Config::default()
    }
}

pub fn pg_url() -> String {
    std::env::var("STEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A flow that echoes its input and carries it through two steps.
pub const ECHO_FLOW: &str = "name: echo\ninputs:\n  secret: { type: string }\nsteps:\n  - id: first\n    transform: '{ said: .inputs.secret }'\n  - id: approve\n    approval: { message: please look }\n  - id: last\n    transform: '.steps.first.output.said'\noutput: ${{ .steps.last.output }}\n";

/// A flow without approvals.
pub const HELLO_FLOW: &str = "name: hello\ninputs:\n  who: { type: string, default: world }\nsteps:\n  - id: greet\n    transform: '\"hello \" + .inputs.who'\noutput: ${{ .steps.greet.output }}\n";
