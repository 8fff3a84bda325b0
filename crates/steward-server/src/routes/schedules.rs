//! Schedule triggers: cron expressions with a time zone and a catch-up policy, per flow.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_engine::Timestamp;
use steward_store::Schedule;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::schedule::{CatchUp, Timetable};
use crate::state::AppState;
use crate::views::millis;

/// How many upcoming fire times a schedule shows.
const UPCOMING: usize = 5;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_schedules, create_schedule)).routes(routes!(delete_schedule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub flow: String,
    pub cron: String,
    pub timezone: String,
    pub catch_up: String,
    pub inputs: Value,
    /// The next fire times, milliseconds since the Unix epoch.
    pub next_fire_times: Vec<i64>,
    pub created_at: i64,
}

impl ScheduleView {
    fn new(s: Schedule) -> Self {
        let next_fire_times = match (Timetable::parse(&s.cron, &s.timezone), s.next_fire_at) {
            (Ok(t), Some(next)) => {
                let mut times = vec![next.0];
                times.extend(t.upcoming(next.0, UPCOMING - 1));
                times
            }
            _ => Vec::new(),
        };
        Self {
            id: s.id,
            flow: s.flow_name,
            cron: s.cron,
            timezone: s.timezone,
            catch_up: s.catch_up,
            inputs: s.inputs,
            next_fire_times,
            created_at: millis(s.created_at),
        }
    }
}

/// The flow's schedules with their next fire times.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/flows/{name}/schedules", tag = "schedules",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])), responses((status = 200, body = Vec<ScheduleView>)))]
async fn list_schedules(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<ScheduleView>>> {
    access.require(Permission::FlowsRead)?;
    state.store().flow(&access.workspace, &name).await?;
    let list = state.store().schedules(&access.workspace, Some(&name)).await?;
    Ok(axum::Json(list.into_iter().map(ScheduleView::new).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSchedule {
    /// Five fields (minute hour day month weekday), or six with seconds first.
    pub cron: String,
    /// An IANA time zone (default UTC).
    pub timezone: Option<String>,
    /// skip (default) or once: what happens to ticks missed while no server ran.
    pub catch_up: Option<String>,
    /// The inputs every run starts with, checked against the flow now.
    pub inputs: Option<Value>,
}

/// Creates a schedule for the flow.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/schedules", tag = "schedules",
    params(("workspace" = String, Path), ("name" = String, Path)), request_body = NewSchedule,
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])),
    responses((status = 201, body = ScheduleView), (status = 400, body = crate::error::ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<NewSchedule>,
) -> ApiResult<(StatusCode, axum::Json<ScheduleView>)> {
    access.require(Permission::FlowsWrite)?;
    let timezone = req.timezone.unwrap_or_else(|| "UTC".into());
    let table = Timetable::parse(&req.cron, &timezone).map_err(ApiError::invalid)?;
    let catch_up: CatchUp = req.catch_up.as_deref().unwrap_or("skip").parse().map_err(ApiError::invalid)?;
    let version = state
        .store()
        .latest_version(&access.workspace, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("flow {name}")))?;
    let inputs = req.inputs.unwrap_or_else(|| json!({}));
    let compiled = state.executor().compiled(&access.workspace, &version.id).await?;
    compiled
        .flow
        .bind_inputs(&inputs)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_inputs", e))?;
    let now = state.now();
    let schedule = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: access.workspace.clone(),
        flow_name: name.clone(),
        cron: req.cron.trim().to_owned(),
        timezone,
        catch_up: catch_up.as_str().to_owned(),
        inputs,
        next_fire_at: table.next_after(now.0).map(Timestamp),
        created_by: access.actor(),
        created_at: now,
    };
    if schedule.next_fire_at.is_none() {
        return Err(ApiError::invalid("the cron expression has no future fire times"));
    }
    state.store().create_schedule(&schedule).await?;
    state
        .audit_in(
            &access,
            "schedule.created",
            ("schedule", &schedule.id),
            json!({ "flow": name, "cron": schedule.cron, "timezone": schedule.timezone }),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(ScheduleView::new(schedule))))
}

/// Deletes a schedule; no further ticks fire.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/schedules/{id}", tag = "schedules",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])), responses((status = 204)))]
async fn delete_schedule(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.require(Permission::FlowsWrite)?;
    state.store().delete_schedule(&access.workspace, &id, state.now()).await?;
    state.audit_in(&access, "schedule.deleted", ("schedule", &id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
