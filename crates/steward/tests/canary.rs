//! The canary test of the vault's promise: secrets never leak. Unique secrets are planted in
//! connections of every kind, then flows try every path out — a service that echoes headers,
//! query and body back, error messages that would carry a secret in the URL, transforms and
//! code steps reading step outputs, loops, a redirect to another host — while `steward serve`
//! logs at debug level. Afterwards the database (the SQLite files' bytes, or a `pg_dump` of
//! PostgreSQL), the server log, every API answer and SSE stream, and every export format are
//! scanned for each secret and its base64, URL-encoded and JSON-escaped forms: zero occurrences.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;
use serde_json::{Map, Value, json};
use steward_vault::{Redactor, Secret};

const BIN: &str = env!("CARGO_BIN_EXE_steward");

/// The planted secrets: (connection, kind, value).
fn canaries() -> Vec<(&'static str, String)> {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    vec![
        ("bearer", format!("cb-{tag}-bearer")),
        ("querykey", format!("cq-{tag}-q&y=1")),
        ("basic", format!("cp-{tag}-pass")),
        ("hdrs", format!("ch-{tag}-header")),
    ]
}

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on the data directory, or on PostgreSQL when `database_url` is given.
fn steward(data: &Path, database_url: Option<&str>) -> Command {
    let mut c = steward_testkit::steward_command(BIN);
    c.arg("--data-dir").arg(data).env_remove("STEWARD_DATABASE_URL");
    if let Some(url) = database_url {
        c.arg("--database-url").arg(url);
    }
    c
}

fn serve(data: &Path, database_url: Option<&str>) -> Server {
    let mut child = steward(data, database_url)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("STEWARD_LOG", "debug")
        .env("STEWARD_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let base = loop {
        let line = lines.next().expect("server output").unwrap();
        log.lock().unwrap().push(line.clone());
        if let Some(rest) = line.strip_prefix("serving on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Server { child, base, log }
}

/// An API that echoes what it gets (headers, query, body), fails with the echo under
/// `/fail/`, and redirects `/away` to another host name for the same server.
async fn echo_service() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new().fallback(any(move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let seen: Map<String, Value> =
            headers.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default()))).collect();
        let echo = json!({"headers": seen, "query": uri.query(), "path": uri.path(), "body": String::from_utf8_lossy(&body)});
        if uri.path() == "/away" {
            let to = format!("http://localhost:{port}/echo/stolen");
            return (StatusCode::TEMPORARY_REDIRECT, [("location", to)], axum::Json(echo));
        }
        let status = if uri.path().starts_with("/fail/") { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
        (status, [("x-echo", "1".to_owned())], axum::Json(echo))
    }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

/// The flows that try to leak: each reads what the echo service sent back.
fn flows(echo: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "echo-bearer",
            format!(
                "name: echo-bearer\nsteps:\n  - id: call\n    http:\n      url: '{echo}/echo/a'\n      connection: bearer\n  - id: copy\n    transform: '.steps.call.output.body.headers'\n  - id: js\n    code: 'export default ({{ steps }}) => JSON.stringify(steps.call.output) + steps.copy.output.authorization'\noutput: {{copy: '${{{{ .steps.copy.output }}}}', js: '${{{{ .steps.js.output }}}}'}}\n"
            ),
        ),
        (
            "echo-query",
            format!(
                "name: echo-query\nsteps:\n  - id: call\n    http:\n      url: '{echo}/echo/q'\n      connection: querykey\n  - id: loop\n    for_each:\n      items: '${{{{ [1, 2] }}}}'\n      steps:\n        - id: again\n          http:\n            url: '{echo}/echo/loop'\n            query: {{k: '${{{{ secret(\"querykey\") }}}}', i: '${{{{ .item }}}}'}}\noutput: '${{{{ .steps.call.output.body.query }}}}'\n"
            ),
        ),
        (
            "echo-basic",
            format!(
                "name: echo-basic\nsteps:\n  - id: call\n    http:\n      method: POST\n      url: '{echo}/echo/b'\n      connection: basic\n      json: {{note: 'hello'}}\noutput: '${{{{ .steps.call.output.body.headers.authorization }}}}'\n"
            ),
        ),
        (
            "echo-headers",
            format!(
                "name: echo-headers\nsteps:\n  - id: call\n    http:\n      url: '{echo}/echo/h'\n      connection: hdrs\n      json: {{copy: '${{{{ secret(\"bearer\") }}}}'}}\noutput: '${{{{ .steps.call.output.body }}}}'\n"
            ),
        ),
        (
            "fails",
            format!(
                "name: fails\nsteps:\n  - id: call\n    http:\n      url: '{echo}/fail/${{{{ secret(\"bearer\") }}}}'\n"
            ),
        ),
        (
            "redirected",
            format!(
                "name: redirected\nsteps:\n  - id: call\n    http:\n      url: '{echo}/away'\n      connection: bearer\n"
            ),
        ),
    ]
}

