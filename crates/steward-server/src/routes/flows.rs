//! Flows: apply (each change a new immutable version), list, show, versions, disable and
//! enable, soft delete and restore.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_auth::Permission;
use steward_store::{FlowSummary, FlowVersion};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::views::millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flows, apply_flow))
        .routes(routes!(show_flow, delete_flow))
        .routes(routes!(list_versions))
        .routes(routes!(disable_flow))
        .routes(routes!(enable_flow))
        .routes(routes!(restore_flow))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl From<FlowSummary> for FlowView {
    fn from(f: FlowSummary) -> Self {
        Self {
            id: f.id,
            name: f.name,
            latest_version: f.latest_version,
            updated_at: millis(f.updated_at),
            disabled_at: f.disabled_at.map(millis),
            deleted_at: f.deleted_at.map(millis),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub file_name: String,
    pub digest: String,
    pub created_at: i64,
    /// The file as applied; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl VersionView {
    fn new(v: FlowVersion, with_source: bool) -> Self {
        Self {
            id: v.id,
            name: v.name,
            version: v.version,
            file_name: v.file_name,
            digest: v.digest,
            created_at: millis(v.created_at),
            source: with_source.then_some(v.source),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListFlows {
    /// List soft-deleted flows too.
    #[serde(default)]
    pub deleted: bool,
}

/// The workspace's flows.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/flows", tag = "flows",
    params(("workspace" = String, Path), ListFlows),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])), responses((status = 200, body = Vec<FlowView>)))]
async fn list_flows(
    State(state): State<AppState>,
    access: Access,
    Query(q): Query<ListFlows>,
) -> ApiResult<axum::Json<Vec<FlowView>>> {
    access.require(Permission::FlowsRead)?;
    let flows = state.store().list_flows(&access.workspace, q.deleted).await?;
    Ok(axum::Json(flows.into_iter().map(FlowView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplyFlow {
    /// The flow file's text, YAML or JSON.
    pub source: String,
    /// The file it came from, for messages.
    pub file_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    /// Whether this made a new version (false when the newest version has the same text).
    pub changed: bool,
    pub version: VersionView,
}

/// Validates a flow file and stores it as the flow's newest version. Invalid files get 422
/// with every problem, each naming its line and column.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows", tag = "flows",
    params(("workspace" = String, Path)), request_body = ApplyFlow,
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])),
    responses((status = 201, body = Applied), (status = 200, body = Applied), (status = 422, body = crate::error::ErrorBody)))]
async fn apply_flow(
    State(state): State<AppState>,
    access: Access,
    ApiJson(req): ApiJson<ApplyFlow>,
) -> ApiResult<(StatusCode, axum::Json<Applied>)> {
    access.require(Permission::FlowsWrite)?;
    let file_name = req.file_name.unwrap_or_else(|| "flow.yaml".to_owned());
    let invalid = |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", message);
    let loaded = steward_executor::validate(&file_name, &req.source).map_err(|e| invalid(e.to_string()))?;
    for (called, at) in steward_executor::called_flows(&loaded.flow.steps) {
        if state.store().latest_version(&access.workspace, &called).await?.is_none() {
            let message =
                format!("this calls flow `{called}`, which this workspace does not have; apply it first");
            let err = steward_flow::located_error(&file_name, &loaded.locations, vec![(at, message)]);
            return Err(invalid(err.to_string()));
        }
    }
    let before = state.store().latest_version(&access.workspace, loaded.flow.name.as_str()).await?;
    let new = steward_executor::new_version(&access.workspace, &file_name, req.source, &loaded, state.now());
    let version = state.store().save_version(new).await?;
    let changed = before.as_ref().is_none_or(|b| b.id != version.id);
    if changed {
        state
            .audit_in(
                &access,
                "flow.applied",
                ("flow", &version.name),
                json!({ "version": version.version, "digest": version.digest }),
            )
            .await?;
    }
    let status = if changed { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(Applied { changed, version: VersionView::new(version, false) })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowDetail {
    pub flow: FlowView,
    /// The newest version with its source.
    pub latest: Option<VersionView>,
}

/// One flow with its newest version's source.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/flows/{name}", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])),
    responses((status = 200, body = FlowDetail), (status = 404, body = crate::error::ErrorBody)))]
async fn show_flow(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<FlowDetail>> {
    access.require(Permission::FlowsRead)?;
    let flow = state.store().flow(&access.workspace, &name).await?;
    let latest = state.store().versions(&access.workspace, &name).await?.into_iter().next();
    Ok(axum::Json(FlowDetail { flow: flow.into(), latest: latest.map(|v| VersionView::new(v, true)) }))
}

/// Every version of a flow, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/flows/{name}/versions", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])), responses((status = 200, body = Vec<VersionView>)))]
async fn list_versions(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<VersionView>>> {
    access.require(Permission::FlowsRead)?;
    state.store().flow(&access.workspace, &name).await?;
    let versions = state.store().versions(&access.workspace, &name).await?;
    Ok(axum::Json(versions.into_iter().map(|v| VersionView::new(v, false)).collect()))
}

/// Stops new runs of a flow from starting (started runs go on).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/disable", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])), responses((status = 200, body = FlowView)))]
async fn disable_flow(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<FlowView>> {
    change(state, access, path, Change::Disable).await
}

/// Lets new runs of a flow start again.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/enable", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])), responses((status = 200, body = FlowView)))]
async fn enable_flow(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<FlowView>> {
    change(state, access, path, Change::Enable).await
}

/// Soft-deletes a flow: hidden and not startable, restorable; its runs and versions stay.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/flows/{name}", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:delete"]), ("token" = ["flows:delete"])), responses((status = 200, body = FlowView)))]
async fn delete_flow(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<FlowView>> {
    change(state, access, path, Change::Delete).await
}

/// Restores a soft-deleted flow.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/restore", tag = "flows",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:delete"]), ("token" = ["flows:delete"])), responses((status = 200, body = FlowView)))]
async fn restore_flow(
    state: State<AppState>,
    access: Access,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<FlowView>> {
    change(state, access, path, Change::Restore).await
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Disable,
    Enable,
    Delete,
    Restore,
}

async fn change(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    change: Change,
) -> ApiResult<axum::Json<FlowView>> {
    let (permission, action) = match change {
        Change::Disable => (Permission::FlowsWrite, "flow.disabled"),
        Change::Enable => (Permission::FlowsWrite, "flow.enabled"),
        Change::Delete => (Permission::FlowsDelete, "flow.deleted"),
        Change::Restore => (Permission::FlowsDelete, "flow.restored"),
    };
    access.require(permission)?;
    let (store, ws, now) = (state.store(), access.workspace.as_str(), state.now());
    let flow = match change {
        Change::Disable => store.set_flow_disabled(ws, &name, true, now).await?,
        Change::Enable => store.set_flow_disabled(ws, &name, false, now).await?,
        Change::Delete => store.set_flow_deleted(ws, &name, true, now).await?,
        Change::Restore => store.set_flow_deleted(ws, &name, false, now).await?,
    };
    state.audit_in(&access, action, ("flow", &name), json!({})).await?;
    Ok(axum::Json(flow.into()))
}
