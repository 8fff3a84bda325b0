//! What waits for a person: the workspace's pending approvals, and usage counters of its
//! agents.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use steward_auth::Permission;
use steward_store::UsageRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_approvals)).routes(routes!(usage))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub run_id: String,
    pub flow: String,
    /// Decide with `POST /runs/{run_id}/steps/{step}/approve` (or `/reject`).
    pub step: String,
    pub requested_at: i64,
    /// When it counts as rejected if no one decides.
    pub timeout_at: Option<i64>,
    /// The tool an agent wants to call.
    pub tool: Option<String>,
    /// What the person is asked, with the call's arguments; only with `runs:read_payloads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Steps waiting for a person's decision, oldest request first: approval steps, and agents'
/// tool calls that need approval.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/approvals", tag = "runs",
    params(("workspace" = String, Path)),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])), responses((status = 200, body = Vec<ApprovalView>)))]
async fn list_approvals(
    State(state): State<AppState>,
    access: Access,
) -> ApiResult<axum::Json<Vec<ApprovalView>>> {
    access.require(Permission::RunsRead)?;
    let payloads = access.permissions.contains(Permission::RunsReadPayloads);
    let pending =
        steward_executor::workspace_approvals(state.executor().store().as_ref(), &access.workspace).await?;
    let out = pending
        .into_iter()
        .map(|p| ApprovalView {
            run_id: p.run_id,
            flow: p.flow,
            step: p.step,
            requested_at: millis(p.requested_at),
            timeout_at: p.timeout_at.map(millis),
            tool: p.tool,
            message: if payloads { p.message } else { None },
        })
        .collect();
    Ok(axum::Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD` (UTC); defaults to 30 days before `to`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC); defaults to today.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    /// By day and agent.
    #[schema(value_type = Vec<Object>)]
    pub days: Vec<UsageRow>,
    /// Sums over the period.
    #[schema(value_type = Object)]
    pub total: UsageRow,
}

/// Agents' usage by day and agent: tokens in and out, cost (micro-dollars), model calls and
/// tool calls.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/usage", tag = "agents",
    params(("workspace" = String, Path), UsageQuery),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])), responses((status = 200, body = UsageReport)))]
async fn usage(
    State(state): State<AppState>,
    access: Access,
    Query(q): Query<UsageQuery>,
) -> ApiResult<axum::Json<UsageReport>> {
    access.require(Permission::RunsRead)?;
    let today = steward_store::day_of(state.now());
    let to = q.to.unwrap_or(today);
    let from = match q.from {
        Some(f) => f,
        None => steward_store::day_before(&to, 30).ok_or_else(|| bad_day(&to))?,
    };
    for day in [&from, &to] {
        if steward_store::day_before(day, 0).is_none() {
            return Err(bad_day(day));
        }
    }
    let days = state.store().usage(&access.workspace, &from, &to).await?;
    let total = steward_store::usage_total(&days);
    Ok(axum::Json(UsageReport { from, to, days, total }))
}

fn bad_day(day: &str) -> ApiError {
    ApiError::invalid(format!("`{day}` is not a day: use YYYY-MM-DD"))
}
