//! Fixtures for the conformance suite: a store on either backend, and record builders.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use steward_engine::{Entry, Event, RunStatus, Timestamp};
use steward_store::{Append, FlowVersion, NewFlowVersion, NewRun, RunUpdate, ServerStore, Store};
use steward_store_sql::{PgStore, SqliteStore};
use tempfile::TempDir;

pub const WS: &str = "default";
pub const OTHER: &str = "other";
/// A fixed clock: the store never reads time itself.
pub const T0: i64 = 1_700_000_000_000;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store under test, and how to open another handle on the same data.
pub struct TestDb {
    pub store: Arc<dyn ServerStore>,
    backend: Backend,
}

enum Backend {
    Sqlite { _dir: TempDir, path: PathBuf },
    Postgres { url: String, schema: String },
}

impl TestDb {
    /// A new database file in a directory that does not exist yet.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("steward.db");
        let store = SqliteStore::open(&path).await.expect("open SQLite");
        Self { store: Arc::new(store), backend: Backend::Sqlite { _dir: dir, path } }
    }

    /// A new schema on the test server; fails the test when the server is unreachable.
    pub async fn postgres() -> Self {
        let url = std::env::var("STEWARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let store = PgStore::connect_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} (set STEWARD_TEST_DATABASE_URL): {e}"));
        Self { store: Arc::new(store), backend: Backend::Postgres { url, schema } }
    }

    /// Another store on the same data, opened (and migrated) from scratch.
    pub async fn reopen(&self) -> Arc<dyn ServerStore> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                steward_store_sql::open(&format!("sqlite://{}", path.display())).await.expect("reopen SQLite")
            }
            Backend::Postgres { url, schema } => {
                Arc::new(PgStore::connect_schema(url, schema).await.expect("reconnect PostgreSQL"))
            }
        }
    }

    /// Runs `sql` on the database behind the store's back, as an attacker with database
    /// access would; returns the number of rows changed.
    pub async fn tamper(&self, sql: &str) -> u64 {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect SQLite");
                sqlx::query(sql).execute(&mut conn).await.expect("tamper").rows_affected()
            }
            Backend::Postgres { url, schema } => {
                let mut conn = PgConnection::connect(url).await.expect("connect PostgreSQL");
                let path = format!(r#"SET search_path TO "{schema}""#);
                sqlx::query(AssertSqlSafe(path)).execute(&mut conn).await.expect("search_path");
                sqlx::query(sql).execute(&mut conn).await.expect("tamper").rows_affected()
            }
        }
    }

    /// The tables with a row that holds `needle` in any column, read behind the store's back.
    pub async fn scan(&self, needle: &str) -> Vec<String> {
        let mut hits = Vec::new();
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connect SQLite");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                     AND name NOT LIKE '_sqlx%'",
                )
                .fetch_all(&mut conn)
                .await
                .expect("tables");
                for table in tables {
                    let columns: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{table}')"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .expect("columns");
                    let any: Vec<String> =
                        columns.iter().map(|c| format!("instr(CAST(\"{c}\" AS TEXT), $1) > 0")).collect();
                    let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {}", any.join(" OR "));
                    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(needle)
                        .fetch_one(&mut conn)
                        .await
                        .expect("scan");
                    if n > 0 {
                        hits.push(table);
                    }
                }
            }
            Backend::Postgres { url, schema } => {
                let mut conn = PgConnection::connect(url).await.expect("connect PostgreSQL");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
                     AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%'",
                )
                .bind(schema)
                .fetch_all(&mut conn)
                .await
                .expect("tables");
                for table in tables {
                    let sql = format!(
                        r#"SELECT COUNT(*) FROM "{schema}"."{table}" t WHERE strpos(t::text, $1) > 0"#
                    );
                    let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                        .bind(needle)
                        .fetch_one(&mut conn)
                        .await
                        .expect("scan");
                    if n > 0 {
                        hits.push(table);
                    }
                }
            }
        }
        hits.sort();
        hits
    }

    /// SQLite: whether the database file or its log holds the bytes of `needle` anywhere,
    /// deleted rows and free pages included. `None` on PostgreSQL.
    pub fn file_holds(&self, needle: &str) -> Option<bool> {
        let Backend::Sqlite { path, .. } = &self.backend else { return None };
        let wal = path.with_extension("db-wal");
        let holds = [path.as_path(), wal.as_path()].iter().any(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        });
        Some(holds)
    }

    pub async fn cleanup(self) {
        drop(self.store);
        if let Backend::Postgres { url, schema } = self.backend {
            let mut conn = PgConnection::connect(&url).await.expect("connect for cleanup");
            let drop_schema = format!(r#"DROP SCHEMA "{schema}" CASCADE"#);
            sqlx::query(AssertSqlSafe(drop_schema)).execute(&mut conn).await.expect("drop test schema");
        }
    }
}

pub fn at(ms: i64) -> Timestamp {
    Timestamp(ms)
}

pub fn new_version(workspace: &str, name: &str, digest: &str, now: i64) -> NewFlowVersion {
    NewFlowVersion {
        workspace: workspace.to_owned(),
        name: name.to_owned(),
        file_name: format!("flows/{name}.yaml"),
        source: format!("source of {name} {digest}"),
        digest: digest.to_owned(),
        concurrency: None,
        now: at(now),
    }
}

pub async fn save(store: &dyn Store, workspace: &str, name: &str, digest: &str, now: i64) -> FlowVersion {
    store.save_version(new_version(workspace, name, digest, now)).await.expect("save_version")
}

pub fn new_run(version: &FlowVersion, now: i64) -> NewRun {
    NewRun {
        id: uuid::Uuid::now_v7().to_string(),
        workspace: version.workspace.clone(),
        flow_version_id: version.id.clone(),
        inputs: json!({"n": 1, "name": "ünï"}),
        parent: None,
        concurrency_key: None,
        concurrency_limit: None,
        now: at(now),
        leased_to: None,
    }
}

pub fn started(run: &NewRun) -> Event {
    Event::RunStarted { run_id: run.id.clone(), inputs: run.inputs.clone(), trigger: None }
}

/// Creates a run of `version` due at `now`, journal `[RunStarted]`; returns its id.
pub async fn create(store: &dyn Store, version: &FlowVersion, now: i64) -> String {
    let run = new_run(version, now);
    store.create_run(run.clone(), &[started(&run)]).await.expect("create_run");
    run.id
}

/// `events` as journal entries numbered from `first`.
pub fn entries(first: u64, now: i64, events: &[Event]) -> Vec<Entry> {
    (first..).zip(events).map(|(seq, event)| Entry { seq, at: at(now), event: event.clone() }).collect()
}

pub fn append<'a>(
    run_id: &'a str,
    owner: &'a str,
    after_seq: u64,
    entries: &'a [Entry],
    update: RunUpdate,
    now: i64,
) -> Append<'a> {
    Append { run_id, owner, after_seq, entries, update, now: at(now) }
}

/// Appends `RunFinished` with `status` as `owner`.
pub async fn finish(
    store: &dyn Store,
    run_id: &str,
    owner: &str,
    after_seq: u64,
    status: RunStatus,
    now: i64,
) {
    let last = entries(after_seq + 1, now, &[Event::RunFinished { status, output: None, error: None }]);
    let update = RunUpdate { status: Some(status), ..RunUpdate::default() };
    store.append(append(run_id, owner, after_seq, &last, update, now)).await.expect("finish run");
}

pub fn ids(runs: &[steward_store::RunRecord]) -> Vec<String> {
    runs.iter().map(|r| r.id.clone()).collect()
}
