//! Checking a flow file completely before it is stored, the same way for the CLI and the API.

use sha2::{Digest, Sha256};
use steward_engine::Timestamp;
use steward_flow::{LoadError, LoadedFlow, Step, StepKind};
use steward_steps::code::SandboxLimits;
use steward_store::NewFlowVersion;

/// Reads and validates a flow file's text, including the syntax of its JavaScript. Errors name
/// `file_name`, line and column.
pub fn validate(file_name: &str, text: &str) -> Result<LoadedFlow, LoadError> {
    let loaded = steward_flow::load(file_name, text)?;
    let mut problems = Vec::new();
    if loaded.flow.name.is_agent_runner() {
        problems.push((
            steward_flow::Path::root().key("name"),
            format!(
                "names starting with `{}` belong to the flows that run agents; choose another name",
                steward_flow::AGENT_RUNNER_PREFIX
            ),
        ));
    }
    check_code(&loaded.flow.steps, &SandboxLimits::default(), &mut problems);
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(steward_flow::located_error(file_name, &loaded.locations, problems))
    }
}

fn check_code(steps: &[Step], limits: &SandboxLimits, problems: &mut Vec<(steward_flow::Path, String)>) {
    for s in steps {
        if let StepKind::Code(c) = &s.kind
            && let Err(e) = steward_steps::code::check(&c.source, limits)
        {
            problems.push((s.path.key("code"), e.to_string()));
        }
        for block in steward_flow::children(s) {
            check_code(block, limits, problems);
        }
    }
}

/// The names of the flows a flow calls, with where each call is.
pub fn called_flows(steps: &[Step]) -> Vec<(String, steward_flow::Path)> {
    let mut out = Vec::new();
    for s in steps {
        if let StepKind::Flow(c) = &s.kind {
            out.push((c.name.to_string(), s.path.key("flow").key("name")));
        }
        for block in steward_flow::children(s) {
            out.extend(called_flows(block));
        }
    }
    out
}

/// The version to store for a validated file.
pub fn new_version(
    workspace: &str,
    file_name: &str,
    text: String,
    loaded: &LoadedFlow,
    now: Timestamp,
) -> NewFlowVersion {
    NewFlowVersion {
        workspace: workspace.to_owned(),
        name: loaded.flow.name.to_string(),
        file_name: file_name.to_owned(),
        digest: format!("{:x}", Sha256::digest(text.as_bytes())),
        source: text,
        concurrency: loaded.flow.concurrency,
        now,
    }
}
