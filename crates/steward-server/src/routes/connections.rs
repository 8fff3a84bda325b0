//! Connections: credentials for outside services, stored sealed with the workspace's data key,
//! each limited to the hosts it may be sent to. Secret values go in (create, rotate) and never
//! come out: no response, log line or audit entry carries them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_store::Connection;
use steward_vault::Secret;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::views::millis;

const KINDS: &[&str] = &["api_key", "bearer", "basic", "headers", "oauth2_client_credentials"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(show_connection, delete_connection))
        .routes(routes!(rotate_connection))
        .routes(routes!(revoke_connection))
        .routes(routes!(restore_connection))
}

/// A connection as the API shows it: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub kind: String,
    pub hosts: Vec<String>,
    pub settings: Value,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        Self {
            name: c.name,
            kind: c.kind,
            hosts: c.hosts,
            settings: c.settings,
            created_at: millis(c.created_at),
            rotated_at: c.rotated_at.map(millis),
            revoked_at: c.revoked_at.map(millis),
            deleted_at: c.deleted_at.map(millis),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewConnection {
    /// Letters, digits, `-` and `_`; flows refer to the connection by it.
    pub name: String,
    /// api_key, bearer, basic, headers or oauth2_client_credentials.
    pub kind: String,
    /// The hosts the secret may be sent to, such as `api.github.com` or `*.example.com`.
    pub hosts: Vec<String>,
    /// Settings that are not secret: `header` or `query` (api_key), `username` (basic),
    /// `token_url`, `client_id` and `scopes` (oauth2_client_credentials).
    #[serde(default)]
    pub settings: Value,
    /// The secret value (for `headers`, a JSON object of header names to values).
    pub secret: String,
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewSecret {
    /// The new secret value.
    pub secret: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret { .. }")
    }
}

/// The workspace's connections (not their secrets).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/connections", tag = "connections",
    params(("workspace" = String, Path)),
    security(("session" = ["connections:read"]), ("token" = ["connections:read"])),
    responses((status = 200, body = Vec<ConnectionView>)))]
async fn list_connections(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
) -> ApiResult<axum::Json<Vec<ConnectionView>>> {
    access.require(Permission::ConnectionsRead)?;
    let list = state.store().connections(&access.workspace, false).await?;
    Ok(axum::Json(list.into_iter().map(ConnectionView::from).collect()))
}

/// Creates a connection; its secret is sealed before it is stored and is never shown again.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/connections", tag = "connections",
    params(("workspace" = String, Path)), request_body = NewConnection,
    security(("session" = ["connections:write"]), ("token" = ["connections:write"])),
    responses((status = 201, body = ConnectionView), (status = 409, body = crate::error::ErrorBody)))]
async fn create_connection(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
    ApiJson(req): ApiJson<NewConnection>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionView>)> {
    access.require(Permission::ConnectionsWrite)?;
    check_name(&req.name)?;
    let hosts = check_hosts(req.hosts)?;
    let settings = check_settings(&req.kind, req.settings, &req.secret)?;
    let now = state.now();
    let secret = Secret::from(req.secret.as_str());
    let sealed = state.keyring().seal(&access.workspace, &req.name, &secret, now).await.map_err(vault)?;
    let c = Connection {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: access.workspace.clone(),
        name: req.name,
        kind: req.kind,
        hosts,
        settings,
        sealed,
        created_by: access.actor(),
        created_at: now,
        updated_at: now,
        rotated_at: None,
        revoked_at: None,
        deleted_at: None,
    };
    state.store().create_connection(&c).await?;
    let details = json!({ "kind": c.kind, "hosts": c.hosts });
    state.executor().secrets_changed(&access.workspace);
    state.audit_in(&access, "connection.created", ("connection", &c.name), details).await?;
    Ok((StatusCode::CREATED, axum::Json(c.into())))
}

/// One connection (not its secret).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/connections/{connection}", tag = "connections",
    params(("workspace" = String, Path), ("connection" = String, Path)),
    security(("session" = ["connections:read"]), ("token" = ["connections:read"])),
    responses((status = 200, body = ConnectionView)))]
async fn show_connection(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConnectionView>> {
    access.require(Permission::ConnectionsRead)?;
    Ok(axum::Json(state.store().connection(&access.workspace, &name).await?.into()))
}

/// Replaces the connection's secret; a revoked connection becomes usable again.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/connections/{connection}/rotate", tag = "connections",
    params(("workspace" = String, Path), ("connection" = String, Path)), request_body = NewSecret,
    security(("session" = ["connections:write"]), ("token" = ["connections:write"])),
    responses((status = 200, body = ConnectionView)))]
