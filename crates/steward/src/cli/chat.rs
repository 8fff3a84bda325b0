//! `steward agents chat NAME`: a conversation with an agent in the terminal, through a
//! server's chat API. Each line typed is a message; the reply prints as it streams, tool calls
//! show as they happen, and a call that needs approval is asked about on the spot.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use super::agents::ChatArgs;
use super::remote::Remote;

type Input = Lines<BufReader<Stdin>>;

pub async fn chat(remote: &Remote, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let thread = match &args.thread {
        Some(id) => {
            let detail = remote.must(Method::GET, &format!("/threads/{id}"), None).await?;
            for m in detail["messages"].as_array().into_iter().flatten() {
                let who = if m["role"] == "user" { "you" } else { args.name.as_str() };
                println!("{who}: {}", m["content"].as_str().unwrap_or_default());
            }
            id.clone()
        }
        None => {
            let made =
                remote.must(Method::POST, &format!("/agents/{}/threads", args.name), Some(json!({}))).await?;
            made["id"].as_str().context("the server answered without a thread id")?.to_owned()
        }
    };
    eprintln!("thread {thread} with {} (an empty line or Ctrl-D ends)", args.name);
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("> ");
        let Some(line) = input.next_line().await? else { break };
        if line.trim().is_empty() {
            break;
        }
        let response =
            remote.stream(&format!("/threads/{thread}/messages"), json!({ "content": line })).await?;
        reply(remote, response, &mut input).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one reply as its events come.
async fn reply(remote: &Remote, mut response: reqwest::Response, input: &mut Input) -> anyhow::Result<()> {
    let mut events = Events::default();
    let mut streamed = false;
    while let Some(chunk) = response.chunk().await.context("the reply stream broke off")? {
        for (name, data) in events.push(&chunk) {
            let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            match name.as_str() {
                "token" => {
                    streamed = true;
                    print!("{}", data["text"].as_str().unwrap_or_default());
                    std::io::stdout().flush()?;
                }
                "tool_call" => {
                    eprintln!("  → {} {}", data["name"].as_str().unwrap_or("?"), data["arguments"])
                }
                "tool_result" if data["is_error"] == true => {
                    eprintln!("  ← {} failed", data["name"].as_str().unwrap_or("?"))
                }
                "approval" => decide(remote, &data, input).await?,
                "decision" => {
                    let how = if data["approved"] == true { "approved" } else { "rejected" };
                    eprintln!("  {how} by {}", data["by"].as_str().unwrap_or("?"));
                }
                "message" if !streamed => println!("{}", data["content"].as_str().unwrap_or_default()),
                "message" => println!(),
                "error" => eprintln!("error: {}", data["message"].as_str().unwrap_or("the run failed")),
                "done" => return Ok(()),
                _ => {}
            }
        }
    }
    bail!("the reply stream ended before the reply did")
}

/// Asks whether a tool call may run, and sends the decision.
async fn decide(remote: &Remote, data: &Value, input: &mut Input) -> anyhow::Result<()> {
    let (run, step) = (data["run_id"].as_str().unwrap_or("?"), data["step"].as_str().unwrap_or("?"));
    eprintln!("  ? {}", data["message"].as_str().unwrap_or("a tool call needs approval"));
    eprint!("  approve? [y/N] ");
    let answer = input.next_line().await?.unwrap_or_default();
    let (verb, reason) = if answer.trim().eq_ignore_ascii_case("y") {
        ("approve", None)
    } else {
        eprint!("  reason (optional): ");
        ("reject", input.next_line().await?.filter(|r| !r.trim().is_empty()))
    };
    let path = format!("/runs/{run}/steps/{step}/{verb}");
    remote.must(Method::POST, &path, Some(json!({ "reason": reason }))).await?;
    Ok(())
}

/// Server-Sent Events, parsed from chunks as they arrive.
#[derive(Debug, Default)]
struct Events {
    buffer: String,
}

impl Events {
    /// Adds a chunk; returns the events it completed, as (name, data).
    fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut name, mut data) = ("message".to_owned(), Vec::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if !data.is_empty() {
                out.push((name, data.join("\n")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunk_boundaries() {
        let mut e = Events::default();
        assert!(e.push(b"event: token\ndata: {\"text\":").is_empty());
        let got = e.push(b"\"Hel\"}\n\n: keep-alive\n\nevent: done\ndata: {}\n\nevent: tok");
        assert_eq!(
            got,
            vec![("token".to_owned(), r#"{"text":"Hel"}"#.to_owned()), ("done".to_owned(), "{}".to_owned())]
        );
        assert_eq!(e.push(b"en\ndata: a\ndata: b\n\n"), vec![("token".to_owned(), "a\nb".to_owned())]);
    }
}
