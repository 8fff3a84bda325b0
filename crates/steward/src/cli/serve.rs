//! `steward serve`: the API and an executor in one process, on one port.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use steward_server::{AppState, Settings};
use tokio::sync::watch;

use crate::local::Location;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the options below (flags and STEWARD_* variables override it).
    /// Read when present; an explicitly given file must exist.
    #[arg(long, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub pruner: super::retention::PrunerArgs,
}

pub async fn run(location: &Location, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path, true),
        None => Settings::from_file(std::path::Path::new("steward.toml"), false),
    }
    .map_err(anyhow::Error::msg)?;
    let config = args.settings.over(file).resolve().map_err(anyhow::Error::msg)?;
    let store = location.open_all().await?;
    // Stops here, before listening, when the master key does not fit the database.
    let keyring = Arc::new(super::keys::open_keyring(location, store.clone()).await?);
    let executor =
        location.executor_with(store.clone(), keyring.clone(), config.max_runs, None, Some(config.drain))?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let address = listener.local_addr()?;
    if store.count_users().await? == 0 {
        eprintln!(
            "No accounts yet. Create the first one (it owns the `default` workspace) with:\n  \
             steward admin create-user --email you@example.com --password-stdin"
        );
    }
    let state = AppState::new(store.clone(), executor.clone(), config, keyring.clone());
    let (stop, stop_rx) = watch::channel(false);
    let scheduler = tokio::spawn(steward_server::scheduler::run(state.clone(), stop_rx.clone()));
    let pruner = super::retention::spawn_pruner(store.clone(), &args.pruner, stop_rx.clone());
    let follow =
        tokio::spawn(super::keys::follow_rotations(location.clone(), keyring.clone(), stop_rx.clone()));
    let worker = tokio::spawn({
        let executor = executor.clone();
        async move { executor.run(stop_rx).await }
    });
    tracing::info!(%address, "serving");
    eprintln!("serving on http://{address} (API description at http://{address}/api/docs); stop with Ctrl-C");
    let app = steward_server::app(state);
    steward_server::serve(listener, app, super::shutdown_signal()).await.context("the server failed")?;
    eprintln!("stopping: letting in-flight steps finish");
    let _ = stop.send(true);
    worker.await??;
    scheduler.await?;
    if let Some(pruner) = pruner {
        pruner.await?;
    }
    follow.await?;
    Ok(ExitCode::SUCCESS)
}
