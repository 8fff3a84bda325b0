//! Fresh stores, flows and executors for one repetition.
//!
//! SQLite: `steward.db` in a new temporary directory (the layout `steward --data-dir` uses).
//! PostgreSQL: a new database from `steward_testkit::fresh_pg_database`, dropped when the
//! repetition ends so repeated benchmark runs leave nothing behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use steward_executor::{Executor, ExecutorOptions};
use steward_store::{DEFAULT_WORKSPACE, FlowVersion, NewFlowVersion, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Db;
use crate::timed::{Timed, Timing};

/// A new, empty store for one repetition.
pub struct Fresh {
    /// The store, wrapped to time the calls made through it.
    pub store: Arc<dyn Store>,
    pub timing: Arc<Timing>,
    /// Where a `steward` process finds the same store.
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
}

/// How the `steward` binary is pointed at a store.
#[derive(Debug, Clone)]
pub enum Location {
    /// `--data-dir`: the directory holding `steward.db`.
    DataDir(PathBuf),
    /// `--database-url`.
    DatabaseUrl(String),
}

impl Location {
    pub fn flags(&self) -> Vec<String> {
        match self {
            Location::DataDir(dir) => vec!["--data-dir".into(), dir.to_string_lossy().into_owned()],
            Location::DatabaseUrl(url) => vec!["--database-url".into(), url.clone()],
        }
    }
}

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh").field("location", &self.location).finish_non_exhaustive()
    }
}

impl Fresh {
    pub async fn new(db: Db) -> anyhow::Result<Self> {
        let (store, location, dir) = match db {
            Db::Sqlite => {
                let dir = tempfile::Builder::new().prefix("steward-bench-").tempdir()?;
                let path = dir.path().join("steward.db");
                let store = steward_store_sql::open(&path.to_string_lossy()).await?;
                (store, Location::DataDir(dir.path().to_owned()), Some(dir))
            }
            Db::Postgres => {
                let url = steward_testkit::fresh_pg_database().await;
                let store = steward_store_sql::open(&url)
                    .await
                    .with_context(|| "cannot open the fresh PostgreSQL database")?;
                (store, Location::DatabaseUrl(url), None)
            }
        };
        let timing = Arc::new(Timing::default());
        let store: Arc<dyn Store> = Arc::new(Timed::new(store, timing.clone()));
        Ok(Self { store, timing, location, _dir: dir })
    }

    /// Stores `yaml` as a flow version.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<FlowVersion> {
        let loaded = steward_flow::load("bench.yaml", yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let new = NewFlowVersion {
            workspace: DEFAULT_WORKSPACE.to_owned(),
            name: loaded.flow.name.to_string(),
            file_name: "bench.yaml".to_owned(),
            digest: digest(yaml),
            source: yaml.to_owned(),
            concurrency: loaded.flow.concurrency,
            now: steward_engine::Timestamp(now_millis()),
        };
        Ok(self.store.save_version(new).await?)
    }

    /// Closes the store; drops the database on PostgreSQL. Everything holding the store
    /// (executors) must be gone.
    pub async fn close(self) -> anyhow::Result<()> {
        let Fresh { store, location, _dir, .. } = self;
        drop(store);
        if let Location::DatabaseUrl(url) = location {
            drop_database(&url).await?;
        }
        Ok(())
    }
}

/// Drops the database of `url`, which `fresh_pg_database` created for this process.
async fn drop_database(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let name = url.rsplit_once('/').map(|(_, n)| n).unwrap_or_default();
    anyhow::ensure!(
        name.starts_with("steward_t_") && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "not a database this benchmark created: {name}"
    );
    let mut conn = sqlx::PgConnection::connect(&steward_testkit::pg_server_url()).await?;
    // The name was checked above and comes from fresh_pg_database, never from input.
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Not a cryptographic digest: only tells versions of the benchmark's own flows apart.
pub fn digest(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Executor settings of the benchmarks: the `steward worker` defaults (30 s lease, 1 s poll)
/// with `max_runs` as given.
pub fn options(max_runs: usize) -> ExecutorOptions {
    ExecutorOptions {
        owner: format!("bench-{}", std::process::id()),
        lease: Duration::from_secs(30),
        max_runs,
        // The benchmarks' HTTP steps call a server on loopback.
        egress: steward_testkit::loopback_egress(),
        ..ExecutorOptions::default()
    }
}

/// An executor loop running in this process.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), steward_executor::Error>>,
}

impl Running {
    pub fn start(executor: &Executor) -> Self {
        let (stop, rx) = watch::channel(false);
        let executor = executor.clone();
        let task = tokio::spawn(async move { executor.run(rx).await });
        Self { stop, task }
    }

    /// Stops the loop (drain) and reports an error it ended with.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await?.context("the executor loop failed")?;
        Ok(())
    }
}

/// Queues `n` runs of `version` through `executor` (whose loop need not run), `parallel` at a
/// time; returns their ids.
pub async fn queue_runs(
    executor: &Executor,
    version: &FlowVersion,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let version = Arc::new(version.clone());
    let mut ids = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    let mut queued = 0;
    while queued < n || !set.is_empty() {
        while queued < n && set.len() < parallel {
            let (executor, version) = (executor.clone(), version.clone());
            set.spawn(async move { executor.start_run(&version, json!({})).await });
            queued += 1;
        }
        if let Some(done) = set.join_next().await {
            ids.push(done?.context("cannot queue a run")?);
        }
    }
    Ok(ids)
}
