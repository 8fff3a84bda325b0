//! `prune`: how long the retention pruner of `steward serve` takes to delete N expired runs
//! (default 1,000,000) and what that does to the latency of a webhook load running meanwhile.
//!
//! Each repetition runs one finished run of a 3-step flow through an executor in this
//! process, then copies it and its journal N times with SQL, finished 400 days ago (past the
//! default 365 days of run metadata). Then:
//! 1. `steward serve --prune-interval off` with the sync webhook of the `webhook` scenario:
//!    200 warm-up deliveries, then `--secs` seconds of load on 4 connections (the baseline);
//! 2. the server is restarted with `--prune-interval 1s` (its first pass starts a second
//!    later) and the same load runs in rounds of 2 s until no expired run is left, which is
//!    checked every 250 ms with an indexed query from this process.
//!
//! Reported: the time from the restart to the last expired run gone, runs deleted per second,
//! and p50/p99 of the load before and while pruning, with the ratio of the p99s. Every
//! accepted delivery must have left a succeeded run, and no expired run may be left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sqlx::{Connection, Executor as _};
use steward_engine::RunStatus;
use steward_executor::Executor;
use steward_store::{DEFAULT_WORKSPACE, RunFilter};
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, Location, Running, now_millis, options, queue_runs};
use crate::process::{steward_bin, stop};
use crate::report::{Sample, round};
use crate::webhook::{self, Load, Phase, Secrets};

const EXPIRED_FLOW: &str = "name: bench-expired
steps:
  - id: a
    transform: '{ n: 1, note: \"an old run whose time is up\" }'
  - id: b
    transform: '.steps.a.output.n + 1'
  - id: c
    transform: '.steps.b.output + 1'
output: ${{ .steps.c.output }}
";

const LOAD_CONNECTIONS: usize = 4;
const ROUND: Duration = Duration::from_secs(2);
const SEED_CHUNK: usize = 100_000;
const DAY_MS: i64 = 86_400_000;

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.runs.unwrap_or(1_000_000);
    anyhow::ensure!(n >= 1, "--runs must be at least 1");
    let bin = steward_bin(args)?;
    let logs = tempfile::Builder::new().prefix("steward-bench-prune-").tempdir()?;
    let fresh = Fresh::new(args.db).await?;
    let template = template_run(&fresh).await?;
    let mut raw = Raw::open(&fresh.location).await?;
    let seeding = Instant::now();
    raw.seed(&template, n).await?;
    let seed_s = seeding.elapsed().as_secs_f64();
    eprintln!("seeded {n} expired runs in {seed_s:.1} s");
    let token = webhook::first_token(&bin, &fresh.location).await?;

    let log = logs.path().join("serve-baseline.log");
    let (mut server, addr) =
        webhook::serve(&bin, &fresh.location, &log, &["--prune-interval", "off"]).await?;
    let baseline = async {
        let hook = webhook::setup(addr, &token, Secrets::None, "").await?;
        let warm = webhook::phase(addr, &hook, LOAD_CONNECTIONS, Phase::Count(200)).await?;
        let secs = Duration::from_secs(args.secs);
        let load = webhook::phase(addr, &hook, LOAD_CONNECTIONS, Phase::For(secs)).await?;
        anyhow::ensure!(raw.expired_left().await?, "nothing may be pruned while pruning is off");
        Ok::<_, anyhow::Error>((hook, warm.ok, load))
    }
    .await;
    stop(&mut server).await;
    let (hook, warm_ok, mut before) = baseline.map_err(|e| webhook::with_log(e, &log))?;

    let log = logs.path().join("serve-pruning.log");
    let (mut server, addr) = webhook::serve(&bin, &fresh.location, &log, &["--prune-interval", "1s"]).await?;
    let pruning = async {
        let done = Arc::new(AtomicBool::new(false));
        let watcher = tokio::spawn(watch_until_pruned(raw, done.clone(), args.timeout()));
        let mut during = Load::default();
        while !done.load(Ordering::SeqCst) {
            during.absorb(webhook::phase(addr, &hook, LOAD_CONNECTIONS, Phase::For(ROUND)).await?);
        }
        let (raw, took) = watcher.await??;
        Ok::<_, anyhow::Error>((raw, took, during))
    }
    .await;
    stop(&mut server).await;
    let (mut raw, took, mut during) = pruning.map_err(|e| webhook::with_log(e, &log))?;
    anyhow::ensure!(!raw.expired_left().await?, "expired runs are left after pruning");
    raw.close().await?;

    let accepted = warm_ok + before.ok + during.ok;
    let filter =
        RunFilter { status: Some(RunStatus::Succeeded), limit: accepted + 2, ..RunFilter::default() };
    let recorded = fresh.store.list_runs(DEFAULT_WORKSPACE, &filter).await?;
    let hook_runs = recorded.iter().filter(|r| r.flow_name == "bench-hook").count();
    anyhow::ensure!(
        hook_runs == accepted,
        "{accepted} deliveries were answered but {hook_runs} runs are left"
    );
    fresh.close().await?;

    let prune_s = took.as_secs_f64();
    let (p99_before, p99_during) = (before.percentile_ms(0.99), during.percentile_ms(0.99));
    let sample = json!({
        "runs": n,
        "seed_s": round(seed_s),
        "prune_s": round(prune_s),
        "pruned_per_sec": round(n as f64 / prune_s),
        "before_req_per_sec": round(before.ok as f64 / before.elapsed.as_secs_f64()),
        "during_req_per_sec": round(during.ok as f64 / during.elapsed.as_secs_f64()),
        "before_p50_ms": round(before.percentile_ms(0.50)),
        "during_p50_ms": round(during.percentile_ms(0.50)),
        "before_p99_ms": round(p99_before),
        "during_p99_ms": round(p99_during),
        "p99_ratio": round(p99_during / p99_before.max(0.001)),
        "errors": before.errors + during.errors,
    });
    Ok(serde_json::from_value(sample)?)
}

