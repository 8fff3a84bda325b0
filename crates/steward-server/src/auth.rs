//! Who is calling, and what they may do in the workspace they address.
//!
//! - [`Caller`]: an API token (`Authorization: Bearer stw_...`) or a session cookie. Requests
//!   with a session cookie and an unsafe method must echo the session's CSRF token in
//!   `X-CSRF-Token`; token requests carry no ambient credentials and need no such check.
//! - [`Access`]: a caller inside the workspace named by the `{workspace}` path segment, with
//!   the permissions of their role there, narrowed to the token's scope for token callers.
//!   Callers who are not members, and tokens of other workspaces, get 404: a workspace's
//!   existence is not revealed to outsiders.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use steward_auth::token::{self, Kind};
use steward_auth::{Permission, Permissions, Role};
use steward_store::{ApiToken, User};

use crate::client::ClientAddr;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "steward_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a token's `last_used_at` may lag behind.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub enum Via {
    /// A login session; `digest` identifies it for logout.
    Session {
        digest: String,
    },
    Token(Box<ApiToken>),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub via: Via,
    /// The client's address, for the audit log and throttling.
    pub source: Option<String>,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } => format!("user:{}", self.user.id),
            Via::Token(t) => format!("token:{}", t.id),
        }
    }
}

/// The client address of a request, when the server knows it.
pub fn source(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ClientAddr>().map(|c| c.0.to_string())
}

/// The client address of a whole request.
pub fn source_of<B>(req: &axum::http::Request<B>) -> Option<String> {
    req.extensions().get::<ClientAddr>().map(|c| c.0.to_string())
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let source = source(parts);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or_default();
            let presented = value.strip_prefix("Bearer ").ok_or_else(bad_token)?.trim();
            return from_token(state, presented, source).await;
        }
        if let Some(sid) = cookie(&parts.headers, SESSION_COOKIE) {
            return from_session(state, parts, sid, source).await;
        }
        Err(ApiError::unauthenticated())
    }
}

/// `Option<Caller>`: `None` when the request carries no credentials at all; credentials that
/// do not check out are still refused.
impl axum::extract::OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Option<Self>> {
        let presented = parts.headers.contains_key(header::AUTHORIZATION)
            || cookie(&parts.headers, SESSION_COOKIE).is_some();
        if !presented {
            return Ok(None);
        }
        <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
    }
}

fn bad_token() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the API token is not valid")
}

async fn from_token(state: &AppState, presented: &str, source: Option<String>) -> ApiResult<Caller> {
    if !token::looks_like(Kind::ApiToken, presented) {
        return Err(bad_token());
    }
    let t = state.store().token_by_digest(&token::digest(presented)).await?.ok_or_else(bad_token)?;
    let now = state.now();
    if t.revoked_at.is_some() {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the API token was revoked"));
    }
    if t.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the API token has expired"));
    }
    state.limits().token(&t.id)?;
    if t.last_used_at.is_none_or(|last| now.0 - last.0 >= TOUCH_EVERY_MS) {
        state.store().touch_token(&t.id, now).await?;
    }
    let user = state.store().user(&t.user_id).await?;
    Ok(Caller { user, via: Via::Token(Box::new(t)), source })
}

async fn from_session(
    state: &AppState,
    parts: &Parts,
    sid: &str,
    source: Option<String>,
) -> ApiResult<Caller> {
    if !token::looks_like(Kind::Session, sid) {
        return Err(ApiError::unauthenticated());
    }
    let digest = token::digest(sid);
    let session = state.store().session(&digest, state.now()).await?.ok_or_else(ApiError::unauthenticated)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let echoed = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !safe && echoed != Some(session.csrf.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "send the session's CSRF token in the X-CSRF-Token header",
        ));
    }
    let user = state.store().user(&session.user_id).await?;
    Ok(Caller { user, via: Via::Session { digest }, source })
}

/// A caller in the workspace of the request's `{workspace}` path segment.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub workspace: String,
    pub role: Role,
    pub permissions: Permissions,
}

impl Access {
    /// Denies unless the caller holds `p` here.
    pub fn require(&self, p: Permission) -> ApiResult<()> {
        if self.permissions.contains(p) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!("this needs the `{p}` permission in workspace {}", self.workspace)))
    }

    pub fn actor(&self) -> String {
        self.caller.actor()
    }

    pub fn source(&self) -> Option<&str> {
        self.caller.source.as_deref()
    }
}

impl FromRequestParts<AppState> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        let workspace = params.get("workspace").cloned().ok_or_else(|| ApiError::not_found("workspace"))?;
        let caller = Caller::from_request_parts(parts, state).await?;
        // A deleted workspace has no members here: it is not found, like one that never was.
        let role = match &caller.via {
            Via::Token(t) if t.workspace_id != workspace => None,
            _ => state.store().role(&workspace, &caller.user.id).await?,
        };
        Access::new(caller, workspace, role)
    }
}

impl Access {
    /// `caller` in `workspace`, where their role is `role` (`None`: not a member, which is
    /// answered 404 so the workspace is not revealed). Tokens of other workspaces are not
    /// members; a token's permissions are its scope within its owner's role.
    pub fn new(caller: Caller, workspace: String, role: Option<Role>) -> ApiResult<Self> {
        let role = match (&caller.via, role) {
            (Via::Token(t), _) if t.workspace_id != workspace => None,
            (_, role) => role,
        };
        let Some(role) = role else {
            return Err(ApiError::not_found(&format!("workspace {workspace}")));
        };
        let permissions = match &caller.via {
            Via::Token(t) => role.permissions().intersect(t.permissions),
            Via::Session { .. } => role.permissions(),
        };
        Ok(Access { caller, workspace, role, permissions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; steward_session=sts_x".parse().unwrap_or(header::HeaderValue::from_static("")),
        );
        headers.append(header::COOKIE, "b=2".parse().unwrap_or(header::HeaderValue::from_static("")));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("sts_x"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "steward"), None);
    }
}
