//! A running executor on a fresh store, and helpers to apply flows and await runs.

#![allow(dead_code, reason = "each test file uses a different part of the harness")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use steward_engine::{Entry, RunStatus};
use steward_executor::{Executor, ExecutorOptions};
use steward_store::{DEFAULT_WORKSPACE, FlowVersion, NewFlowVersion, RunRecord, ServerStore, Store};
use tokio::sync::watch;

#[allow(missing_debug_implementations, reason = "test harness")]
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub executor: Executor,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn options(owner: &str) -> ExecutorOptions {
    ExecutorOptions {
        owner: owner.to_owned(),
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        drain: Duration::from_secs(5),
        egress: steward_testkit::loopback_egress(),
        ..ExecutorOptions::default()
    }
}

impl Harness {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_, _| {}).await
    }

    /// An executor on a fresh SQLite store whose options `configure` adjusts; it is handed the
    /// whole store, for what needs more than the executor's part of it (a keyring, connections).
    pub async fn sqlite_with(configure: impl FnOnce(&Arc<dyn ServerStore>, &mut ExecutorOptions)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("steward.db");
        let store = steward_store_sql::open(&path.to_string_lossy()).await.expect("open sqlite");
        let mut opts = options("exec-a");
        configure(&store, &mut opts);
        Self::start(store, opts, Some(dir))
    }

    pub async fn postgres() -> Self {
        let url = steward_testkit::fresh_pg_database().await;
        let store = steward_store_sql::open(&url).await.expect("open postgres");
        Self::start(store, options("exec-a"), None)
    }

    pub fn start(store: Arc<dyn Store>, opts: ExecutorOptions, dir: Option<tempfile::TempDir>) -> Self {
        let executor = Executor::new(store.clone(), opts).expect("executor");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn({
            let executor = executor.clone();
            async move {
                executor.run(rx).await.expect("executor loop");
            }
        });
        Self { store, executor, stop, task: Some(task), _dir: dir }
    }

    /// Stops the executor the way a crash does: no drain, no lease release.
    pub fn crash(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub async fn apply(&self, yaml: &str) -> FlowVersion {
        let loaded = steward_flow::load("test.yaml", yaml).expect("valid flow");
        let new = NewFlowVersion {
            workspace: DEFAULT_WORKSPACE.to_owned(),
            name: loaded.flow.name.to_string(),
            file_name: "test.yaml".to_owned(),
            digest: format!("{:x}", yaml.len() as u64 * 31 + yaml.bytes().map(u64::from).sum::<u64>()),
            source: yaml.to_owned(),
            concurrency: loaded.flow.concurrency,
            now: self.executor.now(),
        };
        self.store.save_version(new).await.expect("save version")
    }

    pub async fn start_run(&self, yaml: &str, inputs: Value) -> String {
        let version = self.apply(yaml).await;
        self.executor.start_run(&version, inputs).await.expect("start run")
    }

    pub async fn run(&self, yaml: &str, inputs: Value) -> RunRecord {
        let id = self.start_run(yaml, inputs).await;
        self.finished(&id, Duration::from_secs(20)).await
    }

    pub async fn get(&self, id: &str) -> RunRecord {
        self.store.run(DEFAULT_WORKSPACE, id).await.expect("run exists")
    }

    pub async fn finished(&self, id: &str, timeout: Duration) -> RunRecord {
        self.until(id, timeout, |r| r.status.is_finished()).await
    }

    pub async fn until(&self, id: &str, timeout: Duration, ok: impl Fn(&RunRecord) -> bool) -> RunRecord {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let run = self.get(id).await;
            if ok(&run) {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} did not get there in time: {:?} {:?}",
                run.status,
                run.error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn journal(&self, id: &str) -> Vec<Entry> {
        self.store.journal(id).await.expect("journal")
    }

    /// Waits until the journal has an event of `kind` for `key`.
    pub async fn wait_event(&self, id: &str, kind: &str, key: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.journal(id).await.iter().any(|e| e.event.kind() == kind && e.event.key() == Some(key)) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {kind} for {key} in run {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn succeeded(run: &RunRecord) -> &Value {
    assert_eq!(run.status, RunStatus::Succeeded, "run failed: {:?}", run.error);
    run.output.as_ref().expect("output")
}
