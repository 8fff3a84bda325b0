//! The agent definition format: a YAML or JSON file (or the same document through the API).
//!
//! ```yaml
//! name: triage
//! description: Sorts support tickets
//! instructions: You sort support tickets by urgency.   # or instructions_file: triage.md
//! model:
//!   provider: openai            # or anthropic
//!   connection: openai          # the vault connection holding the provider key
//!   name: gpt-4o-mini
//!   fallbacks: [{provider: anthropic, connection: anthropic, name: claude-3-5-haiku-latest}]
//! tools:
//!   - flow: lookup-customer
//!   - name: create_ticket
//!     description: Opens a ticket
//!     parameters: {type: object, properties: {title: {type: string}}, required: [title]}
//!     http: {method: POST, url: https://tickets.example.com/api, connection: tickets,
//!            json: {title: "${{ .args.title }}"}}
//!     approval: required
//!   - mcp: {name: files, command: [files-server, --root, /srv], allow: [read_file]}
//!   - builtin: current_time
//! limits: {max_turns: 10, max_tokens: 50000, max_cost: 0.25}
//! output: {schema: {type: object, required: [urgency]}, repair_turns: 2}
//! privacy: {mask_pii: true}
//! ```

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use steward_flow::{AgentName, ConnectionName, Duration, FlowName, HttpStep, LoadError, Path};

use crate::provider::Protocol;

/// A checked agent definition. Built only by [`load`], so its tools are well formed and their
/// names unique.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDef {
    pub name: AgentName,
    pub description: Option<String>,
    /// The system prompt. A file's `instructions_file` is read (relative to the file) and put
    /// here when the definition is applied, so the stored definition stands alone.
    pub instructions: Option<String>,
    pub instructions_file: Option<String>,
    pub model: ModelSpec,
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    #[serde(default)]
    pub limits: Limits,
    pub output: Option<OutputSpec>,
    #[serde(default)]
    pub privacy: Privacy,
    /// How long a tool call waits for a person's decision before it counts as rejected.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout: Duration,
}

fn default_approval_timeout() -> Duration {
    Duration::from_millis(24 * 3_600_000)
}

/// The model an agent talks to, and the ones it falls back to when that one fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub provider: Protocol,
    /// The vault connection whose credential (the provider key) goes with every call, only
    /// to the connection's hosts. Local servers may need none.
    pub connection: Option<ConnectionName>,
    /// Defaults to the provider's public API.
    pub base_url: Option<String>,
    pub name: String,
    pub temperature: Option<f64>,
    /// Most output tokens per call.
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub fallbacks: Vec<ModelTarget>,
}

/// One model at one provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTarget {
    pub provider: Protocol,
    pub connection: Option<ConnectionName>,
    pub base_url: Option<String>,
    pub name: String,
}

impl ModelSpec {
    /// The primary model, then the fallbacks, in order.
    pub fn targets(&self) -> Vec<ModelTarget> {
        let primary = ModelTarget {
            provider: self.provider,
            connection: self.connection.clone(),
            base_url: self.base_url.clone(),
            name: self.name.clone(),
        };
        std::iter::once(primary).chain(self.fallbacks.iter().cloned()).collect()
    }
}

impl ModelTarget {
    pub fn base_url(&self) -> String {
        let base = match (&self.base_url, self.provider) {
            (Some(u), _) => u.as_str(),
            (None, Protocol::Openai) => "https://api.openai.com/v1",
            (None, Protocol::Anthropic) => "https://api.anthropic.com",
        };
        base.trim_end_matches('/').to_owned()
    }
}

/// One entry of `tools`: exactly one of `flow`, `http`, `mcp` and `builtin`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDef {
    /// The name the model calls it by. Defaults: the flow's name with `-` as `_`; the
    /// built-in's name. Required for `http`.
    pub name: Option<String>,
    pub description: Option<String>,
    /// JSON Schema of an `http` tool's arguments (flows take theirs from their inputs).
    pub parameters: Option<Value>,
    #[serde(default)]
    pub approval: Approval,
    pub flow: Option<FlowName>,
    pub http: Option<Box<HttpStep>>,
    pub mcp: Option<McpTool>,
    pub builtin: Option<Builtin>,
}

/// Whether a person must approve each call of a tool before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    None,
    Required,
}

/// An MCP server and the tools of it the agent may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpTool {
    /// Names the server in tool names (`<name>__<tool>`) and in messages.
    pub name: String,
    /// A program and its arguments, spoken to over stdio.
    pub command: Option<Vec<String>>,
    /// A streamable-HTTP endpoint.
    pub url: Option<String>,
    /// The server's tools the agent may call; all when absent.
    pub allow: Option<Vec<String>>,
    /// The server's tools that need a person's approval.
    #[serde(default)]
    pub approval: Vec<String>,
}