async fn scenario(database_url: Option<String>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = database_url.as_deref();
    let secrets = canaries();
    let redactor = Redactor::new(secrets.iter().map(|(name, v)| (*name, Secret::from(v.as_str()))));

    let mut create = steward(&data, url)
        .args(["admin", "create-user", "--email", "ada@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    assert!(create.wait().unwrap().success());
    let out = steward(&data, url)
        .args(["admin", "create-token", "--email", "ada@example.com", "--name", "ci"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let server = serve(&data, url);
    let echo = echo_service().await;

    let cli = |args: &[&str], stdin: Option<&str>| {
        let mut c = steward(&data, url);
        c.args(["--server", &server.base]).env("STEWARD_TOKEN", &token).args(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let mut said = String::new();
    let value = |name: &str| secrets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    said += &cli(
        &["connections", "add", "bearer", "--kind", "bearer", "--host", "127.0.0.1", "--secret-stdin"],
        Some(&value("bearer")),
    );
    said += &cli(
        &[
            "connections",
            "add",
            "querykey",
            "--kind",
            "api_key",
            "--query",
            "key",
            "--host",
            "127.0.0.1",
            "--secret-stdin",
        ],
        Some(&value("querykey")),
    );
    said += &cli(
        &[
            "connections",
            "add",
            "basic",
            "--kind",
            "basic",
            "--username",
            "ada",
            "--host",
            "127.0.0.1",
            "--secret-stdin",
        ],
        Some(&value("basic")),
    );
    let headers = json!({"x-secret-one": value("hdrs")}).to_string();
    said += &cli(
        &["connections", "add", "hdrs", "--kind", "headers", "--host", "127.0.0.1", "--secret-stdin"],
        Some(&headers),
    );

    let client = reqwest::Client::new();
    let api = format!("{}/api/v1/workspaces/default", server.base);
    let auth = format!("Bearer {token}");
    for (name, source) in flows(&echo) {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, source).unwrap();
        said += &cli(&["flows", "apply", file.to_str().unwrap()], None);
        let started: Value = client
            .post(format!("{api}/flows/{name}/runs"))
            .header("authorization", &auth)
            .json(&json!({"inputs": {}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let run = started["run_id"].as_str().unwrap().to_owned();
        let stream = client
            .get(format!("{api}/runs/{run}/stream"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        said += &stream.text().await.unwrap();
        let shown: Value = client
            .get(format!("{api}/runs/{run}"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expect = if ["fails", "redirected"].contains(&name) { "failed" } else { "succeeded" };
        assert_eq!(shown["run"]["status"], expect, "{name}: {shown}");
        said += &shown.to_string();
        said += &cli(&["runs", "logs", &run, "--json"], None);
        said += &cli(&["runs", "receipt", &run, "--json"], None);
    }
    // The echo really received the secrets, so the redaction is what kept them out.
    assert!(said.contains("[redacted:bearer]") && said.contains("[redacted:querykey]"), "{said}");
    assert!(said.contains("[redacted:basic]") && said.contains("[redacted:hdrs]"), "{said}");
    assert!(said.contains("connection `bearer` may only be sent to 127.0.0.1"), "the redirect was refused");

    let mut exports = Vec::new();
    for format in ["json", "csv", "sql"] {
        let out_dir = dir.path().join(format!("export-{format}"));
        let out = steward(&data, url)
            .args([
                "export",
                "--workspace",
                "default",
                "--format",
                format,
                "--out",
                out_dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "export {format}: {}", String::from_utf8_lossy(&out.stderr));
        exports.push(out_dir);
    }
    let api_export = client.get(format!("{api}/export")).header("authorization", &auth).send().await.unwrap();
    said += &api_export.text().await.unwrap();

    let stored = match url {
        None => files_under(&data),
        Some(url) => {
            let dump = Command::new("pg_dump").arg(url).output().unwrap();
            assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
            vec![("pg_dump".into(), dump.stdout)]
        }
    };
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("run finished"), "the log was captured at debug level");
    let mut places: Vec<(String, Vec<u8>)> = stored;
    places.push(("server log".into(), log.into_bytes()));
    places.push(("API answers, SSE streams and CLI output".into(), said.into_bytes()));
    for dir in &exports {
        places.extend(files_under(dir));
    }
    for (place, bytes) in &places {
        assert_eq!(redactor.find_in(bytes), None, "a canary in {place}");
    }
    drop(server);
}

/// Every file under `dir`, with its path.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_leaks_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_leaks_on_postgres() {
    scenario(Some(steward_testkit::fresh_pg_database().await)).await;
}
