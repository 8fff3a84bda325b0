//! The tools an agent is offered and how each kind runs: flows (as child runs, their declared
//! inputs as the schema), HTTP requests declared in the definition (with connections, so the
//! model never sees a secret), MCP servers and built-ins. A tool's failure is a result the
//! model reads, not the step's failure.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use steward_agent::definition::{AgentDef, Approval, Builtin, McpTool};
use steward_agent::mcp::{McpServerSpec, McpSession, McpTransport};
use steward_agent::provider::{ToolCall, ToolSpec};
use steward_agent::turns::Record;
use steward_engine::{ErrorKind, Outcome, StepError};
use steward_flow::{Context, HttpStep, InputType};

use super::Pass;
use crate::step::{Attempt, Services};

/// Limit for one tool call.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest tool result handed to the model.
const MAX_RESULT_CHARS: usize = 32_000;

enum Kind {
    Flow(String),
    Http(Box<HttpStep>),
    Builtin(Builtin),
    Mcp { server: usize, tool: String },
}

pub(crate) struct Toolbox {
    specs: Vec<ToolSpec>,
    kinds: HashMap<String, Kind>,
    approvals: HashSet<String>,
    mcp: Vec<McpSession>,
}

impl Toolbox {
    /// Resolves the definition's tools: flows' inputs are read from their newest version, MCP
    /// servers are asked for their tools.
    pub(crate) async fn new(sv: &Services, a: &Attempt, def: &AgentDef) -> Result<Self, StepError> {
        let mut b =
            Toolbox { specs: Vec::new(), kinds: HashMap::new(), approvals: HashSet::new(), mcp: Vec::new() };
        for tool in &def.tools {
            let name = tool.tool_name();
            if tool.approval == Approval::Required
                && let Some(n) = &name
            {
                b.approvals.insert(n.clone());
            }
            if let Some(flow) = &tool.flow {
                let (description, parameters) = flow_schema(sv, a, flow.as_str()).await?;
                let description = tool.description.clone().unwrap_or(description);
                b.add(name.unwrap_or_default(), description, parameters, Kind::Flow(flow.to_string()));
            } else if let Some(http) = &tool.http {
                let parameters = tool.parameters.clone().unwrap_or_else(|| json!({"type": "object"}));
                b.add(
                    name.unwrap_or_default(),
                    tool.description.clone().unwrap_or_default(),
                    parameters,
                    Kind::Http(http.clone()),
                );
            } else if let Some(builtin) = tool.builtin {
                let description =
                    tool.description.clone().unwrap_or_else(|| builtin_description(builtin).into());
                b.add(
                    builtin.name().into(),
                    description,
                    json!({"type": "object", "properties": {}}),
                    Kind::Builtin(builtin),
                );
            } else if let Some(m) = &tool.mcp {
                b.add_mcp(&sv.http, m).await?;
            }
        }
        Ok(b)
    }

    fn add(&mut self, name: String, description: String, parameters: Value, kind: Kind) {
        self.specs.push(ToolSpec { name: name.clone(), description, parameters });
        self.kinds.insert(name, kind);
    }

    async fn add_mcp(
        &mut self,
        http: &steward_steps::http::HttpClient,
        m: &McpTool,
    ) -> Result<(), StepError> {
        let transport = match (&m.command, &m.url) {
            (Some(cmd), _) => McpTransport::Stdio {
                command: cmd.first().cloned().unwrap_or_default(),
                args: cmd.iter().skip(1).cloned().collect(),
                env: Vec::new(),
            },
            (None, Some(url)) => McpTransport::Http { url: url.clone(), headers: Vec::new() },
            (None, None) => {
                return Err(StepError::new(
                    ErrorKind::Input,
                    format!("MCP server `{}` has no transport", m.name),
                ));
            }
        };
        // An HTTP server is reached like any destination of a step: through the egress guard.
        let client = match &m.url {
            Some(url) if m.command.is_none() => {
                let refused =
                    |e: String| StepError::new(ErrorKind::Refused, format!("MCP server `{}`: {e}", m.name));
                http.check_url(url).map_err(refused)?;
                let built = http.guarded_builder().pool_max_idle_per_host(0).build();
                Some(built.map_err(|e| refused(format!("cannot build the HTTP client: {e}")))?)
            }
            _ => None,
        };
        let spec = McpServerSpec { name: m.name.clone(), transport, allow: m.allow.clone() };
        let session =
            McpSession::connect_with(&spec, Duration::from_secs(30), client).await.map_err(|e| {
                let kind =
                    if e.to_string().contains("refused") { ErrorKind::Refused } else { ErrorKind::Network };
                StepError::new(kind, format!("MCP server `{}`: {e}", m.name))
            })?;
        let listed = session
            .tools()
            .await
            .map_err(|e| StepError::new(ErrorKind::Network, format!("MCP server `{}`: {e}", m.name)))?;
        let server = self.mcp.len();
        for t in listed {
            let name = format!("{}__{}", m.name, t.name);
            if m.approval.contains(&t.name) {
                self.approvals.insert(name.clone());
            }
            self.add(name, t.description, t.parameters, Kind::Mcp { server, tool: t.name });
        }
        self.mcp.push(session);
        Ok(())
    }

    pub(crate) fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    pub(crate) fn needs_approval(&self, name: &str) -> bool {
        self.approvals.contains(name)
    }

