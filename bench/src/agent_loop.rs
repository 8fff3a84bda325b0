//! `agent-loop`: what Steward's durable agent loop adds per model turn and per tool call.
//!
//! An agent with one cheap built-in tool (`current_time`) runs as the only step of a flow, on a
//! fresh store, with an executor in this process. Its model is a fake provider on loopback
//! that speaks the OpenAI protocol and answers at once from a script
//! (`steward_testkit::model::FakeProvider`). Each repetition:
//!
//! 1. **Warm-up.** One run of one tool call and a final answer (the HTTP connection pool, the
//!    agent definition cache and the workspace's redactor are warm afterwards, as in a server
//!    that has been running).
//! 2. **Short runs.** `SHORT_RUNS` runs whose model answers with text at once: one model turn
//!    and no tool, so the time is the run's fixed cost (start, claim, first commit, finish) plus
//!    one turn. Their median is subtracted from the long run.
//! 3. **Long run.** The model asks for `current_time` `--turns` times (N, default 50), then
//!    answers: N + 1 model turns and N tool calls, each one pass of the loop and one journaled
//!    record. `pair_us` = (long − short) / N is the time of one model turn with its tool call.
//! 4. **Bare round trips.** Every request the provider received during the long run is sent
//!    again, unchanged, `BARE_ROUNDS` times, with the same scripted answers, three ways:
//!    `bare_http_us`, the body already written as JSON, with a reqwest client built like the
//!    executor's: the provider's own round trip, which any loop pays; `bare_post_raw_us`,
//!    through the executor's HTTP client (`HttpClient::post_raw`: the egress guard, `secret()`
//!    handles filled in, the body written); `bare_call_us`, through `ModelClient` of
//!    `steward-agent` over that client (the body built from the journaled records, the answer
//!    parsed).
//!
//! `net_*` figures are the raw ones minus `bare_http_us`: what Steward adds. Commits and the
//! usage counters are timed with the [`crate::timed`] store wrapper. The executor's progress
//! stream, stamped as each commit is announced, splits a pair into the model pass (the tool's
//! commit to the turn's commit) and the tool pass (the turn's commit to the tool's commit);
//! the provider's arrival times split the model pass at the request. `rebuild_*_us` times, in
//! this process and without I/O, the part of a model pass that grows with the transcript.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use steward_agent::provider::{
    ModelClient, ModelRequest, ProviderError, RetryPolicy, ToolSpec, Transport, openai,
};
use steward_agent::turns::{Record, transcript};
use steward_engine::{Entry, Event, RunStatus};
use steward_executor::{Executor, Progress};
use steward_steps::http::{HttpClient, Secrets};
use steward_store::DEFAULT_WORKSPACE;
use steward_testkit::model::{FakeProvider, Reply};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::RunArgs;
use crate::fixture::{Fresh, Running, digest, now_millis, options};
use crate::report::{Sample, median, round};
use crate::timed::Counts;

const AGENT: &str = "bench-agent";
const MODEL: &str = "bench-model";
const TOOL: &str = "current_time";
const INSTRUCTIONS: &str = "Answer in one word.";
const ANSWER: &str = "done";
/// Runs of one model turn each, per repetition.
const SHORT_RUNS: usize = 7;
/// How many times the long run's requests are sent again for the bare round trips.
const BARE_ROUNDS: usize = 3;

/// The agent: the fake provider's OpenAI endpoint, no key, one built-in tool, enough turns.
pub fn definition(base_url: &str, turns: usize) -> String {
    format!(
        "name: {AGENT}\ninstructions: {INSTRUCTIONS}\n\
         model: {{provider: openai, base_url: '{base_url}', name: {MODEL}}}\n\
         tools: [{{builtin: {TOOL}}}]\nlimits: {{max_turns: {}}}\n",
        turns + 10
    )
}

/// A flow whose only step is the agent.
pub fn flow() -> String {
    format!(
        "name: bench-agent-loop\nsteps:\n  - id: ask\n    \
         agent: {{name: {AGENT}, input: 'What time is it?'}}\noutput: ${{{{ .steps.ask.output }}}}\n"
    )
}

/// One commit of a run as the progress stream announced it.
#[derive(Debug)]
struct Commit {
    at: Instant,
    /// The `type` of every record the commit journaled (`begin`, `turn`, `tool`).
    records: Vec<String>,
}

/// A finished run: its wall time (start to the announcement of its last commit), its commits.
#[derive(Debug)]
struct Finished {
    id: String,
    elapsed: Duration,
    commits: Vec<Commit>,
}

