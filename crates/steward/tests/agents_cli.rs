//! The real binary with agents, against a fake provider on loopback: apply (with an
//! instructions file, and an error that names the line), list, run, usage, approvals, delete
//! and restore on the local database; and through `steward serve`, the same commands as its
//! clients plus `steward agents chat` with an answer streamed to the terminal.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use steward_testkit::model::{FakeProvider, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn steward(data: &Path) -> Command {
    let mut c = steward_testkit::steward_command(BIN);
    c.arg("--data-dir").arg(data).env_remove("STEWARD_DATABASE_URL").env("STEWARD_LOG", "warn");
    c
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the agent file and its instructions next to it.
fn files(dir: &Path, p: &FakeProvider) -> PathBuf {
    std::fs::write(dir.join("helper.md"), "# Helper\nAnswer in one line.\n").unwrap();
    let file = dir.join("helper.yaml");
    let text = format!(
        "name: helper\ndescription: Answers in one line\ninstructions_file: helper.md\nmodel: {{provider: openai, base_url: '{}', name: m1}}\ntools: [{{builtin: current_time}}]\n",
        p.openai_url()
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_apply_run_and_count_on_the_local_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = FakeProvider::start().await;
    let file = files(dir.path(), &p);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: bad\nmodel: {provider: opnai, name: m}\n").unwrap();
    let out = steward(&data).args(["agents", "apply"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:") && err.contains("opnai"), "{err}");

    let applied = ok(steward(&data).args(["agents", "apply"]).arg(&file).output().unwrap());
    assert_eq!(applied.trim(), "helper version 1");
    let list: Value =
        serde_json::from_str(&ok(steward(&data).args(["agents", "list", "--json"]).output().unwrap()))
            .unwrap();
    assert_eq!(
        list,
        json!([{"name": "helper", "version": 1, "model": "openai/m1", "description": "Answers in one line"}])
    );
    let shown = ok(steward(&data).args(["agents", "show", "helper"]).output().unwrap());
    assert!(shown.contains("Answer in one line.") && !shown.contains("instructions_file"), "{shown}");

    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})).usage(50, 5));
    p.enqueue(Reply::text("It is late.").usage(80, 4));
    let out = steward(&data).args(["agents", "run", "helper", "What time is it?"]).output().unwrap();
    assert_eq!(ok(out).trim(), "It is late.", "the answer prints as text");
    let sent = &p.requests()[0].body["messages"];
    assert_eq!(
        sent[0]["content"], "# Helper\nAnswer in one line.\n",
        "the instructions file is the system prompt"
    );
    assert_eq!(sent[1]["content"], "What time is it?");

    let usage: Value =
        serde_json::from_str(&ok(steward(&data).args(["usage", "--json"]).output().unwrap())).unwrap();
    let total = &usage["total"];
    assert_eq!((total["input_tokens"].clone(), total["output_tokens"].clone()), (json!(130), json!(9)));
    assert_eq!((total["model_calls"].clone(), total["tool_calls"].clone()), (json!(2), json!(1)));
    let approvals = ok(steward(&data).args(["approvals", "list", "--json"]).output().unwrap());
    assert_eq!(serde_json::from_str::<Value>(&approvals).unwrap(), json!([]));
    let out = steward(&data)
        .args(["flows", "apply"])
        .arg(write(dir.path(), "x.yaml", "name: agent.helper\nsteps:\n  - id: a\n    transform: '1'\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "runner flow names are reserved");

    // Deleting is restorable.
    let out = steward(&data).args(["agents", "delete", "helper"]).output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("restorable for 30 days"), "{said}");
    let list = ok(steward(&data).args(["agents", "list", "--json"]).output().unwrap());
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap(), json!([]));
    assert!(!steward(&data).args(["agents", "run", "helper", "hi"]).output().unwrap().status.success());
    ok(steward(&data).args(["agents", "restore", "helper"]).output().unwrap());
    let out = steward(&data).args(["agents", "restore", "helper"]).output().unwrap();
    assert!(!out.status.success(), "only a deleted agent can be restored");
    p.enqueue(Reply::text("Back again."));
    let out = steward(&data).args(["agents", "run", "helper", "Are you there?"]).output().unwrap();
    assert_eq!(ok(out).trim(), "Back again.");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Kills the server if the test fails before stopping it.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_chats_with_an_agent_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = FakeProvider::start().await;
    let file = files(dir.path(), &p);
    let mut create = steward(&data)
        .args(["admin", "create-user", "--email", "ada@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    assert!(create.wait().unwrap().success());
    let token = ok(steward(&data)
        .args(["admin", "create-token", "--email", "ada@example.com", "--name", "t"])
        .output()
        .unwrap());
    let token = token.trim().to_owned();
    let mut server =
        steward(&data).args(["serve", "--bind", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let _server = Guard(server);
    let base = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(rest) = line.strip_prefix("serving on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let client = |args: &[&str]| {
        let mut c = steward(&data);
        c.arg("--server").arg(&base).env("STEWARD_TOKEN", &token).args(args);
        c
    };
    ok(client(&["agents", "apply", file.to_str().unwrap()]).output().unwrap());
    let list = ok(client(&["agents", "list"]).output().unwrap());
    assert!(list.contains("helper") && list.contains("openai/m1"), "{list}");

    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})));
    p.enqueue(Reply::text("Half past nine."));
    p.enqueue(Reply::text("You asked about the time."));
    let mut chat = client(&["agents", "chat", "helper"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin.take().unwrap().write_all(b"What time is it?\nWhat did I ask?\n\n").unwrap();
    let out = chat.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec!["Half past nine.", "You asked about the time."],
        "{stderr}"
    );
    assert!(stderr.contains("→ current_time"), "tool calls show: {stderr}");
    assert!(p.requests().iter().skip(1).all(|r| r.streamed()), "the answers streamed");
    let history = &p.last().unwrap().body["messages"];
    assert_eq!(history[2]["content"], "Half past nine.", "the second message carried the first exchange");

    let usage: Value = serde_json::from_str(&ok(client(&["usage", "--json"]).output().unwrap())).unwrap();
    assert_eq!(usage["total"]["model_calls"], 3);
    p.enqueue(Reply::text("Direct."));
    assert_eq!(ok(client(&["agents", "run", "helper", "Say it"]).output().unwrap()).trim(), "Direct.");

    let out = client(&["agents", "delete", "helper"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("restorable for 30 days"));
    assert!(!ok(client(&["agents", "list"]).output().unwrap()).contains("openai/m1"));
    ok(client(&["agents", "restore", "helper"]).output().unwrap());
    assert!(ok(client(&["agents", "list"]).output().unwrap()).contains("openai/m1"));
    assert!(!client(&["agents", "restore", "helper"]).output().unwrap().status.success());
}
