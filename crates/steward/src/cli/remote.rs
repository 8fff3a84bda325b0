//! `steward flows ...` and `steward runs ...` as clients of a server's API, when `--server`
//! (or `STEWARD_URL`) is given. Authentication is an API token from `--token` or
//! `STEWARD_TOKEN`; the workspace comes from `--workspace` (default `default`).

use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::flows::FlowsCommand;
use super::runs::RunsCommand;

/// A server, a token and a workspace.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: String,
    pub token: Option<String>,
    pub workspace: String,
}

/// A failure the server reported; exit code 2 for invalid input, 1 otherwise.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    message: String,
}

impl Remote {
    fn client() -> anyhow::Result<reqwest::Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().build().context("cannot build the HTTP client")
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, Refused>> {
        let url = format!("{}/api/v1/workspaces/{}{path}", self.server.trim_end_matches('/'), self.workspace);
        let mut req = Self::client()?.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.with_context(|| format!("cannot reach {}", self.server))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Ok(value));
        }
        let mut message = value["error"]["message"].as_str().unwrap_or(&text).to_owned();
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            message.push_str(" (set STEWARD_TOKEN or pass --token)");
        }
        Ok(Err(Refused { status, message }))
    }

    /// Sends a request whose answer is read as it comes (Server-Sent Events); fails the
    /// command on a refusal.
    pub(super) async fn stream(&self, path: &str, body: Value) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/api/v1/workspaces/{}{path}", self.server.trim_end_matches('/'), self.workspace);
        let mut req = Self::client()?.post(&url).json(&body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.with_context(|| format!("cannot reach {}", self.server))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = value["error"]["message"].as_str().unwrap_or(&text).to_owned();
            bail!("the server refused ({}): {message}", status.as_u16());
        }
        Ok(response)
    }

    /// Posts each body to `path` in turn (applying files); `None` after printing the server's
    /// message when one is invalid (422), so that the command exits with 2.
    pub(super) async fn apply_all(
        &self,
        path: &str,
        bodies: Vec<Value>,
    ) -> anyhow::Result<Option<Vec<Value>>> {
        let mut applied = Vec::new();
        for body in bodies {
            match self.call(Method::POST, path, Some(body)).await? {
                Ok(v) => applied.push(v),
                Err(r) if r.status == StatusCode::UNPROCESSABLE_ENTITY => {
                    eprintln!("{}", r.message);
                    return Ok(None);
                }
                Err(r) => bail!("the server refused ({}): {}", r.status.as_u16(), r.message),
            }
        }
        Ok(Some(applied))
    }

    /// Calls and fails the command on a refusal.
    pub(super) async fn must(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        match self.call(method, path, body).await? {
            Ok(v) => Ok(v),
            Err(r) => bail!("the server refused ({}): {}", r.status.as_u16(), r.message),
        }
    }
}

pub async fn flows(remote: &Remote, cmd: FlowsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FlowsCommand::Apply { files, json } => {
            let mut bodies = Vec::new();
            for file in &files {
                let source = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                bodies.push(json!({ "source": source, "file_name": file.display().to_string() }));
            }
            let Some(applied) = remote.apply_all("/flows", bodies).await? else {
                return Ok(ExitCode::from(2));
            };
            if json {
                super::print_json(&applied)?;
            } else {
                for a in &applied {
                    println!(
                        "{} version {}",
                        a["version"]["name"].as_str().unwrap_or("?"),
                        a["version"]["version"]
                    );
                }
            }
        }
        FlowsCommand::List { json } => {
            let flows = remote.must(Method::GET, "/flows", None).await?;
            if json {
                super::print_json(&flows)?;
            } else {
                println!("{:<32} {:>7}", "NAME", "VERSION");
                for f in flows.as_array().into_iter().flatten() {
                    println!("{:<32} {:>7}", f["name"].as_str().unwrap_or("?"), f["latest_version"]);
                }
            }
        }
        FlowsCommand::Show { name, json } => {
            let flow = remote.must(Method::GET, &format!("/flows/{name}"), None).await?;
            if json {
                super::print_json(&flow)?;
            } else {
                print!("{}", flow["latest"]["source"].as_str().unwrap_or_default());
            }
        }
        FlowsCommand::Delete { name } => {
            remote.must(Method::DELETE, &format!("/flows/{name}"), None).await?;
            eprintln!("deleted flow {name} (restorable)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn runs(remote: &Remote, cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List { flow, status, limit, before, json } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(flow.map(|f| format!("flow={f}")));
            query.extend(status.map(|s| format!("status={s}")));
            query.extend(before.map(|b| format!("cursor={b}")));
            let page = remote.must(Method::GET, &format!("/runs?{}", query.join("&")), None).await?;
            if json {
                super::print_json(&page)?;
            } else {
                println!("{:<38} {:<24} {:<10}", "RUN", "FLOW", "STATUS");
                for r in page["runs"].as_array().into_iter().flatten() {
                    let text = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
                    println!("{:<38} {:<24} {:<10}", text("id"), text("flow"), text("status"));
                }
            }
        }
        RunsCommand::Show { run, json } => {
            let detail = remote.must(Method::GET, &format!("/runs/{run}"), None).await?;
            if json {
                super::print_json(&detail)?;
            } else {
                let r = &detail["run"];
                println!("run      {}\nflow     {}\nstatus   {}", r["id"], r["flow"], r["status"]);
                println!("\n{:<32} {:<14} {:>7}", "STEP", "STATUS", "ATTEMPT");
                for s in detail["steps"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32} {:<14} {:>7}",
                        s["key"].as_str().unwrap_or("?"),
                        s["status"].as_str().unwrap_or("?"),
                        s["attempt"]
                    );
                }
            }
        }
        RunsCommand::Logs { run, json, .. } => {
            let events = remote.must(Method::GET, &format!("/runs/{run}/events"), None).await?;
            for e in events.as_array().into_iter().flatten() {
                if json {
                    println!("{e}");
                } else {
                    println!("{:>4} {} {}", e["seq"], e["at"], e["event"]["type"].as_str().unwrap_or("?"));
                }
            }
        }
        RunsCommand::Cancel { run, reason } => {
            remote
                .must(Method::POST, &format!("/runs/{run}/cancel"), Some(json!({ "reason": reason })))
                .await?;
            eprintln!("cancellation requested for run {run}");
        }
        RunsCommand::Receipt { run, json } => {
            let receipt = remote.must(Method::GET, &format!("/runs/{run}/receipt"), None).await?;
            super::runs::print_receipt(&receipt, json)?;
        }
        RunsCommand::Processing { days, json } => {
            let to = super::runs::now().0;
            let from = to - i64::from(days) * 86_400_000;
            let record = remote.must(Method::GET, &format!("/processing?from={from}&to={to}"), None).await?;
            super::runs::print_processing(&record, json)?;
        }
        RunsCommand::Approve(d) => decide(remote, &d.run, &d.step, d.reason, "approve").await?,
        RunsCommand::Reject(d) => decide(remote, &d.run, &d.step, d.reason, "reject").await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(
    remote: &Remote,
    run: &str,
    step: &str,
    reason: Option<String>,
    verb: &str,
) -> anyhow::Result<()> {
    let path = format!("/runs/{run}/steps/{step}/{verb}");
    remote.must(Method::POST, &path, Some(json!({ "reason": reason }))).await?;
    eprintln!("{verb}d step `{step}` of run {run}");
    Ok(())
}
