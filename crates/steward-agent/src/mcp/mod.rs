//! Tools from MCP servers. An agent names servers, each reached over stdio (a command started as
//! a child process) or streamable HTTP (a URL), with an allowlist of the tools it may use.
//! [`McpSession`] is one connection: it lists the allowed tools as [`ToolSpec`]s for the model
//! and calls them, refusing any tool outside the allowlist before the server hears of it.

mod content;
mod http;
mod stdio;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService, ServiceError};
use rmcp::transport::IntoTransport;
use serde_json::Value;

use crate::provider::ToolSpec;

/// How to reach an MCP server.
#[derive(Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A command started as a child process that speaks MCP on its stdin and stdout. It gets
    /// `env` and only a few variables of ours (`PATH`, `HOME`, locale, temp dir), never our
    /// secrets; its stderr is kept for error messages and logged at debug level.
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)> },
    /// A streamable-HTTP endpoint, sent `headers` with every request.
    Http { url: String, headers: Vec<(String, String)> },
}

/// Values of the environment and of headers often hold credentials: only their names are shown.
impl fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        match self {
            Self::Stdio { command, args, env } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &names(env))
                .finish(),
            Self::Http { url, headers } => {
                f.debug_struct("Http").field("url", url).field("headers", &names(headers)).finish()
            }
        }
    }
}

/// One MCP server an agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerSpec {
    /// The name the agent definition gives the server (used in errors and logs).
    pub name: String,
    pub transport: McpTransport,
    /// The tools the agent may use, by the server's names; `None` allows every tool.
    pub allow: Option<Vec<String>>,
}

impl McpServerSpec {
    /// Whether the allowlist lets the agent use `tool`.
    pub fn allows(&self, tool: &str) -> bool {
        self.allow.as_ref().is_none_or(|names| names.iter().any(|n| n == tool))
    }
}

/// What a tool call returned, as text for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The text blocks joined by newlines; other blocks as short placeholders; structured
    /// content as JSON text unless a text block already carries the same value.
    pub content: String,
    /// The tool reported a failure (`content` says what went wrong).
    pub is_error: bool,
}

/// Why a connection or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server {server}: could not start `{command}`: {source}")]
    Start {
        server: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// `detail` is empty, or says what a stdio server last wrote to stderr.
    #[error("MCP server {server} did not answer the handshake within {}{detail}", humanize(*timeout))]
    HandshakeTimeout { server: String, timeout: Duration, detail: String },
    #[error("MCP server {server}: the handshake failed: {message}")]
    Handshake { server: String, message: String },
    #[error("MCP server {server}: {message}")]
    InvalidSpec { server: String, message: String },
    #[error("MCP server {server}: the tool `{tool}` is not allowed for this agent")]
    NotAllowed { server: String, tool: String },
    #[error("MCP server {server} has no tool `{tool}`")]
    UnknownTool { server: String, tool: String },
    #[error("MCP server {server}: the arguments of `{tool}` must be a JSON object")]
    InvalidArguments { server: String, tool: String },
    #[error("MCP server {server}: `{tool}` did not answer within {}", humanize(*timeout))]
    CallTimeout { server: String, tool: String, timeout: Duration },
    /// The server answered with a JSON-RPC error (for instance, invalid arguments).
    #[error("MCP server {server} refused the request (code {code}): {message}")]
    Refused { server: String, code: i32, message: String },
    #[error("MCP server {server}: {message}")]
    Transport { server: String, message: String },
}

/// A connection to one MCP server. Dropping it (or [`McpSession::close`]) ends the connection;
/// a stdio server's process group is stopped: its stdin is closed, then it is terminated and
/// killed if it lingers.
pub struct McpSession {
    server: String,
    allow: Option<BTreeSet<String>>,
    service: RunningService<RoleClient, ClientConfig>,
    child: Option<stdio::Child>,
    /// Bounds requests that have no timeout of their own (listing tools).
    list_timeout: Duration,
    /// The tool names the server listed last.
    known: Mutex<Option<BTreeSet<String>>>,
}

impl fmt::Debug for McpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpSession")
            .field("server", &self.server)
            .field("allow", &self.allow)
            .field("pid", &self.pid())
            .field("closed", &self.service.is_closed())
            .finish_non_exhaustive()
    }
}

impl McpSession {
    /// Starts or reaches the server and completes the MCP handshake within `timeout` (which
    /// also bounds each listing of its tools).
    pub async fn connect(spec: &McpServerSpec, timeout: Duration) -> Result<Self, McpError> {
        Self::connect_with(spec, timeout, None).await
    }

    /// [`McpSession::connect`], reaching an HTTP server through `client` (for instance one
    /// whose connections pass an egress guard).
    pub async fn connect_with(
        spec: &McpServerSpec,
        timeout: Duration,
        client: Option<reqwest::Client>,
    ) -> Result<Self, McpError> {
        let server = spec.name.clone();
        let (service, child) = match &spec.transport {
            McpTransport::Stdio { command, args, env } => {
                let (transport, mut child) = stdio::spawn(&server, command, args, env)?;
                match handshake(&server, transport, timeout).await {
                    Ok(service) => (service, Some(child)),
                    Err(e) => return Err(with_stderr(e, &mut child).await),
                }
            }
            McpTransport::Http { url, headers } => {
                let transport = http::transport(&server, url, headers, client)?;
                (handshake(&server, transport, timeout).await?, None)
            }
        };
        Ok(Self {
            server,
            allow: spec.allow.as_ref().map(|names| names.iter().cloned().collect()),
            service,
            child,
            list_timeout: timeout,
            known: Mutex::new(None),
        })
    }

