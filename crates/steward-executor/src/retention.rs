//! Payload retention per step: once a run has finished, the outputs of steps with
//! `retain: metadata` keep only their type and size, and those with `retain: none` keep nothing.
//! Payloads are needed while the run is in progress (to resume after a crash), so they are
//! dropped when it ends: those still uncommitted never reach the store ([`reduce_pending`]),
//! those committed earlier are rewritten ([`apply`]).

use std::sync::Arc;

use serde_json::{Value, json};
use steward_engine::{Entry, Event};
use steward_flow::Retain;
use steward_store::Store;

use crate::Error;
use crate::catalog::Compiled;

pub(crate) async fn apply(store: &Arc<dyn Store>, compiled: &Compiled, run_id: &str) -> Result<(), Error> {
    if !reduces(compiled) {
        return Ok(());
    }
    let journal = store.journal(run_id).await?;
    let rewrites: Vec<Entry> = journal
        .into_iter()
        .filter_map(|mut e| {
            let mode = retained(compiled, e.event.key()?);
            (mode != Retain::Full && reduce(&mut e.event, mode)).then_some(e)
        })
        .collect();
    if !rewrites.is_empty() {
        store.rewrite_events(run_id, &rewrites).await?;
    }
    Ok(())
}

/// Reduces the payloads of a finished run's entries that are not committed yet.
pub(crate) fn reduce_pending(compiled: &Compiled, entries: &mut [Entry]) {
    if !reduces(compiled) {
        return;
    }
    for e in entries {
        if let Some(key) = e.event.key() {
            let mode = retained(compiled, key);
            if mode != Retain::Full {
                reduce(&mut e.event, mode);
            }
        }
    }
}

/// Whether any step of the flow keeps less than its full payload.
fn reduces(compiled: &Compiled) -> bool {
    compiled.flow.retain != Retain::Full || any_reduced(&compiled.flow.steps)
}

fn retained(compiled: &Compiled, key: &str) -> Retain {
    let id = steward_engine::split_key(key).and_then(|(_, id)| steward_flow::StepId::parse(id).ok());
    id.and_then(|id| compiled.step(&id)).and_then(|s| s.retain).unwrap_or(compiled.flow.retain)
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
pub(crate) fn summary(v: &Value, mode: Retain) -> Value {
    match mode {
        Retain::Full => v.clone(),
        Retain::None => json!({ "retained": "none" }),
        // The same shape retention pruning leaves.
        Retain::Metadata => steward_store::prune::payload_summary(v),
    }
}