/// Tools every agent may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// The current time (UTC, RFC 3339).
    CurrentTime,
    /// The inputs its run was started with.
    RunInputs,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::CurrentTime => "current_time",
            Builtin::RunInputs => "run_inputs",
        }
    }
}

/// Per-run limits. Hitting one stops the run (error kind `budget`) before anything over it
/// is sent.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    /// Input plus output tokens over all model calls of the run.
    pub max_tokens: Option<u64>,
    /// US dollars over all model calls of the run, at the configured prices.
    pub max_cost: Option<f64>,
}

fn default_max_turns() -> u32 {
    20
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_turns: default_max_turns(), max_tokens: None, max_cost: None }
    }
}

/// The shape the final answer must have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// A JSON Schema; the answer is parsed as JSON and validated against it.
    pub schema: Value,
    /// How many times the model is told what was wrong and asked again.
    #[serde(default = "default_repairs")]
    pub repair_turns: u32,
}

fn default_repairs() -> u32 {
    2
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    /// Replace e-mail addresses, phone numbers and card numbers with placeholders before
    /// anything goes to the provider; put them back in tool arguments and the final answer.
    #[serde(default)]
    pub mask_pii: bool,
}

/// Reads and checks an agent definition. `file` is only used in messages.
pub fn load(file: &str, text: &str) -> Result<AgentDef, LoadError> {
    let (def, locations) = steward_flow::load_document::<AgentDef>(file, text)?;
    let problems = check(&def);
    if problems.is_empty() { Ok(def) } else { Err(steward_flow::located_error(file, &locations, problems)) }
}

impl AgentDef {
    /// `provider/model` of the first model, as lists show it.
    pub fn model_label(&self) -> String {
        format!("{}/{}", self.model.provider.as_str(), self.model.name)
    }
}

/// Reads a definition to store: an `instructions_file` is read with `read` (given the path as
/// written, to resolve against the definition's own file) and put into `instructions`, so the
/// stored text stands alone. Returns the definition and the text to store: `text` itself, or
/// the definition as JSON when instructions were filled in.
pub fn resolve(
    file: &str,
    text: &str,
    read: impl FnOnce(&str) -> Result<String, String>,
) -> Result<(AgentDef, String), LoadError> {
    let def = load(file, text)?;
    let Some(path) = &def.instructions_file else { return Ok((def, text.to_owned())) };
    let (mut doc, locations) = steward_flow::load_document::<serde_json::Map<String, Value>>(file, text)?;
    let instructions = read(path).map_err(|e| {
        steward_flow::located_error(
            file,
            &locations,
            vec![(Path::root().key("instructions_file"), format!("cannot read `{path}`: {e}"))],
        )
    })?;
    doc.remove("instructions_file");
    doc.insert("instructions".into(), Value::String(instructions));
    let stored = serde_json::to_string_pretty(&doc).unwrap_or_default();
    Ok((load(file, &stored)?, stored))
}

fn check(def: &AgentDef) -> Vec<(Path, String)> {
    let mut problems = Vec::new();
    if def.instructions.is_some() && def.instructions_file.is_some() {
        problems.push((
            Path::root().key("instructions_file"),
            "give `instructions` or `instructions_file`, not both".into(),
        ));
    }
    if def.limits.max_turns == 0 {
        problems.push((Path::root().key("limits").key("max_turns"), "`max_turns` must be at least 1".into()));
    }
    if let Some(out) = &def.output
        && let Err(e) = jsonschema::validator_for(&out.schema)
    {
        problems.push((Path::root().key("output").key("schema"), format!("not a valid JSON Schema: {e}")));
    }
    let mut names = BTreeSet::new();
    for (i, tool) in def.tools.iter().enumerate() {
        let at = Path::root().key("tools").index(i);
        match tool_kind(tool) {
            Err(message) => problems.push((at, message)),
            Ok(_) => {
                for name in tool_names(tool) {
                    if !valid_tool_name(&name) {
                        problems.push((
                            at.clone(),
                            format!("`{name}` is not a tool name: 1 to 64 letters, digits, `_` or `-`"),
                        ));
                    } else if !names.insert(name.clone()) {
                        problems.push((at.clone(), format!("two tools are called `{name}`")));
                    }
                }
            }
        }
    }
    problems
}