async fn rotate_connection(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<NewSecret>,
) -> ApiResult<axum::Json<ConnectionView>> {
    access.require(Permission::ConnectionsWrite)?;
    let current = state.store().connection(&access.workspace, &name).await?;
    check_settings(&current.kind, current.settings.clone(), &req.secret)?;
    let now = state.now();
    let secret = Secret::from(req.secret.as_str());
    let sealed = state.keyring().seal(&access.workspace, &name, &secret, now).await.map_err(vault)?;
    let c = state.store().rotate_connection(&access.workspace, &name, &sealed, now).await?;
    state.executor().secrets_changed(&access.workspace);
    state.audit_in(&access, "connection.rotated", ("connection", &name), json!({})).await?;
    Ok(axum::Json(c.into()))
}

/// Revokes the connection: it stays listed and nothing may use it until it is rotated.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/connections/{connection}/revoke", tag = "connections",
    params(("workspace" = String, Path), ("connection" = String, Path)),
    security(("session" = ["connections:write"]), ("token" = ["connections:write"])),
    responses((status = 200, body = ConnectionView)))]
async fn revoke_connection(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConnectionView>> {
    access.require(Permission::ConnectionsWrite)?;
    let c = state.store().revoke_connection(&access.workspace, &name, state.now()).await?;
    state.audit_in(&access, "connection.revoked", ("connection", &name), json!({})).await?;
    Ok(axum::Json(c.into()))
}

/// Soft-deletes the connection; it can be restored.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/connections/{connection}", tag = "connections",
    params(("workspace" = String, Path), ("connection" = String, Path)),
    security(("session" = ["connections:write"]), ("token" = ["connections:write"])),
    responses((status = 200, body = ConnectionView)))]
async fn delete_connection(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConnectionView>> {
    access.require(Permission::ConnectionsWrite)?;
    let c = state.store().set_connection_deleted(&access.workspace, &name, true, state.now()).await?;
    state.audit_in(&access, "connection.deleted", ("connection", &name), json!({})).await?;
    Ok(axum::Json(c.into()))
}

/// Restores a deleted connection.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/connections/{connection}/restore", tag = "connections",
    params(("workspace" = String, Path), ("connection" = String, Path)),
    security(("session" = ["connections:write"]), ("token" = ["connections:write"])),
    responses((status = 200, body = ConnectionView)))]
async fn restore_connection(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ConnectionView>> {
    access.require(Permission::ConnectionsWrite)?;
    let c = state.store().set_connection_deleted(&access.workspace, &name, false, state.now()).await?;
    state.audit_in(&access, "connection.restored", ("connection", &name), json!({})).await?;
    Ok(axum::Json(c.into()))
}

fn check_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(ApiError::invalid("a connection name is 1 to 64 letters, digits, `-` or `_`"));
    }
    Ok(())
}

/// Lower-cased host names, each plain or with one leading `*.`; at least one.
fn check_hosts(hosts: Vec<String>) -> ApiResult<Vec<String>> {
    if hosts.is_empty() {
        return Err(ApiError::invalid("name at least one host the secret may be sent to"));
    }
    crate::hosts::normalize_hosts(hosts)
}

/// The settings a kind needs, checked; `{}` when none were given.
fn check_settings(kind: &str, settings: Value, secret: &str) -> ApiResult<Value> {
    if !KINDS.contains(&kind) {
        return Err(ApiError::invalid(format!("kind is one of {}", KINDS.join(", "))));
    }
    if secret.is_empty() {
        return Err(ApiError::invalid("the secret is empty"));
    }
    let settings = if settings.is_null() { json!({}) } else { settings };
    let Some(map) = settings.as_object() else {
        return Err(ApiError::invalid("settings is a JSON object"));
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    match kind {
        "api_key" if text("header").is_some() == text("query").is_some() => {
            Err(ApiError::invalid("an api_key connection names either settings.header or settings.query"))
        }
        "basic" if text("username").is_none() => {
            Err(ApiError::invalid("a basic connection needs settings.username"))
        }
        "oauth2_client_credentials" if text("token_url").is_none() || text("client_id").is_none() => {
            Err(ApiError::invalid(
                "an oauth2_client_credentials connection needs settings.token_url and settings.client_id",
            ))
        }
        "headers"
            if !serde_json::from_str::<Value>(secret).is_ok_and(|v| {
                v.as_object().is_some_and(|m| !m.is_empty() && m.values().all(Value::is_string))
            }) =>
        {
            Err(ApiError::invalid("a headers connection's secret is a JSON object of header names to values"))
        }
        _ => Ok(settings),
    }
}

fn vault(e: steward_vault::Error) -> ApiError {
    ApiError::internal(e)
}
