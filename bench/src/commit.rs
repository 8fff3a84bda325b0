//! `commit`: the store's `append` alone, without an executor: what one durable step's commit
//! costs, and what each further event in the same commit adds.
//!
//! On a fresh store one run is created and claimed; then `--runs` appends (default 2000) are
//! made one after the other, alternating between a step-shaped commit of three events
//! (`StepSucceeded` of the previous step, `StepScheduled` and `StepStarted` of the next, as the
//! executor commits them) and a commit of one event. Each append is a transaction: check the
//! lease, check the journal's last `seq`, insert the events, update the run row, commit.
//! For scale, it also times a one-statement read (`run`, by primary key), `--runs` times.

use serde_json::json;
use steward_engine::{Entry, Event, Timestamp};
use steward_executor::Executor;
use steward_store::{Append, DEFAULT_WORKSPACE, RunUpdate};
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, options};
use crate::report::{Sample, round};
use crate::step_overhead::chain_flow;

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.runs.unwrap_or(2000);
    anyhow::ensure!(n >= 2, "--runs must be at least 2");
    let fresh = Fresh::new(args.db).await?;
    let version = fresh.apply(&chain_flow(1)).await?;
    let executor = Executor::new(fresh.store.clone(), options(1))?;
    let run_id = executor.start_run(&version, json!({})).await?;
    let owner = "bench-commit";
    let claimed = fresh.store.claim(owner, executor.now(), 600_000, 1).await?;
    anyhow::ensure!(claimed.len() == 1, "could not claim the run");
    let mut seq = fresh.store.journal(&run_id).await?.len() as u64;

    let (mut three, mut one) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for i in 0..n {
        let at = Timestamp(executor.now().millis());
        let key = format!("s{i}");
        let mut events = vec![Event::StepSucceeded { key: key.clone(), output: json!(i) }];
        if i % 2 == 0 {
            let next = format!("s{}", i + 1);
            events.push(Event::StepScheduled { key: next.clone() });
            events.push(Event::StepStarted { key: next, attempt: 1 });
        }
        let entries: Vec<Entry> = events
            .into_iter()
            .enumerate()
            .map(|(k, event)| Entry { seq: seq + 1 + k as u64, at, event })
            .collect();
        let append = Append {
            run_id: &run_id,
            owner,
            after_seq: seq,
            entries: &entries,
            update: RunUpdate::default(),
            now: at,
        };
        let start = Instant::now();
        fresh.store.append(append).await?;
        let spent = start.elapsed();
        if entries.len() == 3 {
            three += spent
        } else {
            one += spent
        }
        seq += entries.len() as u64;
    }
    // One statement, for scale: a read of the run row by its key.
    let start = Instant::now();
    for _ in 0..n {
        fresh.store.run(DEFAULT_WORKSPACE, &run_id).await?;
    }
    let read = start.elapsed();
    drop(executor);
    fresh.close().await?;

    let (n3, n1) = (n.div_ceil(2) as f64, (n / 2) as f64);
    let us3 = three.as_secs_f64() * 1e6 / n3;
    let us1 = one.as_secs_f64() * 1e6 / n1;
    let sample = json!({
        "appends": n,
        "append_3_events_us": round(us3),
        "append_1_event_us": round(us1),
        "us_per_extra_event": round((us3 - us1) / 2.0),
        "read_1_row_us": round(read.as_secs_f64() * 1e6 / n as f64),
    });
    Ok(serde_json::from_value(sample)?)
}
