//! `webhook`: a sync webhook in front of a 3-step flow (transform, conditional transform,
//! transform), driven over loopback by a load generator in this process while the release
//! `steward serve` runs as another process.
//!
//! Each repetition starts a server on a fresh store (rate limits off, everything else default),
//! creates its first account and token with `steward admin`, applies the flow and creates a
//! sync webhook over the API. After 200 warm-up deliveries, each load phase keeps N HTTP/1.1
//! keep-alive connections busy for `--secs` seconds (one request in flight per connection,
//! as `wrk` and `oha` do) and records every request's latency; a request counts as accepted
//! when it is answered 200 with the flow's output, which the server sends only after the run's
//! last commit. The server's peak resident memory (`VmHWM`) is read, then the server is killed
//! with SIGKILL, and the store must hold exactly one succeeded run per accepted request.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use steward_engine::RunStatus;
use steward_store::{DEFAULT_WORKSPACE, RunFilter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::RunArgs;
use crate::fixture::{Fresh, Location};
use crate::http::Conn;
use crate::process::{read_memory, steward_bin, stop};
use crate::report::{Sample, round};

pub const FLOW: &str = "name: bench-hook
steps:
  - id: parse
    transform: '{ n: .trigger.body.n, from: .trigger.body.from }'
  - id: large
    if: .steps.parse.output.n > 10
    transform: '.steps.parse.output.n * 2'
  - id: answer
    transform: '{ n: .steps.parse.output.n, doubled: .steps.large.output, from: .steps.parse.output.from }'
output: ${{ .steps.answer.output }}
";

/// The flow of the `http` and `connection` variants: the same answer, with an HTTP step to a
/// loopback server in the middle (`{url}` and `{connection}` are filled in).
const HTTP_FLOW: &str = "name: bench-hook
steps:
  - id: parse
    transform: '{ n: .trigger.body.n, from: .trigger.body.from }'
  - id: call
    http:
      url: '{url}'{connection}
  - id: answer
    transform: '{ n: .steps.parse.output.n, doubled: (if .steps.parse.output.n > 10 then .steps.parse.output.n * 2 else null end), from: .steps.parse.output.from }'
output: ${{ .steps.answer.output }}
";

/// Connections made in the `workspace` and `connection` variants (their secrets are scanned
/// for in every payload).
const CONNECTIONS: usize = 20;

/// What the vault adds to the webhook's work (see `--secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Secrets {
    None,
    Workspace,
    Http,
    Connection,
}

impl Secrets {
    pub fn scenario(self) -> &'static str {
        match self {
            Secrets::None => "webhook",
            Secrets::Workspace => "webhook-scanned",
            Secrets::Http => "webhook-http",
            Secrets::Connection => "webhook-http-connection",
        }
    }
}

const WARM_UP: usize = 200;

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    anyhow::ensure!(!args.connections.is_empty(), "--connections needs at least one count");
    let bin = steward_bin(args)?;
    let logs = tempfile::Builder::new().prefix("steward-bench-serve-").tempdir()?;
    let fresh = Fresh::new(args.db).await?;
    let token = first_token(&bin, &fresh.location).await?;
    let log = logs.path().join("serve.log");
    let (mut server, addr) = serve(&bin, &fresh.location, &log, &[]).await?;
    let target = steward_testkit::Recorder::start().await;
    let result = async {
        let hook = setup(addr, &token, args.secrets, &format!("{}/hit/bench", target.base)).await?;
        let idle = read_memory(&server)?;
        let mut sample = Sample::new();
        let mut accepted = phase(addr, &hook, 4, Phase::Count(WARM_UP)).await?.ok;
        for &n in &args.connections {
            let load = phase(addr, &hook, n, Phase::For(Duration::from_secs(args.secs))).await?;
            accepted += load.ok;
            load.report(n, &mut sample);
        }
        let memory = read_memory(&server)?;
        sample.insert("idle_rss_mib".into(), json!(round(idle.rss_kib as f64 / 1024.0)));
        sample.insert("peak_rss_mib".into(), json!(round(memory.hwm_kib as f64 / 1024.0)));
        Ok::<_, anyhow::Error>((sample, accepted))
    }
    .await;
    // No graceful stop: what was answered must already be durable.
    stop(&mut server).await;
    let (mut sample, accepted) = result.map_err(|e| with_log(e, &log))?;

    let filter =
        RunFilter { status: Some(RunStatus::Succeeded), limit: accepted + 1, ..RunFilter::default() };
    let recorded = fresh.store.list_runs(DEFAULT_WORKSPACE, &filter).await?.len();
    anyhow::ensure!(
        recorded == accepted,
        "{accepted} deliveries were answered but {recorded} runs succeeded"
    );
    sample.insert("accepted".into(), json!(accepted));
    sample.insert("recorded".into(), json!(recorded));
    fresh.close().await?;
    Ok(sample)
}

