//! Driving one claimed run: replay its journal, then repeat "commit what the engine decided,
//! start the ready steps, wait for an outcome, a signal or a timer" until the run finishes or
//! has nothing to do before a later time, at which point the lease is released and the run
//! holds no task or memory.
//!
//! Invariant: events are committed before any work with effects outside the run starts, and
//! before the driver waits or the run ends. In-place steps (quick transforms, see
//! [`in_place`]) are the exception: they are pure, so a chain of them runs without a commit
//! between steps and their events go in with the next commit. If the process dies first they
//! are evaluated again on recovery, which nothing can tell apart from the first time, since
//! nothing outside the run saw the first. A chain commits at least every [`MAX_UNCOMMITTED`]
//! events or [`MAX_UNCOMMITTED_FOR`], so a crash repeats little work.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use steward_engine::{Engine, Entry, Event, Outcome, RunState, StepStatus, Timestamp, Work};
use steward_store::{Append, RunRecord, RunUpdate, Signal};
use steward_vault::Redactor;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::catalog::Compiled;
use crate::context::Contexts;
use crate::secrets::redact_outcome;
use crate::step::{Attempt, Done, at_once, in_place, perform};
use crate::{Creation, Error, Inner, Progress, RunEnd, Stop, retention};

/// Waits shorter than this are slept through instead of releasing the run.
const SHORT_WAIT_MS: i64 = 200;

/// In-place steps commit at least every this many events...
const MAX_UNCOMMITTED: usize = 256;
/// ...and every this long.
const MAX_UNCOMMITTED_FOR: std::time::Duration = std::time::Duration::from_millis(20);

pub(crate) struct Driver {
    ex: Arc<Inner>,
    run: RunRecord,
    compiled: Arc<Compiled>,
    state: RunState,
    contexts: Contexts,
    committed_seq: u64,
    pending: Vec<Entry>,
    consumed: Vec<i64>,
    in_flight: JoinSet<(String, Done)>,
    handles: HashMap<String, AbortHandle>,
    poke: Arc<Notify>,
    stop: watch::Receiver<Stop>,
    check_signals: bool,
    draining: bool,
    /// When the driver last committed (or started).
    committed_at: std::time::Instant,
    /// An attempt that ran outside the driver reported, and its outcome is not committed yet.
    effect_pending: bool,
    /// Set until the first commit stores the run.
    create: Option<Creation>,
    /// The workspace's secrets, redacted from every outcome; and when it was fetched.
    redactor: (std::time::Instant, Arc<Redactor>),
}

impl Driver {
    pub(crate) async fn new(
        ex: Arc<Inner>,
        run: RunRecord,
        poke: Arc<Notify>,
        stop: watch::Receiver<Stop>,
        create: Option<Creation>,
    ) -> Result<Self, Error> {
        let compiled = ex.starter.compiled(&run.workspace, &run.flow_version_id).await?;
        // A run not stored yet has only the first entries its starter made.
        let journal = match &create {
            Some(c) => steward_store::first_entries(&c.events, c.run.now),
            None => ex.store.journal(&run.id).await?,
        };
        let state = RunState::replay(&compiled.plan, &journal);
        let redactor = ex.services.vault.redactor(&run.workspace, ex.clock.now()).await;
        Ok(Self {
            redactor: (std::time::Instant::now(), redactor),
            committed_seq: state.last_seq,
            contexts: Contexts::new(&compiled, &state),
            ex,
            run,
            compiled,
            state,
            pending: Vec::new(),
            consumed: Vec::new(),
            in_flight: JoinSet::new(),
            handles: HashMap::new(),
            poke,
            stop,
            check_signals: true,
            draining: false,
            committed_at: std::time::Instant::now(),
            effect_pending: false,
            create,
        })
    }

