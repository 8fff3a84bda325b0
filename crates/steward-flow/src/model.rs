//! The flow model: what a parsed and validated flow file means. Built only by [`crate::load`],
//! so a value of these types is always valid (ids unique, references resolvable, no cycles,
//! every expression compiled).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::Duration;
use crate::names::{AgentName, ConnectionName, FlowName, StepId};
use crate::path::Path;
use crate::template::{Condition, Template};

/// A flow definition.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: FlowName,
    pub description: Option<String>,
    pub inputs: IndexMap<String, InputSpec>,
    pub vars: IndexMap<String, Template>,
    /// At most this many runs of the flow execute at once; others wait in the queue.
    pub concurrency: Option<u32>,
    /// Default payload retention for the flow's steps.
    pub retain: Retain,
    /// How long this flow's finished runs keep their data, instead of the workspace policy.
    pub retention: Option<FlowRetention>,
    pub steps: Vec<Step>,
    pub output: Option<Template>,
}

/// A declared input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(default, rename = "type")]
    pub kind: InputType,
    /// Whether the input must be given; defaults to true unless a default is set.
    pub required: Option<bool>,
    pub default: Option<Value>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
    #[default]
    Any,
}

/// A flow's own retention periods (`retention: {payloads: 7d, errors: 30d, metadata: 90d}`),
/// counted from when a run finished; each one left out follows the workspace policy. `0s`
/// keeps nothing past the pruner's next pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRetention {
    /// Inputs, outputs, loop items and messages: afterwards only their type and size stay.
    pub payloads: Option<Duration>,
    /// Error messages: afterwards only the error's kind and status stay.
    pub errors: Option<Duration>,
    /// The run itself, its journal and signals: afterwards deleted.
    pub metadata: Option<Duration>,
}

/// How much of a step's input and output payload is kept once its run has finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retain {
    /// Inputs and outputs are kept (subject to the retention policy).
    #[default]
    Full,
    /// Only the size and type of the payload are kept.
    Metadata,
    /// Nothing about the payload is kept.
    None,
}

/// One step: common settings plus exactly one kind.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    /// Where the step is in its file, for error messages.
    pub path: Path,
    pub name: Option<String>,
    /// Steps that must finish first. Absent: the previous step in the list (none for the first);
    /// an empty list: none, so the step starts with its block.
    pub needs: Option<Vec<StepId>>,
    /// The step runs only when this is true; otherwise it is skipped.
    pub guard: Option<Condition>,
    pub retry: RetryPolicy,
    /// Limit for one attempt.
    pub timeout: Option<Duration>,
    pub on_error: OnError,
    pub retain: Option<Retain>,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Http(Box<HttpStep>),
    Transform(Condition),
    Code(CodeStep),
    Branch(BranchStep),
    Switch(SwitchStep),
    ForEach(ForEachStep),
    Wait(WaitStep),
    Approval(ApprovalStep),
    Flow(CallStep),
    Agent(AgentStep),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Transform(_) => "transform",
            StepKind::Code(_) => "code",
            StepKind::Branch(_) => "branch",
            StepKind::Switch(_) => "switch",
            StepKind::ForEach(_) => "for_each",
            StepKind::Wait(_) => "wait",
            StepKind::Approval(_) => "approval",
            StepKind::Flow(_) => "flow",
            StepKind::Agent(_) => "agent",
        }
    }
}

/// The step kinds a flow file may use, in the order the documentation lists them.
pub const STEP_KINDS: &[&str] =
    &["http", "transform", "code", "branch", "switch", "for_each", "wait", "approval", "flow", "agent"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }
}

/// An HTTP request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default)]
    pub method: Method,
    #[schemars(with = "String")]
    pub url: Template,
    /// The connection whose credential the request carries (an API key, a bearer or OAuth2
    /// token, basic auth or headers). It is added when the request is built, only for the
    /// connection's hosts; the flow never sees the secret.
    #[schemars(with = "Option<String>")]
    pub connection: Option<ConnectionName>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub headers: IndexMap<String, Template>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, Value>")]
    pub query: IndexMap<String, Template>,
    /// A JSON body.
    #[schemars(with = "Option<Value>")]
    pub json: Option<Template>,
    /// A form-encoded body.
    #[schemars(with = "Option<std::collections::BTreeMap<String, Value>>")]
    pub form: Option<IndexMap<String, Template>>,
    /// A raw text body.
    #[schemars(with = "Option<String>")]
    pub body: Option<Template>,
    /// Statuses that count as success: numbers (`201`) or classes (`"2xx"`). Default: 2xx.
    #[serde(default)]
    pub expect: Vec<StatusMatch>,
}

