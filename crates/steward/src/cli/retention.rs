//! `steward retention prune`: one pass of the retention pruner on the local database, and
//! the `--prune-interval` of `steward serve` and `steward worker`, which run it in the
//! background.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use steward_executor::SystemClock;
use steward_server::pruner::{self, PassReport, PruneOptions};
use steward_store::ServerStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete what the retention policies (run data, audit entries, chat transcripts) and the
    /// 30-day grace period of deleted objects say is due (`--workspace` for one workspace
    /// only), and print what was deleted.
    Prune {
        /// Print what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How often the background pruner runs.
#[derive(Debug, Clone, Args)]
pub struct PrunerArgs {
    /// How often expired data is pruned (`10m`, `1h`, ...), or `off`.
    #[arg(long, env = "STEWARD_PRUNE_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub prune_interval: Interval,
}

/// A pruning interval; `None` when pruning is off.
#[derive(Debug, Clone, Copy)]
pub struct Interval(pub Option<Duration>);

fn parse_interval(s: &str) -> Result<Interval, String> {
    if s.trim() == "off" {
        return Ok(Interval(None));
    }
    let d = steward_flow::Duration::parse(s)?.as_std();
    if d < Duration::from_secs(1) {
        return Err("the prune interval must be at least 1s (or `off`)".to_owned());
    }
    Ok(Interval(Some(d)))
}

/// Starts the background pruner unless it is off; it stops when `stop` turns true.
pub fn spawn_pruner(
    store: Arc<dyn ServerStore>,
    args: &PrunerArgs,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let interval = args.prune_interval.0?;
    Some(tokio::spawn(pruner::run(store, Arc::new(SystemClock), interval, stop)))
}

pub async fn command(
    location: &Location,
    workspace: Option<&str>,
    cmd: RetentionCommand,
) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Prune { dry_run, json } = cmd;
    let store = location.open_all().await?;
    let options =
        PruneOptions { dry_run, workspace: workspace.map(str::to_owned), ..PruneOptions::default() };
    let report = pruner::pass(&*store, super::runs::now(), &options).await?;
    if json {
        super::print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &PassReport) {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    if report.removals.is_empty() {
        println!("nothing to delete");
    }
    for r in &report.removals {
        let workspace = r.workspace.as_deref().unwrap_or("(no workspace)");
        let what = match (&r.object, r.category.as_str()) {
            (Some(object), _) => format!("purge of {object}"),
            (None, "audit") => "audit".to_owned(),
            (None, "transcripts") => "chat transcripts".to_owned(),
            (None, category) => format!("{category} of {} runs", r.runs),
        };
        let tables: Vec<String> = r.tables.iter().map(|t| format!("{} {}", t.table, t.rows)).collect();
        println!("{workspace}\t{what}\t{verb} {} rows ({})", r.rows, tables.join(", "));
    }
}
