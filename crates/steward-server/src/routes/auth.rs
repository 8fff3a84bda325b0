//! Logging in and out, the caller's own account, and joining a workspace by invitation.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_auth::password;
use steward_auth::token::{self, Kind, Token};
use steward_store::{Deleter, DeletionReceipt, NewUser, Session, User};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, SESSION_COOKIE, Via};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::{AppState, Audit};
use crate::views::{UserView, WorkspaceView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(logout_everywhere))
        .routes(routes!(me, delete_me))
        .routes(routes!(accept_invitation))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The logged-in account, its workspaces, and the token unsafe requests must echo.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub user: UserView,
    pub workspaces: Vec<WorkspaceView>,
    /// Send it in `X-CSRF-Token` with every POST, PUT, PATCH and DELETE made with the cookie.
    pub csrf_token: String,
}

/// Logs in with e-mail and password and sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionView), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    source: Source,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let account_key = req.email.trim().to_lowercase();
    let address_key = source.0.clone().unwrap_or_default();
    let now = Instant::now();
    check_throttles(&state, &account_key, &address_key, now)?;
    let found = state.store().user_for_login(&req.email).await?;
    let user = match found {
        Some((user, hash)) if password::verify(&req.password, &hash) => user,
        other => {
            if other.is_none() {
                password::verify_nothing(&req.password);
            }
            state.logins_per_account().failed(&account_key, now);
            state.logins_per_address().failed(&address_key, now);
            let user_id = other.map(|(u, _)| u.id);
            state
                .audit(Audit {
                    workspace: None,
                    actor: "anonymous",
                    action: "login.failed",
                    object: ("user", user_id.as_deref()),
                    source: source.0.as_deref(),
                    details: json!({}),
                })
                .await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "wrong e-mail address or password",
            ));
        }
    };
    state.logins_per_account().succeeded(&account_key);
    start_session(&state, user, source.0.as_deref()).await
}

/// Refuses (429) while the account or the address has failed to give its password too often.
fn check_throttles(state: &AppState, account_key: &str, address_key: &str, now: Instant) -> ApiResult<()> {
    for (throttle, key) in
        [(state.logins_per_account(), account_key), (state.logins_per_address(), address_key)]
    {
        if let Err(wait) = throttle.check(key, now) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins; try again later",
            );
            e.retry_after = Some(wait.as_secs());
            return Err(e);
        }
    }
    Ok(())
}