/// A status code or a class of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusMatch {
    Code(u16),
    Class(String),
}

impl StatusMatch {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => *c == status,
            StatusMatch::Class(c) => c.as_bytes().first().map(|d| d - b'0') == Some((status / 100) as u8),
        }
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "`{v}` is not a status: use a code such as 201 or a class such as \"2xx\""
            ))
        };
        match &v {
            Value::Number(n) => n
                .as_u64()
                .filter(|c| (100..600).contains(c))
                .map(|c| StatusMatch::Code(c as u16))
                .ok_or_else(bad),
            Value::String(s)
                if s.len() == 3 && s.ends_with("xx") && matches!(s.as_bytes()[0], b'1'..=b'5') =>
            {
                Ok(StatusMatch::Class(s.clone()))
            }
            _ => Err(bad()),
        }
    }
}

/// JavaScript run in the sandbox; the module's default export gets the context.
#[derive(Debug, Clone)]
pub struct CodeStep {
    pub source: String,
    /// Memory limit in MiB (default 64).
    pub memory_mb: u32,
}

#[derive(Debug, Clone)]
pub struct BranchStep {
    pub condition: Condition,
    pub then: Vec<Step>,
    pub otherwise: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct SwitchStep {
    pub value: Template,
    pub cases: IndexMap<String, Vec<Step>>,
    pub default: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct ForEachStep {
    pub items: Template,
    pub parallelism: u32,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum WaitStep {
    For(Duration),
    Until(Template),
}

/// A person approves or rejects before the run goes on.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStep {
    #[schemars(with = "Option<String>")]
    pub message: Option<Template>,
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_timeout: TimeoutDecision,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutDecision {
    #[default]
    Reject,
    Approve,
}

/// Calls another flow and uses its output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    /// The stored flow to call (its newest version when the step starts). `steward run` looks
    /// for `<name>.yaml` next to the calling file when the flow is not stored yet.
    #[schemars(with = "String")]
    pub name: FlowName,
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub inputs: Option<Template>,
}

/// Runs an agent; the step's output is the agent's final answer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStep {
    /// The stored agent (its newest version when the step first starts).
    #[schemars(with = "String")]
    pub name: AgentName,
    /// The task: a string becomes the first message as it is, anything else as JSON. Defaults
    /// to the run's inputs.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub input: Option<Template>,
    /// Earlier messages of a conversation, put before the task: a list of
    /// `{role: user|assistant, content: text}`.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub history: Option<Template>,
}

/// When a step is tried again.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub attempts: u32,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default = "second")]
    pub initial: Duration,
    #[serde(default = "minute")]
    pub max: Duration,
    /// Spread delays randomly between half and all of their value (deterministically per run).
    #[serde(default = "yes")]
    pub jitter: bool,
    /// Which errors are retried.
    #[serde(default = "RetryOn::defaults")]
    pub on: Vec<RetryOn>,
}

fn one() -> u32 {
    1
}
fn second() -> Duration {
    Duration::from_secs(1)
}
fn minute() -> Duration {
    Duration::from_secs(60)
}
fn yes() -> bool {
    true
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff: Backoff::default(),
            initial: second(),
            max: minute(),
            jitter: true,
            on: RetryOn::defaults(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    #[default]
    Exponential,
}

/// Classes of errors a retry policy can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    Timeout,
    Network,
    #[serde(rename = "http_4xx")]
    Http4xx,
    #[serde(rename = "http_429")]
    Http429,
    #[serde(rename = "http_5xx")]
    Http5xx,
    Code,
    Any,
}

impl RetryOn {
    pub fn defaults() -> Vec<RetryOn> {
        vec![RetryOn::Timeout, RetryOn::Network, RetryOn::Http429, RetryOn::Http5xx]
    }
}

/// What happens when a step has failed for good.
#[derive(Debug, Clone, Default)]
pub enum OnError {
    /// The failure fails the enclosing block (and so the run).
    #[default]
    Fail,
    /// The step is marked failed and the flow goes on; `.steps.<id>.error` holds the error.
    Continue,
    /// These steps run with `.error` set; their last output becomes the step's output.
    Handle(Vec<Step>),
}
