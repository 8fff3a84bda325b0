//! What the crash tests share: a data directory (SQLite) or a fresh PostgreSQL database, the
//! real `steward` binary pointed at it, workers to kill, and waiting for a run to finish.

#![allow(dead_code, reason = "each test file uses part of the support")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use steward_store::{DEFAULT_WORKSPACE, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_steward");

pub struct Env {
    pub dir: tempfile::TempDir,
    /// `--database-url` for PostgreSQL; SQLite in `dir` otherwise.
    pub url: Option<String>,
}

impl Env {
    pub fn sqlite() -> Self {
        Self { dir: tempfile::tempdir().expect("dir"), url: None }
    }

    pub async fn postgres() -> Self {
        Self { dir: tempfile::tempdir().expect("dir"), url: Some(steward_testkit::fresh_pg_database().await) }
    }

    pub fn command(&self) -> Command {
        let mut cmd = steward_testkit::steward_command(BIN);
        cmd.arg("--data-dir").arg(self.dir.path().join("data"));
        if let Some(url) = &self.url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.env("STEWARD_LOG", "warn");
        cmd
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        let target = match &self.url {
            Some(u) => u.clone(),
            None => self.dir.path().join("data/steward.db").to_string_lossy().into_owned(),
        };
        steward_store_sql::open(&target).await.expect("open store")
    }

    /// Runs `steward ARGS` to its end and returns its standard output.
    pub fn steward(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run steward");
        assert!(out.status.success(), "steward {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// A worker whose leases run out 2 s after it is killed.
    pub fn worker(&self) -> Child {
        self.command()
            .args(["worker", "--lease", "2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start worker")
    }
}

/// Waits for the run to finish; panics after `timeout`.
pub async fn finished(store: &Arc<dyn Store>, run: &str, timeout: Duration) -> steward_store::RunRecord {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = store.run(DEFAULT_WORKSPACE, run).await.expect("run");
        if r.status.is_finished() {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run} did not finish within {timeout:?} after the restart (status {:?})",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
