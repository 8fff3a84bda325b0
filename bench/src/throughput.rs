//! `throughput`: how many runs per second one executor finishes.
//!
//! N runs (default 1000) of a 3-step flow (`transform` ×3) are queued on a fresh store before
//! the executor starts; then an executor in this process (`max_runs` 256 by default) starts,
//! and the clock runs until it has announced `RunFinished` for all N.

use serde_json::json;
use steward_engine::RunStatus;
use steward_executor::Executor;
use steward_store::{DEFAULT_WORKSPACE, RunFilter};
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, Running, options, queue_runs};
use crate::report::{Sample, round};
use crate::watch::Finishes;

pub const FLOW: &str = "name: bench-three
steps:
  - id: a
    transform: '1'
  - id: b
    transform: '.steps.a.output + 1'
  - id: c
    transform: '.steps.b.output + 1'
output: ${{ .steps.c.output }}
";

/// Runs queued at a time while preparing.
const QUEUE_PARALLEL: usize = 8;

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.runs.unwrap_or(1000);
    anyhow::ensure!(n >= 1, "--runs must be at least 1");
    let fresh = Fresh::new(args.db).await?;
    let version = fresh.apply(FLOW).await?;
    let executor = Executor::new(fresh.store.clone(), options(args.max_runs))?;
    let queue_start = Instant::now();
    queue_runs(&executor, &version, n, QUEUE_PARALLEL).await?;
    let queued = queue_start.elapsed();

    let mut finishes = Finishes::subscribe(&executor);
    let before = fresh.timing.snapshot();
    let start = Instant::now();
    let running = Running::start(&executor);
    finishes.until(&fresh.store, n, args.timeout()).await?;
    let elapsed = start.elapsed();
    let spent = fresh.timing.snapshot().since(&before);
    running.stop().await?;

    let filter = RunFilter { status: Some(RunStatus::Succeeded), limit: n + 1, ..RunFilter::default() };
    let succeeded = fresh.store.list_runs(DEFAULT_WORKSPACE, &filter).await?.len();
    anyhow::ensure!(succeeded == n, "{succeeded} of {n} runs succeeded");
    drop(executor);
    fresh.close().await?;

    let secs = elapsed.as_secs_f64();
    let sample = json!({
        "runs": n,
        "runs_per_sec": round(n as f64 / secs),
        "steps_per_sec": round(3.0 * n as f64 / secs),
        "total_s": round(secs),
        "commits_per_run": round(spent.calls("append") as f64 / n as f64),
        "commit_ms_mean": round(spent.ns("append") as f64 / 1e6 / spent.calls("append").max(1) as f64),
        "claims": spent.calls("claim"),
        "queue_s": round(queued.as_secs_f64()),
        "lagged": finishes.lagged,
    });
    Ok(serde_json::from_value(sample)?)
}