    /// The server's name, as the spec gives it.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The process id of a stdio server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid)
    }

    /// The allowed tools the server offers, with the names, descriptions and argument schemas
    /// the server gives.
    pub async fn tools(&self) -> Result<Vec<ToolSpec>, McpError> {
        let tools = self.list().await?;
        Ok(tools.into_iter().filter(|t| self.allowed(&t.name)).map(tool_spec).collect())
    }

    /// Calls `tool` with `arguments` (a JSON object, or null for none) within `timeout`. A tool
    /// outside the allowlist or unknown to the server is refused without calling the server.
    /// A failure the tool reports is a result with `is_error`; an error is a failure to call.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<ToolResult, McpError> {
        if !self.allowed(tool) {
            return Err(McpError::NotAllowed { server: self.server.clone(), tool: tool.to_owned() });
        }
        let arguments = match arguments {
            Value::Object(map) => Some(map),
            Value::Null => None,
            _ => {
                return Err(McpError::InvalidArguments {
                    server: self.server.clone(),
                    tool: tool.to_owned(),
                });
            }
        };
        if !self.offers(tool).await? {
            return Err(McpError::UnknownTool { server: self.server.clone(), tool: tool.to_owned() });
        }
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        // A call abandoned on timeout is cancelled at the server (`notifications/cancelled`).
        match tokio::time::timeout(timeout, self.service.peer().call_tool(params)).await {
            Ok(Ok(result)) => Ok(content::flatten(result)),
            Ok(Err(e)) => Err(self.service_error(e)),
            Err(_) => {
                Err(McpError::CallTimeout { server: self.server.clone(), tool: tool.to_owned(), timeout })
            }
        }
    }

    /// Ends the connection and waits (a few seconds at most) for a stdio server to exit.
    pub async fn close(mut self) {
        if tokio::time::timeout(CLOSE_WAIT, self.service.close()).await.is_err() {
            tracing::warn!(server = %self.server, "the MCP server did not close in time");
        }
    }

    fn allowed(&self, tool: &str) -> bool {
        self.allow.as_ref().is_none_or(|names| names.contains(tool))
    }

    /// Whether the server offers `tool`, listing its tools again when the last list lacks it.
    async fn offers(&self, tool: &str) -> Result<bool, McpError> {
        let listed = self.lock_known().as_ref().is_some_and(|known| known.contains(tool));
        if listed {
            return Ok(true);
        }
        Ok(self.list().await?.iter().any(|t| t.name == tool))
    }

    async fn list(&self) -> Result<Vec<Tool>, McpError> {
        let tools = match tokio::time::timeout(self.list_timeout, self.service.peer().list_all_tools()).await
        {
            Ok(Ok(tools)) => tools,
            Ok(Err(e)) => return Err(self.service_error(e)),
            Err(_) => {
                return Err(McpError::Transport {
                    server: self.server.clone(),
                    message: format!("listing tools took longer than {}", humanize(self.list_timeout)),
                });
            }
        };
        *self.lock_known() = Some(tools.iter().map(|t| t.name.to_string()).collect());
        Ok(tools)
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<String>>> {
        // The set is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn service_error(&self, e: ServiceError) -> McpError {
        let server = self.server.clone();
        match e {
            ServiceError::McpError(data) => {
                McpError::Refused { server, code: data.code.0, message: data.message.into() }
            }
            ServiceError::TransportClosed => {
                let mut message = "the connection to the server is closed".to_owned();
                if let Some(tail) =
                    self.child.as_ref().map(stdio::Child::stderr_tail).filter(|t| !t.is_empty())
                {
                    message.push_str(&format!("; its stderr ends with: {tail}"));
                }
                McpError::Transport { server, message }
            }
            other => McpError::Transport { server, message: other.to_string() },
        }
    }
}

/// How long [`McpSession::close`] waits for the server (a stdio server gets a few seconds after
/// its stdin closes, then a few after being asked to terminate, then is killed).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What we tell servers about ourselves.
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("steward", env!("CARGO_PKG_VERSION")),
    )
}

async fn handshake<T, E, A>(
    server: &str,
    transport: T,
    timeout: Duration,
) -> Result<RunningService<RoleClient, ClientConfig>, McpError>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    // On timeout the future, and with it the transport, is dropped: a child process is killed.
    match tokio::time::timeout(timeout, rmcp::serve_client(client_config(), transport)).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(ClientInitializeError::TransportError { error, context })) => Err(McpError::Transport {
            server: server.to_owned(),
            message: format!("{context}: {}", error_chain(&error)),
        }),
        Ok(Err(e)) => Err(McpError::Handshake { server: server.to_owned(), message: e.to_string() }),
        Err(_) => {
            Err(McpError::HandshakeTimeout { server: server.to_owned(), timeout, detail: String::new() })
        }
    }
}

/// Adds what a stdio server wrote to stderr to a failed handshake's message.
async fn with_stderr(e: McpError, child: &mut stdio::Child) -> McpError {
    let tail = child.settled_stderr_tail().await;
    if tail.is_empty() {
        return e;
    }
    let detail = format!("; its stderr ends with: {tail}");
    match e {
        McpError::Handshake { server, message } => McpError::Handshake { server, message: message + &detail },
        McpError::Transport { server, message } => McpError::Transport { server, message: message + &detail },
        McpError::HandshakeTimeout { server, timeout, .. } => {
            McpError::HandshakeTimeout { server, timeout, detail }
        }
        other => other,
    }
}

fn tool_spec(tool: Tool) -> ToolSpec {
    let description = tool.description.map(|d| d.into_owned()).or(tool.title).unwrap_or_default();
    ToolSpec {
        name: tool.name.into_owned(),
        description,
        parameters: Value::Object(std::sync::Arc::unwrap_or_clone(tool.input_schema)),
    }
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}
