//! The executor runtime: claims due runs with leases, drives each with the engine, performs
//! steps, commits results, renews leases with heartbeats, and hands runs back when they have
//! nothing to do until later.
//!
//! Shape: [`ExecutorOptions`] → [`Executor::new`] → [`Executor::run`] with a shutdown signal;
//! the [`Executor`] value is a cheap handle that also starts runs, sends signals and streams
//! progress.

mod catalog;
mod children;
mod clock;
mod context;
mod driver;
mod retention;
mod step;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use steward_engine::Entry;
use steward_steps::code::SandboxLimits;
use steward_store::{FlowVersion, Signal, Store};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

pub use catalog::Compiled;
pub use clock::{Clock, SystemClock};
pub use retention::summary;
pub use step::{DEFAULT_TIMEOUT, idempotency_key};
pub use validate::{called_flows, new_version, validate};

use children::ChildStarter;
use step::Services;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] steward_store::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Setup(String),
}

/// How an executor behaves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// This executor's identity in leases; unique per process.
    pub owner: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How many runs this executor drives at once.
    pub max_runs: usize,
    /// The longest sleep between looks for due work, for stores whose wake-ups do not cross
    /// processes (SQLite).
    pub poll: Duration,
    /// How long shutdown waits for in-flight steps to reach a committed point.
    pub drain: Duration,
    pub code_limits: SandboxLimits,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            owner: format!("executor-{}", uuid::Uuid::now_v7()),
            lease: Duration::from_secs(30),
            max_runs: 256,
            poll: Duration::from_secs(1),
            drain: Duration::from_secs(30),
            code_limits: SandboxLimits::default(),
        }
    }
}

/// Journal entries a run just committed.
#[derive(Debug, Clone)]
pub struct Progress {
    pub run_id: String,
    pub entries: Arc<Vec<Entry>>,
}

/// What a run's driver is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Run,
    /// Start nothing new; hand the run back once in-flight steps are committed.
    Drain,
    /// Another executor owns the run now: stop at once.
    LeaseLost,
}

struct Active {
    poke: Arc<Notify>,
    stop: watch::Sender<Stop>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    opts: ExecutorOptions,
    clock: Arc<dyn Clock>,
    services: Services,
    starter: ChildStarter,
    progress: broadcast::Sender<Progress>,
    active: Mutex<HashMap<String, Active>>,
}

/// A handle to the executor; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("owner", &self.inner.opts.owner).finish()
    }
}

impl Executor {
    pub fn new(store: Arc<dyn Store>, opts: ExecutorOptions) -> Result<Self, Error> {
        Self::with_clock(store, opts, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<dyn Store>,
        opts: ExecutorOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let http = steward_steps::http::HttpClient::new().map_err(Error::Setup)?;
        let starter = ChildStarter { store: store.clone(), catalog: Arc::new(catalog::Catalog::default()) };
        let services = Services { http, code_limits: opts.code_limits.clone(), children: starter.clone() };
        let (progress, _) = broadcast::channel(4096);
        let inner =
            Inner { store, opts, clock, services, starter, progress, active: Mutex::new(HashMap::new()) };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn now(&self) -> steward_engine::Timestamp {
        self.inner.clock.now()
    }

    /// Journal entries as runs commit them.
    pub fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Queues a new run of a stored version; inputs are checked against the flow first.
    pub async fn start_run(&self, version: &FlowVersion, inputs: Value) -> Result<String, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        self.inner.starter.start(version, inputs, id, None, self.now()).await
    }

    /// Queues a run a trigger started, under a caller-chosen id: a second start with the same
    /// id fails with a store `Conflict` and starts nothing (idempotent deliveries).
    pub async fn start_triggered(
        &self,
        version: &FlowVersion,
        inputs: Value,
        id: String,
        trigger: Value,
    ) -> Result<String, Error> {
        self.inner.starter.start_triggered(version, inputs, id, None, Some(trigger), self.now()).await
    }

    /// Sends a signal to a run (cancel, approval decision) and wakes its driver if it is here.
    pub async fn signal(&self, workspace: &str, run_id: &str, signal: &Signal) -> Result<(), Error> {
        self.inner.signal_local(workspace, run_id, signal).await
    }

    /// The compiled form of a stored version.
    pub async fn compiled(&self, workspace: &str, version_id: &str) -> Result<Arc<Compiled>, Error> {
        self.inner.starter.compiled(workspace, version_id).await
    }

    /// Claims and drives runs until `shutdown` turns true, then drains: no new steps start,
    /// in-flight steps are committed (up to the drain time) and runs are handed back.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let mut drivers = JoinSet::new();
        let mut heartbeat = tokio::time::interval(self.inner.opts.lease / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let full = self.claim(&mut drivers).await?;
            while drivers.try_join_next().is_some() {}
            if full {
                continue;
            }
            let sleep = self.sleep_time().await?;
            tokio::select! {
                _ = self.inner.store.wait(sleep.as_millis() as u64) => self.poke_all(),
                Some(_) = drivers.join_next() => {}
                _ = heartbeat.tick() => self.heartbeat().await?,
                _ = shutdown.changed() => {}
            }
        }
        self.drain(drivers).await;
        Ok(())
    }

