//! Opening the store and an executor for commands that work on the local database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use steward_executor::{Executor, ExecutorOptions};
use steward_steps::egress::EgressPolicy;
use steward_store::{ServerStore, Store};
use steward_vault::Keyring;

/// Where the data is: a data directory for SQLite, or a database URL.
#[derive(Debug, Clone)]
pub struct Location {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Ranges of guarded addresses that flows may reach anyway (`--egress-allow`).
    pub egress_allow: Vec<String>,
}

impl Location {
    /// The store for commands that only run flows.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(self.open_all().await?)
    }

    /// The store with accounts and the audit log, for the server and admin commands.
    pub async fn open_all(&self) -> anyhow::Result<Arc<dyn ServerStore>> {
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

impl Location {
    /// An executor for this database, with the vault's keyring (the master key is made on
    /// first use and checked against the database).
    pub async fn executor(
        &self,
        store: Arc<dyn ServerStore>,
        max_runs: usize,
        lease: Option<Duration>,
        drain: Option<Duration>,
    ) -> anyhow::Result<Executor> {
        let keyring = Arc::new(crate::cli::keys::open_keyring(self, store.clone()).await?);
        self.executor_with(store, keyring, max_runs, lease, drain)
    }

    /// [`Location::executor`] with a keyring already open. PostgreSQL wakes executors with
    /// `LISTEN/NOTIFY`, so they only look for work on their own as a safety net; SQLite
    /// wake-ups do not cross processes, so executors look once a second for work queued by
    /// other `steward` commands.
    pub fn executor_with(
        &self,
        store: Arc<dyn ServerStore>,
        keyring: Arc<Keyring>,
        max_runs: usize,
        lease: Option<Duration>,
        drain: Option<Duration>,
    ) -> anyhow::Result<Executor> {
        let defaults = ExecutorOptions::default();
        let owner = format!("{}-{}-{}", hostname(), std::process::id(), uuid::Uuid::now_v7().simple());
        let poll = if self.database_url.is_some() { Duration::from_secs(30) } else { Duration::from_secs(1) };
        let egress = EgressPolicy::parse(&self.egress_allow).context("--egress-allow")?;
        let opts = ExecutorOptions {
            owner,
            max_runs,
            lease: lease.unwrap_or(defaults.lease),
            drain: drain.unwrap_or(defaults.drain),
            poll,
            keyring: Some(keyring),
            egress,
            ..defaults
        };
        Executor::new(store, opts).context("cannot start the executor")
    }
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
