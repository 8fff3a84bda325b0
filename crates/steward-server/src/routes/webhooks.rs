//! Webhook triggers: managing a flow's webhooks, and receiving deliveries at
//! `POST /hooks/{token}`.
//!
//! A delivery is checked (signature, timestamp), turned into the run's `.trigger` (kind, body
//! parsed by content type, query, headers without credentials) and queued durably before the
//! response. A delivery id (`Idempotency-Key`, `X-GitHub-Delivery`, `X-Steward-Delivery`, or
//! the event id in a Stripe or Slack body) fixes the run's id, so a redelivery never starts a
//! second run. In `sync` mode the response waits for the run's output, up to the webhook's
//! timeout, and otherwise answers 202 with the run id.

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use steward_auth::Permission;
use steward_auth::token::{self, Kind, Token};
use steward_engine::RunStatus;
use steward_executor::EndWatch;
use steward_store::Webhook;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use steward_vault::Secret;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, too_large};
use crate::state::AppState;
use crate::views::millis;
use crate::webhook_signature::{self as signature, Scheme};

/// The longest a sync webhook may wait for its run.
const MAX_SYNC_MS: u64 = 60_000;
/// Headers never copied into `.trigger`: credentials and signatures.
const HIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-slack-signature",
    "x-steward-signature",
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(revoke_webhook))
        .routes(routes!(deliver))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub flow: String,
    pub scheme: String,
    pub mode: String,
    pub sync_timeout_ms: u64,
    pub created_at: i64,
    /// Only in the response that creates the webhook: where to send deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            flow: w.flow_name,
            scheme: w.scheme,
            mode: w.mode,
            sync_timeout_ms: w.sync_timeout_ms,
            created_at: millis(w.created_at),
            url: None,
        }
    }
}

