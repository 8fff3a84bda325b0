//! The scheduler loop every `steward serve` runs: it starts the run of each due tick and moves
//! the schedule on.
//!
//! Exactly one run per tick, however many servers share the database: the run's id is derived
//! from (schedule, tick), so a second server's start fails with a conflict and starts nothing,
//! and the tick moves on with a compare-and-set. The run is queued before the tick moves, so a
//! crash in between repeats the (idempotent) start instead of losing the tick.

use std::time::Duration;

use serde_json::json;
use steward_engine::Timestamp;
use steward_store::Schedule;
use tokio::sync::watch;

use crate::schedule::{self, CatchUp, Timetable};
use crate::state::AppState;

/// The longest the loop sleeps, so schedules created by other servers are noticed.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Due schedules handled per pass.
const BATCH: usize = 100;

/// Runs until `shutdown` turns true.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let busy = match pass(&state).await {
            Ok(n) => n == BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler pass failed; trying again shortly");
                false
            }
        };
        let sleep = if busy { Duration::ZERO } else { sleep_time(&state).await };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn sleep_time(state: &AppState) -> Duration {
    let next = state.store().next_schedule_tick().await.ok().flatten();
    let now = state.now();
    next.map_or(MAX_SLEEP, |t| Duration::from_millis(u64::try_from(t.0 - now.0).unwrap_or(0)).min(MAX_SLEEP))
}

/// Handles every schedule due now; returns how many there were.
pub async fn pass(state: &AppState) -> Result<usize, steward_store::Error> {
    let now = state.now();
    let due = state.store().due_schedules(now, BATCH).await?;
    for s in &due {
        let Some(tick) = s.next_fire_at else { continue };
        let (fire, next) = match plan(s, tick, now) {
            Ok(step) => (step.fire, step.next.map(Timestamp)),
            Err(e) => {
                tracing::warn!(schedule = %s.id, error = %e, "schedule cannot be evaluated; it is stopped");
                (None, None)
            }
        };
        if let Some(at) = fire {
            fire_tick(state, s, at).await;
        }
        state.store().advance_schedule(&s.id, tick, next).await?;
    }
    Ok(due.len())
}

fn plan(s: &Schedule, tick: Timestamp, now: Timestamp) -> Result<schedule::Step, String> {
    let table = Timetable::parse(&s.cron, &s.timezone)?;
    let catch_up: CatchUp = s.catch_up.parse()?;
    Ok(schedule::step(&table, tick.0, now.0, catch_up))
}

/// The id of the run of `schedule`'s tick at `at`.
pub fn run_id(schedule: &str, at: i64) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("schedule/{schedule}/{at}").as_bytes()).to_string()
}

/// Starts the tick's run unless another server did; problems are logged, and the tick is not
/// retried (its time has passed).
async fn fire_tick(state: &AppState, s: &Schedule, at: i64) {
    let version = match state.startable_version(&s.workspace_id, &s.flow_name).await {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(schedule = %s.id, tick = at, reason = %e.message, "scheduled tick skipped");
            return;
        }
    };
    let trigger =
        json!({ "kind": "schedule", "schedule": s.id, "tick": at, "cron": s.cron, "timezone": s.timezone });
    match state.executor().start_triggered(&version, s.inputs.clone(), run_id(&s.id, at), trigger).await {
        Ok(_) => state.metrics().run_started("schedule"),
        Err(steward_executor::Error::Store(steward_store::Error::Conflict(_))) => {}
        Err(e) => tracing::warn!(schedule = %s.id, tick = at, error = %e, "scheduled run could not start"),
    }
}
