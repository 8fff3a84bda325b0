//! `steward runs list|show|logs|cancel|approve|reject` on the local store.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use serde_json::{Value, json};
use steward_engine::{Entry, Event, RunState, RunStatus, Timestamp};
use steward_store::{DEFAULT_WORKSPACE, RunFilter, Signal};

use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        #[arg(long)]
        flow: Option<String>,
        /// queued, running, waiting, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show runs older than this run id (the next page).
        #[arg(long)]
        before: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a run and its step timeline.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's journal.
    Logs {
        run: String,
        /// Keep printing until the run finishes.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run; in-flight steps are stopped.
    Cancel {
        run: String,
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Show a run's data-flow receipt: which outside processors received data, from which
    /// steps, under which connections, how many bytes (never the data).
    Receipt {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// The record of processing: every outside processor that received data from runs in
    /// the last `--days` days, with counts.
    Processing {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Approve an approval step, then follow the run.
    Approve(Decision),
    /// Reject an approval step, then follow the run.
    Reject(Decision),
}

#[derive(Debug, clap::Args)]
pub struct Decision {
    pub(crate) run: String,
    pub(crate) step: String,
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Who decides (recorded in the journal).
    #[arg(long, env = "USER", default_value = "cli")]
    by: String,
    /// Record the decision and exit instead of running the rest of the flow here.
    #[arg(long)]
    detach: bool,
    #[arg(long)]
    json: bool,
}

pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    Timestamp(ms as i64)
}

pub async fn command(location: &Location, cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    let store = location.open().await?;
    let ws = DEFAULT_WORKSPACE;
    match cmd {
        RunsCommand::List { flow, status, limit, before, json } => {
            let status = match status.as_deref().map(|s| RunStatus::parse(s).ok_or(s)) {
                Some(Err(s)) => anyhow::bail!(
                    "unknown status `{s}`: use queued, running, waiting, succeeded, failed or cancelled"
                ),
                Some(Ok(s)) => Some(s),
                None => None,
            };
            let runs = store.list_runs(ws, &RunFilter { flow, status, since: None, before, limit }).await?;
            if json {
                super::print_json(&runs)?;
            } else {
                println!("{:<38} {:<24} {:<10} {:>10}", "RUN", "FLOW", "STATUS", "AGE");
                let now = now().millis();
                for r in runs {
                    println!(
                        "{:<38} {:<24} {:<10} {:>10}",
                        r.id,
                        r.flow_name,
                        r.status.as_str(),
                        age(now - r.created_at.millis())
                    );
                }
            }
        }
        RunsCommand::Show { run, json } => show(&store, &run, json).await?,
        RunsCommand::Logs { run, follow, json } => logs(&store, &run, follow, json).await?,
        RunsCommand::Cancel { run, reason } => {
            store.signal(ws, &run, &Signal::Cancel { reason }, now()).await?;
            eprintln!("cancellation requested for run {run}");
        }
        RunsCommand::Receipt { run, json } => {
            let run = store.run(ws, &run).await?;
            let receipt = steward_store::RunReceipt::from_journal(&run.id, &store.journal(&run.id).await?);
            print_receipt(&serde_json::to_value(receipt)?, json)?;
        }
        RunsCommand::Processing { days, json } => {
            let all = location.open_all().await?;
            let to = now();
            let from = Timestamp(to.0 - i64::from(days) * 86_400_000);
            let records = all.data_sent(ws, from, to).await?;
            let record = steward_store::ProcessingRecord::from_records(from, to, &records);
            print_processing(&serde_json::to_value(record)?, json)?;
        }
        RunsCommand::Approve(d) => return decide(location, d, true).await,
        RunsCommand::Reject(d) => return decide(location, d, false).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a receipt (`RunReceipt` as JSON, from the store or the API).
pub(crate) fn print_receipt(receipt: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(receipt);
    }
    let processors = receipt["processors"].as_array().cloned().unwrap_or_default();
    if processors.is_empty() {
        println!("no data left Steward during this run");
        return Ok(());
    }
    println!(
        "{:<32} {:>8} {:>10}  {:<20} {:<24} CATEGORIES",
        "PROCESSOR", "REQUESTS", "BYTES", "CONNECTIONS", "STEPS"
    );
    for p in &processors {
        println!(
            "{:<32} {:>8} {:>10}  {:<20} {:<24} {}",
            p["host"].as_str().unwrap_or("?"),
            p["requests"],
            p["bytes"],
            list(&p["connections"]),
            list(&p["senders"]),
            list(&p["categories"])
        );
    }
    Ok(())
}

/// Prints a record of processing (`ProcessingRecord` as JSON).
pub(crate) fn print_processing(record: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(record);
    }
    println!(
        "{:<32} {:>6} {:>8} {:>10}  {:<20} {:<24} CATEGORIES",
        "PROCESSOR", "RUNS", "REQUESTS", "BYTES", "CONNECTIONS", "FLOWS"
    );
    for p in record["processors"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {:>6} {:>8} {:>10}  {:<20} {:<24} {}",
            p["host"].as_str().unwrap_or("?"),
            p["runs"],
            p["requests"],
            p["bytes"],
            list(&p["connections"]),
            list(&p["senders"]),
            list(&p["categories"])
        );
    }
    Ok(())
}

fn list(v: &Value) -> String {
    let items: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

async fn decide(location: &Location, d: Decision, approved: bool) -> anyhow::Result<ExitCode> {
    let all = location.open_all().await?;
    let store: std::sync::Arc<dyn steward_store::Store> = all.clone();
    let run = store.run(DEFAULT_WORKSPACE, &d.run).await?;
    let pending = steward_executor::pending_approvals(store.as_ref(), &run).await?;
    if !pending.iter().any(|p| p.step == d.step) {
        anyhow::bail!("step `{}` of run {} is not waiting for an approval", d.step, run.id);
    }
    let signal =
        Signal::Approval { step: d.step.clone(), approved, by: d.by.clone(), reason: d.reason.clone() };
    let executor = location.executor(all, 64, None, None).await?;
    let progress = executor.subscribe();
    executor.signal(DEFAULT_WORKSPACE, &run.id, &signal).await?;
    eprintln!("{} step `{}` of run {}", if approved { "approved" } else { "rejected" }, d.step, run.id);
    if d.detach {
        return Ok(ExitCode::SUCCESS);
    }
    super::run::follow(executor, progress, &run.id, d.json).await
}

async fn show(store: &std::sync::Arc<dyn steward_store::Store>, id: &str, json: bool) -> anyhow::Result<()> {
    let run = store.run(DEFAULT_WORKSPACE, id).await?;
    let journal = store.journal(&run.id).await?;
    let version = store.version(DEFAULT_WORKSPACE, &run.flow_version_id).await?;
    let compiled = steward_executor::Compiled::new(version)?;
    let state = RunState::replay(&compiled.plan, &journal);
    let steps: Vec<Value> = state
        .steps
        .iter()
        .map(|(key, s)| {
            json!({
                "key": key,
                "status": s.status.as_str(),
                "attempt": s.attempt,
                "started_at": s.started_at.map(|t| t.millis()),
                "finished_at": s.finished_at.map(|t| t.millis()),
                "error": s.error,
            })
        })
        .collect();
    if json {
        return super::print_json(&json!({ "run": run, "steps": steps }));
    }
    println!(
        "run      {}\nflow     {} (version {})\nstatus   {}",
        run.id,
        run.flow_name,
        compiled.version.version,
        run.status.as_str()
    );
    if let Some(e) = &run.error {
        println!("error    {e}");
    }
    println!("\n{:<32} {:<14} {:>7} {:>9}", "STEP", "STATUS", "ATTEMPT", "TOOK");
    for (key, s) in &state.steps {
        let took = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => format!("{}ms", b.millis() - a.millis()),
            _ => "-".into(),
        };
        println!("{key:<32} {:<14} {:>7} {took:>9}", s.status.as_str(), s.attempt);
    }
    Ok(())
}

async fn logs(
    store: &std::sync::Arc<dyn steward_store::Store>,
    id: &str,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let run = store.run(DEFAULT_WORKSPACE, id).await?;
    let mut seen = 0u64;
    loop {
        let after = seen;
        for e in store.journal(&run.id).await?.into_iter().filter(|e| e.seq > after) {
            seen = e.seq;
            if json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!("{}", describe(&e));
            }
        }
        let finished = store.run(DEFAULT_WORKSPACE, &run.id).await?.status.is_finished();
        if !follow || finished {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// One journal entry as a log line, without payloads.
fn describe(e: &Entry) -> String {
    let detail = match &e.event {
        Event::StepStarted { attempt, .. } => format!("attempt {attempt}"),
        Event::StepRetrying { attempt, error, retry_at, .. } => {
            format!("attempt {attempt} failed: {}; retry at {}", error.message, retry_at.millis())
        }
        Event::StepFailed { error, continued, .. } => {
            format!("{}{}", error.message, if *continued { " (continuing)" } else { "" })
        }
        Event::ApprovalDecided { approved, by, reason, .. } => format!(
            "{} by {by}{}",
            if *approved { "approved" } else { "rejected" },
            reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        Event::BranchTaken { case, .. } => format!("case {}", case.map_or("none".into(), |c| c.to_string())),
        Event::ItemsResolved { items, .. } => format!("{} items", items.len()),
        Event::ItemStarted { index, .. } => format!("item {index}"),
        Event::ChildStarted { child_run_id, .. } => format!("child run {child_run_id}"),
        Event::RunFinished { status, error, .. } => {
            format!("{}{}", status.as_str(), error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())
        }
        Event::RunCancelled { reason } => reason.clone(),
        _ => String::new(),
    };
    let key = e.event.key().unwrap_or("");
    format!("{:>4} {} {:<18} {key} {detail}", e.seq, e.at.millis(), e.event.kind()).trim_end().to_owned()
}

fn age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
