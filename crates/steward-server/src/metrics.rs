//! Prometheus metrics at `/metrics`: runs queued by trigger and finished by status, steps by outcome, a
//! step latency histogram, the queue depth, and requests refused by rate limits.
//!
//! Finished runs and steps are counted from the journal entries this process's executor
//! commits (its progress stream), so they count the work done here; the queue gauges are read from the database at
//! each scrape and are the same on every process.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use steward_engine::{Event, Timestamp};
use steward_executor::{Executor, Progress};
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs_started: Family<TriggerLabel, Counter>,
    runs_finished: Family<StatusLabel, Counter>,
    steps: Family<StatusLabel, Counter>,
    step_seconds: Histogram,
    queue: Family<StateLabel, Gauge>,
    rate_limited: Family<ScopeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let runs_started = Family::<TriggerLabel, Counter>::default();
        let runs_finished = Family::<StatusLabel, Counter>::default();
        let steps = Family::<StatusLabel, Counter>::default();
        let buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];
        let step_seconds = Histogram::new(buckets);
        let queue = Family::<StateLabel, Gauge>::default();
        registry.register(
            "runs_started",
            "Runs this process queued, by trigger (api, webhook, schedule)",
            runs_started.clone(),
        );
        registry.register("runs_finished", "Runs this process finished, by status", runs_finished.clone());
        registry.register("steps", "Step attempts this process finished, by outcome", steps.clone());
        registry.register(
            "step_duration_seconds",
            "Time from a step attempt's start to its result",
            step_seconds.clone(),
        );
        registry.register(
            "queue_runs",
            "Unfinished runs of every workspace: due, running or waiting",
            queue.clone(),
        );
        let rate_limited = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by limit (address, token, webhook)",
            rate_limited.clone(),
        );
        Self { registry, runs_started, runs_finished, steps, step_seconds, queue, rate_limited }
    }
}

impl Metrics {
    /// Counts what the executor commits until the executor goes away.
    pub fn follow(self: &Arc<Self>, executor: &Executor) {
        let mut progress = executor.subscribe();
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut started: HashMap<(String, String), Timestamp> = HashMap::new();
            loop {
                match progress.recv().await {
                    Ok(p) => metrics.count(&p, &mut started),
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "metrics missed progress entries")
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    fn count(&self, p: &Progress, started: &mut HashMap<(String, String), Timestamp>) {
        for entry in p.entries.iter() {
            let mut finished = |key: &str, status: &str| {
                let label = StatusLabel { status: status.to_owned() };
                self.steps.get_or_create(&label).inc();
                if let Some(at) = started.remove(&(p.run_id.clone(), key.to_owned())) {
                    self.step_seconds.observe((entry.at.0 - at.0).max(0) as f64 / 1000.0);
                }
            };
            match &entry.event {
                Event::StepStarted { key, .. } => {
                    started.insert((p.run_id.clone(), key.clone()), entry.at);
                }
                Event::StepSucceeded { key, .. } => finished(key, "succeeded"),
                Event::StepFailed { key, .. } => finished(key, "failed"),
                Event::StepRetrying { key, .. } => finished(key, "retrying"),
                Event::RunFinished { status, .. } => {
                    let label = StatusLabel { status: status.as_str().to_owned() };
                    self.runs_finished.get_or_create(&label).inc();
                    started.retain(|(run, _), _| *run != p.run_id);
                }
                _ => {}
            }
        }
    }

    /// Counts a run this process queued.
    pub fn run_started(&self, trigger: &'static str) {
        self.runs_started.get_or_create(&TriggerLabel { trigger }).inc();
    }

    /// Counts a request refused by a rate limit.
    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited.get_or_create(&ScopeLabel { scope }).inc();
    }

    /// The text exposition, with the queue gauges set from `depth`.
    pub fn render(&self, depth: steward_store::QueueDepth) -> String {
        let set = |state, n: u64| {
            self.queue.get_or_create(&StateLabel { state }).set(i64::try_from(n).unwrap_or(i64::MAX))
        };
        set("due", depth.due);
        set("running", depth.running);
        set("waiting", depth.waiting);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
