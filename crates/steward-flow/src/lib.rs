//! Flow definitions: the domain types of Steward's flows, read from YAML or JSON files with
//! every problem reported at its file, line and column before a run starts.
//!
//! This crate does no I/O: it turns text into a validated [`Flow`] and evaluates pure jq
//! expressions.

mod context;
mod diagnostic;
mod duration;
mod expr;
mod inputs;
mod model;
mod names;
mod parse;
mod path;
mod quick;
mod schema;
pub mod secret;
mod source;
mod template;
mod validate;

pub use context::{Context, Object};
pub use diagnostic::{Diagnostic, LoadError};
pub use duration::Duration;
pub use expr::{EvalError, Expr};
pub use model::*;
pub use names::{AGENT_RUNNER_PREFIX, AgentName, ConnectionName, FlowName, StepId};
pub use path::{Path, Segment};
pub use schema::flow_schema;
pub use source::{Locations, Position};
pub use template::{Condition, Template, TemplateError};
pub use validate::{agent_categories, children, data_categories, dependencies, source_refs};

/// A flow read from a file, with the locations of its nodes for later checks.
#[derive(Debug, Clone)]
pub struct LoadedFlow {
    pub flow: Flow,
    pub locations: Locations,
}

/// Reads and validates a flow file. `file` is only used in messages.
pub fn load(file: &str, text: &str) -> Result<LoadedFlow, LoadError> {
    let (doc, locations) = source::parse(text).map_err(|e| LoadError {
        file: file.to_owned(),
        diagnostics: vec![Diagnostic { position: e.position, path: Path::root(), message: e.message }],
    })?;
    let mut sink = diagnostic::Sink::new(&locations);
    let flow = parse::Reader { sink: &mut sink }.flow(&doc);
    if let Some(flow) = &flow {
        validate::check(flow, &mut sink);
    }
    match flow {
        Some(flow) if sink.diagnostics.is_empty() => Ok(LoadedFlow { flow, locations }),
        _ => Err(sink.into_error(file)),
    }
}

/// The JSON value of a YAML or JSON document, without flow checks (for tools such as schema
/// validation).
pub fn document_value(text: &str) -> Result<serde_json::Value, String> {
    source::parse(text)
        .map(|(v, _)| v)
        .map_err(|e| format!("{}:{}: {}", e.position.line, e.position.column, e.message))
}

/// Builds a [`LoadError`] for problems found by later checks (for example JavaScript syntax),
/// located with the flow's recorded positions.
pub fn located_error(file: &str, locations: &Locations, problems: Vec<(Path, String)>) -> LoadError {
    let diagnostics = problems
        .into_iter()
        .map(|(path, message)| Diagnostic { position: locations.value(&path), path, message })
        .collect();
    LoadError { file: file.to_owned(), diagnostics }
}

/// Reads a YAML or JSON document into `T` (another kind of definition file, such as an
/// agent), naming the line and column of the first problem.
pub fn load_document<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<(T, Locations), LoadError> {
    let (doc, locations) = source::parse(text).map_err(|e| LoadError {
        file: file.to_owned(),
        diagnostics: vec![Diagnostic { position: e.position, path: Path::root(), message: e.message }],
    })?;
    let mut sink = diagnostic::Sink::new(&locations);
    let value = parse::Reader { sink: &mut sink }.leaf::<T>(&doc, &Path::root());
    match value {
        Some(value) if sink.diagnostics.is_empty() => Ok((value, locations)),
        _ => Err(sink.into_error(file)),
    }
}