    /// Claims due runs and starts their drivers. Returns whether the claim got as many runs as
    /// it asked for, so more may be due right away; otherwise the next look waits for a
    /// wake-up or the next due time (work arriving meanwhile wakes it).
    async fn claim(&self, drivers: &mut JoinSet<()>) -> Result<bool, Error> {
        let free = self.inner.opts.max_runs.saturating_sub(self.active_count());
        if free == 0 {
            return Ok(false);
        }
        let now = self.now();
        let lease_ms = self.inner.opts.lease.as_millis() as u64;
        let limit = free.min(64);
        let runs = self.inner.store.claim(&self.inner.opts.owner, now, lease_ms, limit).await?;
        let full = runs.len() == limit;
        for run in runs {
            let poke = Arc::new(Notify::new());
            let (stop_tx, stop_rx) = watch::channel(Stop::Run);
            let id = run.id.clone();
            if let Ok(mut active) = self.inner.active.lock() {
                active.insert(id.clone(), Active { poke: poke.clone(), stop: stop_tx });
            }
            let inner = self.inner.clone();
            drivers.spawn(async move {
                let result = match driver::Driver::new(inner.clone(), run, poke, stop_rx).await {
                    Ok(d) => d.drive().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(run_id = %id, error = %e, "run driver stopped with an error; the run is retried when its lease expires");
                }
                if let Ok(mut active) = inner.active.lock() {
                    active.remove(&id);
                }
            });
        }
        Ok(full)
    }

    fn active_count(&self) -> usize {
        self.inner.active.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// How long to sleep: until the next due run, at most the poll interval.
    async fn sleep_time(&self) -> Result<Duration, Error> {
        let poll = self.inner.opts.poll;
        let next = self.inner.store.next_due().await?;
        let now = self.now();
        Ok(match next {
            Some(t) => {
                Duration::from_millis((t.millis() - now.millis()).clamp(0, poll.as_millis() as i64) as u64)
            }
            None => poll,
        })
    }

    /// Something may have changed for active runs (a signal from another process).
    fn poke_all(&self) {
        if let Ok(active) = self.inner.active.lock() {
            active.values().for_each(|a| a.poke.notify_one());
        }
    }

    async fn heartbeat(&self) -> Result<(), Error> {
        let ids: Vec<String> =
            self.inner.active.lock().map(|a| a.keys().cloned().collect()).unwrap_or_default();
        if ids.is_empty() {
            return Ok(());
        }
        let until = self.now().plus_millis(self.inner.opts.lease.as_millis() as u64);
        let lost = self.inner.store.heartbeat(&self.inner.opts.owner, &ids, until).await?;
        if let Ok(active) = self.inner.active.lock() {
            for id in lost {
                if let Some(a) = active.get(&id) {
                    tracing::warn!(run_id = %id, "lost the lease on a run; stopping work on it");
                    let _ = a.stop.send(Stop::LeaseLost);
                }
            }
        }
        self.poke_all();
        Ok(())
    }

    async fn drain(&self, mut drivers: JoinSet<()>) {
        if let Ok(active) = self.inner.active.lock() {
            active.values().for_each(|a| {
                let _ = a.stop.send(Stop::Drain);
            });
        }
        let deadline = tokio::time::sleep(self.inner.opts.drain);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = drivers.join_next() => if next.is_none() { return },
                _ = &mut deadline => {
                    tracing::warn!(runs = drivers.len(), "drain time is over; remaining runs are taken over when their leases expire");
                    drivers.abort_all();
                    return;
                }
            }
        }
    }
}

impl Inner {
    pub(crate) async fn signal_local(
        &self,
        workspace: &str,
        run_id: &str,
        signal: &Signal,
    ) -> Result<(), Error> {
        self.store.signal(workspace, run_id, signal, self.clock.now()).await?;
        if let Ok(active) = self.active.lock()
            && let Some(a) = active.get(run_id)
        {
            a.poke.notify_one();
        }
        Ok(())
    }
}
