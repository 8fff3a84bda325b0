//! Runs: start, list with filters and cursors, show with the step timeline, the journal,
//! a live stream of it, cancel, and approval decisions.
//!
//! Callers without `runs:read_payloads` see what happened but not what runs carried: inputs,
//! outputs, items and error messages are left out everywhere (see [`redact`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_engine::{Entry, RunState, RunStatus};
use steward_store::{RunFilter, RunRecord, Signal};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, MaybeJson};
use crate::state::AppState;
use crate::views::millis;

mod stream;

/// The most runs one page lists.
const MAX_PAGE: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(show_run))
        .routes(routes!(run_events))
        .routes(routes!(stream::stream_run))
        .routes(routes!(cancel_run))
        .routes(routes!(approve_step))
        .routes(routes!(reject_step))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub flow: String,
    pub flow_version_id: String,
    /// queued, running, waiting, succeeded, failed or cancelled.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub parent_run_id: Option<String>,
    /// Present with `runs:read_payloads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The error's kind and step; its message only with `runs:read_payloads`.
    pub error: Option<Value>,
}

impl RunView {
    pub fn new(r: RunRecord, payloads: bool) -> Self {
        let error = r.error.map(|e| redact(serde_json::to_value(e).unwrap_or(Value::Null), payloads));
        Self {
            id: r.id,
            flow: r.flow_name,
            flow_version_id: r.flow_version_id,
            status: r.status.as_str().to_owned(),
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
            finished_at: r.finished_at.map(millis),
            parent_run_id: r.parent_run_id,
            output: if payloads { r.output } else { None },
            error,
        }
    }
}

/// Fields that carry what a run processed, removed for callers without `runs:read_payloads`.
const PAYLOAD_FIELDS: &[&str] = &["inputs", "output", "items", "message", "reason", "trigger", "record"];

/// Removes payload fields from a journal event or record, at any depth, unless `payloads`.
pub fn redact(mut value: Value, payloads: bool) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for field in PAYLOAD_FIELDS {
                    if let Some(slot) = map.get_mut(*field) {
                        *slot = Value::Null;
                    }
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if !payloads {
        strip(&mut value);
    }
    value
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartRun {
    /// The flow's inputs, checked against its declaration.
    #[serde(default)]
    pub inputs: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub run_id: String,
    pub flow_version_id: String,
}

/// Starts a run of the flow's newest version. It is queued durably before the response.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/runs", tag = "runs",
    params(("workspace" = String, Path), ("name" = String, Path)), request_body = StartRun,
    security(("session" = ["runs:start"]), ("token" = ["runs:start"])),
    responses((status = 201, body = Started), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn start_run(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<StartRun>,
) -> ApiResult<(StatusCode, axum::Json<Started>)> {
    access.require(Permission::RunsStart)?;
    let version = state.startable_version(&access.workspace, &name).await?;
    let inputs = if req.inputs.is_null() { json!({}) } else { req.inputs };
    let run_id = state.executor().start_run(&version, inputs).await?;
    state.metrics().run_started("api");
    Ok((StatusCode::CREATED, axum::Json(Started { run_id, flow_version_id: version.id })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListRuns {
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs created at or after this time (milliseconds since the Unix epoch).
    pub since: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/runs", tag = "runs",
    params(("workspace" = String, Path), ListRuns),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])), responses((status = 200, body = RunPage)))]
async fn list_runs(
    State(state): State<AppState>,
    access: Access,
    Query(q): Query<ListRuns>,
) -> ApiResult<axum::Json<RunPage>> {
    access.require(Permission::RunsRead)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let filter = RunFilter {
        flow: q.flow,
        status,
        since: q.since.map(steward_engine::Timestamp),
        before: q.cursor,
        limit: limit + 1,
    };
    let mut runs = state.store().list_runs(&access.workspace, &filter).await?;
    let next_cursor = (runs.len() > limit).then(|| runs[limit - 1].id.clone());
    runs.truncate(limit);
    let payloads = access.permissions.contains(Permission::RunsReadPayloads);
    Ok(axum::Json(RunPage {
        runs: runs.into_iter().map(|r| RunView::new(r, payloads)).collect(),
        next_cursor,
    }))
}

fn parse_status(s: &str) -> ApiResult<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| {
        ApiError::invalid(format!(
            "unknown status `{s}` (queued, running, waiting, succeeded, failed, cancelled)"
        ))
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// The step instance: `lookup`, or `items[2].fetch` inside a loop.
    pub key: String,
    pub status: String,
    pub attempt: u32,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunView,
    /// Present with `runs:read_payloads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// The step timeline, in key order.
    pub steps: Vec<StepView>,
}

/// One run with its step timeline.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/runs/{id}", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])),
    responses((status = 200, body = RunDetail), (status = 404, body = crate::error::ErrorBody)))]
