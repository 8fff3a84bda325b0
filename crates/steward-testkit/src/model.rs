//! A fake model provider: a loopback HTTP server speaking the OpenAI chat-completions protocol
//! (`POST /v1/chat/completions`) and the Anthropic messages API (`POST /v1/messages`), whole
//! or streamed as server-sent events, answering from a script of [`Reply`]s.
//!
//! A request takes the next reply queued for its model ([`FakeProvider::enqueue_for`]), else
//! the next of the shared queue ([`FakeProvider::enqueue`]); when both are empty it answers
//! with the text `(no scripted reply)`, so an unscripted server still serves a loop. Requests
//! that break the protocol's rules (no model, roles that do not alternate for Anthropic, a
//! tool result that answers no call, no `anthropic-version` header) get a 400 in that
//! protocol's error format and leave the script alone.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};

mod wire;

/// The text of the answer when nothing was scripted.
pub const UNSCRIPTED: &str = "(no scripted reply)";

/// Which protocol a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Openai,
    Anthropic,
}

/// One request the fake provider received.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub wire: Wire,
    pub path: String,
    /// Header names in lower case; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

impl ProviderRequest {
    pub fn model(&self) -> &str {
        self.body["model"].as_str().unwrap_or_default()
    }

    /// Whether it asked for a streamed answer.
    pub fn streamed(&self) -> bool {
        self.body["stream"] == json!(true)
    }
}

/// One scripted answer, served in the protocol of the endpoint that was hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    status: u16,
    text: String,
    /// `(id, name, arguments as JSON text)`.
    calls: Vec<(String, String, String)>,
    message: Option<String>,
    unknown_model: bool,
    retry_after: Option<u64>,
    usage: Option<(u64, u64)>,
    delay: Duration,
    chunk_delay: Duration,
}

impl Reply {
    fn base(status: u16) -> Self {
        Self {
            status,
            text: String::new(),
            calls: Vec::new(),
            message: None,
            unknown_model: false,
            retry_after: None,
            usage: None,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    /// A text answer (streamed as several deltas).
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::base(200) }
    }

    /// An answer calling one tool; chain [`Reply::and_call`] for more, [`Reply::with_text`] for text.
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self::base(200).and_call(id, name, arguments)
    }

    /// Adds another tool call.
    pub fn and_call(self, id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        self.and_raw_call(id, name, arguments.to_string())
    }

    /// Adds a tool call whose arguments are this exact text (which may be malformed JSON).
    pub fn and_raw_call(
        mut self,
        id: impl Into<String>,
        name: impl Into<String>,
        raw: impl Into<String>,
    ) -> Self {
        self.calls.push((id.into(), name.into(), raw.into()));
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// An error answer with the provider's usual body for the status (401 an invalid key, 429 a
    /// rate limit, 500 a server error, 529 Anthropic's "overloaded", ...).
    pub fn status(status: u16) -> Self {
        Self::base(status)
    }

    /// A 404 saying the requested model does not exist, in the provider's words.
    pub fn unknown_model() -> Self {
        Self { unknown_model: true, ..Self::base(404) }
    }

    /// Sends `Retry-After: secs` with the answer.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Replaces the error body's message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The usage to report (by default about a token per four bytes of request and answer).
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits this long before each chunk of a streamed answer.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }
}

#[derive(Debug, Default)]
struct Script {
    shared: VecDeque<Reply>,
    by_model: HashMap<String, VecDeque<Reply>>,
    requests: Vec<ProviderRequest>,
}

type Shared = Arc<Mutex<Script>>;

/// The fake provider's server; it runs until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    /// `http://127.0.0.1:port`.
    pub base: String,
    script: Shared,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let script = Shared::default();
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(|s: State<Shared>, h: HeaderMap, b: Bytes| answer(s, Wire::Openai, h, b)),
            )
            .route(
                "/v1/messages",
                post(|s: State<Shared>, h: HeaderMap, b: Bytes| answer(s, Wire::Anthropic, h, b)),
            )
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, script }
    }

    /// The base URL of the OpenAI-compatible endpoint (`{base}/v1`).
    pub fn openai_url(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// The base URL of the Anthropic endpoint (`{base}`).
    pub fn anthropic_url(&self) -> String {
        self.base.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut self.script.lock().expect("script lock"))
    }

    /// Queues a reply for any model.
    pub fn enqueue(&self, reply: Reply) {
        self.with(|s| s.shared.push_back(reply));
    }

    /// Queues a reply for requests naming `model`; it goes before the shared queue.
    pub fn enqueue_for(&self, model: &str, reply: Reply) {
        self.with(|s| s.by_model.entry(model.to_owned()).or_default().push_back(reply));
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.with(|s| s.requests.clone())
    }

    pub fn count(&self) -> usize {
        self.with(|s| s.requests.len())
    }

    pub fn last(&self) -> Option<ProviderRequest> {
        self.with(|s| s.requests.last().cloned())
    }

    /// Replies queued and not yet served.
    pub fn pending(&self) -> usize {
        self.with(|s| s.shared.len() + s.by_model.values().map(VecDeque::len).sum::<usize>())
    }
}

async fn answer(State(script): State<Shared>, wire: Wire, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut names = BTreeMap::<String, String>::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        names.entry(name.as_str().to_owned()).and_modify(|v| *v = format!("{v}, {value}")).or_insert(value);
    }
    let path = match wire {
        Wire::Openai => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    };
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let problem = wire::check(wire, &headers, &body);
    let reply = {
        let mut s = script.lock().expect("script lock");
        let at = Instant::now();
        s.requests.push(ProviderRequest { wire, path: path.into(), headers: names, body: body.clone(), at });
        match problem {
            Some(problem) => Reply::status(400).message(problem),
            None => s
                .by_model
                .get_mut(&model)
                .and_then(VecDeque::pop_front)
                .or_else(|| s.shared.pop_front())
                .unwrap_or_else(|| Reply::text(UNSCRIPTED)),
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.status != 200 {
        return wire::error(wire, &reply, &model);
    }
    let written = reply.text.len() + reply.calls.iter().map(|c| c.2.len()).sum::<usize>();
    let usage = reply.usage.unwrap_or(((raw.len() / 4).max(1) as u64, (written / 4).max(1) as u64));
    if body["stream"] != json!(true) {
        let whole = match wire {
            Wire::Openai => wire::openai::whole(&model, &reply, usage),
            Wire::Anthropic => wire::anthropic::whole(&model, &reply, usage),
        };
        return axum::Json(whole).into_response();
    }
    let events = match wire {
        Wire::Openai => {
            wire::openai::events(&model, &reply, usage, body["stream_options"]["include_usage"] == true)
        }
        Wire::Anthropic => wire::anthropic::events(&model, &reply, usage),
    };
    let pause = reply.chunk_delay;
    let chunks = futures::stream::iter(events).then(move |event| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok::<_, Infallible>(event)
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(chunks),
    )
        .into_response()
}
