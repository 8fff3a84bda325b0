//! What retention leaves of a run's journal events and signals: pure functions the stores
//! apply inside their pruning transactions.
//!
//! - Payloads (inputs, outputs, loop items, triggers, approval and suspend messages,
//!   cancellation reasons) become what a step's `retain: metadata` leaves, their type and
//!   size: `{"retained": "metadata", "type": "object", "bytes": 182}` (the executor's
//!   `retention::summary` uses this for `retain: metadata`). Text fields that cannot hold such a
//!   summary are emptied (`None`, or [`REMOVED`] where the field is required).
//! - Error details keep the kind, HTTP status and the step the error came from; the message
//!   becomes [`REMOVED`].

use serde_json::{Value, json};
use steward_engine::{Event, StepError};

use crate::Signal;

/// What replaces a required text that retention removed.
pub const REMOVED: &str = "[removed by retention]";

/// The type and size of a payload.
pub fn payload_summary(v: &Value) -> Value {
    if is_summary(v) {
        return v.clone();
    }
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

/// Whether `v` is already what a step's `retain` or retention left.
fn is_summary(v: &Value) -> bool {
    v.get("retained").is_some_and(Value::is_string) && v.as_object().is_some_and(|m| m.len() <= 3)
}

/// Replaces `v` with its summary; true when that changed it.
fn summarize(v: &mut Value) -> bool {
    let s = payload_summary(v);
    let changed = s != *v;
    *v = s;
    changed
}

fn clear(text: &mut Option<String>) -> bool {
    text.take().is_some()
}

fn removed(text: &mut String) -> bool {
    let changed = text != REMOVED;
    REMOVED.clone_into(text);
    changed
}

/// Strips the payloads of an event; true when it had any left.
pub fn strip_payloads(event: &mut Event) -> bool {
    match event {
        Event::RunStarted { inputs, trigger, .. } => {
            let a = summarize(inputs);
            let b = trigger.as_mut().is_some_and(summarize);
            a || b
        }
        Event::StepSucceeded { output, .. } => summarize(output),
        // An agent's transcript: model turns, tool results, masked values.
        Event::StepRecorded { record, .. } => summarize(record),
        Event::ItemsResolved { items, .. } => {
            if items.len() == 1 && is_summary(&items[0]) {
                return false;
            }
            let whole = Value::Array(std::mem::take(items));
            *items = vec![payload_summary(&whole)];
            true
        }
        Event::StepSuspended { message, .. } => clear(message),
        Event::ApprovalDecided { reason, .. } => clear(reason),
        Event::RunCancelled { reason } => removed(reason),
        Event::RunFinished { output, .. } => output.as_mut().is_some_and(summarize),
        _ => false,
    }
}

/// Strips an error's message; true when it had one.
pub fn strip_error(error: &mut StepError) -> bool {
    removed(&mut error.message)
}

/// Strips the error details of an event; true when it had any left.
pub fn strip_errors(event: &mut Event) -> bool {
    match event {
        Event::StepRetrying { error, .. }
        | Event::StepFailed { error, .. }
        | Event::HandlerStarted { error, .. } => strip_error(error),
        Event::RunFinished { error, .. } => error.as_mut().is_some_and(strip_error),
        _ => false,
    }
}

/// Strips the payloads a signal carries; true when it had any left.
pub fn strip_signal_payloads(signal: &mut Signal) -> bool {
    match signal {
        Signal::Cancel { reason } => removed(reason),
        Signal::Approval { reason, .. } => clear(reason),
        Signal::ChildFinished { output, .. } => output.as_mut().is_some_and(summarize),
    }
}

/// Strips the error details a signal carries; true when it had any left.
pub fn strip_signal_errors(signal: &mut Signal) -> bool {
    match signal {
        Signal::ChildFinished { error: Some(error), .. } => strip_error(error),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use steward_engine::{ErrorKind, RunStatus};

    use super::*;

    #[test]
    fn payloads_keep_type_and_size_once() {
        let mut e = Event::StepSucceeded { key: "a".into(), output: json!({"secret": "abc"}) };
        assert!(strip_payloads(&mut e));
        let Event::StepSucceeded { output, .. } = &e else { unreachable!() };
        assert_eq!(*output, json!({"retained": "metadata", "type": "object", "bytes": 16}));
        assert!(!strip_payloads(&mut e), "a second pass changes nothing");

        let mut items = Event::ItemsResolved { key: "l".into(), items: vec![json!(1), json!("two")] };
        assert!(strip_payloads(&mut items));
        assert!(!strip_payloads(&mut items));
        let mut started = Event::RunStarted {
            run_id: "r".into(),
            inputs: json!({"email": "a@example.com"}),
            trigger: Some(json!({"body": "x"})),
        };
        assert!(strip_payloads(&mut started));
        assert!(!serde_json::to_string(&started).unwrap_or_default().contains("example.com"));
    }

    #[test]
    fn errors_keep_kind_and_status_only() {
        let mut e = Event::RunFinished {
            status: RunStatus::Failed,
            output: None,
            error: Some(StepError::http(503, "token abc leaked in a message")),
        };
        assert!(!strip_payloads(&mut e), "no payload to strip");
        assert!(strip_errors(&mut e));
        let Event::RunFinished { error: Some(error), .. } = &e else { unreachable!() };
        assert_eq!((error.kind, error.status, error.message.as_str()), (ErrorKind::Http, Some(503), REMOVED));
        assert!(!strip_errors(&mut e));
    }

    #[test]
    fn signals_lose_reasons_outputs_and_messages() {
        let mut s = Signal::ChildFinished {
            step: "c".into(),
            child_run_id: "x".into(),
            output: Some(json!([1, 2])),
            error: Some(StepError::new(ErrorKind::Code, "boom")),
        };
        assert!(strip_signal_payloads(&mut s));
        assert!(strip_signal_errors(&mut s));
        let text = serde_json::to_string(&s).unwrap_or_default();
        assert!(!text.contains("boom") && !text.contains("[1,2]"), "{text}");
    }
}
