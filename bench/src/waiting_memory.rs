//! `waiting-memory`: the memory of a real `steward worker` process that moves N runs (default
//! 10,000) into `waiting`.
//!
//! On a fresh store, N runs of `nap` (`wait: 1h`, then a `transform`) are queued from this
//! process, with no executor loop running. Then the release `steward` binary is started as
//! `steward worker --max-runs 256 --lease 30s` against the same store. Every run is claimed,
//! starts its wait, and is handed back (status `waiting`, no lease, no task in the worker).
//! When no run is `queued` or `running` any more, the worker's `VmHWM` (peak resident memory)
//! and `VmRSS` are read from `/proc/<pid>/status` and the worker is killed.
//!
//! For comparison, the same binary is first started on the empty store and its `VmRSS` read
//! after a second (`idle_rss_mib`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use steward_engine::RunStatus;
use steward_executor::Executor;
use steward_store::{DEFAULT_WORKSPACE, RunFilter, Store};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, Location, options, queue_runs};
use crate::process::{read_memory, steward_bin, stop};
use crate::report::{Sample, round};

pub const FLOW: &str = "name: bench-nap
steps:
  - id: nap
    wait: 1h
  - id: after
    transform: '1'
";

/// Runs queued at a time while preparing.
const QUEUE_PARALLEL: usize = 16;
/// How often the store is asked whether every run is waiting.
const POLL: Duration = Duration::from_millis(100);

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.runs.unwrap_or(10_000);
    let bin = steward_bin(args)?;
    let logs = tempfile::Builder::new().prefix("steward-bench-worker-").tempdir()?;
    let fresh = Fresh::new(args.db).await?;
    let version = fresh.apply(FLOW).await?;

    let idle = {
        let mut worker = spawn_worker(&bin, &fresh.location, args, &logs.path().join("idle.log"))?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let memory = read_memory(&worker);
        stop(&mut worker).await;
        memory?
    };

    let executor = Executor::new(fresh.store.clone(), options(args.max_runs))?;
    let queue_start = Instant::now();
    queue_runs(&executor, &version, n, QUEUE_PARALLEL).await?;
    let queued = queue_start.elapsed();
    drop(executor);

    let log = logs.path().join("worker.log");
    let start = Instant::now();
    let mut worker = spawn_worker(&bin, &fresh.location, args, &log)?;
    let result = async {
        all_waiting(&fresh.store, &mut worker, args.timeout(), &log).await?;
        let elapsed = start.elapsed();
        let memory = read_memory(&worker)?;
        Ok::<_, anyhow::Error>((elapsed, memory))
    }
    .await;
    stop(&mut worker).await;
    let (elapsed, memory) = result?;

    let filter = RunFilter { status: Some(RunStatus::Waiting), limit: n + 1, ..RunFilter::default() };
    let waiting = fresh.store.list_runs(DEFAULT_WORKSPACE, &filter).await?.len();
    anyhow::ensure!(waiting == n, "{waiting} of {n} runs are waiting");
    fresh.close().await?;

    let secs = elapsed.as_secs_f64();
    let sample = serde_json::json!({
        "runs": n,
        "peak_rss_mib": round(memory.hwm_kib as f64 / 1024.0),
        "rss_mib": round(memory.rss_kib as f64 / 1024.0),
        "idle_rss_mib": round(idle.rss_kib as f64 / 1024.0),
        "to_waiting_s": round(secs),
        "runs_per_sec_to_waiting": round(n as f64 / secs),
        "queue_s": round(queued.as_secs_f64()),
    });
    Ok(serde_json::from_value(sample)?)
}

fn spawn_worker(bin: &Path, location: &Location, args: &RunArgs, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    Command::new(bin)
        .args(location.flags())
        .args(["worker", "--max-runs", &args.max_runs.to_string(), "--lease", "30s"])
        .env("STEWARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

/// Waits until no run is `queued` or `running`: two one-row queries per look.
async fn all_waiting(
    store: &std::sync::Arc<dyn Store>,
    worker: &mut Child,
    timeout: Duration,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = worker.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            anyhow::bail!("the worker exited early ({status}):\n{tail}");
        }
        let mut busy = false;
        for status in [RunStatus::Queued, RunStatus::Running] {
            let filter = RunFilter { status: Some(status), limit: 1, ..RunFilter::default() };
            busy |= !store.list_runs(DEFAULT_WORKSPACE, &filter).await?.is_empty();
        }
        if !busy {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out after {timeout:?} waiting for runs to wait");
        tokio::time::sleep(POLL).await;
    }
}
