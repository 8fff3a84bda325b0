//! The workspace's data-handling policy: how long each category of data, chat transcripts
//! included, is kept (see `docs/retention.md`) and the hosts its flows may send requests to.
//! Every member may read it; changing it takes `workspace:admin` and is audited with the old
//! and new values.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_auth::Permission;
use steward_store::{PolicySettings, WorkspacePolicy};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::views::millis;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, set_policy))
}

/// What may be set; a field left out or `null` takes the default (days: payloads 90, error
/// details 180, run metadata 365, audit entries 365, chat transcripts 90; hosts: no allowlist).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Days a finished run keeps its inputs, outputs and messages (1 to 36500).
    pub payload_days: Option<u32>,
    /// Days a finished run keeps its error messages.
    pub error_days: Option<u32>,
    /// Days a finished run is kept at all; at least the two above.
    pub metadata_days: Option<u32>,
    /// Days audit entries of the workspace are kept.
    pub audit_days: Option<u32>,
    /// Days the messages people write in chat threads are kept (the runs that answer them
    /// follow the three run periods above).
    pub transcript_days: Option<u32>,
    /// Hosts the workspace's flows may send requests to (`api.github.com`, `*.example.com`);
    /// `null`: no allowlist.
    pub egress_hosts: Option<Vec<String>>,
}

impl From<PolicySettings> for PolicyBody {
    fn from(s: PolicySettings) -> Self {
        Self {
            payload_days: s.payload_days,
            error_days: s.error_days,
            metadata_days: s.metadata_days,
            audit_days: s.audit_days,
            transcript_days: s.transcript_days,
            egress_hosts: s.egress_hosts,
        }
    }
}

/// The policy in effect, and what was set.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub payload_days: u32,
    pub error_days: u32,
    pub metadata_days: u32,
    pub audit_days: u32,
    pub transcript_days: u32,
    pub egress_hosts: Option<Vec<String>>,
    /// The values set (`null`: the default applies).
    pub set: PolicyBody,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
}

impl From<WorkspacePolicy> for PolicyView {
    fn from(p: WorkspacePolicy) -> Self {
        Self {
            payload_days: p.days.payload_days,
            error_days: p.days.error_days,
            metadata_days: p.days.metadata_days,
            audit_days: p.days.audit_days,
            transcript_days: p.days.transcript_days,
            egress_hosts: p.settings.egress_hosts.clone(),
            set: p.settings.into(),
            updated_at: p.updated_at.map(millis),
            updated_by: p.updated_by,
        }
    }
}

/// The workspace's retention periods and egress allowlist.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/policy", tag = "policy",
    params(("workspace" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])),
    responses((status = 200, body = PolicyView)))]
async fn get_policy(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
) -> ApiResult<axum::Json<PolicyView>> {
    access.require(Permission::FlowsRead)?;
    Ok(axum::Json(state.store().policy(&access.workspace).await?.into()))
}

/// Replaces the workspace's policy. Shorter periods apply at the pruner's next pass, to data
/// already stored too.
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/policy", tag = "policy",
    params(("workspace" = String, Path)), request_body = PolicyBody,
    security(("session" = ["workspace:admin"]), ("token" = ["workspace:admin"])),
    responses((status = 200, body = PolicyView), (status = 400, body = crate::error::ErrorBody)))]
async fn set_policy(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> ApiResult<axum::Json<PolicyView>> {
    access.require(Permission::WorkspaceAdmin)?;
    let settings = PolicySettings {
        payload_days: body.payload_days,
        error_days: body.error_days,
        metadata_days: body.metadata_days,
        audit_days: body.audit_days,
        transcript_days: body.transcript_days,
        egress_hosts: body.egress_hosts.map(crate::hosts::normalize_hosts).transpose()?,
    };
    settings.check().map_err(ApiError::invalid)?;
    let old = state.store().policy(&access.workspace).await?;
    let new = state.store().set_policy(&access.workspace, &settings, &access.actor(), state.now()).await?;
    let details =
        json!({ "old": PolicyBody::from(old.settings), "new": PolicyBody::from(new.settings.clone()) });
    state.audit_in(&access, "policy.updated", ("workspace", &access.workspace), details).await?;
    Ok(axum::Json(new.into()))
}
