//! Agents: apply a definition (each change a new version), list, show, soft delete and
//! restore, and start an agent directly. Definitions are guarded by the flow permissions, since they are the same
//! kind of thing: what the workspace runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_flow::AgentName;
use steward_store::AgentVersion;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::views::millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, apply_agent))
        .routes(routes!(show_agent, delete_agent))
        .routes(routes!(restore_agent))
        .routes(routes!(run_agent))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub digest: String,
    pub created_at: i64,
    pub description: Option<String>,
    /// `provider/model` of the first model.
    pub model: Option<String>,
    /// The definition as applied (instructions inlined); left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl AgentView {
    fn new(v: AgentVersion, with_source: bool) -> Self {
        let def = steward_agent::definition::load("agent.yaml", &v.source).ok();
        Self {
            id: v.id,
            name: v.name,
            version: v.version,
            digest: v.digest,
            created_at: millis(v.created_at),
            description: def.as_ref().and_then(|d| d.description.clone()),
            model: def.map(|d| d.model_label()),
            source: with_source.then_some(v.source),
        }
    }
}

/// The workspace's agents, each at its newest version.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/agents", tag = "agents",
    params(("workspace" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])), responses((status = 200, body = Vec<AgentView>)))]
async fn list_agents(State(state): State<AppState>, access: Access) -> ApiResult<axum::Json<Vec<AgentView>>> {
    access.require(Permission::FlowsRead)?;
    let agents = state.store().list_agents(&access.workspace).await?;
    Ok(axum::Json(agents.into_iter().map(|v| AgentView::new(v, false)).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplyAgent {
    /// The definition's text, YAML or JSON, with its instructions inline (`instructions`;
    /// the server reads no files, so `instructions_file` is refused: the CLI inlines it).
    pub source: String,
    /// The file it came from, for messages.
    pub file_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedAgent {
    /// Whether this made a new version (false when the newest version has the same text).
    pub changed: bool,
    pub agent: AgentView,
    /// The flow that runs the agent directly.
    pub runner_flow: String,
}

/// Validates an agent definition and stores it as the agent's newest version. Invalid
/// definitions get 422 with every problem, each naming its line and column.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/agents", tag = "agents",
    params(("workspace" = String, Path)), request_body = ApplyAgent,
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])),
    responses((status = 201, body = AppliedAgent), (status = 200, body = AppliedAgent),
        (status = 422, body = crate::error::ErrorBody)))]
async fn apply_agent(
    State(state): State<AppState>,
    access: Access,
    ApiJson(req): ApiJson<ApplyAgent>,
) -> ApiResult<(StatusCode, axum::Json<AppliedAgent>)> {
    access.require(Permission::FlowsWrite)?;
    let file_name = req.file_name.unwrap_or_else(|| "agent.yaml".to_owned());
    let no_files = |_: &str| {
        Err("the server reads no files; put the text in `instructions` (`steward agents apply` does this)"
            .into())
    };
    let (def, source) = steward_agent::definition::resolve(&file_name, &req.source, no_files)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_agent", e.to_string()))?;
    let applied = steward_executor::apply_agent(
        state.executor().store().as_ref(),
        &access.workspace,
        &def,
        &source,
        state.now(),
    )
    .await?;
    if applied.changed {
        let details = json!({ "version": applied.version.version, "digest": applied.version.digest });
        state.audit_in(&access, "agent.applied", ("agent", &applied.version.name), details).await?;
    }
    let status = if applied.changed { StatusCode::CREATED } else { StatusCode::OK };
    let body = AppliedAgent {
        changed: applied.changed,
        agent: AgentView::new(applied.version, false),
        runner_flow: applied.runner.name,
    };
    Ok((status, axum::Json(body)))
}

/// One agent's newest version, with its definition.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/agents/{name}", tag = "agents",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])),
    responses((status = 200, body = AgentView), (status = 404, body = crate::error::ErrorBody)))]