    fn engine(&self) -> Engine<'_> {
        Engine::new(&self.compiled.plan)
    }

    fn now(&self) -> Timestamp {
        self.ex.clock.now()
    }

    /// Records events the engine produced at `now`.
    fn push(&mut self, events: Vec<Event>, now: Timestamp) {
        for event in events {
            if let Some(key) = event.key() {
                self.contexts.changed(key);
            }
            let seq = self.committed_seq + self.pending.len() as u64 + 1;
            self.pending.push(Entry { seq, at: now, event });
        }
    }

    pub(crate) async fn drive(mut self) -> Result<(), Error> {
        let now = self.now();
        let plan = self.compiled.clone();
        let events = Engine::new(&plan.plan).recover(&mut self.state, now);
        self.push(events, now);
        loop {
            if self.check_signals {
                self.check_signals = false;
                self.apply_signals().await?;
            }
            let now = self.now();
            let works = self.decide(now).await?;
            if !self.may_defer_commit(&works) {
                self.commit().await?;
            }
            self.abort_cancelled();
            if self.state.is_finished() {
                return self.finished().await;
            }
            let mut done_at_once = false;
            for w in works {
                done_at_once |= self.start(w, now);
            }
            if done_at_once {
                // Their results go in with the next commit, before anything with effects starts.
                if !self.check_in().await {
                    return Ok(());
                }
                continue;
            }
            if self.in_flight.is_empty() {
                let wake = self.engine().next_wake(&self.state);
                let soon = wake.is_some_and(|w| w.millis() - now.millis() <= SHORT_WAIT_MS);
                if self.draining || !soon {
                    let wake = if self.draining { Some(now) } else { wake };
                    self.ex.store.release(&self.run.id, &self.ex.opts.owner, wake).await?;
                    return Ok(());
                }
            }
            if !self.wait().await? {
                return Ok(());
            }
        }
    }

    /// Timers, output rendering and starting ready steps, as events in `pending`.
    async fn decide(&mut self, now: Timestamp) -> Result<Vec<Work>, Error> {
        let plan = self.compiled.clone();
        let engine = Engine::new(&plan.plan);
        let events = engine.tick(&mut self.state, now);
        self.push(events, now);
        if engine.needs_output(&self.state) {
            let ctx = self.contexts.for_output(&self.state);
            let output = match &self.compiled.flow.output {
                Some(t) => t.render_in(&ctx).map_err(|e| {
                    steward_engine::StepError::new(
                        steward_engine::ErrorKind::Expression,
                        format!("the flow's output: {e}"),
                    )
                }),
                None => Ok(Value::Null),
            };
            let events = engine.finish(&mut self.state, output, now);
            self.push(events, now);
        }
        if self.draining {
            return Ok(Vec::new());
        }
        let works = engine.ready(&self.state);
        for w in &works {
            let events = engine.begin(&mut self.state, w, now);
            self.push(events, now);
        }
        Ok(works)
    }

    /// Whether the pending events may wait for a later commit: only in-place steps start
    /// next, the run goes on, no outcome of a step with effects waits to be recorded (so that
    /// a crash repeats as little of it as it can), and the chain has not grown past its bounds.
    fn may_defer_commit(&self, works: &[Work]) -> bool {
        !works.is_empty()
            && !self.effect_pending
            && !self.state.is_finished()
            && works.iter().all(|w| in_place(&self.compiled, &w.key).is_some())
            && self.pending.len() < MAX_UNCOMMITTED
            && self.committed_at.elapsed() < MAX_UNCOMMITTED_FOR
    }

    async fn commit(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() && self.consumed.is_empty() && self.create.is_none() {
            return Ok(());
        }
        let mut update =
            RunUpdate { consumed_signals: std::mem::take(&mut self.consumed), ..RunUpdate::default() };
        if let Some(status) = self.state.finished {
            retention::reduce_pending(&self.compiled, &mut self.pending);
            update.status = Some(status);
            update.output = self.state.output.clone();
            update.error = self.state.error.clone();
            update.finished_at = self.state.finished_at;
            self.notify_parent().await?;
        }
        let now = self.now();
        let append = Append {
            run_id: &self.run.id,
            owner: &self.ex.opts.owner,
            after_seq: self.committed_seq,
            entries: &self.pending,
            update,
            now,
        };
        match self.create.take() {
            None => self.ex.store.append(append).await?,
            Some(c) => {
                let created = self.ex.store.create_run_with(c.run, &c.events, append).await;
                let failed = created.is_err();
                c.stored.store(!failed, std::sync::atomic::Ordering::SeqCst);
                let _ = c.told.send(created);
                if failed {
                    return Err(Error::NotCreated);
                }
            }
        }
        if let Some(status) = self.state.finished {
            let end = RunEnd { status, output: self.state.output.clone(), error: self.state.error.clone() };
            self.ex.ends.ended(&self.run.id, &end);
        }
        self.committed_at = std::time::Instant::now();
        self.effect_pending = false;
        self.committed_seq += self.pending.len() as u64;
        let entries = std::mem::take(&mut self.pending);
        let _ = self.ex.progress.send(Progress { run_id: self.run.id.clone(), entries: Arc::new(entries) });
        Ok(())
    }

    /// A child run tells its parent before it records its own end, so the parent hears of it
    /// at least once even if this process dies in between.
    async fn notify_parent(&self) -> Result<(), Error> {
        let (Some(parent), Some(step)) = (&self.run.parent_run_id, &self.run.parent_step_key) else {
            return Ok(());
        };
        let signal = Signal::ChildFinished {
            step: step.clone(),
            child_run_id: self.run.id.clone(),
            output: self.state.output.clone(),
            error: self.state.error.clone(),
        };
        self.ex.signal_local(&self.run.workspace, parent, &signal).await
    }

    async fn apply_signals(&mut self) -> Result<(), Error> {
        let signals = self.ex.store.signals(&self.run.id).await?;
        let plan = self.compiled.clone();
        let engine = Engine::new(&plan.plan);
        for (id, signal) in signals {
            let now = self.now();
            let events = match signal {
                Signal::Cancel { reason } => engine.cancel(&mut self.state, &reason, now),
                Signal::Approval { step, approved, by, reason } => {
                    engine.decide(&mut self.state, &step, approved, &by, reason, now).unwrap_or_default()
                }
                Signal::ChildFinished { step, output, error, .. } => {
                    // The child can finish before this run has recorded that it started it;
                    // keep the signal until then.
                    if self.state.step(&step).is_some_and(|s| s.status == StepStatus::Running) {
                        continue;
                    }
                    let result = match error {
                        Some(e) => Err(steward_engine::StepError::new(
                            steward_engine::ErrorKind::Child,
                            format!("the called flow failed: {e}"),
                        )),
                        None => Ok(output.unwrap_or(Value::Null)),
                    };
                    engine.child_finished(&mut self.state, &step, result, now)
                }
            };
            self.push(events, now);
            self.consumed.push(id);
        }
        Ok(())
    }

    /// Starts an attempt: finishes it in place when it can be had at once (then returns true),
    /// else spawns it.
    fn start(&mut self, w: Work, now: Timestamp) -> bool {
        let started_at = self.state.step(&w.key).and_then(|s| s.started_at).unwrap_or(now);
        let attempt = Attempt {
            compiled: self.compiled.clone(),
            run_id: self.run.id.clone(),
            key: w.key.clone(),
            attempt: w.attempt,
            context: self.contexts.for_step(&self.compiled, &self.state, &w.key),
            started_at,
            now,
            records: self.state.step(&w.key).map(|s| s.records.clone()).unwrap_or_default(),
        };
        if let Some(outcome) = at_once(&attempt) {
            drop(attempt);
            self.on_outcome(&w.key, outcome);
            return true;
        }
        let services = self.ex.services.clone();
        let key = w.key.clone();
        let handle = self.in_flight.spawn(async move { (key, perform(attempt, services).await) });
        self.handles.insert(w.key, handle);
        false
    }

    /// Stops attempts of steps the engine cancelled (for example when a sibling failed).
    fn abort_cancelled(&mut self) {
        let state = &self.state;
        self.handles.retain(|key, handle| {
            let open = state.step(key).is_some_and(|s| s.status == StepStatus::Running);
            if !open {
                handle.abort();
            }
            open
        });
    }

    /// Waits for an outcome, a signal, a timer or a stop; false when the driver must quit now.
    async fn wait(&mut self) -> Result<bool, Error> {
        self.refresh_redactor().await;
        let now = self.now();
        let sleep_ms =
            self.engine().next_wake(&self.state).map(|w| (w.millis() - now.millis()).max(0) as u64);
        let sleep = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms.unwrap_or(3_600_000)));
        tokio::select! {
            Some(joined) = self.in_flight.join_next() => {
                self.on_joined(joined);
                while let Some(joined) = self.in_flight.try_join_next() {
                    self.on_joined(joined);
                }
            }
            _ = self.poke.notified() => self.check_signals = true,
            _ = sleep => {}
            changed = self.stop.changed() => return Ok(self.on_stop(changed.is_ok())),
        }
        Ok(true)
    }

    /// Takes note, without waiting, of signals and stops that arrived while steps finished in
    /// place; false when the driver must quit now. A chain of such steps (and of writes that
    /// commit in place) need never wait, so this also gives way to other tasks now and then,
    /// as Tokio's cooperative budget decides.
    async fn check_in(&mut self) -> bool {
        tokio::task::consume_budget().await;
        tokio::select! {
            biased;
            _ = self.poke.notified() => self.check_signals = true,
            changed = self.stop.changed() => return self.on_stop(changed.is_ok()),
            () = std::future::ready(()) => {}
        }
        true
    }

    /// Acts on a change of the stop channel (`changed` false: the executor is gone); false when
    /// the driver must quit now.
    fn on_stop(&mut self, changed: bool) -> bool {
        let stop = if changed { *self.stop.borrow() } else { Stop::LeaseLost };
        match stop {
            Stop::Run => true,
            Stop::Drain => {
                self.draining = true;
                true
            }
            Stop::LeaseLost => {
                self.in_flight.abort_all();
                false
            }
        }
    }

    fn on_joined(&mut self, joined: Result<(String, Done), tokio::task::JoinError>) {
        let Ok((key, done)) = joined else { return };
        self.handles.remove(&key);
        self.effect_pending = true;
        if !done.records.is_empty() {
            let mut records = done.records;
            for r in &mut records {
                self.redactor.1.redact_value(r);
            }
            let now = self.now();
            let plan = self.compiled.clone();
            let events = Engine::new(&plan.plan).record(&mut self.state, &key, records, now);
            self.push(events, now);
        }
        if !done.sent.is_empty() {
            let now = self.now();
            let plan = self.compiled.clone();
            let events = Engine::new(&plan.plan).receipts(&mut self.state, &key, done.sent, now);
            self.push(events, now);
        }
        self.on_outcome(&key, done.outcome);
    }

    /// Hands an outcome to the engine, with the workspace's secrets redacted from it.
    fn on_outcome(&mut self, key: &str, mut outcome: Outcome) {
        redact_outcome(&self.redactor.1, &mut outcome);
        let now = self.now();
        let plan = self.compiled.clone();
        let events = Engine::new(&plan.plan).outcome(&mut self.state, key, outcome, now);
        self.push(events, now);
    }

    /// Reads the workspace's secrets again when the redactor in use is older than the vault's
    /// refresh interval (long runs see connections created after they started).
    async fn refresh_redactor(&mut self) {
        if self.redactor.0.elapsed() >= crate::secrets::REDACTOR_TTL {
            let fresh = self.ex.services.vault.redactor(&self.run.workspace, self.now()).await;
            self.redactor = (std::time::Instant::now(), fresh);
        }
    }

    async fn finished(mut self) -> Result<(), Error> {
        self.in_flight.abort_all();
        let took = match (self.state.started_at, self.state.finished_at) {
            (Some(a), Some(b)) => b.millis() - a.millis(),
            _ => 0,
        };
        let status = self.state.finished.map_or("unknown", |s| s.as_str());
        // Ids, names and the error kind only: payloads and messages stay out of logs.
        let error_kind = self.state.error.as_ref().map(|e| format!("{:?}", e.kind));
        tracing::info!(run_id = %self.run.id, flow = %self.run.flow_name, status, took_ms = took, error_kind, "run finished");
        retention::apply(&self.ex.store, &self.compiled, &self.run.id).await
    }
}
