//! Workspaces, their members and invitations.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_auth::token::{Kind, Token};
use steward_auth::{Permission, Role};
use steward_store::Invitation;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Access, Caller, Via};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::{AppState, Audit};
use crate::views::{WorkspaceView, millis};

/// How long an invitation stays open.
const INVITATION_DAYS: u64 = 7;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, delete_workspace))
        .routes(routes!(restore_workspace))
        .routes(routes!(list_members))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(list_invitations, invite))
        .routes(routes!(revoke_invitation))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListWorkspaces {
    /// Also list the deleted workspaces the caller owns, with `deleted_at` and
    /// `restorable_until` (other members do not see deleted workspaces: only owners can
    /// restore them).
    #[serde(default)]
    pub deleted: bool,
}

/// The workspaces the caller belongs to (only the token's own, for API tokens).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(ListWorkspaces),
    security(("session" = []), ("token" = [])), responses((status = 200, body = Vec<WorkspaceView>)))]
async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListWorkspaces>,
) -> ApiResult<axum::Json<Vec<WorkspaceView>>> {
    let mut list = state.store().workspaces_of(&caller.user.id).await?;
    if q.deleted {
        let deleted = state.store().deleted_workspaces_of(&caller.user.id).await?;
        list.extend(deleted.into_iter().filter(|(_, role)| *role == Role::Owner));
    }
    if let Via::Token(t) = &caller.via {
        list.retain(|(w, _)| w.id == t.workspace_id);
    }
    Ok(axum::Json(list.iter().map(|(w, r)| WorkspaceView::new(w, *r)).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewWorkspace {
    /// Lowercase letters, digits and `-`, 2 to 40 characters; used in URLs.
    pub id: String,
    pub name: String,
}

/// Creates a workspace with the caller as its owner (logged-in people only, not tokens).
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", security(("session" = [])),
    request_body = NewWorkspace, responses((status = 201, body = WorkspaceView), (status = 409, body = crate::error::ErrorBody)))]
async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewWorkspace>,
) -> ApiResult<(StatusCode, axum::Json<WorkspaceView>)> {
    if matches!(caller.via, Via::Token(_)) {
        return Err(ApiError::forbidden("API tokens belong to one workspace and cannot create others"));
    }
    check_workspace_id(&req.id)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("the workspace name must have 1 to 100 characters"));
    }
    let w = state.store().create_workspace(&req.id, name, &caller.user.id, state.now()).await?;
    state
        .audit(Audit {
            workspace: Some(&w.id),
            actor: &caller.actor(),
            action: "workspace.created",
            object: ("workspace", Some(&w.id)),
            source: caller.source.as_deref(),
            details: json!({ "name": w.name }),
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(WorkspaceView::new(&w, Role::Owner))))
}

/// Workspace ids appear in URLs: keep them plain.
pub fn check_workspace_id(id: &str) -> ApiResult<()> {
    let ok = (2..=40).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "a workspace id has 2 to 40 lowercase letters, digits or `-`, and does not start with `-`",
        ))
    }
}

/// The workspace, with the caller's role and permissions in it.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path)), security(("session" = []), ("token" = [])),
    responses((status = 200, body = WorkspaceView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_workspace(
    State(state): State<AppState>,
    access: Access,
) -> ApiResult<axum::Json<WorkspaceView>> {
    let w = state.store().workspace(&access.workspace).await?;
    let mut view = WorkspaceView::new(&w, access.role);
    view.permissions = access.permissions.names();
    Ok(axum::Json(view))
}

/// Soft-deletes the workspace. Until an owner restores it (within 30 days, after which it is
/// purged), every workspace route answers 404 for everyone, its API tokens stop working and
/// its webhooks and schedules start nothing; runs already under way finish. The server's
/// last workspace in use cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path)),
    security(("session" = ["workspace:own"]), ("token" = ["workspace:own"])),
    responses((status = 200, body = WorkspaceView), (status = 409, body = crate::error::ErrorBody)))]
