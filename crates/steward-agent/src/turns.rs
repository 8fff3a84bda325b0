//! The loop's memory and its decisions, without I/O. An agent step's progress is a list of
//! [`Record`]s in the run's journal; [`next`] looks at them and says what comes next, and
//! [`transcript`] rebuilds the conversation from them. The executor performs at most one
//! action with effects (a model call or a tool call) per pass and journals its record before
//! the next pass, so a crash repeats nothing that finished.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::AgentDef;
use crate::provider::{Message, Protocol, Role, ToolCall, Usage};

/// One earlier message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    pub role: Speaker,
    pub content: String,
}

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    User,
    Assistant,
}

/// One piece of an agent step's progress, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first record: the definition version in use (kept for the whole step) and the
    /// task as the model sees it (masked, when the agent masks personal data).
    Begin {
        agent_version: String,
        /// Earlier messages of a conversation, before the task.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        history: Vec<Said>,
        task: String,
        /// Placeholders and the values they stand for (personal data: it lives and is
        /// pruned with the run's payloads).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        masked: Vec<(String, String)>,
    },
    /// A model call and its answer.
    Turn {
        provider: Protocol,
        model: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        usage: Usage,
        /// At the configured prices; absent when the model has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_micros: Option<u64>,
        /// Models tried first that failed, with why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fell_back: Vec<String>,
    },
    /// A tool call's result (or why it did not run).
    Tool {
        call_id: String,
        name: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        masked: Vec<(String, String)>,
    },
    /// A call waits for a person.
    ApprovalRequested { call_id: String, name: String, arguments: Value },
    /// A person's (or the timeout's) decision, recorded by the engine.
    Decision {
        approved: bool,
        by: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The answer did not match the output schema; the model is told why.
    Repair { message: String },
}

impl Record {
    /// Reads the records journaled for a step; ones this version cannot read are skipped.
    pub fn parse_all(values: &[Value]) -> Vec<Record> {
        values.iter().filter_map(|v| Record::deserialize(v).ok()).collect()
    }
}

/// What the loop does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Call the model with the transcript; `max_tokens` caps the reply to what the run's
    /// token budget has left.
    Model { max_tokens: Option<u32> },
    /// Run this tool call (it needs no approval, or it was approved).
    CallTool(ToolCall),
    /// Ask a person first: journal the request, then suspend.
    AskApproval(ToolCall),
    /// A request is journaled and still undecided: suspend again.
    AwaitDecision,
    /// A record that needs no effect (a rejected call's answer, a repair request).
    Record(Record),
    /// The final answer.
    Finish(Value),
    /// A budget ran out.
    OverBudget(String),
    /// The answer never matched the output schema.
    BadAnswer(String),
}

/// What the run has used so far, from its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub turns: u32,
    pub usage: Usage,
    pub cost_micros: u64,
    pub tool_calls: u32,
}

pub fn used(records: &[Record]) -> Used {
    let mut u = Used::default();
    for r in records {
        match r {
            Record::Turn { usage, cost_micros, .. } => {
                u.turns += 1;
                u.usage.input_tokens += usage.input_tokens;
                u.usage.output_tokens += usage.output_tokens;
                u.cost_micros += cost_micros.unwrap_or(0);
            }
            Record::Tool { .. } => u.tool_calls += 1,
            _ => {}
        }
    }
    u
}

