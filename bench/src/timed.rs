//! A store wrapper that times the calls the executor makes, to tell the time spent committing
//! (`append`: one transaction per batch of journal events) from everything else.
//!
//! Waiting for wake-ups (`Wakeup::wait`) is passed through untimed: it is idle time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};
use steward_engine::{Entry, Event, Timestamp};
use steward_store::{
    AgentStore, AgentVersion, Append, FlowStore, FlowSummary, FlowVersion, NewFlowVersion, NewRun,
    PolicySettings, PolicyStore, Result, RunFilter, RunRecord, RunStore, Signal, Store, UsageDelta, UsageRow,
    Wakeup, WorkspacePolicy,
};

/// Calls and wall time per store method, and the journal entries `append` was given.
#[derive(Debug, Default)]
pub struct Timing {
    inner: Mutex<Counts>,
}

/// A snapshot of [`Timing`].
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Method → (calls, nanoseconds).
    pub methods: BTreeMap<&'static str, (u64, u64)>,
    pub append_entries: u64,
}

impl Timing {
    pub fn snapshot(&self) -> Counts {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn add(&self, method: &'static str, ns: u64, entries: u64) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = c.methods.entry(method).or_default();
        slot.0 += 1;
        slot.1 += ns;
        c.append_entries += entries;
    }
}

impl Counts {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let methods = self
            .methods
            .iter()
            .map(|(m, (n, ns))| {
                let (n0, ns0) = earlier.methods.get(m).copied().unwrap_or_default();
                (*m, (n - n0, ns - ns0))
            })
            .filter(|(_, (n, _))| *n > 0)
            .collect();
        Counts { methods, append_entries: self.append_entries - earlier.append_entries }
    }

    pub fn calls(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |c| c.0)
    }

    /// Nanoseconds spent in `method`.
    pub fn ns(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |c| c.1)
    }

    /// `{"append": {"calls": 101, "us": 19000.0}, ...}`, for the JSON lines.
    pub fn to_json(&self) -> Value {
        let map = self
            .methods
            .iter()
            .map(|(m, (n, ns))| ((*m).to_owned(), json!({ "calls": n, "us": (*ns as f64 / 1000.0).round() })))
            .collect();
        Value::Object(map)
    }
}

/// Delegates to `inner`, adding each call's time to a [`Timing`].
pub struct Timed {
    inner: Arc<dyn Store>,
    timing: Arc<Timing>,
}

impl std::fmt::Debug for Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timed").field("timing", &self.timing).finish_non_exhaustive()
    }
}

impl Timed {
    pub fn new(inner: Arc<dyn Store>, timing: Arc<Timing>) -> Self {
        Self { inner, timing }
    }

    async fn time<T>(&self, method: &'static str, fut: impl Future<Output = T>) -> T {
        self.time_entries(method, 0, fut).await
    }

    async fn time_entries<T>(&self, method: &'static str, entries: u64, fut: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.timing.add(method, spent, entries);
        out
    }
}

#[async_trait]
impl FlowStore for Timed {
    async fn save_version(&self, new: NewFlowVersion) -> Result<FlowVersion> {
        self.time("save_version", self.inner.save_version(new)).await
    }

    async fn version(&self, workspace: &str, id: &str) -> Result<FlowVersion> {
        self.time("version", self.inner.version(workspace, id)).await
    }

    async fn latest_version(&self, workspace: &str, name: &str) -> Result<Option<FlowVersion>> {
        self.time("latest_version", self.inner.latest_version(workspace, name)).await
    }

    async fn startable(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Option<(FlowVersion, Option<Timestamp>)>> {
        self.time("startable", self.inner.startable(workspace, name)).await
    }

    async fn list_flows(&self, workspace: &str, deleted: bool) -> Result<Vec<FlowSummary>> {
        self.time("list_flows", self.inner.list_flows(workspace, deleted)).await
    }

    async fn flow(&self, workspace: &str, name: &str) -> Result<FlowSummary> {
        self.time("flow", self.inner.flow(workspace, name)).await
    }

    async fn versions(&self, workspace: &str, name: &str) -> Result<Vec<FlowVersion>> {
        self.time("versions", self.inner.versions(workspace, name)).await
    }

    async fn set_flow_disabled(
        &self,
        workspace: &str,
        name: &str,
        disabled: bool,
        now: Timestamp,
    ) -> Result<FlowSummary> {
        self.time("set_flow_disabled", self.inner.set_flow_disabled(workspace, name, disabled, now)).await
    }

    async fn set_flow_deleted(
        &self,
        workspace: &str,
        name: &str,
        deleted: bool,
        now: Timestamp,
    ) -> Result<FlowSummary> {
        self.time("set_flow_deleted", self.inner.set_flow_deleted(workspace, name, deleted, now)).await
    }
}

#[async_trait]
impl RunStore for Timed {
    async fn create_run(&self, run: NewRun, events: &[Event]) -> Result<()> {
        self.time("create_run", self.inner.create_run(run, events)).await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        self.time("claim", self.inner.claim(owner, now, lease_ms, limit)).await
    }