async fn delete_workspace(
    State(state): State<AppState>,
    access: Access,
) -> ApiResult<axum::Json<WorkspaceView>> {
    access.require(Permission::WorkspaceOwn)?;
    let w = state.store().set_workspace_deleted(&access.workspace, true, state.now()).await?;
    let until = w.restorable_until().map(millis);
    state
        .audit_in(&access, "workspace.deleted", ("workspace", &w.id), json!({ "restorable_until": until }))
        .await?;
    Ok(axum::Json(WorkspaceView::new(&w, access.role)))
}

/// Restores a deleted workspace, within 30 days of its deletion (410 afterwards). Owners
/// only, with a session: the workspace's own API tokens do not work while it is deleted.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/restore", tag = "workspaces",
    params(("workspace" = String, Path)),
    security(("session" = ["workspace:own"]), ("token" = ["workspace:own"])),
    responses((status = 200, body = WorkspaceView), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 410, body = crate::error::ErrorBody)))]
async fn restore_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(workspace): Path<String>,
) -> ApiResult<axum::Json<WorkspaceView>> {
    // The extractor `Access` finds no one in a deleted workspace: look among the caller's own.
    let deleted = state.store().deleted_workspaces_of(&caller.user.id).await?;
    let Some((w, role)) = deleted.into_iter().find(|(w, _)| w.id == workspace) else {
        // In use, or not the caller's: the usual answers (404, 403), else nothing to do.
        let role = state.store().role(&workspace, &caller.user.id).await?;
        Access::new(caller, workspace, role)?.require(Permission::WorkspaceOwn)?;
        return Err(ApiError::conflict("there is nothing to restore: it is not deleted"));
    };
    let access = Access::new(caller, workspace, Some(role))?;
    access.require(Permission::WorkspaceOwn)?;
    let now = state.now();
    if w.restorable_until().is_some_and(|until| until <= now) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "gone",
            format!(
                "workspace {} was deleted more than 30 days ago: it can no longer be restored and is purged",
                w.id
            ),
        ));
    }
    let w = state.store().set_workspace_deleted(&w.id, false, now).await?;
    state.audit_in(&access, "workspace.restored", ("workspace", &w.id), json!({})).await?;
    Ok(axum::Json(WorkspaceView::new(&w, access.role)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    #[schema(value_type = String)]
    pub role: Role,
    pub joined_at: i64,
}

/// The workspace's members and their roles.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/members", tag = "workspaces",
    params(("workspace" = String, Path)), security(("session" = ["members:read"]), ("token" = ["members:read"])),
    responses((status = 200, body = Vec<MemberView>)))]
