//! The executor runtime: claims due runs with leases, drives each with the engine, performs
//! steps, commits results, renews leases with heartbeats, and hands runs back when they have
//! nothing to do until later.
//!
//! A run started through a running executor that has room (and whose flow has no concurrency
//! limit) is created under this executor's lease and driven here at once: no claim, no
//! wake-up, no journal read. If the process dies first, the lease runs out and any executor
//! takes the run over, as with a claimed run.
//!
//! Shape: [`ExecutorOptions`] → [`Executor::new`] → [`Executor::run`] with a shutdown signal;
//! the [`Executor`] value is a cheap handle that also starts runs, sends signals and streams
//! progress.

pub mod agent;
mod agents;
mod approvals;
mod catalog;
mod children;
mod clock;
mod context;
mod driver;
mod ends;
mod retention;
mod secrets;
mod step;
mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use steward_engine::Entry;
use steward_engine::Event;
use steward_steps::code::SandboxLimits;
use steward_store::{FlowVersion, NewRun, RunRecord, Signal, Store};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use agents::{AppliedAgent, apply_agent, ensure_runner, set_agent_deleted};
pub use approvals::{PendingApproval, pending_approvals, workspace_approvals};
pub use catalog::Compiled;
pub use clock::{Clock, SystemClock};
pub use ends::{EndWatch, RunEnd};
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
    /// A driver could not create the run it was handed; whoever started it was told why.
    #[error("the run was not created")]
    NotCreated,
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
    /// Opens connection secrets for http steps and redacts secrets from outcomes. Without it,
    /// steps that use a connection fail and nothing is redacted.
    pub keyring: Option<Arc<steward_vault::Keyring>>,
    /// Which private, loopback or link-local ranges flows may reach (none by default).
    pub egress: steward_steps::egress::EgressPolicy,
    /// Prices of models, for agents' costs and budgets.
    pub prices: steward_agent::pricing::PriceTable,
    /// What every workspace's agents may use per day and month.
    pub agent_budget: agent::WorkspaceBudget,
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
            keyring: None,
            egress: steward_steps::egress::EgressPolicy::strict(),
            prices: steward_agent::pricing::PriceTable::defaults(),
            agent_budget: agent::WorkspaceBudget::default(),
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
    /// False while a handed-off run waits for its driver's first commit: it has no lease in
    /// the store yet for heartbeats to renew.
    stored: Arc<AtomicBool>,
}

/// A run for this executor's loop to drive, not stored yet: its driver creates it with its
/// first commit.
struct Handoff {
    run: RunRecord,
    poke: Arc<Notify>,
    stop: watch::Receiver<Stop>,
    create: Creation,
}

