//! `steward agents apply|list|show|delete|restore|run` on the local store, and reading agent files
//! (shared with the server client in [`super::agents_remote`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use steward_agent::definition::AgentDef;
use steward_flow::AgentName;
use steward_store::DEFAULT_WORKSPACE;

use super::flows::Invalid;
use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Validate agent files and store each as a new version (unchanged files keep theirs).
    /// An `instructions_file` is read relative to the agent's file and stored inline.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List stored agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print an agent's newest definition.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an agent (its runs stay); restorable for 30 days, then purged with its chat
    /// threads.
    Delete { name: String },
    /// Restore a deleted agent.
    Restore { name: String },
    /// Run an agent on a task and print its answer.
    Run(RunAgentArgs),
    /// Talk with an agent in the terminal (needs --server).
    Chat(ChatArgs),
}

#[derive(Debug, Args)]
pub struct RunAgentArgs {
    pub name: String,
    /// The task, as text.
    pub task: Option<String>,
    /// The task as JSON, or @FILE to read it from a file (instead of TASK).
    #[arg(long, conflicts_with = "task")]
    pub input: Option<String>,
    /// Print the result as JSON and no progress.
    #[arg(long)]
    pub json: bool,
    /// Queue the run, print its id and exit; an executor (`steward worker`) runs it.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    pub name: String,
    /// Continue this thread instead of starting one.
    #[arg(long)]
    pub thread: Option<String>,
}

/// Reads and checks an agent file, with its instructions file put inline.
pub fn load_file(path: &Path) -> anyhow::Result<(AgentDef, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let read = |rel: &str| std::fs::read_to_string(dir.join(rel)).map_err(|e| e.to_string());
    steward_agent::definition::resolve(&path.display().to_string(), &text, read)
        .map_err(|e| Invalid(e.to_string()).into())
}

/// The task from `TASK` (text) or `--input` (JSON).
pub fn task_of(args: &RunAgentArgs) -> anyhow::Result<Value> {
    match (&args.task, &args.input) {
        (Some(text), _) => Ok(Value::String(text.clone())),
        (None, Some(_)) => super::parse_input(args.input.as_deref()),
        (None, None) => {
            anyhow::bail!("give the task as text (steward agents run NAME \"...\") or --input JSON")
        }
    }
}

pub async fn command(location: &Location, cmd: AgentsCommand) -> anyhow::Result<ExitCode> {
    let now = super::runs::now();
    match cmd {
        AgentsCommand::Apply { files, json } => {
            let store = location.open().await?;
            let mut applied = Vec::new();
            for file in &files {
                let (def, source) = match load_file(file) {
                    Ok(loaded) => loaded,
                    Err(e) if e.is::<Invalid>() => {
                        eprintln!("{e:#}");
                        return Ok(ExitCode::from(2));
                    }
                    Err(e) => return Err(e),
                };
                applied.push(
                    steward_executor::apply_agent(store.as_ref(), DEFAULT_WORKSPACE, &def, &source, now)
                        .await?,
                );
            }
            if json {
                let out: Vec<_> = applied
                    .iter()
                    .map(|a| json!({"name": a.version.name, "version": a.version.version, "changed": a.changed}))
                    .collect();
                super::print_json(&out)?;
            } else {
                applied.iter().for_each(|a| println!("{} version {}", a.version.name, a.version.version));
            }
        }
        AgentsCommand::List { json } => {
            let agents = location.open().await?.list_agents(DEFAULT_WORKSPACE).await?;
            if json {
                super::print_json(&agents.iter().map(summary).collect::<Vec<_>>())?;
            } else {
                print_list(&agents.iter().map(summary).collect::<Vec<_>>());
            }
        }
        AgentsCommand::Show { name, json } => {
            let store = location.open().await?;
            let version = store
                .agent(DEFAULT_WORKSPACE, &name)
                .await?
                .with_context(|| format!("no agent named {name}"))?;
            if json {
                super::print_json(&version)?;
            } else {
                print!("{}", version.source);
            }
        }
        AgentsCommand::Delete { name } => {
            let store = location.open().await?;
            let agent = AgentName::parse(&name).map_err(anyhow::Error::msg)?;
            if !steward_executor::set_agent_deleted(store.as_ref(), DEFAULT_WORKSPACE, &agent, true, now)
                .await?
            {
                anyhow::bail!("no agent named {name}");
            }
            eprintln!("{}", deleted_message(&name));
        }
        AgentsCommand::Restore { name } => {
            let store = location.open().await?;
            let agent = AgentName::parse(&name).map_err(anyhow::Error::msg)?;
            if !steward_executor::set_agent_deleted(store.as_ref(), DEFAULT_WORKSPACE, &agent, false, now)
                .await?
            {
                anyhow::bail!("no deleted agent named {name}");
            }
            eprintln!("restored agent {name}");
        }
        AgentsCommand::Run(args) => return run(location, args).await,
        AgentsCommand::Chat(_) => {
            anyhow::bail!(
                "chat talks to a server: start one with `steward serve` and pass --server and --token"
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(location: &Location, args: RunAgentArgs) -> anyhow::Result<ExitCode> {
    let task = task_of(&args)?;
    let all = location.open_all().await?;
    let store: std::sync::Arc<dyn steward_store::Store> = all.clone();
    let name = AgentName::parse(&args.name).map_err(anyhow::Error::msg)?;
    if store.agent(DEFAULT_WORKSPACE, name.as_str()).await?.is_none() {
        anyhow::bail!("no agent named {name}; apply its file with `steward agents apply`");
    }
    let runner =
        steward_executor::ensure_runner(store.as_ref(), DEFAULT_WORKSPACE, &name, super::runs::now()).await?;
    let executor = location.executor(all, 64, None, None).await?;
    let progress = executor.subscribe();
    let run_id = executor.start_run(&runner, json!({ "task": task })).await?;
    if args.detach {
        println!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprintln!("run {run_id} (agent {name})");
    }
    super::run::follow(executor, progress, &run_id, args.json).await
}

/// What `agents delete` says once the agent is deleted.
pub fn deleted_message(name: &str) -> String {
    format!("deleted agent {name} (restorable for 30 days: steward agents restore {name})")
}

/// One line of `agents list`: name, version, model and description.
pub fn summary(v: &steward_store::AgentVersion) -> Value {
    let def = steward_agent::definition::load("agent.yaml", &v.source).ok();
    json!({
        "name": v.name,
        "version": v.version,
        "model": def.as_ref().map(|d| d.model_label()),
        "description": def.and_then(|d| d.description),
    })
}

pub fn print_list(agents: &[Value]) {
    println!("{:<24} {:>7}  {:<32} DESCRIPTION", "NAME", "VERSION", "MODEL");
    for a in agents {
        println!(
            "{:<24} {:>7}  {:<32} {}",
            a["name"].as_str().unwrap_or("?"),
            a["version"],
            a["model"].as_str().unwrap_or("-"),
            a["description"].as_str().unwrap_or("")
        );
    }
}