    /// Runs a call and returns its record. Arguments get their masked personal data back;
    /// what comes back is masked again before the model sees it.
    pub(crate) async fn call(&self, pass: &mut Pass<'_>, call: &ToolCall) -> Record {
        let before = pass.masker.len();
        let args = pass.masker.restore_value(&call.arguments);
        let (content, is_error) = match self.kinds.get(&call.name) {
            None => (format!("There is no tool named `{}`.", call.name), true),
            Some(kind) => match self.run(pass, kind, call, args).await {
                Ok(v) => (text_of(&v), false),
                Err(message) => (message, true),
            },
        };
        let content = truncate(content);
        let (content, masked) = if pass.def.privacy.mask_pii {
            let masked = pass.masker.mask_text(&content);
            (masked, pass.masker.to_entries().split_off(before))
        } else {
            (content, Vec::new())
        };
        Record::Tool { call_id: call.id.clone(), name: call.name.clone(), content, is_error, masked }
    }

    async fn run(
        &self,
        pass: &mut Pass<'_>,
        kind: &Kind,
        call: &ToolCall,
        args: Value,
    ) -> Result<Value, String> {
        let a = pass.a;
        match kind {
            Kind::Builtin(Builtin::CurrentTime) => {
                let ms = u64::try_from(a.now.millis()).unwrap_or(0);
                let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
                Ok(Value::String(humantime::format_rfc3339_seconds(t).to_string()))
            }
            Kind::Builtin(Builtin::RunInputs) => {
                Ok(a.context.to_json().get("inputs").cloned().unwrap_or(Value::Null))
            }
            Kind::Http(h) => {
                let ctx =
                    Context::from_json(&json!({"args": args, "inputs": a.context.to_json().get("inputs")}));
                let idempotency = format!("{}:{}/{}", a.run_id, a.key, call.id);
                let outcome =
                    crate::step::http_with(a, pass.sv, h, &ctx, idempotency, TOOL_TIMEOUT, pass.sent).await;
                match outcome {
                    Ok(Outcome::Succeeded(out)) => Ok(out.get("body").cloned().unwrap_or(out)),
                    Ok(Outcome::Failed(e)) | Err(e) => Err(e.message),
                    Ok(other) => Err(format!("unexpected outcome {other:?}")),
                }
            }
            Kind::Flow(flow) => run_flow(pass, flow, call, args).await,
            Kind::Mcp { server, tool } => {
                let session = &self.mcp[*server];
                match session.call(tool, args, TOOL_TIMEOUT).await {
                    Ok(r) if r.is_error => Err(r.content),
                    Ok(r) => Ok(Value::String(r.content)),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// Starts the flow as a child run (its id derived from the run, step and call, so a pass
/// repeated after a crash finds it) and waits for its end.
async fn run_flow(pass: &Pass<'_>, flow: &str, call: &ToolCall, args: Value) -> Result<Value, String> {
    let a = pass.a;
    let workspace = &a.compiled.version.workspace;
    let key = format!("{}/{}", a.key, call.id);
    let children = &pass.sv.children;
    let id = children
        .start_child(workspace, flow, args, &a.run_id, &key, a.attempt, a.now)
        .await
        .map_err(|e| e.message)?;
    let deadline = tokio::time::Instant::now() + TOOL_TIMEOUT;
    let mut pause = Duration::from_millis(20);
    loop {
        let run = children.store.run(workspace, &id).await.map_err(|e| e.to_string())?;
        if run.status.is_finished() {
            return match run.error {
                Some(e) => Err(format!("the flow `{flow}` failed: {}", e.message)),
                None => Ok(run.output.unwrap_or(Value::Null)),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("the flow `{flow}` did not finish within {}s", TOOL_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// A flow's description and its declared inputs as a JSON Schema.
async fn flow_schema(sv: &Services, a: &Attempt, flow: &str) -> Result<(String, Value), StepError> {
    let workspace = &a.compiled.version.workspace;
    let version = sv
        .children
        .store
        .latest_version(workspace, flow)
        .await
        .map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))?
        .ok_or_else(|| {
            StepError::new(ErrorKind::Input, format!("the agent's tool flow `{flow}` does not exist"))
        })?;
    let compiled = sv
        .children
        .compiled(workspace, &version.id)
        .await
        .map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, spec) in &compiled.flow.inputs {
        let mut p = Map::new();
        if let Some(t) = json_type(spec.kind) {
            p.insert("type".into(), t.into());
        }
        if let Some(d) = &spec.description {
            p.insert("description".into(), d.clone().into());
        }
        properties.insert(name.clone(), Value::Object(p));
        if spec.required.unwrap_or(spec.default.is_none()) {
            required.push(Value::String(name.clone()));
        }
    }
    let description = compiled.flow.description.clone().unwrap_or_else(|| format!("Runs the flow `{flow}`."));
    Ok((description, json!({"type": "object", "properties": properties, "required": required})))
}

fn json_type(kind: InputType) -> Option<&'static str> {
    Some(match kind {
        InputType::String => "string",
        InputType::Number => "number",
        InputType::Integer => "integer",
        InputType::Boolean => "boolean",
        InputType::Object => "object",
        InputType::Array => "array",
        InputType::Any => return None,
    })
}

fn builtin_description(b: Builtin) -> &'static str {
    match b {
        Builtin::CurrentTime => "The current date and time (UTC, RFC 3339).",
        Builtin::RunInputs => "The inputs this run was started with.",
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MAX_RESULT_CHARS {
        s = s.chars().take(MAX_RESULT_CHARS).collect();
        s.push_str(" [truncated]");
    }
    s
}