async fn show_agent(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<AgentView>> {
    access.require(Permission::FlowsRead)?;
    let version = latest(&state, &access, &name).await?;
    Ok(axum::Json(AgentView::new(version, true)))
}

/// Soft-deletes an agent and its runner flow: both are restorable for 30 days (`/restore`,
/// or applying the agent again), then purged with the agent's chat threads. Runs keep their
/// journals, and running steps the version they started with; flows whose steps use the agent
/// fail at those steps until it is restored.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/agents/{name}", tag = "agents",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:delete"]), ("token" = ["flows:delete"])),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_agent(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.require(Permission::FlowsDelete)?;
    let agent = agent_name(&name)?;
    let store = state.executor().store().as_ref();
    if !steward_executor::set_agent_deleted(store, &access.workspace, &agent, true, state.now()).await? {
        return Err(ApiError::not_found(&format!("agent {name}")));
    }
    state.audit_in(&access, "agent.deleted", ("agent", &name), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restores a soft-deleted agent and its runner flow.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/agents/{name}/restore", tag = "agents",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:delete"]), ("token" = ["flows:delete"])),
    responses((status = 200, body = AgentView), (status = 404, body = crate::error::ErrorBody)))]
async fn restore_agent(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<AgentView>> {
    access.require(Permission::FlowsDelete)?;
    let agent = agent_name(&name)?;
    let store = state.executor().store().as_ref();
    if !steward_executor::set_agent_deleted(store, &access.workspace, &agent, false, state.now()).await? {
        return Err(ApiError::not_found(&format!("deleted agent {name}")));
    }
    state.audit_in(&access, "agent.restored", ("agent", &name), json!({})).await?;
    let version = latest(&state, &access, &name).await?;
    Ok(axum::Json(AgentView::new(version, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RunAgent {
    /// What the agent is asked to do: text, or any JSON.
    pub task: Value,
    /// Earlier messages of a conversation: `[{role: user|assistant, content}]`.
    #[serde(default)]
    pub history: Vec<Value>,
}

/// Starts the agent directly: a run of its runner flow `agent.<name>`, queued durably before
/// the response. Follow it like any run (`/runs/{id}`, `/runs/{id}/stream`).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/agents/{name}/runs", tag = "agents",
    params(("workspace" = String, Path), ("name" = String, Path)), request_body = RunAgent,
    security(("session" = ["runs:start"]), ("token" = ["runs:start"])),
    responses((status = 201, body = super::runs::Started), (status = 404, body = crate::error::ErrorBody)))]
async fn run_agent(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<RunAgent>,
) -> ApiResult<(StatusCode, axum::Json<super::runs::Started>)> {
    access.require(Permission::RunsStart)?;
    let started = start(&state, &access, &name, json!({ "task": req.task, "history": req.history })).await?;
    Ok((StatusCode::CREATED, axum::Json(started)))
}

/// Starts a run of the agent's runner flow with `inputs`.
pub(crate) async fn start(
    state: &AppState,
    access: &Access,
    name: &str,
    inputs: Value,
) -> ApiResult<super::runs::Started> {
    let version = runner_version(state, access, name).await?;
    let run_id = state.executor().start_run(&version, inputs).await?;
    state.metrics().run_started("api");
    Ok(super::runs::Started { run_id, flow_version_id: version.id })
}

/// The version of the agent's runner flow a new run starts with.
pub(crate) async fn runner_version(
    state: &AppState,
    access: &Access,
    name: &str,
) -> ApiResult<steward_store::FlowVersion> {
    let agent = agent_name(name)?;
    latest(state, access, name).await?;
    let store = state.executor().store().as_ref();
    let runner = steward_executor::ensure_runner(store, &access.workspace, &agent, state.now()).await?;
    state.startable_version(&access.workspace, &runner.name).await
}

fn agent_name(name: &str) -> ApiResult<AgentName> {
    AgentName::parse(name).map_err(|_| ApiError::not_found(&format!("agent {name}")))
}

async fn latest(state: &AppState, access: &Access, name: &str) -> ApiResult<AgentVersion> {
    let found = state.store().agent(&access.workspace, name).await?;
    found.ok_or_else(|| ApiError::not_found(&format!("agent {name}")))
}
