//! Agent steps: one pass of an agent's loop per attempt continuation. A pass reads the step's
//! records, lets [`steward_agent::turns::next`] decide, and performs at most one action with
//! effects (a model call or a tool call). Its record goes back to the driver, which journals
//! it before the step runs again, so after a crash the loop continues from the journal and
//! nothing that finished is repeated.

mod budget;
mod model;
mod runtime;
mod taps;
mod tools;

use serde_json::{Value, json};
use steward_agent::pii::Masker;
use steward_agent::turns::{self, Next, Record};
use steward_engine::{ErrorKind, Event, Outcome, StepError};
use steward_flow::AgentStep;

pub use budget::WorkspaceBudget;
pub(crate) use runtime::AgentRuntime;
pub use taps::Tap;

use crate::step::{Attempt, Services};

/// One pass: returns the outcome and adds the pass's records to `out`.
pub(crate) async fn perform(
    a: &Attempt,
    sv: &Services,
    step: &AgentStep,
    sent: &mut Vec<Event>,
    out: &mut Vec<Value>,
) -> Result<Outcome, StepError> {
    let workspace = &a.compiled.version.workspace;
    let mut records = Record::parse_all(&a.records);
    let def = match records.first() {
        Some(Record::Begin { agent_version, .. }) => sv.agents.version(workspace, agent_version).await?,
        _ => {
            let (version, def) = sv.agents.latest(workspace, step.name.as_str()).await?;
            let mut task = task_text(a, step)?;
            let mut history = history(a, step)?;
            let mut masker = Masker::new();
            if def.privacy.mask_pii {
                history.iter_mut().for_each(|said| said.content = masker.mask_text(&said.content));
                task = masker.mask_text(&task);
            }
            let begin = Record::Begin { agent_version: version, history, task, masked: masker.to_entries() };
            push(out, &mut records, begin);
            def
        }
    };
    let mut pass = Pass { a, sv, def: &def, masker: masker_of(&records), sent };
    let toolbox = tools::Toolbox::new(sv, a, &def).await?;
    loop {
        match turns::next(&def, &|name| toolbox.needs_approval(name), &records) {
            Next::Record(r) => push(out, &mut records, r),
            Next::Model { max_tokens } => {
                sv.agents.budget.check(sv, workspace, a.now).await?;
                let turn = model::call(&mut pass, &records, toolbox.specs(), max_tokens).await?;
                sv.agents.count_turn(workspace, def.name.as_str(), &turn, a.now).await;
                push(out, &mut records, turn);
                return Ok(Outcome::Continue);
            }
            Next::CallTool(call) => {
                let record = toolbox.call(&mut pass, &call).await;
                sv.agents.count_tool(workspace, def.name.as_str(), a.now).await;
                push(out, &mut records, record);
                return Ok(Outcome::Continue);
            }
            Next::AskApproval(call) => {
                let arguments = pass.masker.restore_value(&call.arguments);
                let message =
                    format!("The agent `{}` wants to call `{}` with {arguments}", def.name, call.name);
                let asked = Record::ApprovalRequested { call_id: call.id, name: call.name, arguments };
                push(out, &mut records, asked);
                return Ok(suspend(a, &def, message));
            }
            Next::AwaitDecision => {
                return Ok(suspend(a, &def, format!("The agent `{}` waits for a decision", def.name)));
            }
            Next::Finish(answer) => return Ok(Outcome::Succeeded(pass.masker.restore_value(&answer))),
            Next::OverBudget(m) => return Err(StepError::new(ErrorKind::Budget, m)),
            Next::BadAnswer(m) => return Err(StepError::new(ErrorKind::Model, m)),
        }
    }
}

/// What one pass works with.
pub(crate) struct Pass<'p> {
    pub(crate) a: &'p Attempt,
    pub(crate) sv: &'p Services,
    pub(crate) def: &'p steward_agent::definition::AgentDef,
    /// Placeholders of masked personal data, rebuilt from the records.
    pub(crate) masker: Masker,
    pub(crate) sent: &'p mut Vec<Event>,
}

fn push(out: &mut Vec<Value>, records: &mut Vec<Record>, record: Record) {
    out.push(serde_json::to_value(&record).unwrap_or(Value::Null));
    records.push(record);
}

fn masker_of(records: &[Record]) -> Masker {
    let entries = records.iter().flat_map(|r| match r {
        Record::Begin { masked, .. } | Record::Tool { masked, .. } => masked.clone(),
        _ => Vec::new(),
    });
    Masker::from_entries(entries)
}

fn suspend(a: &Attempt, def: &steward_agent::definition::AgentDef, message: String) -> Outcome {
    let timeout_at = a.now.plus_millis(def.approval_timeout.as_millis());
    Outcome::Suspend { message: Some(message), timeout_at: Some(timeout_at) }
}

/// The earlier messages of a conversation the step continues, if it names them.
fn history(a: &Attempt, step: &AgentStep) -> Result<Vec<turns::Said>, StepError> {
    let Some(t) = &step.history else { return Ok(Vec::new()) };
    let value = t.render_in(&a.context).map_err(|e| StepError::new(ErrorKind::Expression, e.to_string()))?;
    if value.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(value).map_err(|e| {
        StepError::new(
            ErrorKind::Input,
            format!("an agent's `history` is a list of {{role: user|assistant, content: text}}: {e}"),
        )
    })
}

/// The task as the model's first message: the step's `input` (the run's inputs by default),
/// a string as it is and anything else as JSON.
fn task_text(a: &Attempt, step: &AgentStep) -> Result<String, StepError> {
    let value = match &step.input {
        Some(t) => {
            t.render_in(&a.context).map_err(|e| StepError::new(ErrorKind::Expression, e.to_string()))?
        }
        None => a.context.to_json().get("inputs").cloned().unwrap_or(json!({})),
    };
    Ok(match value {
        Value::String(s) => s,
        other => other.to_string(),
    })
}