/// Decides the next action. `needs_approval` says which tool names need a person.
pub fn next(def: &AgentDef, needs_approval: &dyn Fn(&str) -> bool, records: &[Record]) -> Next {
    let last_turn = records.iter().rposition(|r| matches!(r, Record::Turn { .. }));
    if let Some(i) = last_turn
        && let Record::Turn { text, tool_calls, .. } = &records[i]
    {
        let after = &records[i + 1..];
        if let Some(call) = tool_calls.iter().find(|c| !answered(after, &c.id)) {
            return for_call(call, after, needs_approval);
        }
        if tool_calls.is_empty() && !after.iter().any(|r| matches!(r, Record::Repair { .. })) {
            return answer(def, text, records);
        }
    }
    let u = used(records);
    let limits = &def.limits;
    if u.turns >= limits.max_turns {
        return Next::OverBudget(format!(
            "the agent used all {} of its turns without a final answer",
            limits.max_turns
        ));
    }
    if let Some(max) = limits.max_tokens
        && u.usage.total() >= max
    {
        return Next::OverBudget(format!("the run used {} tokens, its limit is {max}", u.usage.total()));
    }
    if let Some(max) = limits.max_cost
        && u.cost_micros as f64 >= max * 1e6
    {
        return Next::OverBudget(format!(
            "the run cost ${:.4}, its limit is ${max}",
            u.cost_micros as f64 / 1e6
        ));
    }
    let left = limits.max_tokens.map(|m| m.saturating_sub(u.usage.total()));
    let max_tokens = match (def.model.max_tokens, left) {
        (Some(a), Some(b)) => Some(a.min(clamp(b))),
        (a, b) => a.or(b.map(clamp)),
    };
    Next::Model { max_tokens }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

fn answered(after: &[Record], id: &str) -> bool {
    after.iter().any(|r| matches!(r, Record::Tool { call_id, .. } if call_id == id))
}

fn for_call(call: &ToolCall, after: &[Record], needs_approval: &dyn Fn(&str) -> bool) -> Next {
    if !needs_approval(&call.name) {
        return Next::CallTool(call.clone());
    }
    let asked = after
        .iter()
        .position(|r| matches!(r, Record::ApprovalRequested { call_id, .. } if *call_id == call.id));
    let Some(asked) = asked else { return Next::AskApproval(call.clone()) };
    let decision = after[asked + 1..].iter().find_map(|r| match r {
        Record::Decision { approved, by, reason } => Some((*approved, by, reason)),
        _ => None,
    });
    match decision {
        None => Next::AwaitDecision,
        Some((true, _, _)) => Next::CallTool(call.clone()),
        Some((false, by, reason)) => {
            let why = reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            Next::Record(Record::Tool {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: format!(
                    "A person did not approve this call (rejected by {by}{why}). Do not retry it unchanged."
                ),
                is_error: true,
                masked: Vec::new(),
            })
        }
    }
}

/// The final answer: the text, or with an output schema the JSON it holds, repaired by asking
/// again while repairs are left.
fn answer(def: &AgentDef, text: &str, records: &[Record]) -> Next {
    let Some(spec) = &def.output else { return Next::Finish(Value::String(text.to_owned())) };
    let problem = match parse_json_answer(text) {
        Err(e) => e,
        Ok(value) => match schema_errors(&spec.schema, &value) {
            None => return Next::Finish(value),
            Some(e) => e,
        },
    };
    let repairs = records.iter().filter(|r| matches!(r, Record::Repair { .. })).count() as u32;
    if repairs >= spec.repair_turns {
        return Next::BadAnswer(format!(
            "the final answer did not match the output schema after {repairs} repair turns: {problem}"
        ));
    }
    Next::Record(Record::Repair {
        message: format!(
            "Your answer does not match the required JSON Schema: {problem}. Reply with only the corrected JSON."
        ),
    })
}

/// The JSON in an answer: the whole text, or the inside of a fenced code block.
fn parse_json_answer(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.trim_end().strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str(inner.trim()).map_err(|e| format!("the answer is not JSON ({e})"))
}

fn schema_errors(schema: &Value, value: &Value) -> Option<String> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => return Some(format!("the schema is invalid: {e}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The conversation so far, as the provider is sent it.
pub fn transcript(records: &[Record]) -> Vec<Message> {
    let mut messages = Vec::new();
    for r in records {
        match r {
            Record::Begin { task, history, .. } => {
                for said in history {
                    messages.push(match said.role {
                        Speaker::User => Message::user(said.content.clone()),
                        Speaker::Assistant => Message::assistant(said.content.clone(), Vec::new()),
                    });
                }
                messages.push(Message::user(task.clone()))
            }
            Record::Turn { text, tool_calls, .. } => {
                messages.push(Message::assistant(text.clone(), tool_calls.clone()))
            }
            Record::Tool { call_id, content, is_error, .. } => {
                messages.push(Message::tool(call_id.clone(), content.clone(), *is_error))
            }
            Record::Repair { message } => messages.push(Message::user(message.clone())),
            Record::ApprovalRequested { .. } | Record::Decision { .. } => {}
        }
    }
    debug_assert!(messages.first().is_none_or(|m| m.role == Role::User));
    messages
}

#[cfg(test)]
mod tests;
