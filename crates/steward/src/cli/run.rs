//! `steward run FILE`: validate, store, run on the local store with live progress, print the
//! output; exit non-zero when the run fails, naming the failing step and its error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use steward_engine::{Event, RunStatus};
use steward_executor::Executor;
use steward_store::{DEFAULT_WORKSPACE, Store};
use tokio::sync::{broadcast, watch};

use super::flows::{Invalid, apply_file};
use crate::local::Location;
use crate::progress::Display;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow file (YAML or JSON).
    pub file: PathBuf,
    /// The run's inputs as JSON, or @FILE to read them from a file.
    #[arg(long)]
    pub input: Option<String>,
    /// Print the result as JSON and no progress.
    #[arg(long)]
    pub json: bool,
    /// Queue the run, print its id and exit; an executor (`steward worker`) runs it.
    #[arg(long)]
    pub detach: bool,
}

pub async fn run(location: &Location, args: RunArgs) -> anyhow::Result<ExitCode> {
    let all = location.open_all().await?;
    let store: std::sync::Arc<dyn steward_store::Store> = all.clone();
    let version = match apply_file(&store, &args.file, super::runs::now()).await {
        Ok(v) => v,
        Err(e) if e.is::<Invalid>() => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e),
    };
    let inputs = super::parse_input(args.input.as_deref())?;
    let executor = location.executor(all, 64, None, None).await?;
    let progress = executor.subscribe();
    let run_id = match executor.start_run(&version, inputs).await {
        Ok(id) => id,
        Err(steward_executor::Error::Invalid(m)) => {
            eprintln!("error: {m}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    if args.detach {
        println!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprintln!("run {run_id} ({} version {})", version.name, version.version);
    }
    follow(executor, progress, &run_id, args.json).await
}

/// Drives the local executor and shows the run's progress until it finishes.
pub async fn follow(
    executor: Executor,
    mut progress: broadcast::Receiver<steward_executor::Progress>,
    run_id: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = executor.store().clone();
    let (stop, stop_rx) = watch::channel(false);
    let worker = tokio::spawn({
        let executor = executor.clone();
        async move { executor.run(stop_rx).await }
    });
    let mut display = Display::new(json);
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = progress.recv() => match msg {
                Ok(p) if p.run_id == run_id => {
                    for entry in p.entries.iter() {
                        display.show(entry);
                        if let Event::StepSuspended { key, .. } = &entry.event
                            && !json {
                                eprintln!("  approve with: steward runs approve {run_id} {key}   (or reject)");
                            }
                    }
                    if p.entries.iter().any(|e| matches!(e.event, Event::RunFinished { .. })) {
                        break;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = check.tick() => {
                if store.run(DEFAULT_WORKSPACE, run_id).await.is_ok_and(|r| r.status.is_finished()) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                display.finish();
                let _ = stop.send(true);
                let _ = worker.await;
                eprintln!("interrupted; the run is kept and goes on the next time an executor runs (steward worker)");
                return Ok(ExitCode::from(130));
            }
        }
    }
    display.finish();
    let _ = stop.send(true);
    let _ = worker.await;
    report(&store, run_id, json).await
}

async fn report(store: &Arc<dyn Store>, run_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let run = store.run(DEFAULT_WORKSPACE, run_id).await?;
    if json {
        super::print_json(
            &json!({ "run_id": run.id, "status": run.status, "output": run.output, "error": run.error }),
        )?;
    } else {
        match (&run.status, &run.error) {
            // A text answer (an agent's, say) prints as text; anything else as JSON.
            (RunStatus::Succeeded, _) => match &run.output {
                Some(serde_json::Value::String(text)) => println!("{text}"),
                other => super::print_json(other)?,
            },
            (status, Some(e)) => {
                let step = e.step.as_deref().map(|s| format!(" at step `{s}`")).unwrap_or_default();
                eprintln!("run {} {}{step}: {}", run.id, status.as_str(), e.message);
            }
            (status, None) => eprintln!("run {} {}", run.id, status.as_str()),
        }
    }
    Ok(if run.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