async fn show_run(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RunDetail>> {
    access.require(Permission::RunsRead)?;
    let payloads = access.permissions.contains(Permission::RunsReadPayloads);
    let run = state.store().run(&access.workspace, &id).await?;
    let journal = state.store().journal(&run.id).await?;
    let compiled = state.executor().compiled(&access.workspace, &run.flow_version_id).await?;
    let run_state = RunState::replay(&compiled.plan, &journal);
    let steps = run_state
        .steps
        .iter()
        .map(|(key, s)| StepView {
            key: key.clone(),
            status: s.status.as_str().to_owned(),
            attempt: s.attempt,
            started_at: s.started_at.map(millis),
            finished_at: s.finished_at.map(millis),
            output: if payloads { s.output.clone() } else { None },
            error: s.error.as_ref().map(|e| redact(serde_json::to_value(e).unwrap_or(Value::Null), payloads)),
        })
        .collect();
    let inputs = payloads.then_some(run_state.inputs);
    Ok(axum::Json(RunDetail { run: RunView::new(run, payloads), inputs, steps }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub seq: u64,
    pub at: i64,
    /// The event, with payload fields set to null for callers without `runs:read_payloads`.
    pub event: Value,
}

pub fn entry_view(e: &Entry, payloads: bool) -> EntryView {
    let event = serde_json::to_value(&e.event).unwrap_or(Value::Null);
    EntryView { seq: e.seq, at: millis(e.at), event: redact(event, payloads) }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct After {
    /// Only entries after this `seq`.
    pub after: Option<u64>,
}

/// The run's journal.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/runs/{id}/events", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path), After),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])), responses((status = 200, body = Vec<EntryView>)))]
async fn run_events(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<After>,
) -> ApiResult<axum::Json<Vec<EntryView>>> {
    access.require(Permission::RunsRead)?;
    let payloads = access.permissions.contains(Permission::RunsReadPayloads);
    let run = state.store().run(&access.workspace, &id).await?;
    let after = q.after.unwrap_or(0);
    let journal = state.store().journal(&run.id).await?;
    Ok(axum::Json(journal.iter().filter(|e| e.seq > after).map(|e| entry_view(e, payloads)).collect()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Reason {
    pub reason: Option<String>,
}

/// Cancels a run; its in-flight steps are stopped.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/runs/{id}/cancel", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path)), request_body = Reason,
    security(("session" = ["runs:cancel"]), ("token" = ["runs:cancel"])),
    responses((status = 202), (status = 409, body = crate::error::ErrorBody)))]
async fn cancel_run(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
    MaybeJson(body): MaybeJson<Reason>,
) -> ApiResult<StatusCode> {
    access.require(Permission::RunsCancel)?;
    let run = state.store().run(&access.workspace, &id).await?;
    if run.status.is_finished() {
        return Err(ApiError::conflict(format!("run {id} has already finished ({})", run.status.as_str())));
    }
    let reason =
        body.and_then(|b| b.reason).unwrap_or_else(|| format!("cancelled by {}", access.caller.user.email));
    state.executor().signal(&access.workspace, &id, &Signal::Cancel { reason }).await?;
    state.audit_in(&access, "run.cancelled", ("run", &id), json!({})).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Approves a step that waits for a person; the run goes on.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/runs/{id}/steps/{step}/approve", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path), ("step" = String, Path)), request_body = Reason,
    security(("session" = ["runs:approve"]), ("token" = ["runs:approve"])),
    responses((status = 202), (status = 409, body = crate::error::ErrorBody)))]
async fn approve_step(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String, String)>,
    MaybeJson(body): MaybeJson<Reason>,
) -> ApiResult<StatusCode> {
    decide(state, access, path, body, true).await
}

/// Rejects a step that waits for a person; the step fails.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/runs/{id}/steps/{step}/reject", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path), ("step" = String, Path)), request_body = Reason,
    security(("session" = ["runs:approve"]), ("token" = ["runs:approve"])),
    responses((status = 202), (status = 409, body = crate::error::ErrorBody)))]
async fn reject_step(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String, String)>,
    MaybeJson(body): MaybeJson<Reason>,
) -> ApiResult<StatusCode> {
    decide(state, access, path, body, false).await
}

async fn decide(
    State(state): State<AppState>,
    access: Access,
    Path((_, id, step)): Path<(String, String, String)>,
    body: Option<Reason>,
    approved: bool,
) -> ApiResult<StatusCode> {
    access.require(Permission::RunsApprove)?;
    let run = state.store().run(&access.workspace, &id).await?;
    let pending = steward_executor::pending_approvals(state.executor().store().as_ref(), &run).await?;
    if !pending.iter().any(|p| p.step == step) {
        return Err(ApiError::conflict(format!("step `{step}` of run {id} is not waiting for an approval")));
    }
    let reason = body.and_then(|b| b.reason);
    let by = access.caller.user.email.clone();
    let signal = Signal::Approval { step: step.clone(), approved, by, reason };
    state.executor().signal(&access.workspace, &id, &signal).await?;
    let action = if approved { "approval.approved" } else { "approval.rejected" };
    state.audit_in(&access, action, ("run", &id), json!({ "step": step })).await?;
    Ok(StatusCode::ACCEPTED)
}
