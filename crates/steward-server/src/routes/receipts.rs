//! Data-flow receipts: which outside processors received data from a run (host, connection,
//! step, bytes, categories of data, time — never the data), and the workspace's record of
//! processing over a period. Both are built from the journal's `data_sent` events and carry
//! no payloads, so `runs:read` is enough to see them.

use axum::extract::{Path, Query, State};
use serde::Deserialize;
use steward_auth::Permission;
use steward_engine::Timestamp;
use steward_store::{ProcessingRecord, RunReceipt};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The longest period one record of processing covers.
const MAX_PERIOD_MS: i64 = 400 * 24 * 3600 * 1000;
/// The period when none is given: the last 30 days.
const DEFAULT_PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_receipt)).routes(routes!(processing))
}

/// The run's data-flow receipt: each transfer, and the sum per processor.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/runs/{id}/receipt", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])),
    responses((status = 200, description = "`{run_id, processors: [{host, connections, categories, senders, requests, bytes, first_at, last_at}], transfers: [{step, host, connections, bytes, categories, at}]}`", body = Object)))]
async fn run_receipt(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RunReceipt>> {
    access.require(Permission::RunsRead)?;
    let run = state.store().run(&access.workspace, &id).await?;
    let journal = state.store().journal(&run.id).await?;
    Ok(axum::Json(RunReceipt::from_journal(&run.id, &journal)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Period {
    /// Start, in milliseconds since the epoch (default: 30 days before `to`).
    pub from: Option<i64>,
    /// End (exclusive), in milliseconds since the epoch (default: now).
    pub to: Option<i64>,
}

/// The workspace's record of processing: every processor that received data from its runs in
/// the period, with the connections, categories of data and flows involved, and counts.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/processing", tag = "runs",
    params(("workspace" = String, Path), Period),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])),
    responses((status = 200, description = "`{from, to, processors: [{host, connections, categories, senders (flows), requests, bytes, runs, first_at, last_at}]}`", body = Object),
        (status = 400, body = crate::error::ErrorBody)))]
async fn processing(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
    Query(period): Query<Period>,
) -> ApiResult<axum::Json<ProcessingRecord>> {
    access.require(Permission::RunsRead)?;
    let to = period.to.unwrap_or(state.now().0);
    let from = period.from.unwrap_or(to - DEFAULT_PERIOD_MS);
    if from >= to || to - from > MAX_PERIOD_MS {
        return Err(ApiError::invalid("`from` must be before `to`, and a period is at most 400 days"));
    }
    let records = state.store().data_sent(&access.workspace, Timestamp(from), Timestamp(to)).await?;
    Ok(axum::Json(ProcessingRecord::from_records(Timestamp(from), Timestamp(to), &records)))
}