/// `steward admin create-user` and `create-token` on the fresh store.
pub(crate) async fn first_token(bin: &Path, location: &Location) -> anyhow::Result<String> {
    let mut create = Command::new(bin)
        .args(location.flags())
        .args(["admin", "create-user", "--email", "bench@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = create.stdin.take().context("no stdin")?;
    stdin.write_all(b"a benchmark passphrase\n").await?;
    drop(stdin);
    let out = create.wait_with_output().await?;
    anyhow::ensure!(out.status.success(), "create-user failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(bin)
        .args(location.flags())
        .args(["admin", "create-token", "--email", "bench@example.com", "--name", "bench"])
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "create-token failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Starts `steward serve` on a free loopback port with `extra` flags; returns it once it
/// listens.
pub(crate) async fn serve(
    bin: &Path,
    location: &Location,
    log: &Path,
    extra: &[&str],
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(bin)
        .args(location.flags())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .args(["--rate-limit-address", "off", "--rate-limit-token", "off", "--rate-limit-webhook", "off"])
        .env("STEWARD_LOG", "warn")
        // The HTTP variants call a server on loopback.
        .env("STEWARD_EGRESS_ALLOW", steward_testkit::LOOPBACK_EGRESS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let mut file = tokio::fs::File::create(log).await?;
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the server did not start within 30 s")??
            .context("the server exited before listening")?;
        file.write_all(format!("{line}\n").as_bytes()).await?;
        if let Some(rest) = line.strip_prefix("serving on http://") {
            break rest.split_whitespace().next().context("no address")?.parse()?;
        }
    };
    // Keep reading the server's log so that it never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = file.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    Ok((child, addr))
}

pub(crate) fn with_log(e: anyhow::Error, log: &Path) -> anyhow::Error {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    e.context(format!("server log (last lines):\n{}", tail.join("\n")))
}

/// Makes the variant's connections, applies the flow and creates its sync webhook; returns the
/// webhook's path.
pub(crate) async fn setup(
    addr: SocketAddr,
    token: &str,
    secrets: Secrets,
    url: &str,
) -> anyhow::Result<String> {
    let mut conn = Conn::open(addr).await?;
    let api = "/api/v1/workspaces/default";
    if matches!(secrets, Secrets::Workspace | Secrets::Connection) {
        for i in 0..=CONNECTIONS {
            let (name, host) =
                if i == 0 { ("bench".to_owned(), "127.0.0.1") } else { (format!("c{i}"), "api.example.com") };
            let secret = format!("bench-secret-{i}-{}", uuid::Uuid::now_v7().simple());
            let body = json!({ "name": name, "kind": "bearer", "hosts": [host], "secret": secret });
            let (status, text) = conn
                .send(
                    Method::POST,
                    &format!("{api}/connections"),
                    Some(token),
                    Some(Bytes::from(body.to_string())),
                )
                .await?;
            anyhow::ensure!(
                status == StatusCode::CREATED,
                "connection: {status} {}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    let flow = match secrets {
        Secrets::None | Secrets::Workspace => FLOW.to_owned(),
        Secrets::Http => HTTP_FLOW.replace("{url}", url).replace("{connection}", ""),
        Secrets::Connection => {
            HTTP_FLOW.replace("{url}", url).replace("{connection}", "\n      connection: bench")
        }
    };
    let body = Bytes::from(json!({ "source": flow }).to_string());
    let (status, text) = conn.send(Method::POST, &format!("{api}/flows"), Some(token), Some(body)).await?;
    anyhow::ensure!(status.is_success(), "apply: {status} {}", String::from_utf8_lossy(&text));
    let body = Bytes::from(json!({ "mode": "sync", "sync_timeout_ms": 10_000 }).to_string());
    let path = format!("{api}/flows/bench-hook/webhooks");
    let (status, text) = conn.send(Method::POST, &path, Some(token), Some(body)).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "webhook: {status} {}", String::from_utf8_lossy(&text));
    let created: Value = serde_json::from_slice(&text)?;
    let url = created["url"].as_str().context("no webhook url")?;
    Ok(url[url.find("/hooks/").context("unexpected webhook url")?..].to_owned())
}

/// How long a load phase lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// This many requests in all.
    Count(usize),
    For(Duration),
}

/// What one load phase measured.
#[derive(Debug, Default)]
pub(crate) struct Load {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub micros: Vec<u32>,
    pub elapsed: Duration,
}

impl Load {
    /// Adds another phase's requests to this one's.
    pub fn absorb(&mut self, other: Load) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.micros.extend(other.micros);
        self.elapsed += other.elapsed;
    }

    /// The latency below which a share `p` of the accepted requests were answered, in ms.
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        self.micros.sort_unstable();
        let i = ((self.micros.len() as f64 * p).ceil() as usize).clamp(1, self.micros.len().max(1)) - 1;
        self.micros.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
    }

    fn report(mut self, connections: usize, sample: &mut Sample) {
        let (p50, p99) = (self.percentile_ms(0.50), self.percentile_ms(0.99));
        let c = connections;
        sample.insert(format!("c{c}_req_per_sec"), json!(round(self.ok as f64 / self.elapsed.as_secs_f64())));
        sample.insert(format!("c{c}_p50_ms"), json!(round(p50)));
        sample.insert(format!("c{c}_p99_ms"), json!(round(p99)));
        sample.insert(format!("c{c}_errors"), json!(self.errors));
        if let Some(e) = self.first_error {
            eprintln!("{c} connections: {} errors, the first: {e}", self.errors);
        }
    }
}

/// Keeps `connections` connections busy for the phase.
pub(crate) async fn phase(
    addr: SocketAddr,
    hook: &str,
    connections: usize,
    phase: Phase,
) -> anyhow::Result<Load> {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..connections {
        let hook = hook.to_owned();
        let share = match phase {
            Phase::Count(n) => Phase::Count(n / connections + usize::from(c < n % connections)),
            other => other,
        };
        set.spawn(async move { client(addr, &hook, c, share, start).await });
    }
    let mut load = Load::default();
    while let Some(done) = set.join_next().await {
        let mut one = done??;
        one.elapsed = Duration::ZERO;
        load.absorb(one);
    }
    load.elapsed = start.elapsed();
    Ok(load)
}

/// One connection sending deliveries one after another.
async fn client(
    addr: SocketAddr,
    hook: &str,
    id: usize,
    phase: Phase,
    start: Instant,
) -> anyhow::Result<Load> {
    let mut conn = Conn::open(addr).await?;
    let mut load = Load::default();
    for i in 0.. {
        match phase {
            Phase::Count(n) if i >= n => break,
            Phase::For(d) if start.elapsed() >= d => break,
            _ => {}
        }
        let n = i % 20;
        let body = Bytes::from(format!(r#"{{"n":{n},"from":"client-{id}"}}"#));
        let sent = Instant::now();
        let (status, answer) = conn.send(Method::POST, hook, None, Some(body)).await?;
        let took = sent.elapsed();
        if status == StatusCode::OK && answered_right(&answer, n, id) {
            load.ok += 1;
            load.micros.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        } else {
            load.errors += 1;
            if load.first_error.is_none() {
                load.first_error = Some(format!("{status} {}", String::from_utf8_lossy(&answer)));
            }
        }
    }
    Ok(load)
}

/// The flow's output for `{"n": n, "from": "client-<id>"}`.
fn answered_right(answer: &[u8], n: usize, id: usize) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else { return false };
    let doubled = if n > 10 { json!(n * 2) } else { Value::Null };
    v["n"] == json!(n) && v["doubled"] == doubled && v["from"] == json!(format!("client-{id}"))
}
