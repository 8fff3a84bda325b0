//! `steward approvals list` and `steward usage` on the local store; the server client prints
//! the API's answers with the same functions.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use steward_store::DEFAULT_WORKSPACE;

use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Steps waiting for a person's decision (approval steps and agents' tool calls), oldest
    /// first. Decide with `steward runs approve|reject RUN STEP`.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// First day (YYYY-MM-DD, UTC); defaults to 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD, UTC); defaults to today.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl UsageArgs {
    /// The period asked for, checked.
    pub fn period(&self) -> anyhow::Result<(String, String)> {
        let to = self.to.clone().unwrap_or_else(|| steward_store::day_of(super::runs::now()));
        let from = match &self.from {
            Some(f) => f.clone(),
            None => {
                steward_store::day_before(&to, 30).with_context(|| format!("`{to}` is not YYYY-MM-DD"))?
            }
        };
        for day in [&from, &to] {
            steward_store::day_before(day, 0)
                .with_context(|| format!("`{day}` is not a day: use YYYY-MM-DD"))?;
        }
        Ok((from, to))
    }
}

pub async fn approvals(location: &Location, cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let ApprovalsCommand::List { json } = cmd;
    let store = location.open().await?;
    let pending = steward_executor::workspace_approvals(store.as_ref(), DEFAULT_WORKSPACE).await?;
    let out: Vec<Value> = pending
        .into_iter()
        .map(|p| {
            json!({
                "run_id": p.run_id, "flow": p.flow, "step": p.step, "tool": p.tool,
                "requested_at": p.requested_at.millis(),
                "timeout_at": p.timeout_at.map(|t| t.millis()), "message": p.message,
            })
        })
        .collect();
    print_approvals(&Value::Array(out), json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_approvals(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(list);
    }
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        eprintln!("nothing waits for a decision");
        return Ok(());
    }
    for a in items {
        let text = |k: &str| a[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{}  {}  step {}  ({})",
            text("run_id"),
            text("flow"),
            text("step"),
            ago(&a["requested_at"])
        );
        if let Some(m) = a["message"].as_str() {
            println!("    {m}");
        }
        println!("    steward runs approve {} {}   (or reject --reason ...)", text("run_id"), text("step"));
    }
    Ok(())
}

fn ago(ms: &Value) -> String {
    let Some(at) = ms.as_i64() else { return "?".into() };
    let mins = (super::runs::now().millis() - at).max(0) / 60_000;
    match mins {
        0 => "just now".into(),
        m if m < 120 => format!("{m} min ago"),
        m => format!("{} h ago", m / 60),
    }
}

pub async fn usage(location: &Location, args: UsageArgs) -> anyhow::Result<ExitCode> {
    let (from, to) = args.period()?;
    let store = location.open().await?;
    let days = store.usage(DEFAULT_WORKSPACE, &from, &to).await?;
    let total = steward_store::usage_total(&days);
    print_usage(&json!({ "from": from, "to": to, "days": days, "total": total }), args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_usage(report: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(report);
    }
    println!(
        "usage from {} to {}",
        report["from"].as_str().unwrap_or("?"),
        report["to"].as_str().unwrap_or("?")
    );
    println!(
        "{:<10}  {:<20} {:>12} {:>12} {:>11} {:>11} {:>10}",
        "DAY", "AGENT", "TOKENS IN", "TOKENS OUT", "COST", "MODEL CALLS", "TOOL CALLS"
    );
    let row = |r: &Value, day: &str, agent: &str| {
        println!(
            "{day:<10}  {agent:<20} {:>12} {:>12} {:>11} {:>11} {:>10}",
            r["input_tokens"],
            r["output_tokens"],
            format!("${:.4}", r["cost_micros"].as_u64().unwrap_or(0) as f64 / 1e6),
            r["model_calls"],
            r["tool_calls"]
        )
    };
    for r in report["days"].as_array().into_iter().flatten() {
        row(r, r["day"].as_str().unwrap_or("?"), r["agent"].as_str().unwrap_or("?"));
    }
    row(&report["total"], "total", "");
    Ok(())
}
