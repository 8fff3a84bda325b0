//! Which steps of a run wait for a person's decision: approval steps, and agent steps whose
//! agent wants to call a tool that needs approval. Read from the journal, so it is the same
//! for every process.

use serde::Serialize;
use steward_engine::{Event, RunStatus, Timestamp};
use steward_store::{RunFilter, RunRecord, Signal, Store};

use crate::Error;

/// A step waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingApproval {
    pub run_id: String,
    pub flow: String,
    pub step: String,
    pub requested_at: Timestamp,
    /// When it counts as rejected, if no one decides.
    pub timeout_at: Option<Timestamp>,
    /// What the person is asked; for an agent, the tool call and its arguments (a payload).
    pub message: Option<String>,
    /// The tool an agent wants to call.
    pub tool: Option<String>,
}

/// The most waiting runs one listing of a workspace looks at.
pub const MAX_WAITING: usize = 500;

/// The workspace's steps that wait for a decision, oldest request first, among its
/// [`MAX_WAITING`] most recent waiting runs.
pub async fn workspace_approvals(store: &dyn Store, workspace: &str) -> Result<Vec<PendingApproval>, Error> {
    let filter = RunFilter { status: Some(RunStatus::Waiting), limit: MAX_WAITING, ..Default::default() };
    let mut out = Vec::new();
    for run in store.list_runs(workspace, &filter).await? {
        out.extend(pending_approvals(store, &run).await?);
    }
    out.sort_by_key(|p| p.requested_at);
    Ok(out)
}

/// The run's steps that wait for a decision no one has made or sent yet.
pub async fn pending_approvals(store: &dyn Store, run: &RunRecord) -> Result<Vec<PendingApproval>, Error> {
    if run.status.is_finished() {
        return Ok(Vec::new());
    }
    // Sent decisions first, then the journal: a decision consumed in between is in the
    // journal by the time it is read.
    let sent = store.signals(&run.id).await?;
    let journal = store.journal(&run.id).await?;
    let mut waiting: Vec<PendingApproval> = Vec::new();
    let mut tools: Vec<(String, String)> = Vec::new();
    for entry in &journal {
        let Some(key) = entry.event.key() else { continue };
        match &entry.event {
            Event::StepSuspended { message, timeout_at, .. } => {
                waiting.retain(|p| p.step != key);
                let tool = tools.iter().rev().find(|(k, _)| k == key).map(|(_, t)| t.clone());
                waiting.push(PendingApproval {
                    run_id: run.id.clone(),
                    flow: run.flow_name.clone(),
                    step: key.to_owned(),
                    requested_at: entry.at,
                    timeout_at: *timeout_at,
                    message: message.clone(),
                    tool,
                });
            }
            Event::StepRecorded { record, .. } if record["type"] == "approval_requested" => {
                tools.push((key.to_owned(), record["name"].as_str().unwrap_or_default().to_owned()));
            }
            _ => waiting.retain(|p| p.step != key),
        }
    }
    waiting
        .retain(|p| !sent.iter().any(|(_, s)| matches!(s, Signal::Approval { step, .. } if *step == p.step)));
    Ok(waiting)
}
