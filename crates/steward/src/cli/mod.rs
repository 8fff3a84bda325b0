//! One module per command group.

pub mod admin;
pub mod agents;
pub mod agents_remote;
pub mod approvals;
pub mod chat;
pub mod connections;
pub mod export;
pub mod flows;
pub mod keys;
pub mod remote;
pub mod retention;
pub mod run;
pub mod runs;
pub mod serve;
pub mod worker;

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// `--input` takes JSON, or `@path` to a JSON file.
pub fn parse_input(input: Option<&str>) -> anyhow::Result<Value> {
    let Some(text) = input else { return Ok(Value::Object(Default::default())) };
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("cannot read the input file {path}"))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&text)
        .context("--input must be JSON, for example --input '{\"email\": \"a@example.com\"}'")
}

pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Returns on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