/// What creating a handed-off run takes, and who waits to hear that it is stored.
pub(crate) struct Creation {
    pub(crate) run: NewRun,
    pub(crate) events: Vec<Event>,
    pub(crate) told: oneshot::Sender<Result<(), steward_store::Error>>,
    /// Set once the run is stored (see [`Active::stored`]).
    pub(crate) stored: Arc<AtomicBool>,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimed {
    /// As many runs as it asked for: more may be due right away.
    More,
    /// Fewer: nothing else is due until news arrives.
    AllDue,
    /// No room to take any run.
    NoRoom,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    opts: ExecutorOptions,
    clock: Arc<dyn Clock>,
    services: Services,
    starter: ChildStarter,
    progress: broadcast::Sender<Progress>,
    active: Mutex<HashMap<String, Active>>,
    handoff: mpsc::UnboundedSender<Handoff>,
    handoffs: Mutex<Option<mpsc::UnboundedReceiver<Handoff>>>,
    /// True while [`Executor::run`] claims work: runs started here may be driven here.
    accepting: AtomicBool,
    ends: Arc<ends::Ends>,
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
        let http = steward_steps::http::HttpClient::new(opts.egress.clone()).map_err(Error::Setup)?;
        let starter = ChildStarter { store: store.clone(), catalog: Arc::new(catalog::Catalog::default()) };
        let vault = Arc::new(secrets::Vault::new(opts.keyring.clone(), store.clone()));
        let agents =
            Arc::new(agent::AgentRuntime::new(store.clone(), opts.prices.clone(), opts.agent_budget));
        let services = Services {
            http,
            code_limits: opts.code_limits.clone(),
            children: starter.clone(),
            vault,
            agents,
        };
        let (progress, _) = broadcast::channel(4096);
        let (handoff, handoffs) = mpsc::unbounded_channel();
        let inner = Inner {
            store,
            opts,
            clock,
            services,
            starter,
            progress,
            active: Mutex::new(HashMap::new()),
            handoff,
            handoffs: Mutex::new(Some(handoffs)),
            accepting: AtomicBool::new(false),
            ends: Arc::default(),
        };
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

    /// Replaces the workspace's secret values in `value` with their placeholders: what starts
    /// a run, and text kept outside runs (chat messages).
    pub async fn redact(&self, workspace: &str, value: &mut Value) {
        let redactor = self.inner.services.vault.redactor(workspace, self.now()).await;
        if !redactor.is_empty() {
            redactor.redact_value(value);
        }
    }

    /// Says that `workspace`'s secrets changed (a connection made or rotated), so redaction
    /// in this process knows the new values at once.
    pub fn secrets_changed(&self, workspace: &str) {
        self.inner.services.vault.forget(workspace);
    }

    /// Listens to the answers of agent steps in `run_id` as the model writes them, for model
    /// calls this process makes while the tap is open.
    pub fn tap(&self, run_id: &str) -> agent::Tap {
        agent::Tap::open(&self.inner.services.agents.taps, run_id)
    }

    /// Hears when a driver of this executor commits the end of `run_id`. Watch before
    /// starting the run so that a quick end is not missed; runs that other processes drive
    /// are not heard of here.
    pub fn watch_end(&self, run_id: &str) -> EndWatch {
        self.inner.ends.watch(run_id)
    }

    /// Starts a new run of a stored version; inputs are checked against the flow first. The
    /// run is driven here at once when this executor runs and has room, else queued.
    pub async fn start_run(&self, version: &FlowVersion, inputs: Value) -> Result<String, Error> {
        let id = uuid::Uuid::now_v7().to_string();
        self.start(version, inputs, id, None).await
    }

    /// Starts a run a trigger started, like [`Executor::start_run`], under a caller-chosen id:
    /// a second start with the same id fails with a store `Conflict` and starts nothing
    /// (idempotent deliveries).
    pub async fn start_triggered(
        &self,
        version: &FlowVersion,
        inputs: Value,
        id: String,
        trigger: Value,
    ) -> Result<String, Error> {
        self.start(version, inputs, id, Some(trigger)).await
    }

    async fn start(
        &self,
        version: &FlowVersion,
        inputs: Value,
        id: String,
        trigger: Option<Value>,
    ) -> Result<String, Error> {
        let now = self.now();
        // A secret in what starts a run (pasted into inputs, echoed in a delivery) is
        // replaced before anything is stored.
        let (mut inputs, mut trigger) = (inputs, trigger);
        self.redact(&version.workspace, &mut inputs).await;
        if let Some(t) = trigger.as_mut() {
            self.redact(&version.workspace, t).await;
        }
        let (mut run, events) = self.inner.starter.prepare(version, inputs, id, None, trigger, now).await?;
        let id = run.id.clone();
        let slot = if run.concurrency_key.is_none() { self.inner.reserve(&id) } else { None };
        let Some((poke, stop, stored)) = slot else {
            self.inner.store.create_run(run, &events).await?;
            return Ok(id);
        };
        let owner = self.inner.opts.owner.clone();
        let until = now.plus_millis(self.inner.opts.lease.as_millis() as u64);
        run.leased_to = Some((owner.clone(), until));
        let record = RunRecord {
            id: id.clone(),
            workspace: version.workspace.clone(),
            flow_version_id: version.id.clone(),
            flow_name: version.name.clone(),
            status: steward_engine::RunStatus::Running,
            output: None,
            error: None,
            parent_run_id: None,
            parent_step_key: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            wake_at: Some(now),
            lease_owner: Some(owner.clone()),
            lease_expires_at: Some(until),
        };
        let (told, answer) = oneshot::channel();
        let create = Creation { run, events, told, stored };
        if let Err(mpsc::error::SendError(h)) =
            self.inner.handoff.send(Handoff { run: record, poke, stop, create })
        {
            // The loop stopped meanwhile: queue the run for whoever claims next.
            self.inner.unreserve(&id);
            self.inner.create_queued(h.create).await;
        }
        match answer.await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::Setup(format!("run {id} was not started: its executor stopped"))),
        }
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
        let taken = self.inner.handoffs.lock().ok().and_then(|mut h| h.take());
        let mut handoffs = Handoffs(taken);
        // Also reset when this future is dropped midway (the task aborted).
        let _accepting = Accepting::start(&self.inner.accepting, handoffs.0.is_some());
        let mut drivers = JoinSet::new();
        let mut heartbeat = tokio::time::interval(self.inner.opts.lease / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = async {
            while !*shutdown.borrow() {
                let claimed = self.claim(&mut drivers).await?;
                while drivers.try_join_next().is_some() {}
                if claimed == Claimed::More {
                    continue;
                }
                let deadline = tokio::time::Instant::now() + self.sleep_time().await?;
                loop {
                    let sleep = deadline.saturating_duration_since(tokio::time::Instant::now());
                    tokio::select! {
                        _ = self.inner.store.wait(sleep.as_millis() as u64) => {
                            self.poke_all();
                            break;
                        }
                        Some(h) = handoffs.recv() => {
                            self.spawn_driver(&mut drivers, h.run, h.poke, h.stop, Some(h.create));
                        }
                        // A finished run makes room for runs that were left queued.
                        Some(_) = drivers.join_next() => if claimed == Claimed::NoRoom { break },
                        _ = heartbeat.tick() => self.heartbeat().await?,
                        _ = shutdown.changed() => break,
                    }
                }
            }
            Ok(())
        }
        .await;
        self.inner.accepting.store(false, Ordering::SeqCst);
        self.hand_back(handoffs).await;
        self.drain(drivers).await;
        result
    }