/// Which kind a tool entry is; an error when it names none or several.
fn tool_kind(tool: &ToolDef) -> Result<&'static str, String> {
    let kinds: Vec<&'static str> = [
        tool.flow.is_some().then_some("flow"),
        tool.http.is_some().then_some("http"),
        tool.mcp.is_some().then_some("mcp"),
        tool.builtin.is_some().then_some("builtin"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => return Err("a tool needs one of `flow`, `http`, `mcp` and `builtin`".into()),
        _ => return Err(format!("a tool has exactly one kind; this one has {}", kinds.join(" and "))),
    };
    if kind == "http" && (tool.name.is_none() || tool.parameters.is_none()) {
        return Err("an `http` tool needs a `name` and its `parameters` (a JSON Schema)".into());
    }
    if let Some(m) = &tool.mcp {
        if m.command.is_some() == m.url.is_some() {
            return Err("an `mcp` tool needs either `command` (stdio) or `url` (HTTP)".into());
        }
        if tool.name.is_some() || tool.approval == Approval::Required {
            return Err(
                "an `mcp` entry names its server with `mcp.name` and its approvals with `mcp.approval`"
                    .into(),
            );
        }
    }
    Ok(kind)
}

/// The names a tool entry gives the model; MCP tools are named when the server lists them.
fn tool_names(tool: &ToolDef) -> Vec<String> {
    if let Some(name) = &tool.name {
        return vec![name.clone()];
    }
    if let Some(flow) = &tool.flow {
        return vec![flow.as_str().replace('-', "_")];
    }
    if let Some(b) = tool.builtin {
        return vec![b.name().to_owned()];
    }
    Vec::new()
}

impl ToolDef {
    /// The name the model calls this tool by (`None` for an MCP server entry).
    pub fn tool_name(&self) -> Option<String> {
        tool_names(self).into_iter().next()
    }
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: triage\ninstructions: Sort tickets.\nmodel: {provider: openai, connection: openai, name: gpt-4o-mini}\ntools:\n  - flow: lookup-customer\n  - builtin: current_time\n";

    #[test]
    fn a_good_definition_loads_with_defaults() {
        let def = load("triage.yaml", GOOD).expect("valid");
        assert_eq!(def.name.as_str(), "triage");
        assert_eq!(def.limits.max_turns, 20);
        assert_eq!(def.tools[0].tool_name().as_deref(), Some("lookup_customer"));
        assert_eq!(def.model.targets()[0].base_url(), "https://api.openai.com/v1");
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let bad = GOOD.replace("provider: openai", "provider: opnai");
        let err = load("triage.yaml", &bad).expect_err("unknown provider").to_string();
        assert!(err.starts_with("triage.yaml:3:"), "{err}");
        assert!(err.contains("opnai"), "{err}");
        let two = format!("{GOOD}  - builtin: current_time\n");
        let err = load("t.yaml", &two).expect_err("duplicate").to_string();
        assert!(err.contains("t.yaml:7:") && err.contains("two tools are called `current_time`"), "{err}");
        let none = format!("{GOOD}  - {{description: nothing}}\n");
        let err = load("t.yaml", &none).expect_err("no kind").to_string();
        assert!(err.contains("needs one of `flow`, `http`, `mcp` and `builtin`"), "{err}");
    }

    #[test]
    fn http_tools_need_a_name_and_parameters_and_mcp_a_transport() {
        let http = format!("{GOOD}  - http: {{url: 'https://x.example'}}\n");
        let err = load("t.yaml", &http).expect_err("no name").to_string();
        assert!(err.contains("needs a `name` and its `parameters`"), "{err}");
        let mcp = format!("{GOOD}  - mcp: {{name: files}}\n");
        let err = load("t.yaml", &mcp).expect_err("no transport").to_string();
        assert!(err.contains("either `command` (stdio) or `url` (HTTP)"), "{err}");
    }

    #[test]
    fn an_instructions_file_is_read_into_the_stored_text() {
        let text = GOOD.replace("instructions: Sort tickets.", "instructions_file: triage.md");
        let (def, stored) = resolve("triage.yaml", &text, |path| {
            assert_eq!(path, "triage.md");
            Ok("# Triage\nSort by urgency.".into())
        })
        .expect("resolved");
        assert_eq!(def.instructions.as_deref(), Some("# Triage\nSort by urgency."));
        assert_eq!(def.instructions_file, None);
        let again = load("stored.json", &stored).expect("the stored text stands alone");
        assert_eq!(again.instructions, def.instructions);
        let err = resolve("triage.yaml", &text, |_| Err("no such file".into())).expect_err("unreadable");
        assert!(
            err.to_string().contains("triage.yaml:2:") && err.to_string().contains("no such file"),
            "{err}"
        );
        let (_, same) = resolve("triage.yaml", GOOD, |_| panic!("nothing to read")).expect("inline");
        assert_eq!(same, GOOD);
    }

    #[test]
    fn an_output_schema_must_be_a_schema() {
        let out = format!("{GOOD}output: {{schema: {{type: 12}}}}\n");
        let err = load("t.yaml", &out).expect_err("bad schema").to_string();
        assert!(err.contains("t.yaml:7:") && err.contains("not a valid JSON Schema"), "{err}");
    }
}
