//! Opening the store and an executor for commands that work on the local database.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use steward_executor::{Executor, ExecutorOptions};
use steward_store::Store;

/// Where the data is: a data directory for SQLite, or a database URL.
#[derive(Debug, Clone)]
pub struct Location {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

impl Location {
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        match &self.database_url {
            Some(url) => steward_store_sql::open(url)
                .await
                .with_context(|| "cannot open the database given by --database-url"),
            None => {
                let path = self.data_dir.join("steward.db");
                steward_store_sql::open(&path.to_string_lossy())
                    .await
                    .with_context(|| format!("cannot open the local database {}", path.display()))
            }
        }
    }
}

pub fn executor(store: Arc<dyn Store>, max_runs: usize) -> anyhow::Result<Executor> {
    executor_with(store, max_runs, ExecutorOptions::default().lease)
}

pub fn executor_with(
    store: Arc<dyn Store>,
    max_runs: usize,
    lease: std::time::Duration,
) -> anyhow::Result<Executor> {
    let owner = format!("{}-{}-{}", hostname(), std::process::id(), uuid::Uuid::now_v7().simple());
    let opts = ExecutorOptions { owner, max_runs, lease, ..ExecutorOptions::default() };
    Executor::new(store, opts).context("cannot start the executor")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "steward".into())
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
