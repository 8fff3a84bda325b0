//! [`ModelClient::complete`]: one model call, with retries, a time limit, and streaming.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::errors::{self, Detail};
use super::sse::{SseEvent, SseParser};
use super::{ErrorKind, ModelClient, ModelReply, ModelRequest, Protocol, ProviderError, anthropic, openai};

/// The largest answer read (a reply is far smaller; this bounds a misbehaving server).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A failed attempt, and whether another one may succeed.
#[derive(Debug)]
struct Failure {
    error: ProviderError,
    retry: bool,
}

impl From<ProviderError> for Failure {
    fn from(error: ProviderError) -> Self {
        let retry = matches!(error.kind, ErrorKind::Network | ErrorKind::Server | ErrorKind::RateLimited);
        Self { error, retry }
    }
}

/// A streamed answer of either protocol.
#[derive(Debug)]
enum StreamState {
    Openai(openai::Stream),
    Anthropic(anthropic::Stream),
}

impl StreamState {
    fn event(&mut self, ev: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Result<bool, ProviderError> {
        match self {
            Self::Openai(s) => s.event(ev, on_text),
            Self::Anthropic(s) => s.event(ev, on_text),
        }
    }

    fn finish(self, model: &str) -> Result<ModelReply, ProviderError> {
        match self {
            Self::Openai(s) => s.finish(model),
            Self::Anthropic(s) => s.finish(model),
        }
    }
}

impl ModelClient {
    /// Sends `req` and returns the model's reply. With `on_text`, the answer is streamed and
    /// each piece of text is passed to it as it arrives; the reply still holds the whole text.
    ///
    /// 429 and 5xx answers and network errors are retried per `self.retry`, except once text
    /// has been passed to `on_text` (a retry would repeat it). `self.timeout` bounds each
    /// attempt, from sending to the last byte of the answer.
    pub async fn complete(
        &self,
        req: &ModelRequest,
        mut on_text: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<ModelReply, ProviderError> {
        let stream = on_text.is_some();
        let (url, headers, body) = match self.protocol {
            Protocol::Openai => (openai::url(&self.base_url), Vec::new(), openai::request_body(req, stream)),
            Protocol::Anthropic => {
                (anthropic::url(&self.base_url), anthropic::headers(), anthropic::request_body(req, stream))
            }
        };
        let mut attempt: u32 = 0;
        loop {
            let mut emitted = false;
            let result = self.attempt(&url, &headers, &body, req, on_text.as_deref_mut(), &mut emitted).await;
            let Failure { mut error, retry } = match result {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            if !retry || emitted {
                return Err(error);
            }
            if let Some(asked) = error.retry_after
                && asked > self.retry.max_retry_after
            {
                error.message = format!(
                    "{}; it asks to wait {}s before retrying, more than the {}s allowed",
                    error.message,
                    asked.as_secs(),
                    self.retry.max_retry_after.as_secs()
                );
                return Err(error);
            }
            if attempt >= self.retry.retries {
                error.message = format!("{} (gave up after {} attempts)", error.message, attempt + 1);
                return Err(error);
            }
            let wait = error.retry_after.unwrap_or_else(|| self.backoff(attempt));
            tracing::debug!(
                base_url = %self.base_url, model = %req.model, status = ?error.status,
                wait_ms = wait.as_millis() as u64, "model call failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The wait before retry number `attempt + 1`: `base` doubled each time, up to `max`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.retry.base.saturating_mul(factor).min(self.retry.max)
    }

    async fn attempt<'f>(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        req: &ModelRequest,
        on_text: Option<&mut (dyn FnMut(&str) + Send + 'f)>,
        emitted: &mut bool,
    ) -> Result<ModelReply, Failure> {
        let deadline = Instant::now() + self.timeout;
        let sent =
            tokio::time::timeout_at(deadline, self.transport.post_json(url, headers, body, self.timeout));
        let response = match sent.await {
            Err(_) => return Err(self.timed_out().into()),
            Ok(Err(e)) => {
                let retry = e.kind == ErrorKind::Network;
                return Err(Failure { error: e, retry });
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let retry_after = errors::retry_after(response.headers());
            // The status decides; a body that cannot be read only loses the provider's words.
            let text = self.read_all(response, deadline).await.unwrap_or_default();
            let detail = Detail::from_bytes(&text);
            let error =
                errors::from_status(self.protocol, &self.base_url, &req.model, status, retry_after, &detail);
            return Err(Failure { error, retry: errors::retryable(status, &detail) });
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        match on_text {
            Some(on_text) if !is_json => self.read_stream(response, deadline, req, on_text, emitted).await,
            on_text => {
                // Also the answer of a server that ignored `stream: true`.
                let text = self.read_all(response, deadline).await?;
                let value: Value = serde_json::from_slice(&text).map_err(|e| {
                    self.context(ProviderError::new(
                        ErrorKind::BadResponse,
                        format!("the answer is not JSON: {e}"),
                    ))
                })?;
                let reply = match self.protocol {
                    Protocol::Openai => openai::parse_response(&value, &req.model),
                    Protocol::Anthropic => anthropic::parse_response(&value, &req.model),
                }
                .map_err(|e| self.context(e))?;
                if let Some(on_text) = on_text
                    && !reply.text.is_empty()
                {
                    *emitted = true;
                    on_text(&reply.text);
                }
                Ok(reply)
            }
        }
    }

    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        deadline: Instant,
        req: &ModelRequest,
        on_text: &mut (dyn FnMut(&str) + Send + '_),
        emitted: &mut bool,
    ) -> Result<ModelReply, Failure> {
        let mut parser = SseParser::new();
        let mut state = match self.protocol {
            Protocol::Openai => StreamState::Openai(openai::Stream::default()),
            Protocol::Anthropic => StreamState::Anthropic(anthropic::Stream::default()),
        };
        let mut forward = |text: &str| {
            *emitted = true;
            on_text(text);
        };
        loop {
            let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => return Err(self.timed_out().into()),
                Ok(Err(e)) => return Err(self.read_failed(&e).into()),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            for ev in parser.push(&chunk) {
                if state.event(&ev, &mut forward).map_err(|e| self.context(e))? {
                    return state.finish(&req.model).map_err(|e| self.context(e).into());
                }
            }
        }
        if let Some(ev) = parser.finish() {
            state.event(&ev, &mut forward).map_err(|e| self.context(e))?;
        }
        state.finish(&req.model).map_err(|e| self.context(e).into())
    }

    /// The whole body, within the deadline and [`MAX_BODY`].
    async fn read_all(&self, mut response: reqwest::Response, deadline: Instant) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => return Err(self.timed_out().into()),
                Ok(Err(e)) => return Err(self.read_failed(&e).into()),
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        let message = format!("the answer is larger than {} MiB", MAX_BODY >> 20);
                        return Err(self.context(ProviderError::new(ErrorKind::BadResponse, message)).into());
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// Names the provider in an error about its answer.
    fn context(&self, mut e: ProviderError) -> ProviderError {
        e.message = format!("{} at {}: {}", errors::provider_name(self.protocol), self.base_url, e.message);
        e
    }

    fn timed_out(&self) -> ProviderError {
        let limit = self.timeout.as_secs_f64();
        self.context(ProviderError::new(ErrorKind::Timeout, format!("no complete answer within {limit}s")))
    }

    fn read_failed(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return self.timed_out();
        }
        let message = format!("the connection failed while reading the answer: {e}");
        self.context(ProviderError::new(ErrorKind::Network, message))
    }
}
