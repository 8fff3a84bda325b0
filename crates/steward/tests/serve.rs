//! The real binary: the first account from the CLI, `steward serve` on a random port driven
//! over HTTP, a graceful stop on SIGTERM, and `steward audit verify` catching an edited log.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn steward(data: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data).env_remove("STEWARD_DATABASE_URL").current_dir(data.parent().unwrap());
    c
}

/// Kills the server if the test fails before stopping it.
struct Guard(Option<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_from_first_account_to_graceful_stop() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let mut create = steward(&data)
        .args(["admin", "create-user", "--email", "ada@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = steward(&data)
        .args(["admin", "create-token", "--email", "ada@example.com", "--name", "ci"])
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("stw_"));

    let mut server =
        steward(&data).args(["serve", "--bind", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut server = Guard(Some(server));
    let base = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(rest) = line.strip_prefix("serving on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let client = reqwest::Client::new();
    let api = format!("{base}/api/v1/workspaces/default");
    let auth = format!("Bearer {token}");

    let health: Value = client.get(format!("{base}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let flow = "name: twice\ninputs:\n  n: { type: integer }\nsteps:\n  - id: double\n    transform: '.inputs.n * 2'\noutput: ${{ .steps.double.output }}\n";
    let applied = client
        .post(format!("{api}/flows"))
        .header("authorization", &auth)
        .json(&json!({ "source": flow }))
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 201);
    let started: Value = client
        .post(format!("{api}/flows/twice/runs"))
        .header("authorization", &auth)
        .json(&json!({ "inputs": { "n": 21 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = started["run_id"].as_str().unwrap();
    let mut output = Value::Null;
    for _ in 0..100 {
        let shown: Value = client
            .get(format!("{api}/runs/{run}"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if shown["run"]["status"] == "succeeded" {
            output = shown["run"]["output"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(output, 42);
    let anonymous = client.get(format!("{api}/flows")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // SIGTERM: the server stops accepting, drains and exits cleanly.
    let mut child = server.0.take().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");

    let verify = steward(&data).args(["audit", "verify", "--json"]).output().unwrap();
    assert!(verify.status.success());
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["intact"], true);
    assert!(report["checked"].as_u64().unwrap() >= 3, "user, token and flow were audited: {report}");

    // Someone with the database file rewrites history.
    let url = format!("sqlite://{}", data.join("steward.db").display());
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 2")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let verify = steward(&data).args(["audit", "verify", "--json"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!((report["intact"].as_bool(), report["broken_at"].as_i64()), (Some(false), Some(2)));
}