pub async fn rep(args: &RunArgs, _rep: usize) -> anyhow::Result<Sample> {
    let n = args.turns;
    anyhow::ensure!(n >= 10, "--turns must be at least 10");
    let fresh = Fresh::new(args.db).await?;
    let provider = FakeProvider::start().await;
    let def = definition(&provider.openai_url(), n);
    let at = steward_engine::Timestamp(now_millis());
    fresh.store.save_agent(DEFAULT_WORKSPACE, AGENT, &def, &digest(&def), at).await?;
    let version = fresh.apply(&flow()).await?;
    let executor = Executor::new(fresh.store.clone(), options(args.max_runs))?;
    executor.compiled(&version.workspace, &version.id).await?;
    let running = Running::start(&executor);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let w = Watch { provider: &provider, executor: &executor, version: &version, timeout: args.timeout() };
    let mut progress = executor.subscribe();

    w.run(&mut progress, 1).await?;
    let mut short = Vec::with_capacity(SHORT_RUNS);
    for _ in 0..SHORT_RUNS {
        short.push(w.run(&mut progress, 0).await?.elapsed.as_secs_f64() * 1e6);
    }
    let seen = provider.count();
    let before = fresh.timing.snapshot();
    let Finished { id, elapsed: long, commits: long_commits } = w.run(&mut progress, n).await?;
    let spent = fresh.timing.snapshot().since(&before);
    let requests = provider.requests().split_off(seen);
    running.stop().await?;

    let record = fresh.store.run(DEFAULT_WORKSPACE, &id).await?;
    anyhow::ensure!(record.status == RunStatus::Succeeded, "the long run ended {:?}", record.error);
    anyhow::ensure!(record.output == Some(json!(ANSWER)), "unexpected output {:?}", record.output);
    anyhow::ensure!(requests.len() == n + 1, "{} model calls for {} turns", requests.len(), n + 1);
    let journal = fresh.store.journal(&id).await?;
    let bodies: Vec<Value> = requests.iter().map(|r| r.body.clone()).collect();
    let bare_http = bare_http(&provider, &bodies).await?;
    let bare_post_raw = bare_post_raw(&provider, &bodies).await?;
    let (bare_call, same_bodies) = bare_calls(&provider, &journal, &bodies).await?;
    let rebuild = Rebuild::of(&journal, &bodies);
    drop(executor);
    fresh.close().await?;

    let arrivals: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    let bare = Bare { http: bare_http, post_raw: bare_post_raw, call: bare_call, same_bodies };
    let m =
        Measured { n, short: median(short), long, split: Split::of(&long_commits, &arrivals), bare, rebuild };
    Ok(serde_json::from_value(m.sample(&spent, &journal, &bodies))?)
}

/// The provider's round trips, in µs, one per request and round (see [`replay`]).
#[derive(Debug)]
struct Bare {
    /// A plain reqwest client, the body already written.
    http: Vec<f64>,
    /// The executor's HTTP client.
    post_raw: Vec<f64>,
    /// `ModelClient` over the executor's HTTP client.
    call: Vec<f64>,
    /// Requests whose body `ModelClient` built exactly as the executor had.
    same_bodies: usize,
}

/// What a repetition measured.
#[derive(Debug)]
struct Measured {
    n: usize,
    /// Median µs of a run with one model turn and no tool.
    short: f64,
    long: Duration,
    split: Split,
    bare: Bare,
    rebuild: Rebuild,
}

