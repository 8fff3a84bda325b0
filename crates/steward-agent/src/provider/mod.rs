//! Model providers: the OpenAI chat-completions protocol (OpenAI, OpenRouter, Groq, and local
//! servers such as Ollama, vLLM or llama.cpp) and the Anthropic messages API, behind one
//! [`ModelClient`]. Requests go through a [`Transport`], so the executor can send them with
//! the egress guard and a connection's credential, and tests with a plain client.

pub mod anthropic;
mod client;
mod errors;
pub mod openai;
pub mod sse;
pub mod transport;

pub use transport::ReqwestTransport;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `POST {base}/chat/completions`.
    Openai,
    /// `POST {base}/v1/messages`.
    Anthropic,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// The result of a tool call (`tool_call_id` names the call).
    Tool,
}

/// One message of a conversation, in a form both protocols can be built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    /// The calls an assistant message makes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool message: the call failed (or was refused) and `content` says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: text.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
        }
    }

    pub fn assistant(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self { role: Role::Assistant, content: text.into(), tool_calls, tool_call_id: None, is_error: false }
    }

    pub fn tool(call_id: impl Into<String>, content: impl Into<String>, is_error: bool) -> Self {
        Self {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
            is_error,
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (`call_...`, `toolu_...`).
    pub id: String,
    pub name: String,
    /// The arguments, parsed from the provider's JSON (an object; `{}` when none).
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Value,
}

/// One model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    pub model: String,
    /// The system prompt (OpenAI: a first `system` message; Anthropic: `system`).
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Most output tokens the reply may use (Anthropic requires one; 4096 when unset).
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReply {
    /// The text of the reply (possibly empty when it only calls tools).
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// Why the model stopped, in the provider's words (`stop`, `tool_calls`, `end_turn`, ...).
    pub stop_reason: Option<String>,
    /// The model that answered, as the provider names it.
    pub model: String,
}

/// What went wrong with a model call, in terms callers decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 401/403: the key is wrong, revoked or lacks access.
    Auth,
    /// 404, or the provider says the model does not exist.
    UnknownModel,
    /// 429 after the retries ran out.
    RateLimited,
    /// 5xx after the retries ran out.
    Server,
    /// Any other 4xx: the request was wrong.
    BadRequest,
    Timeout,
    Network,
    /// The answer could not be understood.
    BadResponse,
    /// A policy refused the request (egress guard, the credential's hosts).
    Refused,
}

impl ErrorKind {
    /// Whether another model (a fallback) may do better.
    pub fn falls_back(self) -> bool {
        !matches!(self, ErrorKind::Refused | ErrorKind::BadRequest)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    pub status: Option<u16>,
    /// From a 429 or 503's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None, retry_after: None }
    }
}

/// Sends a provider request. The executor's transport checks the destination with the egress
/// guard and attaches the connection's credential (the provider key), so nothing here ever
/// holds a secret; it also records what was sent for the run's data-flow receipt.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// `POST url` with a JSON body and extra headers. Answers with the response whatever its
    /// status; errors only when no response came.
    async fn post_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError>;
}

/// How calls are retried: 429 and 5xx answers and network errors, with exponential backoff
/// from `base` up to `max`, or what `Retry-After` asks for when the provider sends it (up to
/// `max_retry_after`, past which the call fails at once rather than hold the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base: Duration,
    pub max: Duration,
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A client for one provider endpoint.
#[derive(Debug, Clone)]
pub struct ModelClient {
    pub protocol: Protocol,
    /// `https://api.openai.com/v1`, `https://api.anthropic.com`, `http://localhost:11434/v1`.
    pub base_url: String,
    pub transport: Arc<dyn Transport>,
    pub retry: RetryPolicy,
    /// Limit for one call, from sending to the last byte of the answer.
    pub timeout: Duration,
}
