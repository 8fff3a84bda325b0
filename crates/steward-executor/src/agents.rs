//! Storing agent definitions, the same way for the CLI and the API. Each agent comes with a
//! flow, `agent.<name>`, whose one step is the agent: starting an agent directly is starting
//! a run of that flow, so such runs are ordinary runs (listed, streamed, cancelled, retained
//! and receipted like any other).

use sha2::{Digest, Sha256};
use steward_agent::definition::AgentDef;
use steward_engine::Timestamp;
use steward_flow::{AgentName, FlowName};
use steward_store::{AgentVersion, FlowVersion, NewFlowVersion, Store};

use crate::Error;

/// An agent as stored, with the flow that runs it.
#[derive(Debug, Clone)]
pub struct AppliedAgent {
    pub version: AgentVersion,
    /// Whether this made a new version (false when the newest one has the same text).
    pub changed: bool,
    pub runner: FlowVersion,
}

/// Stores a resolved definition (see [`steward_agent::definition::resolve`]) as the agent's
/// newest version, and its runner flow.
pub async fn apply_agent(
    store: &dyn Store,
    workspace: &str,
    def: &AgentDef,
    source: &str,
    now: Timestamp,
) -> Result<AppliedAgent, Error> {
    let digest = format!("{:x}", Sha256::digest(source.as_bytes()));
    let (version, changed) = store.save_agent(workspace, def.name.as_str(), source, &digest, now).await?;
    let runner = ensure_runner(store, workspace, &def.name, now).await?;
    // Deleting an agent deletes its runner; applying it again brings the runner back.
    if store.flow(workspace, &runner.name).await?.deleted_at.is_some() {
        store.set_flow_deleted(workspace, &runner.name, false, now).await?;
    }
    Ok(AppliedAgent { version, changed, runner })
}

/// Soft-deletes an agent (or, with `deleted: false`, restores it) together with its runner
/// flow; false when there was no such agent to delete (or no deleted one to restore).
pub async fn set_agent_deleted(
    store: &dyn Store,
    workspace: &str,
    agent: &AgentName,
    deleted: bool,
    now: Timestamp,
) -> Result<bool, Error> {
    let done = if deleted {
        store.delete_agent(workspace, agent.as_str(), now).await?
    } else {
        store.restore_agent(workspace, agent.as_str(), now).await?
    };
    if done {
        let runner = FlowName::agent_runner(agent);
        match store.set_flow_deleted(workspace, runner.as_str(), deleted, now).await {
            Ok(_) | Err(steward_store::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// The newest version of an agent's runner flow, stored first if it is missing or differs
/// from what this build makes (an unchanged text keeps its version).
pub async fn ensure_runner(
    store: &dyn Store,
    workspace: &str,
    agent: &AgentName,
    now: Timestamp,
) -> Result<FlowVersion, Error> {
    let name = FlowName::agent_runner(agent);
    let source = runner_source(agent);
    let digest = format!("{:x}", Sha256::digest(source.as_bytes()));
    if let Some(v) = store.latest_version(workspace, name.as_str()).await?
        && v.digest == digest
    {
        return Ok(v);
    }
    let new = NewFlowVersion {
        workspace: workspace.to_owned(),
        name: name.to_string(),
        file_name: format!("{name}.yaml"),
        source,
        digest,
        concurrency: None,
        now,
    };
    Ok(store.save_version(new).await?)
}

/// The runner flow's text: the task (text or any JSON) and, for a conversation, the earlier
/// messages go to the agent; its answer is the run's output.
fn runner_source(agent: &AgentName) -> String {
    format!(
        "name: {runner}\n\
         description: Runs the agent `{agent}` directly (kept by Steward; apply the agent to change it).\n\
         inputs:\n  \
           task: {{description: 'What the agent is asked to do: text, or any JSON'}}\n  \
           history: {{type: array, default: [], description: 'Earlier messages of a conversation: [{{role: user|assistant, content}}]'}}\n\
         steps:\n  \
           - id: agent\n    \
             agent: {{name: {agent}, input: '${{{{ .inputs.task }}}}', history: '${{{{ .inputs.history }}}}'}}\n\
         output: '${{{{ .steps.agent.output }}}}'\n",
        runner = FlowName::agent_runner(agent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_flow_loads_and_runs_its_agent() {
        let agent = AgentName::parse("triage").expect("name");
        let loaded = steward_flow::load("runner.yaml", &runner_source(&agent)).expect("the runner loads");
        assert_eq!(loaded.flow.name.as_str(), "agent.triage");
        assert!(loaded.flow.inputs.contains_key("task") && loaded.flow.inputs.contains_key("history"));
        let steward_flow::StepKind::Agent(step) = &loaded.flow.steps[0].kind else {
            unreachable!("the runner's step is the agent")
        };
        assert_eq!(step.name, agent);
    }
}
