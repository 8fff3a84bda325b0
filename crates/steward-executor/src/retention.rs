//! Payload retention per step: once a run has finished, the outputs of steps with
//! `retain: metadata` keep only their type and size, and those with `retain: none` keep nothing.
//! Payloads are needed while the run is in progress (to resume after a crash), so they are
//! dropped when it ends.

use std::sync::Arc;

use serde_json::{Value, json};
use steward_engine::{Entry, Event};
use steward_flow::Retain;
use steward_store::Store;

use crate::Error;
use crate::catalog::Compiled;

pub(crate) async fn apply(store: &Arc<dyn Store>, compiled: &Compiled, run_id: &str) -> Result<(), Error> {
    let retained = |key: &str| -> Retain {
        let id = steward_engine::split_key(key).and_then(|(_, id)| steward_flow::StepId::parse(id).ok());
        id.and_then(|id| compiled.step(&id)).and_then(|s| s.retain).unwrap_or(compiled.flow.retain)
    };
    if compiled.flow.retain == Retain::Full && !any_reduced(&compiled.flow.steps) {
        return Ok(());
    }
    let journal = store.journal(run_id).await?;
    let rewrites: Vec<Entry> = journal
        .into_iter()
        .filter_map(|mut e| {
            let mode = retained(e.event.key()?);
            (mode != Retain::Full && reduce(&mut e.event, mode)).then_some(e)
        })
        .collect();
    if !rewrites.is_empty() {
        store.rewrite_events(run_id, &rewrites).await?;
    }
    Ok(())
}

fn any_reduced(steps: &[steward_flow::Step]) -> bool {
    steps.iter().any(|s| {
        s.retain.is_some_and(|r| r != Retain::Full)
            || steward_flow::children(s).iter().any(|b| any_reduced(b))
    })
}

/// Replaces the payload of an event; false when the event has none.
fn reduce(event: &mut Event, mode: Retain) -> bool {
    let slot = match event {
        Event::StepSucceeded { output, .. } => output,
        Event::ItemsResolved { items, .. } => {
            let whole = Value::Array(std::mem::take(items));
            *items = vec![summary(&whole, mode)];
            return true;
        }
        _ => return false,
    };
    *slot = summary(slot, mode);
    true
}

/// What is kept of a payload.
pub fn summary(v: &Value, mode: Retain) -> Value {
    match mode {
        Retain::Full => v.clone(),
        Retain::None => json!({ "retained": "none" }),
        Retain::Metadata => {
            let kind = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            json!({ "retained": "metadata", "type": kind, "bytes": v.to_string().len() })
        }
    }
}
