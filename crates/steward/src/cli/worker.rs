//! `steward worker`: an executor without the API, until interrupted (SIGINT or SIGTERM).

use std::process::ExitCode;

use clap::Args;
use tokio::sync::watch;

use crate::local::Location;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// How many runs this worker drives at once.
    #[arg(long, env = "STEWARD_MAX_RUNS", default_value_t = 256)]
    pub max_runs: usize,
    /// How long a claimed run stays with this worker without a heartbeat; a run of a worker
    /// that died is taken over after this long.
    #[arg(long, env = "STEWARD_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: std::time::Duration,
    #[command(flatten)]
    pub pruner: super::retention::PrunerArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    steward_flow::Duration::parse(s).map(|d| d.as_std())
}

pub async fn run(location: &Location, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store = location.open_all().await?;
    let keyring = std::sync::Arc::new(super::keys::open_keyring(location, store.clone()).await?);
    let executor =
        location.executor_with(store.clone(), keyring.clone(), args.max_runs, Some(args.lease), None)?;
    let (stop, stop_rx) = watch::channel(false);
    let pruner = super::retention::spawn_pruner(store.clone(), &args.pruner, stop_rx.clone());
    let follow = tokio::spawn(super::keys::follow_rotations(location.clone(), keyring, stop_rx.clone()));
    let worker = tokio::spawn({
        let executor = executor.clone();
        async move { executor.run(stop_rx).await }
    });
    tracing::info!("worker started");
    eprintln!("worker started; stop with Ctrl-C");
    super::shutdown_signal().await;
    eprintln!("stopping: letting in-flight steps finish");
    let _ = stop.send(true);
    worker.await??;
    if let Some(pruner) = pruner {
        pruner.await?;
    }
    follow.await?;
    Ok(ExitCode::SUCCESS)
}
