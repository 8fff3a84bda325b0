//! Every example flow runs as it is, through the real binary, with its HTTP calls pointed at a
//! loopback server that stands in for the public APIs.

use std::path::{Path, PathBuf};
use std::process::Output;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

async fn api() -> String {
    let app = Router::new()
        .route(
            "/people",
            get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                let email = q.get("email").cloned().unwrap_or_default();
                let followers = if email.starts_with("ada") { 5000 } else { 12 };
                Json(json!({ "name": "Ada Lovelace", "email": email, "followers": followers }))
            }),
        )
        .route(
            "/deployments",
            post(|Json(body): Json<Value>| async move { Json(json!({ "deployed": body })) }),
        )
        .route(
            "/queues/{queue}",
            post(|UrlPath(queue): UrlPath<String>| async move { Json(json!({ "queued_in": queue })) }),
        )
        .route("/orders", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }))
        .route("/ok", get(|| async { "fine" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

struct Steward {
    dir: tempfile::TempDir,
}

impl Steward {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("dir") }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        steward_testkit::steward_command(BIN)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run steward")
    }

    /// Runs an example and returns its JSON result.
    fn run(&self, file: &str, input: Value) -> Value {
        let out =
            self.cmd(&["run", "--json", "--input", &input.to_string(), &example(file).to_string_lossy()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&stdout).unwrap_or_else(|_| {
            panic!("{file}: not JSON: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        })
    }
}

fn output(result: &Value) -> &Value {
    assert_eq!(result["status"], "succeeded", "{result}");
    &result["output"]
}

#[test]
fn every_example_validates() {
    let files: Vec<PathBuf> =
        std::fs::read_dir(example("")).expect("examples dir").map(|e| e.expect("entry").path()).collect();
    assert!(files.len() >= 6, "at least six examples");
    let out = steward_testkit::steward_command(BIN).arg("validate").args(&files).output().expect("validate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn hello() {
    let result = Steward::new().run("hello.yaml", json!({"name": "Ada"}));
    assert_eq!(output(&result), &json!({"greeting": "Hello, Ada!", "total": 556, "verdict": "a long name"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_signup_flags_vips_and_keeps_only_the_shape_of_the_profile() {
    let base = api().await;
    let s = Steward::new();
    let vip = s.run("enrich-signup.yaml", json!({"email": "ada@example.com", "api": base}));
    assert_eq!(output(&vip), &json!({"score": 5000, "tier": "vip"}));
    let other = s.run("enrich-signup.yaml", json!({"email": "bob@example.com", "api": base}));
    assert_eq!(output(&other), &json!({"score": 12, "tier": "standard"}));
    let logs = s.cmd(&["runs", "logs", "--json", vip["run_id"].as_str().expect("id")]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(!logs.contains("followers"), "retain: metadata drops the profile once the run is over");
    assert!(logs.contains(r#""retained":"metadata""#), "and keeps its shape: {logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_waits_for_approval_then_deploys() {
    let base = api().await;
    let s = Steward::new();
    let out = s.cmd(&[
        "run",
        "--detach",
        "--input",
        &json!({"service": "api", "version": "1.4.2", "api": base}).to_string(),
        &example("deploy-approval.yaml").to_string_lossy(),
    ]);
    let run = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // Nothing runs the flow until a worker does; approving runs the rest here.
    let worker = s.cmd(&["runs", "approve", &run, "approve"]);
    assert!(!worker.status.success(), "the approval step has not been reached yet");
    let mut worker = steward_testkit::steward_command(BIN)
        .arg("--data-dir")
        .arg(s.dir.path())
        .arg("worker")
        .spawn()
        .expect("worker");
    for _ in 0..100 {
        let show = s.cmd(&["runs", "show", "--json", &run]);
        let v: Value = serde_json::from_slice(&show.stdout).expect("json");
        if v["run"]["status"] == "waiting" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    worker.kill().expect("stop worker");
    let _ = worker.wait();
    let approved =
        s.cmd(&["runs", "approve", "--json", "--by", "ann", "--reason", "window open", &run, "approve"]);
    let v: Value = serde_json::from_slice(&approved.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&approved.stderr)));
    assert_eq!(
        output(&v),
        &json!({"deployed": {"service": "api", "version": "1.4.2", "approved_by": "ann"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_links_reports_the_broken_ones() {
    let base = api().await;
    let urls = json!([format!("{base}/ok"), format!("{base}/missing"), format!("{base}/ok")]);
    let result = Steward::new().run("check-links.yaml", json!({"urls": urls}));
    assert_eq!(output(&result), &json!({"checked": 3, "broken": [format!("{base}/missing")]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_routes_by_topic() {
    let base = api().await;
    let s = Steward::new();
    let billing = s.run(
        "triage-ticket.yaml",
        json!({"api": base, "ticket": {"subject": "Refund", "body": "charged twice"}}),
    );
    assert_eq!(output(&billing), &json!({"queue": "billing", "result": {"queued_in": "billing"}}));
    let general =
        s.run("triage-ticket.yaml", json!({"api": base, "ticket": {"subject": "Hi", "body": "a question"}}));
    assert_eq!(output(&general)["queue"], "general");
    assert_eq!(output(&general)["result"]["reply"], "Thanks, we will get back to you within a day.");
}

#[test]
fn invoice_total_calls_the_sales_tax_flow() {
    let result = Steward::new().run(
        "invoice-total.yaml",
        json!({"lines": [{"qty": 2, "price": 9.5}, {"qty": 1, "price": 31}], "region": "EU"}),
    );
    assert_eq!(output(&result), &json!({"subtotal": 50.0, "tax": 10.0, "total": 60.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_orders_falls_back_after_retries() {
    let base = api().await;
    let started = std::time::Instant::now();
    let result = Steward::new().run("sync-orders.yaml", json!({"api": base}));
    let out = output(&result);
    assert_eq!(out["orders"], 0);
    assert!(out["note"].as_str().is_some_and(|n| n.contains("503")), "{out}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "waited until 1.5s after the start");
}

#[test]
fn invalid_flows_exit_2_and_name_the_place() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "name: bad\nsteps:\n  - id: a\n    transfrom: '1'\n").expect("write");
    let out = steward_testkit::steward_command(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("run")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:4:5: unknown step kind `transfrom`; did you mean `transform`?"), "{err}");
}

#[test]
fn failing_runs_exit_1_and_name_the_step() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("fails.yaml");
    std::fs::write(&file, "name: fails\nsteps:\n  - id: explode\n    transform: 'error(\"kaboom\")'\n")
        .expect("write");
    let out = steward_testkit::steward_command(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("run")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed at step `explode`") && err.contains("kaboom"), "{err}");
}
