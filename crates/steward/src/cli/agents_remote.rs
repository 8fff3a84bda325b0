//! `steward agents ...`, `steward approvals list` and `steward usage` as clients of a
//! server's API (`--server`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use super::agents::{AgentsCommand, RunAgentArgs};
use super::approvals::{ApprovalsCommand, UsageArgs};
use super::flows::Invalid;
use super::remote::Remote;

pub async fn agents(remote: &Remote, cmd: AgentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentsCommand::Apply { files, json } => {
            let mut bodies = Vec::new();
            for file in &files {
                // The file and its instructions are read here; the server reads no files.
                let (_, source) = match super::agents::load_file(file) {
                    Ok(loaded) => loaded,
                    Err(e) if e.is::<Invalid>() => {
                        eprintln!("{e:#}");
                        return Ok(ExitCode::from(2));
                    }
                    Err(e) => return Err(e),
                };
                bodies.push(json!({ "source": source, "file_name": file.display().to_string() }));
            }
            let Some(applied) = remote.apply_all("/agents", bodies).await? else {
                return Ok(ExitCode::from(2));
            };
            if json {
                super::print_json(&applied)?;
            } else {
                for a in &applied {
                    println!(
                        "{} version {}",
                        a["agent"]["name"].as_str().unwrap_or("?"),
                        a["agent"]["version"]
                    );
                }
            }
        }
        AgentsCommand::List { json } => {
            let agents = remote.must(Method::GET, "/agents", None).await?;
            if json {
                super::print_json(&agents)?;
            } else {
                super::agents::print_list(agents.as_array().map(Vec::as_slice).unwrap_or_default());
            }
        }
        AgentsCommand::Show { name, json } => {
            let agent = remote.must(Method::GET, &format!("/agents/{name}"), None).await?;
            if json {
                super::print_json(&agent)?;
            } else {
                print!("{}", agent["source"].as_str().unwrap_or_default());
            }
        }
        AgentsCommand::Delete { name } => {
            remote.must(Method::DELETE, &format!("/agents/{name}"), None).await?;
            eprintln!("{}", super::agents::deleted_message(&name));
        }
        AgentsCommand::Restore { name } => {
            remote.must(Method::POST, &format!("/agents/{name}/restore"), None).await?;
            eprintln!("restored agent {name}");
        }
        AgentsCommand::Run(args) => return run(remote, args).await,
        AgentsCommand::Chat(args) => return super::chat::chat(remote, args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the agent, then waits for its run to end and prints the answer.
async fn run(remote: &Remote, args: RunAgentArgs) -> anyhow::Result<ExitCode> {
    let task = super::agents::task_of(&args)?;
    let path = format!("/agents/{}/runs", args.name);
    let started = remote.must(Method::POST, &path, Some(json!({ "task": task }))).await?;
    let run_id = started["run_id"].as_str().unwrap_or_default().to_owned();
    if args.detach {
        println!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprintln!("run {run_id} (agent {})", args.name);
    }
    let mut told = false;
    let detail = loop {
        let detail = remote.must(Method::GET, &format!("/runs/{run_id}"), None).await?;
        match detail["run"]["status"].as_str() {
            Some("succeeded" | "failed" | "cancelled") => break detail,
            Some("waiting") if !told && !args.json => {
                told = true;
                eprintln!("  waiting for a decision: steward approvals list");
            }
            None => bail!("the server answered without a run status"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let run = &detail["run"];
    if args.json {
        super::print_json(
            &json!({ "run_id": run_id, "status": run["status"], "output": run["output"], "error": run["error"] }),
        )?;
    } else if run["status"] == "succeeded" {
        match &run["output"] {
            Value::String(text) => println!("{text}"),
            other => super::print_json(other)?,
        }
    } else {
        let message = run["error"]["message"].as_str().unwrap_or("no message (needs runs:read_payloads)");
        eprintln!("run {run_id} {}: {message}", run["status"].as_str().unwrap_or("?"));
    }
    Ok(if run["status"] == "succeeded" { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub async fn approvals(remote: &Remote, cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let ApprovalsCommand::List { json } = cmd;
    let list = remote.must(Method::GET, "/approvals", None).await?;
    super::approvals::print_approvals(&list, json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn usage(remote: &Remote, args: UsageArgs) -> anyhow::Result<ExitCode> {
    let (from, to) = args.period()?;
    let report = remote.must(Method::GET, &format!("/usage?from={from}&to={to}"), None).await?;
    super::approvals::print_usage(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}