    async fn heartbeat(&self, owner: &str, runs: &[String], until: Timestamp) -> Result<Vec<String>> {
        self.time("heartbeat", self.inner.heartbeat(owner, runs, until)).await
    }

    async fn journal(&self, run_id: &str) -> Result<Vec<Entry>> {
        self.time("journal", self.inner.journal(run_id)).await
    }

    async fn append(&self, append: Append<'_>) -> Result<()> {
        let entries = append.entries.len() as u64;
        self.time_entries("append", entries, self.inner.append(append)).await
    }

    async fn create_run_with(&self, run: NewRun, events: &[Event], append: Append<'_>) -> Result<()> {
        let entries = append.entries.len() as u64;
        self.time_entries("create_run_with", entries, self.inner.create_run_with(run, events, append)).await
    }

    async fn release(&self, run_id: &str, owner: &str, wake_at: Option<Timestamp>) -> Result<()> {
        self.time("release", self.inner.release(run_id, owner, wake_at)).await
    }

    async fn signal(&self, workspace: &str, run_id: &str, signal: &Signal, now: Timestamp) -> Result<()> {
        self.time("signal", self.inner.signal(workspace, run_id, signal, now)).await
    }

    async fn signals(&self, run_id: &str) -> Result<Vec<(i64, Signal)>> {
        self.time("signals", self.inner.signals(run_id)).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.time("next_due", self.inner.next_due()).await
    }

    async fn run(&self, workspace: &str, id: &str) -> Result<RunRecord> {
        self.time("run", self.inner.run(workspace, id)).await
    }

    async fn list_runs(&self, workspace: &str, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.time("list_runs", self.inner.list_runs(workspace, filter)).await
    }

    async fn rewrite_events(&self, run_id: &str, events: &[Entry]) -> Result<()> {
        self.time("rewrite_events", self.inner.rewrite_events(run_id, events)).await
    }
}

#[async_trait]
impl Wakeup for Timed {
    async fn wait(&self, timeout_ms: u64) {
        self.inner.wait(timeout_ms).await;
    }
}

#[async_trait]
impl PolicyStore for Timed {
    async fn policy(&self, workspace: &str) -> Result<WorkspacePolicy> {
        self.time("policy", self.inner.policy(workspace)).await
    }

    async fn set_policy(
        &self,
        workspace: &str,
        settings: &PolicySettings,
        by: &str,
        now: Timestamp,
    ) -> Result<WorkspacePolicy> {
        self.inner.set_policy(workspace, settings, by, now).await
    }
}

#[async_trait]
impl AgentStore for Timed {
    async fn save_agent(
        &self,
        workspace: &str,
        name: &str,
        source: &str,
        digest: &str,
        now: Timestamp,
    ) -> Result<(AgentVersion, bool)> {
        self.inner.save_agent(workspace, name, source, digest, now).await
    }

    async fn agent(&self, workspace: &str, name: &str) -> Result<Option<AgentVersion>> {
        self.time("agent", self.inner.agent(workspace, name)).await
    }

    async fn agent_version(&self, workspace: &str, id: &str) -> Result<AgentVersion> {
        self.time("agent_version", self.inner.agent_version(workspace, id)).await
    }

    async fn list_agents(&self, workspace: &str) -> Result<Vec<AgentVersion>> {
        self.inner.list_agents(workspace).await
    }

    async fn delete_agent(&self, workspace: &str, name: &str, now: Timestamp) -> Result<bool> {
        self.inner.delete_agent(workspace, name, now).await
    }

    async fn restore_agent(&self, workspace: &str, name: &str, now: Timestamp) -> Result<bool> {
        self.inner.restore_agent(workspace, name, now).await
    }

    async fn add_usage(&self, delta: &UsageDelta) -> Result<()> {
        self.time("add_usage", self.inner.add_usage(delta)).await
    }

    async fn usage(&self, workspace: &str, from: &str, to: &str) -> Result<Vec<UsageRow>> {
        self.time("usage", self.inner.usage(workspace, from, to)).await
    }
}
