//! MCP test servers: one set of tools ([`TestTools`]) served over stdio, by the
//! `steward-test-mcp` binary or any test executable that calls [`serve_stdio`], and over
//! streamable HTTP on loopback ([`McpHttpServer`]).
//!
//! The tools: `add {a, b}` answers the sum; `echo {text}` the text; `fail {}` a tool error;
//! `count {}` appends a line to the file named by `MCP_COUNT_FILE` (so a test can tell how often
//! it ran, across processes); `getenv {name}` a variable of the server's environment (empty when
//! unset); `header {name}` a header of the HTTP request (HTTP only); `sleep {ms}` answers after
//! that long.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};

/// The variable naming the file the `count` tool appends to.
pub const COUNT_FILE_ENV: &str = "MCP_COUNT_FILE";

/// The test tools, counting the calls they receive by tool name. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct TestTools {
    count_file: Option<PathBuf>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl TestTools {
    /// Tools whose `count` appends to `count_file` (when given).
    pub fn new(count_file: Option<PathBuf>) -> Self {
        Self { count_file, calls: Arc::default() }
    }

    /// Tools whose `count` appends to the file `MCP_COUNT_FILE` names.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os(COUNT_FILE_ENV).map(PathBuf::from))
    }

    /// How many calls of `tool` arrived (known tool or not).
    pub fn calls(&self, tool: &str) -> usize {
        self.lock().get(tool).copied().unwrap_or(0)
    }

    /// How many tool calls arrived in all.
    pub fn total_calls(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.calls.lock().expect("call counts lock")
    }

    fn definitions() -> Vec<Tool> {
        let object = |properties: Value, required: &[&str]| -> JsonObject {
            let mut schema = JsonObject::new();
            schema.insert("type".into(), json!("object"));
            schema.insert("properties".into(), properties);
            schema.insert("required".into(), json!(required));
            schema
        };
        let number = json!({"type": "number"});
        let string = json!({"type": "string"});
        vec![
            Tool::new("add", "Adds two numbers.", object(json!({"a": number, "b": number}), &["a", "b"])),
            Tool::new("echo", "Answers the text it is given.", object(json!({"text": string}), &["text"])),
            Tool::new("fail", "Always fails.", object(json!({}), &[])),
            Tool::new("count", "Appends a line to the count file.", object(json!({}), &[])),
            Tool::new(
                "getenv",
                "Reads a variable of the server's environment.",
                object(json!({"name": string}), &["name"]),
            ),
            Tool::new(
                "header",
                "Reads a header of the HTTP request.",
                object(json!({"name": string}), &["name"]),
            ),
            Tool::new(
                "sleep",
                "Answers after `ms` milliseconds.",
                object(json!({"ms": {"type": "integer"}}), &["ms"]),
            ),
        ]
    }

    async fn run(
        &self,
        name: &str,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let text = |t: String| Ok(CallToolResult::success(vec![ContentBlock::text(t)]));
        match name {
            "add" => {
                let (a, b) = (number(args, "a")?, number(args, "b")?);
                match (a.as_i64(), b.as_i64()) {
                    (Some(a), Some(b)) => match a.checked_add(b) {
                        Some(sum) => text(sum.to_string()),
                        None => Ok(CallToolResult::error(vec![ContentBlock::text("the sum overflows")])),
                    },
                    _ => text((a.as_f64().unwrap_or(f64::NAN) + b.as_f64().unwrap_or(f64::NAN)).to_string()),
                }
            }
            "echo" => text(string(args, "text")?.to_owned()),
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("the fail tool always fails")])),
            "count" => {
                if let Some(path) = &self.count_file {
                    let appended = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(b"called\n"));
                    if let Err(e) = appended {
                        let message = format!("cannot append to the count file: {e}");
                        return Err(ErrorData::internal_error(message, None));
                    }
                }
                text("counted".to_owned())
            }
            "getenv" => text(std::env::var(string(args, "name")?).unwrap_or_default()),
            "header" => {
                let parts = context.extensions.get::<axum::http::request::Parts>();
                let value = parts
                    .and_then(|p| p.headers.get(string(args, "name").ok()?))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                text(value.to_owned())
            }
            "sleep" => {
                let ms = args.get("ms").and_then(Value::as_u64).ok_or_else(|| missing("ms"))?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text("slept".to_owned())
            }
            other => Err(ErrorData::invalid_params(format!("unknown tool {other}"), None)),
        }
    }
}

fn missing(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("missing or invalid argument `{name}`"), None)
}

fn number<'a>(args: &'a JsonObject, name: &str) -> Result<&'a serde_json::Number, ErrorData> {
    match args.get(name) {
        Some(Value::Number(n)) => Ok(n),
        _ => Err(missing(name)),
    }
}

fn string<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, ErrorData> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| missing(name))
}

impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("steward-test-mcp", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(Self::definitions()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        *self.lock().entry(request.name.to_string()).or_default() += 1;
        let args = request.arguments.unwrap_or_default();
        self.run(&request.name, &args, &context).await.map(CallToolResponse::from)
    }
}

/// Serves [`TestTools::from_env`] on stdin and stdout until stdin closes.
pub async fn serve_stdio() -> std::io::Result<()> {
    let service =
        TestTools::from_env().serve(rmcp::transport::stdio()).await.map_err(std::io::Error::other)?;
    service.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// A streamable-HTTP MCP server on loopback serving [`TestTools`] at `url`; stops when dropped.
#[derive(Debug)]
pub struct McpHttpServer {
    pub url: String,
    tools: TestTools,
    task: tokio::task::JoinHandle<()>,
}

impl McpHttpServer {
    /// Starts the server on `127.0.0.1` on a free port.
    pub async fn start() -> Self {
        let tools = TestTools::new(None);
        let shared = tools.clone();
        let service = StreamableHttpService::new(
            move || Ok(shared.clone()),
            Arc::new(LocalSessionManager::default()),
            Default::default(),
        );
        let app = Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}/mcp", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, tools, task }
    }

    /// How many calls of `tool` reached the server.
    pub fn calls(&self, tool: &str) -> usize {
        self.tools.calls(tool)
    }

    /// How many tool calls reached the server in all.
    pub fn total_calls(&self) -> usize {
        self.tools.total_calls()
    }
}

impl Drop for McpHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