impl Measured {
    fn sample(&self, spent: &Counts, journal: &[Entry], bodies: &[Value]) -> Value {
        let (n, s, bare) = (self.n, &self.split, &self.bare);
        let long_us = self.long.as_secs_f64() * 1e6;
        let pair = (long_us - self.short) / n as f64;
        let bare_us = median(bare.http.clone());
        // Pair i's model call is request i (request 0 is the first turn's).
        let bare_first10 = by_request(&bare.http, n + 1, 1..11);
        let bare_last10 = by_request(&bare.http, n + 1, n - 9..n + 1);
        let first10 = median(s.pairs.iter().take(10).copied().collect());
        let last10 = median(s.pairs.iter().rev().take(10).copied().collect());
        let model = median(s.model.clone());
        let tool = median(s.tool.clone());
        let passes = (2 * n + 1) as f64;
        let per_pass = |v: f64| round(v / passes);
        let us = |method: &str| spent.ns(method) as f64 / 1000.0;
        let appends = spent.calls("append");
        json!({
            "turns": n + 1,
            "tool_calls": n,
            "pair_us": round(pair),
            "bare_http_us": round(bare_us),
            "net_pair_us": round(pair - bare_us),
            "net_pair_ratio_to_1ms": round((pair - bare_us) / 1000.0),
            "model_pass_us": round(model),
            "net_model_pass_us": round(model - bare_us),
            "net_model_pass_ratio_to_1ms": round((model - bare_us) / 1000.0),
            "tool_pass_us": round(tool),
            "tool_pass_ratio_to_1ms": round(tool / 1000.0),
            "pair_us_median": round(median(s.pairs.clone())),
            "pair_first10_us": round(first10),
            "pair_last10_us": round(last10),
            "net_pair_first10_us": round(first10 - bare_first10),
            "net_pair_last10_us": round(last10 - bare_last10),
            "model_pre_request_us": round(median(s.pre.clone())),
            "model_post_request_us": round(median(s.post.clone())),
            "bare_http_min_us": round(bare.http.iter().copied().fold(f64::INFINITY, f64::min)),
            "bare_http_first10_us": round(bare_first10),
            "bare_http_last10_us": round(bare_last10),
            "bare_post_raw_us": round(median(bare.post_raw.clone())),
            "bare_call_us": round(median(bare.call.clone())),
            "bare_bodies_same": bare.same_bodies,
            "rebuild_first_us": round(self.rebuild.first_us),
            "rebuild_last_us": round(self.rebuild.last_us),
            "short_run_us": round(self.short),
            "net_short_run_us": round(self.short - bare_us),
            "long_run_ms": round(long_us / 1000.0),
            "commits_per_pass": per_pass(appends as f64),
            "append_us_per_pass": per_pass(us("append")),
            "append_us_mean": round(us("append") / appends.max(1) as f64),
            "add_usage_per_pass": per_pass(spent.calls("add_usage") as f64),
            "add_usage_us_per_pass": per_pass(us("add_usage")),
            "store_us_per_pass": per_pass(spent.methods.values().map(|c| c.1 as f64 / 1000.0).sum()),
            "events_per_pass": per_pass(spent.append_entries as f64),
            "journal_events": journal.len(),
            "request_kib_last": round(bodies.last().map_or(0, |b| b.to_string().len()) as f64 / 1024.0),
            "store_calls": spent.to_json(),
        })
    }
}

/// Queues `calls` tool-call answers and then the final text.
fn script(provider: &FakeProvider, calls: usize) {
    for i in 1..=calls {
        provider.enqueue(Reply::tool_call(format!("call_{i}"), TOOL, json!({})));
    }
    provider.enqueue(Reply::text(ANSWER));
}

/// What a repetition's runs share.
struct Watch<'a> {
    provider: &'a FakeProvider,
    executor: &'a Executor,
    version: &'a steward_store::FlowVersion,
    timeout: Duration,
}

impl Watch<'_> {
    /// Scripts `calls` tool calls and an answer, starts a run and collects its commits,
    /// stamped as they are announced, until it finishes.
    async fn run(
        &self,
        progress: &mut broadcast::Receiver<Progress>,
        calls: usize,
    ) -> anyhow::Result<Finished> {
        script(self.provider, calls);
        start_and_watch(self.executor, self.version, progress, self.timeout).await
    }
}

async fn start_and_watch(
    executor: &Executor,
    version: &steward_store::FlowVersion,
    progress: &mut broadcast::Receiver<Progress>,
    timeout: Duration,
) -> anyhow::Result<Finished> {
    let start = Instant::now();
    let id = executor.start_run(version, json!({})).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut commits = Vec::new();
    loop {
        let p = match tokio::time::timeout_at(deadline, progress.recv()).await {
            Err(_) => anyhow::bail!("run {id} did not finish within {timeout:?}"),
            Ok(Ok(p)) => p,
            Ok(Err(RecvError::Lagged(k))) => anyhow::bail!("the progress stream dropped {k} commits"),
            Ok(Err(RecvError::Closed)) => anyhow::bail!("the executor's progress stream closed"),
        };
        let at = Instant::now();
        if p.run_id != id {
            continue;
        }
        let mut finished = None;
        let mut records = Vec::new();
        for e in p.entries.iter() {
            match &e.event {
                Event::StepRecorded { record, .. } => {
                    records.push(record["type"].as_str().unwrap_or_default().to_owned());
                }
                Event::RunFinished { status, .. } => finished = Some(*status),
                _ => {}
            }
        }
        commits.push(Commit { at, records });
        match finished {
            Some(RunStatus::Succeeded) => return Ok(Finished { id, elapsed: at - start, commits }),
            Some(status) => anyhow::bail!("run {id} ended {}", status.as_str()),
            None => {}
        }
    }
}