    /// Claims due runs and starts their drivers.
    async fn claim(&self, drivers: &mut JoinSet<()>) -> Result<Claimed, Error> {
        let free = self.inner.opts.max_runs.saturating_sub(self.active_count());
        if free == 0 {
            return Ok(Claimed::NoRoom);
        }
        let now = self.now();
        let lease_ms = self.inner.opts.lease.as_millis() as u64;
        let limit = free.min(64);
        let runs = self.inner.store.claim(&self.inner.opts.owner, now, lease_ms, limit).await?;
        let claimed = if runs.len() == limit { Claimed::More } else { Claimed::AllDue };
        for run in runs {
            let poke = Arc::new(Notify::new());
            let (stop_tx, stop_rx) = watch::channel(Stop::Run);
            if let Ok(mut active) = self.inner.active.lock() {
                let stored = Arc::new(AtomicBool::new(true));
                active.insert(run.id.clone(), Active { poke: poke.clone(), stop: stop_tx, stored });
            }
            self.spawn_driver(drivers, run, poke, stop_rx, None);
        }
        Ok(claimed)
    }

    /// Drives `run` (registered in `active`) until it finishes or is handed back. `create` is
    /// what storing it takes when it is not stored yet.
    fn spawn_driver(
        &self,
        drivers: &mut JoinSet<()>,
        run: RunRecord,
        poke: Arc<Notify>,
        stop: watch::Receiver<Stop>,
        create: Option<Creation>,
    ) {
        let inner = self.inner.clone();
        drivers.spawn(async move {
            let id = run.id.clone();
            let result = match driver::Driver::new(inner.clone(), run, poke, stop, create).await {
                Ok(d) => d.drive().await,
                Err(e) => Err(e),
            };
            if let Err(e) = result.or_else(|e| if matches!(e, Error::NotCreated) { Ok(()) } else { Err(e) }) {
                tracing::warn!(run_id = %id, error = %e, "run driver stopped with an error; the run is retried when its lease expires");
            }
            inner.unreserve(&id);
        });
    }

    /// Runs handed to this loop that it will not drive: queued for any executor to claim.
    async fn hand_back(&self, mut handoffs: Handoffs) {
        let Some(rx) = &mut handoffs.0 else { return };
        rx.close();
        while let Ok(h) = rx.try_recv() {
            self.inner.unreserve(&h.run.id);
            self.inner.create_queued(h.create).await;
        }
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
        let ids: Vec<String> = self
            .inner
            .active
            .lock()
            .map(|a| {
                a.iter().filter(|(_, r)| r.stored.load(Ordering::SeqCst)).map(|(id, _)| id.clone()).collect()
            })
            .unwrap_or_default();
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

/// Marks the loop as taking hand-offs until dropped.
struct Accepting<'a>(&'a AtomicBool);

impl<'a> Accepting<'a> {
    fn start(flag: &'a AtomicBool, on: bool) -> Self {
        flag.store(on, Ordering::SeqCst);
        Accepting(flag)
    }
}

impl Drop for Accepting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The receiving end of hand-offs, when this loop holds it.
struct Handoffs(Option<mpsc::UnboundedReceiver<Handoff>>);

impl Handoffs {
    async fn recv(&mut self) -> Option<Handoff> {
        match &mut self.0 {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl Inner {
    /// A place among the active runs for `id`, if the loop runs and has room.
    fn reserve(&self, id: &str) -> Option<(Arc<Notify>, watch::Receiver<Stop>, Arc<AtomicBool>)> {
        if !self.accepting.load(Ordering::SeqCst) {
            return None;
        }
        let mut active = self.active.lock().ok()?;
        // A run with this id driven here already (a redelivery) keeps its entry: the start
        // goes to the store, which refuses the second run as a conflict.
        if active.len() >= self.opts.max_runs || active.contains_key(id) {
            return None;
        }
        let poke = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let stored = Arc::new(AtomicBool::new(false));
        active.insert(id.to_owned(), Active { poke: poke.clone(), stop: stop_tx, stored: stored.clone() });
        Some((poke, stop_rx, stored))
    }

    /// Stores a handed-off run as queued instead, and tells its starter how that went.
    async fn create_queued(&self, create: Creation) {
        let Creation { mut run, events, told, .. } = create;
        run.leased_to = None;
        let _ = told.send(self.store.create_run(run, &events).await);
    }

    fn unreserve(&self, id: &str) {
        if let Ok(mut active) = self.active.lock() {
            active.remove(id);
        }
    }

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