/// The flow's webhooks.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/flows/{name}/webhooks", tag = "webhooks",
    params(("workspace" = String, Path), ("name" = String, Path)),
    security(("session" = ["flows:read"]), ("token" = ["flows:read"])), responses((status = 200, body = Vec<WebhookView>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    access.require(Permission::FlowsRead)?;
    state.store().flow(&access.workspace, &name).await?;
    let hooks = state.store().webhooks(&access.workspace, Some(&name)).await?;
    Ok(axum::Json(hooks.into_iter().map(WebhookView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewWebhook {
    /// none, github, stripe, slack or generic (default none).
    pub scheme: Option<String>,
    /// The HMAC key the sender signs with; required unless the scheme is none.
    pub secret: Option<String>,
    /// async (default) or sync.
    pub mode: Option<String>,
    /// How long a sync delivery waits for the run, in milliseconds (default 10000, at most 60000).
    pub sync_timeout_ms: Option<u64>,
}

/// Creates a webhook for the flow. The URL in the response carries an unguessable secret
/// path and is shown once.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/flows/{name}/webhooks", tag = "webhooks",
    params(("workspace" = String, Path), ("name" = String, Path)), request_body = NewWebhook,
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])), responses((status = 201, body = WebhookView)))]
async fn create_webhook(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    access.require(Permission::FlowsWrite)?;
    let flow = state.store().flow(&access.workspace, &name).await?;
    if flow.deleted_at.is_some() {
        return Err(ApiError::not_found(&format!("flow {name}")));
    }
    let scheme: Scheme = req.scheme.as_deref().unwrap_or("none").parse().map_err(ApiError::invalid)?;
    let secret = req.secret.filter(|s| !s.is_empty());
    if scheme != Scheme::None && secret.is_none() {
        return Err(ApiError::invalid(format!(
            "the {} scheme needs the secret deliveries are signed with",
            scheme.as_str()
        )));
    }
    let mode = req.mode.unwrap_or_else(|| "async".into());
    if mode != "async" && mode != "sync" {
        return Err(ApiError::invalid("mode is async or sync"));
    }
    let sync_timeout_ms = req.sync_timeout_ms.unwrap_or(10_000);
    if !(1..=MAX_SYNC_MS).contains(&sync_timeout_ms) {
        return Err(ApiError::invalid(format!("sync_timeout_ms must be between 1 and {MAX_SYNC_MS}")));
    }
    let path = Token::generate(Kind::Webhook).map_err(ApiError::internal)?;
    let id = uuid::Uuid::now_v7().to_string();
    // The signing secret is stored sealed like a connection's, bound to this webhook.
    let sealed = match secret.filter(|_| scheme != Scheme::None) {
        Some(s) => Some(
            state
                .keyring()
                .seal(&access.workspace, &sealed_name(&id), &Secret::from(s.as_str()), state.now())
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let hook = Webhook {
        id,
        workspace_id: access.workspace.clone(),
        flow_name: name.clone(),
        path_digest: path.digest(),
        scheme: scheme.as_str().to_owned(),
        signing_secret: sealed,
        mode,
        sync_timeout_ms,
        created_by: access.actor(),
        created_at: state.now(),
        revoked_at: None,
    };
    state.store().create_webhook(&hook).await?;
    state
        .audit_in(
            &access,
            "webhook.created",
            ("webhook", &hook.id),
            json!({ "flow": name, "scheme": hook.scheme, "mode": hook.mode }),
        )
        .await?;
    let base = state.config().public_url.clone().unwrap_or_else(|| format!("http://{}", state.config().bind));
    let mut view = WebhookView::from(hook);
    view.url = Some(format!("{base}/hooks/{}", path.reveal()));
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Revokes a webhook: its URL stops working at once.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/webhooks/{id}", tag = "webhooks",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["flows:write"]), ("token" = ["flows:write"])), responses((status = 204)))]
async fn revoke_webhook(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.require(Permission::FlowsWrite)?;
    state.store().revoke_webhook(&access.workspace, &id, state.now()).await?;
    state.audit_in(&access, "webhook.revoked", ("webhook", &id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Delivered {
    pub run_id: String,
    /// `queued` for async webhooks; the run's status when a sync webhook stops waiting.
    pub status: String,
    /// True when this delivery id was seen before and no new run started.
    pub duplicate: bool,
}

/// Receives a delivery and starts a run of the webhook's flow. Async webhooks answer 202 once
/// the run is durably queued; sync webhooks answer 200 with the flow's output, or 202 if the
/// run takes longer than the webhook's timeout.
#[utoipa::path(post, path = "/hooks/{token}", tag = "webhooks", params(("token" = String, Path)),
    responses((status = 202, body = Delivered), (status = 200, description = "A sync webhook's flow output"),
        (status = 401, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)))]
async fn deliver(
    State(state): State<AppState>,
    Path(path): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let source = crate::auth::source_of(&req);
    let not_found = || ApiError::not_found("webhook");
    if !token::looks_like(Kind::Webhook, &path) {
        return Err(not_found());
    }
    let hook = state.store().webhook_by_path(&token::digest(&path)).await?.ok_or_else(not_found)?;
    state.limits().webhook(&hook.id)?;
    let (parts, body) = req.into_parts();
    let limit = state.config().body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| too_large(limit))?;
    let scheme: Scheme = hook.scheme.parse().map_err(ApiError::internal)?;
    let secret = signing_secret(&state, &hook).await?;
    let now_secs = state.now().0 / 1000;
    if let Err(refusal) = signature::verify(scheme, secret.expose(), &parts.headers, &body, now_secs) {
        tracing::warn!(webhook = %hook.id, source = source.as_deref().unwrap_or("-"), reason = %refusal, "refused a webhook delivery");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", refusal.to_string()));
    }
    let payload = parse_body(&parts.headers, &body)?;
    let delivery = delivery_id(&parts.headers, scheme, &payload);
    let run_id = match &delivery {
        Some(key) => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("{}/{key}", hook.id).as_bytes())
            .to_string(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let trigger = json!({
        "kind": "webhook",
        "webhook": hook.id,
        "delivery": delivery,
        "body": payload,
        "content_type": parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        "query": query(parts.uri.query()),
        "headers": visible_headers(&parts.headers),
    });
    // Watch before starting: a run driven here can end before `start` returns.
    let mut end = (hook.mode == "sync").then(|| state.executor().watch_end(&run_id));
    let duplicate = start(&state, &hook, run_id.clone(), trigger).await?;
    let Some(end) = &mut end else {
        let status = if duplicate { "duplicate" } else { "queued" };
        let body = Delivered { run_id, status: status.into(), duplicate };
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    };
    // Answer before the server's request time limit cuts the response off.
    let budget = state.config().request_timeout.saturating_sub(Duration::from_secs(1));
    let limit = Duration::from_millis(hook.sync_timeout_ms).min(budget);
    let (status, output) = wait_finished(&state, &hook.workspace_id, &run_id, limit, end, duplicate).await?;
    Ok(sync_response(status, output, run_id, duplicate))
}

/// Queues the run; `Ok(true)` when a run with this id exists already (a redelivery).
async fn start(state: &AppState, hook: &Webhook, run_id: String, trigger: Value) -> ApiResult<bool> {
    // A webhook of a deleted flow is gone, without naming the flow to the sender.
    let version = state
        .startable_version(&hook.workspace_id, &hook.flow_name)
        .await
        .map_err(|e| if e.status == StatusCode::NOT_FOUND { ApiError::not_found("webhook") } else { e })?;
    match state.executor().start_triggered(&version, json!({}), run_id, trigger).await {
        Ok(_) => {
            state.metrics().run_started("webhook");
            Ok(false)
        }
        Err(steward_executor::Error::Store(steward_store::Error::Conflict(_))) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

fn sync_response(status: RunStatus, output: Option<Value>, run_id: String, duplicate: bool) -> Response {
    if status == RunStatus::Succeeded {
        return (StatusCode::OK, axum::Json(output.unwrap_or(Value::Null))).into_response();
    }
    if status.is_finished() {
        let message = format!("run {run_id} ended {}", status.as_str());
        return ApiError::new(StatusCode::BAD_GATEWAY, "run_failed", message).into_response();
    }
    let body = Delivered { run_id, status: status.as_str().to_owned(), duplicate };
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// The run's status and output once it has finished, or as they are when `limit` runs out.
/// A run this process drives is heard of as it ends; others are re-read every 250 ms.
async fn wait_finished(
    state: &AppState,
    workspace: &str,
    run_id: &str,
    limit: Duration,
    end: &mut EndWatch,
    look_first: bool,
) -> ApiResult<(RunStatus, Option<Value>)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut look = look_first;
    loop {
        if look {
            let run = state.store().run(workspace, run_id).await?;
            if run.status.is_finished() || tokio::time::Instant::now() >= deadline {
                return Ok((run.status, run.output));
            }
        }
        look = true;
        let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(250));
        tokio::select! {
            ended = end.ended() => return Ok((ended.status, ended.output)),
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// The body as `.trigger.body`: JSON parsed, forms as an object of strings, other text as a
/// string.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(format!("the body is not valid JSON: line {} column {}", e.line(), e.column()))
        });
    }
    if essence == "application/x-www-form-urlencoded" {
        let form: Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Ok(Value::Object(form));
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(Value::String(text.to_owned())),
        Err(_) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON, a form or UTF-8 text",
        )),
    }
}

/// The id that makes a redelivery recognisable.
fn delivery_id(headers: &HeaderMap, scheme: Scheme, body: &Value) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let from_body = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    header("idempotency-key")
        .or_else(|| header("x-github-delivery"))
        .or_else(|| header("x-steward-delivery"))
        .or_else(|| (scheme == Scheme::Stripe).then(|| from_body("id")).flatten())
        .or_else(|| (scheme == Scheme::Slack).then(|| from_body("event_id")).flatten())
        .filter(|k| !k.is_empty() && k.len() <= 256)
}

fn query(q: Option<&str>) -> Value {
    let pairs = url::form_urlencoded::parse(q.unwrap_or("").as_bytes());
    Value::Object(pairs.map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
}

fn visible_headers(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        if HIDDEN_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(out)
}

/// What a webhook's signing secret is sealed for.
fn sealed_name(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// The webhook's signing secret, opened (empty for unsigned webhooks). A value stored before
/// signing secrets were sealed is used as it is.
async fn signing_secret(state: &AppState, hook: &Webhook) -> ApiResult<Secret> {
    let Some(stored) = hook.signing_secret.as_deref() else { return Ok(Secret::new(Vec::new())) };
    if !stored.starts_with("s1.") {
        return Ok(Secret::from(stored));
    }
    state
        .keyring()
        .open_text(&hook.workspace_id, &sealed_name(&hook.id), stored, state.now())
        .await
        .map_err(ApiError::internal)
}