/// Per-pass times (µs) read from the stamps of a run's commits and of the provider's requests.
#[derive(Debug, Default)]
struct Split {
    /// Turn's commit to the next turn's commit: one model turn with its tool call.
    pairs: Vec<f64>,
    /// Tool's commit to the next turn's commit.
    model: Vec<f64>,
    /// Turn's commit to its tool's commit.
    tool: Vec<f64>,
    /// Tool's commit to the next request's arrival at the provider.
    pre: Vec<f64>,
    /// The request's arrival to the turn's commit.
    post: Vec<f64>,
}

impl Split {
    fn of(commits: &[Commit], arrivals: &[Instant]) -> Self {
        let us = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1e6;
        let mut s = Split::default();
        let (mut last_turn, mut last_tool): (Option<Instant>, Option<Instant>) = (None, None);
        let mut turn_index = 0;
        for c in commits {
            if c.records.iter().any(|r| r == "turn") {
                if let Some(t) = last_turn {
                    s.pairs.push(us(t, c.at));
                }
                if let Some(t) = last_tool {
                    s.model.push(us(t, c.at));
                    if let Some(&arrived) = arrivals.get(turn_index) {
                        s.pre.push(us(t, arrived));
                        s.post.push(us(arrived, c.at));
                    }
                }
                last_turn = Some(c.at);
                last_tool = None;
                turn_index += 1;
            } else if c.records.iter().any(|r| r == "tool") {
                if let Some(t) = last_turn {
                    s.tool.push(us(t, c.at));
                }
                last_tool = Some(c.at);
            }
        }
        s
    }
}

/// The median over `range` of request indexes of each index's median over the rounds;
/// `times` holds rounds of `per_round` requests one after the other.
fn by_request(times: &[f64], per_round: usize, range: std::ops::Range<usize>) -> f64 {
    let each = range.map(|k| median(times.iter().skip(k).step_by(per_round).copied().collect()));
    median(each.collect())
}

/// The CPU work of a model pass that grows with the transcript, without I/O: reading the
/// journaled records (as the executor does, from JSON values), building the transcript and the
/// request body, and writing it as JSON. Medians of `REBUILDS` times, in µs, for the first
/// model call of the long run and for its last.
#[derive(Debug)]
struct Rebuild {
    first_us: f64,
    last_us: f64,
}

const REBUILDS: usize = 21;

impl Rebuild {
    fn of(journal: &[Entry], bodies: &[Value]) -> Self {
        let values = recorded(journal);
        let tools = tool_specs(bodies);
        let time = |values: &[Value]| {
            let times = (0..REBUILDS).map(|_| {
                let start = Instant::now();
                let owned = values.to_vec();
                let records = Record::parse_all(&owned);
                let body = openai::request_body(&request(&records, &tools), false);
                std::hint::black_box(body.to_string());
                start.elapsed().as_secs_f64() * 1e6
            });
            median(times.collect())
        };
        let last_turn = values.iter().rposition(|v| v["type"] == "turn").unwrap_or(0);
        Self { first_us: time(&values[..1.min(values.len())]), last_us: time(&values[..last_turn]) }
    }
}

