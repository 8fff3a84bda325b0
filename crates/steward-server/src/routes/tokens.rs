//! API tokens: scoped to one workspace and a set of permissions, optionally expiring, shown
//! once and stored as digests.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_auth::token::{Kind, Token};
use steward_auth::{Permission, Permissions};
use steward_store::ApiToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::views::millis;

/// The longest lifetime a token can be given.
const MAX_DAYS: u64 = 3650;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tokens, create_token)).routes(routes!(revoke_token))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub permissions: Vec<&'static str>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Only in the response that creates the token; it cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            user_id: t.user_id,
            permissions: t.permissions.names(),
            created_at: millis(t.created_at),
            expires_at: t.expires_at.map(millis),
            last_used_at: t.last_used_at.map(millis),
            revoked_at: t.revoked_at.map(millis),
            token: None,
        }
    }
}

/// The caller's tokens in this workspace; everyone's for callers with `members:write`.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/tokens", tag = "tokens",
    params(("workspace" = String, Path)), security(("session" = []), ("token" = [])),
    responses((status = 200, body = Vec<TokenView>)))]
async fn list_tokens(State(state): State<AppState>, access: Access) -> ApiResult<axum::Json<Vec<TokenView>>> {
    let everyone = access.permissions.contains(Permission::MembersWrite);
    let user = (!everyone).then_some(access.caller.user.id.as_str());
    let tokens = state.store().tokens(&access.workspace, user).await?;
    Ok(axum::Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    pub name: String,
    /// Permission names; the default is all of the caller's. A token can never do more than
    /// its owner's role allows, now or later.
    pub permissions: Option<Vec<String>>,
    /// Days until it expires; never, when absent.
    pub expires_in_days: Option<u64>,
}

/// Creates a token for the caller in this workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/tokens", tag = "tokens",
    params(("workspace" = String, Path)), security(("session" = ["tokens:create"]), ("token" = ["tokens:create"])),
    request_body = NewToken, responses((status = 201, body = TokenView), (status = 403, body = crate::error::ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    access: Access,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<TokenView>)> {
    access.require(Permission::TokensCreate)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("the token name must have 1 to 100 characters"));
    }
    let permissions = match &req.permissions {
        Some(names) => Permissions::parse(names.iter().map(String::as_str))
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        None => access.permissions,
    };
    if !access.permissions.covers(permissions) {
        let missing: Vec<_> =
            permissions.iter().filter(|p| !access.permissions.contains(*p)).map(|p| p.as_str()).collect();
        return Err(ApiError::forbidden(format!(
            "you cannot grant permissions you do not hold: {}",
            missing.join(", ")
        )));
    }
    let now = state.now();
    let expires_at = match req.expires_in_days {
        Some(0) | Some(MAX_DAYS..) => {
            return Err(ApiError::invalid(format!("expires_in_days must be between 1 and {}", MAX_DAYS - 1)));
        }
        Some(days) => Some(now.plus_millis(days * 24 * 3600 * 1000)),
        None => None,
    };
    let secret = Token::generate(Kind::ApiToken).map_err(ApiError::internal)?;
    let token = ApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest: secret.digest(),
        workspace_id: access.workspace.clone(),
        user_id: access.caller.user.id.clone(),
        name: name.to_owned(),
        permissions,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    state.store().create_token(&token).await?;
    state.audit_in(&access, "token.created", ("token", &token.id), json!({ "name": token.name, "permissions": token.permissions, "expires_at": expires_at.map(millis) })).await?;
    let mut view = TokenView::from(token);
    view.token = Some(secret.reveal().to_owned());
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Revokes a token: one's own, or anyone's with `members:write`.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/tokens/{id}", tag = "tokens",
    params(("workspace" = String, Path), ("id" = String, Path)), security(("session" = []), ("token" = [])),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let everyone = access.permissions.contains(Permission::MembersWrite);
    let own = state.store().tokens(&access.workspace, Some(&access.caller.user.id)).await?;
    if !everyone && !own.iter().any(|t| t.id == id) {
        return Err(ApiError::not_found("token"));
    }
    state.store().revoke_token(&access.workspace, &id, state.now()).await?;
    state.audit_in(&access, "token.revoked", ("token", &id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