/// Polls until no expired run is left; returns how long that took from its start.
async fn watch_until_pruned(
    mut raw: Raw,
    done: Arc<AtomicBool>,
    limit: Duration,
) -> anyhow::Result<(Raw, Duration)> {
    let start = Instant::now();
    let result = loop {
        if !raw.expired_left().await? {
            break Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            break Err(anyhow::anyhow!("expired runs were still left after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    done.store(true, Ordering::SeqCst);
    Ok((raw, result?))
}

/// One finished run of [`EXPIRED_FLOW`], made by the executor: the model for the copies.
async fn template_run(fresh: &Fresh) -> anyhow::Result<String> {
    let version = fresh.apply(EXPIRED_FLOW).await?;
    let executor = Executor::new(fresh.store.clone(), options(4))?;
    let id = queue_runs(&executor, &version, 1, 1).await?.pop().context("no run")?;
    let running = Running::start(&executor);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fresh.store.run(DEFAULT_WORKSPACE, &id).await?.status.is_finished() {
        anyhow::ensure!(Instant::now() < deadline, "the template run did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await?;
    Ok(id)
}

/// A plain connection to the benchmark's database, for what the store's interface does not
/// offer: copying runs in bulk and checking what is left.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// Copies of the template run `$3` numbered `$1..=$2`, finished 400 days before now (`$4`).
const SEED_RUNS_SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
     INSERT INTO runs (id, workspace_id, flow_version_id, flow_name, status, inputs, output, error, \
     created_at, updated_at, finished_at) \
     SELECT printf('expired-%08d', i), t.workspace_id, t.flow_version_id, t.flow_name, t.status, t.inputs, \
     t.output, t.error, $4 + i, $4 + i, $4 + i FROM n, runs t WHERE t.id = $3";
const SEED_EVENTS_SQLITE: &str = "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
     INSERT INTO run_events (run_id, seq, at, kind, step_key, data) \
     SELECT printf('expired-%08d', i), e.seq, $4 + i, e.kind, e.step_key, e.data \
     FROM n, run_events e WHERE e.run_id = $3 ORDER BY i, e.seq";
const SEED_RUNS_POSTGRES: &str = "INSERT INTO runs (id, workspace_id, flow_version_id, flow_name, status, \
     inputs, output, error, created_at, updated_at, finished_at) \
     SELECT 'expired-' || lpad(i::text, 8, '0'), t.workspace_id, t.flow_version_id, t.flow_name, t.status, \
     t.inputs, t.output, t.error, $4 + i, $4 + i, $4 + i \
     FROM generate_series($1::bigint, $2::bigint) AS i, runs t WHERE t.id = $3";
const SEED_EVENTS_POSTGRES: &str = "INSERT INTO run_events (run_id, seq, at, kind, step_key, data) \
     SELECT 'expired-' || lpad(i::text, 8, '0'), e.seq, $4 + i, e.kind, e.step_key, e.data \
     FROM generate_series($1::bigint, $2::bigint) AS i, run_events e WHERE e.run_id = $3";
/// Uses the pruner's own index, so it stays cheap while the table is large.
const EXPIRED_LEFT: &str = "SELECT EXISTS (SELECT 1 FROM runs WHERE workspace_id = $1 \
     AND flow_name = 'bench-expired' AND status IN ('succeeded', 'failed', 'cancelled') AND id LIKE 'expired-%')";

impl Raw {
    async fn open(location: &Location) -> anyhow::Result<Self> {
        Ok(match location {
            Location::DataDir(dir) => {
                let path = dir.join("steward.db");
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(Duration::from_secs(30));
                Raw::Sqlite(sqlx::SqliteConnection::connect_with(&options).await?)
            }
            Location::DatabaseUrl(url) => Raw::Postgres(sqlx::PgConnection::connect(url).await?),
        })
    }

    async fn seed(&mut self, template: &str, n: usize) -> anyhow::Result<()> {
        let finished = now_millis() - 400 * DAY_MS;
        let mut first = 1;
        while first <= n {
            let last = (first + SEED_CHUNK - 1).min(n);
            let (a, b) = (first as i64, last as i64);
            match self {
                Raw::Sqlite(c) => {
                    let mut tx = c.begin().await?;
                    for sql in [SEED_RUNS_SQLITE, SEED_EVENTS_SQLITE] {
                        let q = sqlx::query(sql).bind(a).bind(b).bind(template).bind(finished);
                        tx.execute(q).await?;
                    }
                    tx.commit().await?;
                }
                Raw::Postgres(c) => {
                    let mut tx = c.begin().await?;
                    for sql in [SEED_RUNS_POSTGRES, SEED_EVENTS_POSTGRES] {
                        let q = sqlx::query(sql).bind(a).bind(b).bind(template).bind(finished);
                        tx.execute(q).await?;
                    }
                    tx.commit().await?;
                }
            }
            eprintln!("seeded {last} of {n}");
            first = last + 1;
        }
        if let Raw::Postgres(c) = self {
            c.execute("ANALYZE").await?;
        }
        Ok(())
    }

    async fn expired_left(&mut self) -> anyhow::Result<bool> {
        let left: bool = match self {
            Raw::Sqlite(c) => sqlx::query_scalar(EXPIRED_LEFT).bind(DEFAULT_WORKSPACE).fetch_one(c).await?,
            Raw::Postgres(c) => sqlx::query_scalar(EXPIRED_LEFT).bind(DEFAULT_WORKSPACE).fetch_one(c).await?,
        };
        Ok(left)
    }

    async fn close(self) -> anyhow::Result<()> {
        match self {
            Raw::Sqlite(c) => c.close().await?,
            Raw::Postgres(c) => c.close().await?,
        }
        Ok(())
    }
}