/// The records journaled by the run's agent step, as stored.
fn recorded(journal: &[Entry]) -> Vec<Value> {
    journal
        .iter()
        .filter_map(|e| match &e.event {
            Event::StepRecorded { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect()
}

/// The tools offered, as the executor sent them.
fn tool_specs(bodies: &[Value]) -> Vec<ToolSpec> {
    bodies
        .first()
        .and_then(|b| b["tools"].as_array())
        .map(|tools| {
            tools.iter().filter_map(|t| serde_json::from_value(t["function"].clone()).ok()).collect()
        })
        .unwrap_or_default()
}

/// The model request the executor builds from `records` (all records before a turn).
fn request(records: &[Record], tools: &[ToolSpec]) -> ModelRequest {
    ModelRequest {
        model: MODEL.into(),
        system: Some(INSTRUCTIONS.into()),
        messages: transcript(records),
        tools: tools.to_vec(),
        max_tokens: None,
        temperature: None,
    }
}

/// Sends the long run's `calls` model requests again, `BARE_ROUNDS` times, each round with
/// the run's scripted answers, through `send(k)` for request k; returns each call's time in µs.
async fn replay(
    provider: &FakeProvider,
    calls: usize,
    mut send: impl AsyncFnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    // Opens the pooled connection; an unscripted request gets a short text answer.
    send(0).await?;
    let mut times = Vec::with_capacity(calls * BARE_ROUNDS);
    for _ in 0..BARE_ROUNDS {
        script(provider, calls - 1);
        for k in 0..calls {
            let start = Instant::now();
            send(k).await?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    anyhow::ensure!(provider.pending() == 0, "the replay left {} answers", provider.pending());
    Ok(times)
}

/// The provider's round trip alone: each body, already written as JSON, sent with a reqwest
/// client built like the executor's (same settings, no egress checks), the whole answer read.
async fn bare_http(provider: &FakeProvider, bodies: &[Value]) -> anyhow::Result<Vec<f64>> {
    // The executor built its client first, which installed the process's TLS provider.
    let client = reqwest::Client::builder()
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let url = openai::url(&provider.openai_url());
    let raw: Vec<Vec<u8>> = bodies.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
    replay(provider, bodies.len(), async |k| {
        let resp = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(raw[k].clone())
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "the fake provider answered {}", resp.status());
        resp.bytes().await?;
        Ok(())
    })
    .await
}

/// The same bodies through the executor's HTTP client (`HttpClient::post_raw`: the egress
/// guard, `secret()` handles filled in, the body written as JSON).
async fn bare_post_raw(provider: &FakeProvider, bodies: &[Value]) -> anyhow::Result<Vec<f64>> {
    let http = HttpClient::new(steward_testkit::loopback_egress()).map_err(anyhow::Error::msg)?;
    let url = openai::url(&provider.openai_url());
    let secrets = Secrets::default();
    replay(provider, bodies.len(), async |k| {
        let mut sent = Vec::new();
        let timeout = Duration::from_secs(30);
        let resp = http.post_raw(&url, &[], &bodies[k], &secrets, timeout, &mut sent).await?;
        anyhow::ensure!(resp.status().is_success(), "the fake provider answered {}", resp.status());
        resp.bytes().await?;
        Ok(())
    })
    .await
}

/// The same model calls through `ModelClient` (building the body from the journaled records,
/// parsing the answer), over the executor's HTTP client. Returns the times in µs and how many
/// bodies came out equal to what the executor sent.
async fn bare_calls(
    provider: &FakeProvider,
    journal: &[Entry],
    bodies: &[Value],
) -> anyhow::Result<(Vec<f64>, usize)> {
    let records = Record::parse_all(&recorded(journal));
    let tools = tool_specs(bodies);
    let requests: Vec<ModelRequest> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Record::Turn { .. }))
        .map(|(i, _)| request(&records[..i], &tools))
        .collect();
    anyhow::ensure!(requests.len() == bodies.len(), "{} turns journaled", requests.len());
    let same = requests.iter().zip(bodies).filter(|(r, b)| openai::request_body(r, false) == **b).count();
    let http = HttpClient::new(steward_testkit::loopback_egress()).map_err(anyhow::Error::msg)?;
    let client = ModelClient {
        protocol: steward_agent::provider::Protocol::Openai,
        base_url: provider.openai_url(),
        transport: Arc::new(Guarded { http }),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(30),
    };
    let times = replay(provider, requests.len(), async |k| {
        client.complete(&requests[k], None).await?;
        Ok(())
    })
    .await?;
    Ok((times, same))
}

/// The executor's HTTP client as a provider transport, without a connection or receipts.
#[derive(Debug)]
struct Guarded {
    http: HttpClient,
}

#[async_trait::async_trait]
impl Transport for Guarded {
    async fn post_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut sent = Vec::new();
        self.http
            .post_raw(url, headers, body, &Secrets::default(), timeout, &mut sent)
            .await
            .map_err(|e| ProviderError::new(steward_agent::provider::ErrorKind::Network, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_and_flow_load() {
        let def = definition("http://127.0.0.1:1/v1", 50);
        let loaded = steward_agent::definition::load("a.yaml", &def).expect("valid agent");
        assert_eq!(loaded.limits.max_turns, 60);
        steward_flow::load("f.yaml", &flow()).expect("valid flow");
    }

    #[test]
    fn commits_split_into_passes() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let c = |ms: u64, r: &[&str]| Commit { at: at(ms), records: r.iter().map(|s| (*s).into()).collect() };
        let commits =
            [c(0, &["begin", "turn"]), c(3, &["tool"]), c(10, &["turn"]), c(12, &["tool"]), c(20, &["turn"])];
        let s = Split::of(&commits, &[at(0), at(5), at(18)]);
        assert_eq!(s.pairs, vec![10_000.0, 10_000.0]);
        assert_eq!(s.tool, vec![3_000.0, 2_000.0]);
        assert_eq!(s.model, vec![7_000.0, 8_000.0]);
        assert_eq!(s.pre, vec![2_000.0, 6_000.0]);
        assert_eq!(s.post, vec![5_000.0, 2_000.0]);
    }
}
