//! `step-overhead`: what one durable step costs when nothing else happens.
//!
//! One run of a chain of `transform` steps (`s0: '0'`, `sN: '.steps.s<N-1>.output + 1'`) on a
//! fresh store, driven by an executor in this process that is already idle-waiting. The clock
//! runs from `start_run` until the executor announces `RunFinished` for the run on its
//! progress stream; that time divided by the number of steps is the overhead per durable step.
//! The flow is compiled before the clock starts, so parsing the flow's jq is not counted; that
//! one-off cost (once per flow version and process) is reported as `compile_ms`.
//!
//! Besides the wall time it reports, per step, how many commits and journal events there were
//! and how much of the time was spent inside the store's `append` (the commit; a run's commits
//! happen one after the other, so the rest is everything else on the run's path), plus calls
//! and time per store method, from the [`crate::timed`] wrapper.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use steward_executor::Executor;
use steward_store::DEFAULT_WORKSPACE;
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, Running, options};
use crate::report::{Sample, round};
use crate::watch::Finishes;

/// A flow of `n` transform steps, each reading the one before it.
pub fn chain_flow(n: usize) -> String {
    let mut yaml = String::from("name: bench-chain\nsteps:\n  - id: s0\n    transform: '0'\n");
    for i in 1..n {
        let _ = write!(yaml, "  - id: s{i}\n    transform: '.steps.s{}.output + 1'\n", i - 1);
    }
    let _ = writeln!(yaml, "output: ${{{{ .steps.s{}.output }}}}", n - 1);
    yaml
}

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.steps;
    anyhow::ensure!(n >= 1, "--steps must be at least 1");
    let fresh = Fresh::new(args.db).await?;
    let version = fresh.apply(&chain_flow(n)).await?;
    let executor = Executor::new(fresh.store.clone(), options(args.max_runs))?;
    let compile_start = Instant::now();
    executor.compiled(&version.workspace, &version.id).await?;
    let compiled = compile_start.elapsed();
    let running = Running::start(&executor);
    // Let the loop find nothing to do and start waiting for a wake-up.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut finishes = Finishes::subscribe(&executor);
    let before = fresh.timing.snapshot();
    let start = Instant::now();
    let id = executor.start_run(&version, json!({})).await?;
    let queued = start.elapsed();
    finishes.until(&fresh.store, 1, args.timeout()).await?;
    let elapsed = start.elapsed();
    let spent = fresh.timing.snapshot().since(&before);
    running.stop().await?;

    let run = fresh.store.run(DEFAULT_WORKSPACE, &id).await?;
    anyhow::ensure!(run.output == Some(json!(n - 1)), "unexpected output {:?}", run.output);
    let journal = fresh.store.journal(&id).await.context("reading the journal")?.len();
    drop(executor);
    fresh.close().await?;

    let per_step = |d: f64| round(d / n as f64);
    let total_us = elapsed.as_secs_f64() * 1e6;
    let commit_us = spent.ns("append") as f64 / 1000.0;
    let commits = spent.calls("append");
    let sample = json!({
        "steps": n,
        "us_per_step": per_step(total_us),
        "commit_us_per_step": per_step(commit_us),
        "rest_us_per_step": per_step(total_us - commit_us),
        "commit_us_mean": round(commit_us / commits.max(1) as f64),
        "commits_per_step": per_step(commits as f64),
        "events_per_step": per_step(journal as f64),
        "events_per_commit": round(spent.append_entries as f64 / commits.max(1) as f64),
        "total_ms": round(total_us / 1000.0),
        "start_run_us": round(queued.as_secs_f64() * 1e6),
        "compile_ms": round(compiled.as_secs_f64() * 1e3),
        "journal_events": journal,
        "store_calls": spent.to_json(),
        "stream_commits": finishes.commits,
        "lagged": finishes.lagged,
    });
    Ok(serde_json::from_value(sample)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_flow_is_valid_and_reads_each_previous_step() {
        let yaml = chain_flow(3);
        let loaded = steward_flow::load("chain.yaml", &yaml).expect("valid flow");
        assert_eq!(loaded.flow.steps.len(), 3);
        assert!(yaml.contains(".steps.s1.output + 1"));
        assert!(yaml.contains("output: ${{ .steps.s2.output }}"));
    }
}
