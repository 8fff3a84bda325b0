//! The CLI as a person uses it: several `steward` processes on one data directory.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use steward_testkit::Recorder;

const BIN: &str = env!("CARGO_BIN_EXE_steward");

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("dir"))
    }

    fn cmd(&self) -> Command {
        let mut c = steward_testkit::steward_command(BIN);
        c.arg("--data-dir").arg(self.0.path().join("data"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("steward")
    }

    fn flow(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }

    fn status(&self, run: &str) -> String {
        self.json(&["runs", "show", "--json", run])["run"]["status"].as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_from_another_process_stops_the_in_flight_step() {
    let srv = Recorder::start().await;
    srv.hang_once("hang");
    let d = Dir::new();
    let file = d.flow("hang.yaml", "name: hang\ninputs: { base: {} }\nsteps:\n  - id: call\n    http: { url: '${{ .inputs.base }}/hit/hang' }\n");
    let input = format!(r#"{{"base": "{}"}}"#, srv.base);
    let run = String::from_utf8(d.run(&["run", "--detach", "--input", &input, &file]).stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    let mut worker = d.cmd().arg("worker").stderr(Stdio::null()).spawn().expect("worker");
    srv.wait_for("hang", 1, Duration::from_secs(10)).await;
    let asked = Instant::now();
    assert!(d.run(&["runs", "cancel", &run]).status.success());
    while d.status(&run) != "cancelled" {
        assert!(asked.elapsed() < Duration::from_secs(5), "not cancelled: {}", d.status(&run));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill().expect("kill");
    let _ = worker.wait();
    let logs = String::from_utf8(d.run(&["runs", "logs", &run]).stdout).expect("utf8");
    assert!(logs.contains("step_cancelled") && logs.contains("run_cancelled"), "{logs}");
}

#[test]
fn rejecting_an_approval_fails_the_run_with_who_and_why() {
    let d = Dir::new();
    let file = d.flow("gate.yaml", "name: gate\nsteps:\n  - id: ok\n    approval: { message: 'go?' }\n  - id: after\n    transform: '1'\n");
    let run = String::from_utf8(d.run(&["run", "--detach", &file]).stdout).expect("utf8").trim().to_owned();
    let mut worker = d.cmd().arg("worker").stderr(Stdio::null()).spawn().expect("worker");
    let started = Instant::now();
    while d.status(&run) != "waiting" {
        assert!(started.elapsed() < Duration::from_secs(10), "never suspended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = d.run(&["runs", "reject", "--json", "--by", "bob", "--reason", "not today", &run, "ok"]);
    worker.kill().expect("kill");
    let _ = worker.wait();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(result["status"], "failed");
    assert_eq!(result["error"]["kind"], "rejected");
    assert_eq!(result["error"]["message"], "rejected by bob: not today");
    let again = d.run(&["runs", "approve", &run, "ok"]);
    assert!(!again.status.success(), "a decided approval cannot be decided again");
}

#[test]
fn runs_list_filters_and_pages() {
    let d = Dir::new();
    let ok = d.flow("ok.yaml", "name: ok\nsteps:\n  - { id: a, transform: '1' }\n");
    let bad = d.flow("bad.yaml", "name: bad\nsteps:\n  - { id: a, transform: 'error(\"x\")' }\n");
    for _ in 0..3 {
        assert!(d.run(&["run", "--json", &ok]).status.success());
    }
    assert_eq!(d.run(&["run", "--json", &bad]).status.code(), Some(1));
    let all = d.json(&["runs", "list", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(4));
    let failed = d.json(&["runs", "list", "--json", "--status", "failed"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    assert_eq!(failed[0]["flow_name"], "bad");
    let first_page = d.json(&["runs", "list", "--json", "--flow", "ok", "--limit", "2"]);
    let last = first_page[1]["id"].as_str().expect("id");
    let second_page = d.json(&["runs", "list", "--json", "--flow", "ok", "--before", last]);
    assert_eq!(second_page.as_array().map(Vec::len), Some(1));
    assert_ne!(second_page[0]["id"], first_page[0]["id"]);
    let unknown = d.run(&["runs", "list", "--status", "bogus"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown status `bogus`"));
}

#[test]
fn show_prints_the_step_timeline() {
    let d = Dir::new();
    let file = d.flow(
        "two.yaml",
        "name: two\nsteps:\n  - { id: a, transform: '1' }\n  - { id: b, transform: '.steps.a.output + 1' }\n",
    );
    let result: Value = serde_json::from_slice(&d.run(&["run", "--json", &file]).stdout).expect("json");
    let run = result["run_id"].as_str().expect("id");
    let shown = d.json(&["runs", "show", "--json", run]);
    let steps: Vec<(&str, &str)> = shown["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["key"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(steps, vec![("a", "succeeded"), ("b", "succeeded")]);
    let text = String::from_utf8(d.run(&["runs", "show", run]).stdout).expect("utf8");
    assert!(text.contains("status   succeeded") && text.contains("STEP"), "{text}");
}

#[test]
fn schema_flow_prints_a_json_schema() {
    let out = steward_testkit::steward_command(BIN).args(["schema", "flow"]).output().expect("schema");
    let schema: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(schema["title"], "Steward flow");
    assert!(
        schema["$defs"]["Step"]["oneOf"]
            .as_array()
            .is_some_and(|k| k.len() == steward_flow::STEP_KINDS.len())
    );
}

/// `admin create-user` with the password on standard input.
fn create_user(d: &Dir, email: &str, workspace: &str, role: &str) {
    use std::io::Write as _;
    let args = ["admin", "create-user", "--email", email, "--workspace", workspace, "--role", role];
    let mut child = d
        .cmd()
        .args(args)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"correct horse battery\n").expect("password");
    let out = child.wait_with_output().expect("create-user");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn admin_delete_user_prints_the_receipt_and_refuses_to_strand_a_workspace() {
    let d = Dir::new();
    create_user(&d, "ada@example.com", "default", "owner");
    create_user(&d, "bob@example.com", "default", "viewer");
    create_user(&d, "carol.personal@example.com", "solo", "owner");

    // Ada is the only owner of `default`, where Bob is a member.
    let out = d.run(&["admin", "delete-user", "--email", "ada@example.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("only owner of default"), "{err}");
    assert!(out.stdout.is_empty(), "no receipt for a refusal");

    // Carol is alone in `solo`: the account goes, the workspace with it.
    let out = d.run(&["admin", "delete-user", "--email", "carol.personal@example.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("workspace solo had no other member"), "{err}");
    let receipt: Value = serde_json::from_slice(&out.stdout).expect("the receipt is JSON");
    assert!(receipt["subject"].as_str().is_some_and(|s| s.starts_with("user:")), "{receipt}");
    assert_eq!(receipt["reason"], "account deleted");
    let rows: Vec<(&str, u64)> = receipt["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| (t["table"].as_str().unwrap_or(""), t["rows"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(
        rows,
        [("users", 1), ("sessions", 0), ("api_tokens", 0), ("memberships", 1), ("invitations", 0)]
    );
    assert!(receipt["tables"][0]["store"] == "sqlite", "{receipt}");

    // Recorded, and the chain still verifies.
    let verified = d.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["intact"], true, "{verified}");
    let again = d.run(&["admin", "delete-user", "--email", "carol.personal@example.com"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("no account"), "deleted once");
    for entry in std::fs::read_dir(d.0.path().join("data")).expect("data dir") {
        let file = entry.expect("entry").path();
        let bytes = std::fs::read(&file).unwrap_or_default();
        let needle = b"carol.personal@example.com";
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} keeps the address", file.display());
    }
}