async fn list_members(
    State(state): State<AppState>,
    access: Access,
) -> ApiResult<axum::Json<Vec<MemberView>>> {
    access.require(Permission::MembersRead)?;
    let members = state.store().members(&access.workspace).await?;
    Ok(axum::Json(
        members
            .into_iter()
            .map(|m| MemberView {
                user_id: m.user_id,
                email: m.email,
                name: m.name,
                role: m.role,
                joined_at: millis(m.joined_at),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRole {
    /// owner, admin, editor, operator, viewer or auditor.
    #[schema(value_type = String)]
    pub role: Role,
}

/// Changes a member's role. Making or unmaking owners needs `workspace:own`; the last owner
/// cannot be demoted.
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/members/{user}", tag = "workspaces",
    params(("workspace" = String, Path), ("user" = String, Path)),
    security(("session" = ["members:write"]), ("token" = ["members:write"])),
    request_body = SetRole, responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
async fn set_member(
    State(state): State<AppState>,
    access: Access,
    Path((_, user)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetRole>,
) -> ApiResult<StatusCode> {
    access.require(Permission::MembersWrite)?;
    let current =
        state.store().role(&access.workspace, &user).await?.ok_or_else(|| ApiError::not_found("member"))?;
    if current == Role::Owner || req.role == Role::Owner {
        access.require(Permission::WorkspaceOwn)?;
    }
    state.store().set_member(&access.workspace, &user, req.role, state.now()).await?;
    state
        .audit_in(&access, "member.role_changed", ("user", &user), json!({ "from": current, "to": req.role }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (and revokes their API tokens here). Removing an owner needs
/// `workspace:own`; members may always leave.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/members/{user}", tag = "workspaces",
    params(("workspace" = String, Path), ("user" = String, Path)),
    security(("session" = ["members:write"]), ("token" = ["members:write"])),
    responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    access: Access,
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if user != access.caller.user.id {
        access.require(Permission::MembersWrite)?;
    }
    let current =
        state.store().role(&access.workspace, &user).await?.ok_or_else(|| ApiError::not_found("member"))?;
    if current == Role::Owner && user != access.caller.user.id {
        access.require(Permission::WorkspaceOwn)?;
    }
    state.store().remove_member(&access.workspace, &user, state.now()).await?;
    state.audit_in(&access, "member.removed", ("user", &user), json!({ "role": current })).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Only in the response that creates the invitation: give it to the invited person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: millis(i.created_at),
            expires_at: millis(i.expires_at),
            code: None,
        }
    }
}

/// Open invitations.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/invitations", tag = "workspaces",
    params(("workspace" = String, Path)), security(("session" = ["members:write"]), ("token" = ["members:write"])),
    responses((status = 200, body = Vec<InvitationView>)))]
async fn list_invitations(
    State(state): State<AppState>,
    access: Access,
) -> ApiResult<axum::Json<Vec<InvitationView>>> {
    access.require(Permission::MembersWrite)?;
    let list = state.store().invitations(&access.workspace, state.now()).await?;
    Ok(axum::Json(list.into_iter().map(InvitationView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewInvitation {
    pub email: String,
    #[schema(value_type = String)]
    pub role: Role,
}

/// Invites someone by e-mail address with a role; the response carries the code, once.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/invitations", tag = "workspaces",
    params(("workspace" = String, Path)), security(("session" = ["members:write"]), ("token" = ["members:write"])),
    request_body = NewInvitation, responses((status = 201, body = InvitationView)))]
async fn invite(
    State(state): State<AppState>,
    access: Access,
    ApiJson(req): ApiJson<NewInvitation>,
) -> ApiResult<(StatusCode, axum::Json<InvitationView>)> {
    access.require(Permission::MembersWrite)?;
    if req.role == Role::Owner {
        access.require(Permission::WorkspaceOwn)?;
    }
    let email = req.email.trim().to_lowercase();
    if email.len() > 254 || !email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.')) {
        return Err(ApiError::invalid("give the e-mail address of the person to invite"));
    }
    let code = Token::generate(Kind::Invitation).map_err(ApiError::internal)?;
    let now = state.now();
    let invitation = Invitation {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: access.workspace.clone(),
        email,
        role: req.role,
        invited_by: access.caller.user.id.clone(),
        created_at: now,
        expires_at: now.plus_millis(INVITATION_DAYS * 24 * 3600 * 1000),
        digest: code.digest(),
    };
    state.store().create_invitation(&invitation).await?;
    state
        .audit_in(
            &access,
            "member.invited",
            ("invitation", &invitation.id),
            json!({ "role": invitation.role }),
        )
        .await?;
    let mut view = InvitationView::from(invitation);
    view.code = Some(code.reveal().to_owned());
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Withdraws an open invitation.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/invitations/{id}", tag = "workspaces",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["members:write"]), ("token" = ["members:write"])), responses((status = 204)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.require(Permission::MembersWrite)?;
    state.store().revoke_invitation(&access.workspace, &id, state.now()).await?;
    state.audit_in(&access, "invitation.revoked", ("invitation", &id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
