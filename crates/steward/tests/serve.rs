//! The real binary: the first account from the CLI, `steward serve` on a random port driven
//! over HTTP, a graceful stop on SIGTERM, and `steward audit verify` catching an edited log.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn steward(data: &std::path::Path) -> Command {
    let mut c = steward_testkit::steward_command(BIN);
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
    // The CLI as a client of the server.
    let cli = |args: &[&str]| {
        let out = steward(&data)
            .arg("--server")
            .arg(&base)
            .env("STEWARD_TOKEN", &token)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.path().join("twice.yaml");
    std::fs::write(&file, flow).unwrap();
    let (code, out, err) = cli(&["flows", "apply", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "twice version 1");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "name: broken\nsteps:\n  - id: a\n    transfrom: '1'\n").unwrap();
    let (code, _, err) = cli(&["flows", "apply", broken.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("broken.yaml:4:5"), "{err}");
    let (_, out, _) = cli(&["flows", "list", "--json"]);
    let flows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(flows[0]["name"], "twice");
    let out = steward(&data)
        .args(["--server", &base, "flows", "list"])
        .env_remove("STEWARD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STEWARD_TOKEN"), "a missing token is explained");
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
    let (code, out, err) = cli(&["runs", "show", run, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (shown["run"]["output"].as_i64(), shown["steps"][0]["key"].as_str()),
        (Some(42), Some("double"))
    );
    let (_, out, _) = cli(&["runs", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["runs"][0]["id"], run);
    let anonymous = client.get(format!("{api}/flows")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Connections from the CLI: the secret from stdin, never echoed; the database holds it sealed.
    let canary = "ghp_cli_canary_5a8e";
    let with_stdin = |args: &[&str], input: &str| {
        let mut child = steward(&data)
            .arg("--server")
            .arg(&base)
            .env("STEWARD_TOKEN", &token)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, said) = with_stdin(
        &["connections", "add", "github", "--kind", "bearer", "--host", "api.github.com", "--secret-stdin"],
        &format!("{canary}\n"),
    );
    assert_eq!(code, Some(0), "{said}");
    let (code, rotated) =
        with_stdin(&["connections", "rotate", "github", "--secret-stdin"], &format!("{canary}-2\n"));
    assert_eq!(code, Some(0), "{rotated}");
    let (_, listed, _) = cli(&["connections", "list"]);
    assert!(listed.contains("github") && listed.contains("api.github.com"), "{listed}");
    let (_, shown, _) = cli(&["connections", "show", "github", "--json"]);
    let (code, _, err) = cli(&["connections", "add", "x", "--kind", "bearer", "--host", "a.com"]);
    assert_eq!(code, Some(2), "a secret source is required: {err}");
    for output in [&said, &rotated, &listed, &shown] {
        assert!(!output.contains("canary"), "{output}");
    }

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
    let files: Vec<u8> = std::fs::read_dir(&data)
        .unwrap()
        .flat_map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(!files.windows(canary.len()).any(|w| w == canary.as_bytes()), "the secret is stored sealed");

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
