//! The audit log for auditors: a workspace's entries, and verification of the chain.

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_auth::Permission;
use steward_store::{AuditEvent, AuditFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify_audit))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub source: Option<String>,
    pub details: Value,
    pub hash: String,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            at: millis(e.at),
            actor: e.actor,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            source: e.source,
            details: e.details,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListAudit {
    /// Only this action (`flow.applied`).
    pub action: Option<String>,
    /// Entries before this `seq` (the last `seq` of the previous page).
    pub before: Option<i64>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<usize>,
}

/// The workspace's audit entries, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/audit", tag = "audit",
    params(("workspace" = String, Path), ListAudit),
    security(("session" = ["audit:read"]), ("token" = ["audit:read"])), responses((status = 200, body = Vec<AuditView>)))]
async fn list_audit(
    State(state): State<AppState>,
    access: Access,
    Query(q): Query<ListAudit>,
) -> ApiResult<axum::Json<Vec<AuditView>>> {
    access.require(Permission::AuditRead)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let filter = AuditFilter { action: q.action, before: q.before, limit };
    let entries = state.store().audit(&access.workspace, &filter).await?;
    Ok(axum::Json(entries.into_iter().map(AuditView::from).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Whether every entry of the log checks out.
    pub intact: bool,
    /// How many entries were checked before the end or the first broken link.
    pub checked: u64,
    /// The first entry whose link is broken.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
    /// Stretches of the chain removed by retention, which the check stepped over (the links
    /// around each still had to match).
    pub pruned: Vec<PrunedStretch>,
}

/// Entries `first_seq` to `last_seq` were removed by retention at `pruned_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrunedStretch {
    pub first_seq: i64,
    pub last_seq: i64,
    /// Unix milliseconds.
    pub pruned_at: i64,
}

/// Verifies the whole audit log's hash chain (every workspace's entries are links of one
/// chain; only the result is returned).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/audit/verify", tag = "audit",
    params(("workspace" = String, Path)),
    security(("session" = ["audit:read"]), ("token" = ["audit:read"])), responses((status = 200, body = Verification)))]
async fn verify_audit(State(state): State<AppState>, access: Access) -> ApiResult<axum::Json<Verification>> {
    access.require(Permission::AuditRead)?;
    let result = steward_store::verify_chain(state.store()).await?;
    Ok(axum::Json(match result {
        Ok(report) => Verification {
            intact: true,
            checked: report.checked,
            broken_at: None,
            problem: None,
            pruned: report
                .pruned
                .iter()
                .map(|r| PrunedStretch {
                    first_seq: r.first_seq,
                    last_seq: r.last_seq,
                    pruned_at: r.pruned_at.0,
                })
                .collect(),
        },
        Err(link) => Verification {
            intact: false,
            checked: u64::try_from(link.seq - 1).unwrap_or(0),
            broken_at: Some(link.seq),
            problem: Some(link.problem),
            pruned: Vec::new(),
        },
    }))
}