/// Creates a session for `user`, records the login and answers with the cookie set.
async fn start_session(state: &AppState, user: User, source: Option<&str>) -> ApiResult<Response> {
    let sid = Token::generate(Kind::Session).map_err(ApiError::internal)?;
    let csrf = Token::generate(Kind::Session).map_err(ApiError::internal)?;
    let now = state.now();
    let ttl = state.config().session_ttl;
    let session = Session {
        digest: sid.digest(),
        user_id: user.id.clone(),
        csrf: csrf.reveal()["sts_".len()..].to_owned(),
        created_at: now,
        expires_at: now.plus_millis(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    state.store().create_session(&session).await?;
    let actor = format!("user:{}", user.id);
    state
        .audit(Audit {
            workspace: None,
            actor: &actor,
            action: "login.succeeded",
            object: ("user", Some(&user.id)),
            source,
            details: json!({}),
        })
        .await?;
    let view = session_view(state, &user, session.csrf).await?;
    let cookie = session_cookie(sid.reveal(), ttl.as_secs(), state.config().secure_cookies);
    let mut response = axum::Json(view).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

async fn session_view(state: &AppState, user: &User, csrf_token: String) -> ApiResult<SessionView> {
    let workspaces = state.store().workspaces_of(&user.id).await?;
    Ok(SessionView {
        user: user.into(),
        workspaces: workspaces.iter().map(|(w, r)| WorkspaceView::new(w, *r)).collect(),
        csrf_token,
    })
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Ends this session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("session" = [])),
    responses((status = 204)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let Via::Session { digest } = &caller.via else {
        return Err(ApiError::invalid("API tokens do not log out; revoke the token instead"));
    };
    state.store().delete_session(digest).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let clear = session_cookie("", 0, state.config().secure_cookies);
    response.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    /// How many sessions ended.
    pub sessions: u64,
}

/// Ends every session of the caller's account, on every device.
#[utoipa::path(post, path = "/api/v1/auth/logout-everywhere", tag = "auth", security(("session" = [])),
    responses((status = 200, body = LoggedOut)))]
async fn logout_everywhere(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<LoggedOut>> {
    let sessions = state.store().delete_sessions_of(&caller.user.id).await?;
    state
        .audit(Audit {
            workspace: None,
            actor: &caller.actor(),
            action: "sessions.ended",
            object: ("user", Some(&caller.user.id)),
            source: caller.source.as_deref(),
            details: json!({ "sessions": sessions }),
        })
        .await?;
    Ok(axum::Json(LoggedOut { sessions }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    pub user: UserView,
    pub workspaces: Vec<WorkspaceView>,
}

/// The caller's account and workspaces.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("session" = []), ("token" = [])),
    responses((status = 200, body = MeView), (status = 401, body = crate::error::ErrorBody)))]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<MeView>> {
    let mut workspaces = state.store().workspaces_of(&caller.user.id).await?;
    if let Via::Token(t) = &caller.via {
        workspaces.retain(|(w, _)| w.id == t.workspace_id);
    }
    let workspaces = workspaces.iter().map(|(w, r)| WorkspaceView::new(w, *r)).collect();
    Ok(axum::Json(MeView { user: (&caller.user).into(), workspaces }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccount {
    /// The account's password, asked again: a deletion cannot be undone.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDeleted {
    /// What was deleted: per store and table, how many rows (never the data), and when. The
    /// audit log keeps it as `data.deleted`.
    #[schema(value_type = Object)]
    pub receipt: DeletionReceipt,
    /// Workspaces deleted with the account because it was their only member; they are
    /// purged 30 days later.
    pub workspaces_deleted: Vec<String>,
}

/// Deletes the caller's account and personal data: the account (e-mail, name, password
/// hash), its sessions, API tokens, memberships and the invitations addressed to it or sent
/// by it and not accepted. What the workspaces hold stays with them. Asks for the password
/// again, and for a session: API tokens cannot delete the account they belong to. Refused
/// (409) while the account is the only owner of a workspace others are members of.
#[utoipa::path(delete, path = "/api/v1/me", tag = "auth", security(("session" = [])), request_body = DeleteAccount,
    responses((status = 200, body = AccountDeleted), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn delete_me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DeleteAccount>,
) -> ApiResult<Response> {
    if matches!(caller.via, Via::Token(_)) {
        return Err(ApiError::forbidden("log in to delete your account: API tokens cannot do it"));
    }
    check_password_again(&state, &caller, &req.password).await?;
    let by = Deleter { actor: caller.actor(), source: caller.source.clone() };
    let deletion = state.store().delete_user(&caller.user.id, &by, state.now()).await?;
    let body = AccountDeleted { receipt: deletion.receipt, workspaces_deleted: deletion.workspaces_deleted };
    let mut response = axum::Json(body).into_response();
    let clear = session_cookie("", 0, state.config().secure_cookies);
    response.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(response)
}

/// Checks the signed-in person's password, under the login throttles (a stolen session must
/// not become a way to guess it); a wrong one is audited and refused with 403.
async fn check_password_again(state: &AppState, caller: &Caller, given: &str) -> ApiResult<()> {
    let account_key = caller.user.email.clone();
    let address_key = caller.source.clone().unwrap_or_default();
    let now = Instant::now();
    check_throttles(state, &account_key, &address_key, now)?;
    let found = state.store().user_for_login(&caller.user.email).await?;
    if found.is_some_and(|(_, hash)| password::verify(given, &hash)) {
        state.logins_per_account().succeeded(&account_key);
        return Ok(());
    }
    state.logins_per_account().failed(&account_key, now);
    state.logins_per_address().failed(&address_key, now);
    state
        .audit(Audit {
            workspace: None,
            actor: &caller.actor(),
            action: "account.deletion_refused",
            object: ("user", Some(&caller.user.id)),
            source: caller.source.as_deref(),
            details: json!({ "reason": "wrong password" }),
        })
        .await?;
    Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_password", "the password is not this account's"))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitation {
    /// The invitation code (`sti_...`).
    pub code: String,
    /// For people without an account: the password of the account to create for the
    /// invited e-mail address.
    pub password: Option<String>,
    pub name: Option<String>,
}

/// Joins a workspace with an invitation code. A logged-in caller joins with their account
/// (its e-mail address must be the invited one); anyone else creates an account for the
/// invited address with `password` and is logged in.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "workspaces", request_body = AcceptInvitation,
    responses((status = 200, body = SessionView), (status = 404, body = crate::error::ErrorBody)))]
async fn accept_invitation(
    State(state): State<AppState>,
    source: Source,
    caller: Option<Caller>,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> ApiResult<Response> {
    let digest = token::digest(&req.code);
    let now = state.now();
    let (user, created) = match caller {
        Some(caller) => (caller.user, false),
        None => {
            let invitation = state
                .store()
                .open_invitation(&digest, now)
                .await?
                .ok_or_else(|| ApiError::not_found("invitation"))?;
            let password = req.password.as_deref().ok_or_else(|| {
                ApiError::invalid("log in to accept with your account, or give a password to create one")
            })?;
            let hash = password::hash(password).map_err(|e| ApiError::invalid(e.to_string()))?;
            let new = NewUser {
                id: uuid::Uuid::now_v7().to_string(),
                email: invitation.email,
                name: req.name.clone(),
                password_hash: hash,
                now,
            };
            (state.store().create_user(new).await?, true)
        }
    };
    let invitation = state.store().accept_invitation(&digest, &user, now).await?;
    let actor = format!("user:{}", user.id);
    state
        .audit(Audit {
            workspace: Some(&invitation.workspace_id),
            actor: &actor,
            action: "member.joined",
            object: ("user", Some(&user.id)),
            source: source.0.as_deref(),
            details: json!({ "role": invitation.role, "invitation": invitation.id, "account_created": created }),
        })
        .await?;
    start_session(&state, user, source.0.as_deref()).await
}

/// The client address, for handlers without a [`Caller`].
#[derive(Debug, Clone)]
pub struct Source(pub Option<String>);

impl axum::extract::FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Source(crate::auth::source(parts)))
    }
}
