//! `steward validate`, `steward schema flow`, `steward flows apply|list`, and loading flow
//! files into the store (shared with `steward run`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use steward_flow::LoadedFlow;
use steward_store::{DEFAULT_WORKSPACE, FlowVersion, Store};

use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Validate flow files and store each as a new version (unchanged files keep their version).
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List stored flows.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print a flow's newest version (its file as applied).
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a flow (restorable; its runs and versions stay).
    Delete { name: String },
}

/// A flow file that failed validation; its message names file, line and column.
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Reads and fully validates a flow file, including the syntax of its JavaScript.
pub fn load_file(path: &Path) -> anyhow::Result<(LoadedFlow, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let loaded =
        steward_executor::validate(&path.display().to_string(), &text).map_err(|e| Invalid(e.to_string()))?;
    Ok((loaded, text))
}

/// Validates and stores a flow file, and the flows it calls that are not stored yet when a
/// file `<name>.yaml` (or `.yml`, `.json`) sits next to it.
pub async fn apply_file(
    store: &Arc<dyn Store>,
    path: &Path,
    now: steward_engine::Timestamp,
) -> anyhow::Result<FlowVersion> {
    let (loaded, text) = load_file(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for (called, at) in steward_executor::called_flows(&loaded.flow.steps) {
        let sibling = ["yaml", "yml", "json"]
            .iter()
            .map(|ext| dir.join(format!("{called}.{ext}")))
            .find(|p| p.exists());
        match sibling {
            // Applying an unchanged file keeps its version, so this is cheap and picks up edits.
            Some(file) if file != path => {
                Box::pin(apply_file(store, &file, now)).await?;
            }
            _ if store.latest_version(DEFAULT_WORKSPACE, &called).await?.is_some() => {}
            _ => {
                let message = format!(
                    "this calls flow `{called}`, which is not stored and has no file `{called}.yaml` next to this one"
                );
                let err = steward_flow::located_error(
                    &path.display().to_string(),
                    &loaded.locations,
                    vec![(at, message)],
                );
                return Err(Invalid(err.to_string()).into());
            }
        }
    }
    let new =
        steward_executor::new_version(DEFAULT_WORKSPACE, &path.display().to_string(), text, &loaded, now);
    Ok(store.save_version(new).await?)
}

pub fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for f in files {
        match load_file(f) {
            Ok((loaded, _)) => eprintln!("{}: ok ({} steps)", f.display(), loaded.flow.steps.len()),
            Err(e) => {
                ok = false;
                eprintln!("{e:#}");
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub fn schema() -> anyhow::Result<ExitCode> {
    super::print_json(&steward_flow::flow_schema())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn command(location: &Location, cmd: FlowsCommand) -> anyhow::Result<ExitCode> {
    let store = location.open().await?;
    match cmd {
        FlowsCommand::Apply { files, json } => {
            let now = crate::cli::runs::now();
            let mut applied = Vec::new();
            for f in &files {
                match apply_file(&store, f, now).await {
                    Ok(v) => applied.push(v),
                    Err(e) if e.is::<Invalid>() => {
                        eprintln!("{e:#}");
                        return Ok(ExitCode::from(2));
                    }
                    Err(e) => return Err(e),
                }
            }
            if json {
                let out: Vec<_> = applied
                    .iter()
                    .map(|v| serde_json::json!({"name": v.name, "version": v.version, "id": v.id}))
                    .collect();
                super::print_json(&out)?;
            } else {
                applied.iter().for_each(|v| println!("{} version {}", v.name, v.version));
            }
        }
        FlowsCommand::Show { name, json } => {
            let version = store
                .latest_version(DEFAULT_WORKSPACE, &name)
                .await?
                .with_context(|| format!("no flow named {name}"))?;
            if json {
                super::print_json(&version)?;
            } else {
                print!("{}", version.source);
            }
        }
        FlowsCommand::Delete { name } => {
            store.set_flow_deleted(DEFAULT_WORKSPACE, &name, true, crate::cli::runs::now()).await?;
            eprintln!("deleted flow {name} (restorable)");
        }
        FlowsCommand::List { json } => {
            let flows = store.list_flows(DEFAULT_WORKSPACE, false).await?;
            if json {
                super::print_json(&flows)?;
            } else {
                println!("{:<32} {:>7}", "NAME", "VERSION");
                flows.iter().for_each(|f| println!("{:<32} {:>7}", f.name, f.latest_version));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
