//! Chat: conversations (threads) with an agent. Each message a person sends starts a run of
//! the agent's runner flow with the thread's earlier exchanges as history, and the reply comes
//! back as Server-Sent Events (see [`reply`]). The thread keeps the messages; each answer is
//! its run's output, so runs stay the one record of what the agent did.
//!
//! A thread is a transcript, so every endpoint here needs `runs:read_payloads`; sending a
//! message also needs `runs:start`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_engine::RunStatus;
use steward_store::{Thread, ThreadMessage};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::MaybeJson;
use crate::state::AppState;
use crate::views::millis;

mod reply;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_thread))
        .routes(routes!(list_threads))
        .routes(routes!(show_thread, delete_thread))
        .routes(routes!(reply::send_message))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadView {
    pub id: String,
    pub agent: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Thread> for ThreadView {
    fn from(t: Thread) -> Self {
        Self {
            id: t.id,
            agent: t.agent,
            title: t.title,
            created_at: millis(t.created_at),
            updated_at: millis(t.updated_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewThread {
    /// Defaults to "Conversation with <agent>".
    pub title: Option<String>,
}

/// Starts a conversation with an agent.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/agents/{name}/threads", tag = "chat",
    params(("workspace" = String, Path), ("name" = String, Path)), request_body = NewThread,
    security(("session" = ["runs:read_payloads"]), ("token" = ["runs:read_payloads"])),
    responses((status = 201, body = ThreadView), (status = 404, body = crate::error::ErrorBody)))]
async fn create_thread(
    State(state): State<AppState>,
    access: Access,
    Path((_, name)): Path<(String, String)>,
    MaybeJson(body): MaybeJson<NewThread>,
) -> ApiResult<(StatusCode, axum::Json<ThreadView>)> {
    access.require(Permission::RunsReadPayloads)?;
    if state.store().agent(&access.workspace, &name).await?.is_none() {
        return Err(ApiError::not_found(&format!("agent {name}")));
    }
    let title = body.and_then(|b| b.title).unwrap_or_else(|| format!("Conversation with {name}"));
    let title: String = title.chars().take(200).collect();
    let thread = state.store().create_thread(&access.workspace, &name, &title, state.now()).await?;
    Ok((StatusCode::CREATED, axum::Json(thread.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListThreads {
    /// Only threads with this agent.
    pub agent: Option<String>,
}

/// The workspace's threads, the most recently active first.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/threads", tag = "chat",
    params(("workspace" = String, Path), ListThreads),
    security(("session" = ["runs:read_payloads"]), ("token" = ["runs:read_payloads"])),
    responses((status = 200, body = Vec<ThreadView>)))]
async fn list_threads(
    State(state): State<AppState>,
    access: Access,
    Query(q): Query<ListThreads>,
) -> ApiResult<axum::Json<Vec<ThreadView>>> {
    access.require(Permission::RunsReadPayloads)?;
    let threads = state.store().list_threads(&access.workspace, q.agent.as_deref()).await?;
    Ok(axum::Json(threads.into_iter().map(ThreadView::from).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// The run that answers (for the person's message) or answered (for the agent's).
    pub run_id: String,
    /// The answering run's status, on the agent's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadDetail {
    pub thread: ThreadView,
    pub messages: Vec<MessageView>,
}

/// A thread with its messages: each person's message, then the agent's answer once its run
/// has one (a failed run's error, a waiting run's status).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/threads/{id}", tag = "chat",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["runs:read_payloads"]), ("token" = ["runs:read_payloads"])),
    responses((status = 200, body = ThreadDetail), (status = 404, body = crate::error::ErrorBody)))]
async fn show_thread(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<ThreadDetail>> {
    access.require(Permission::RunsReadPayloads)?;
    let thread = state.store().thread(&access.workspace, &id).await?;
    let mut messages = Vec::new();
    for m in state.store().thread_messages(&access.workspace, &id).await? {
        let answer = answer(&state, &access.workspace, &m).await?;
        messages.push(MessageView {
            role: "user".into(),
            content: m.content,
            run_id: m.run_id.clone(),
            status: None,
            created_at: millis(m.created_at),
        });
        if let Some((status, content, at)) = answer {
            messages.push(MessageView {
                role: "assistant".into(),
                content,
                run_id: m.run_id,
                status: Some(status.as_str().to_owned()),
                created_at: millis(at),
            });
        }
    }
    Ok(axum::Json(ThreadDetail { thread: thread.into(), messages }))
}

/// The answer to a message: its run's status and output (or error, or what it waits for).
/// `None` when the run is gone (retention) or still working.
async fn answer(
    state: &AppState,
    workspace: &str,
    m: &ThreadMessage,
) -> ApiResult<Option<(RunStatus, String, steward_engine::Timestamp)>> {
    let run = match state.store().run(workspace, &m.run_id).await {
        Ok(run) => run,
        Err(steward_store::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let at = run.finished_at.unwrap_or(run.updated_at);
    Ok(match run.status {
        RunStatus::Succeeded => run.output.as_ref().map(|o| (run.status, text_of(o), at)),
        RunStatus::Failed | RunStatus::Cancelled => {
            let message = run.error.map(|e| e.message).unwrap_or_else(|| "cancelled".into());
            Some((run.status, message, at))
        }
        RunStatus::Waiting => Some((run.status, "(waiting for a decision)".into(), at)),
        _ => None,
    })
}

/// An answer as text: a string as it is, anything else as JSON.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The earlier exchanges of a thread that were answered, as the agent's history.
pub(crate) async fn history(state: &AppState, workspace: &str, thread: &str) -> ApiResult<Value> {
    let mut out = Vec::new();
    for m in state.store().thread_messages(workspace, thread).await? {
        if let Some((RunStatus::Succeeded, content, _)) = answer(state, workspace, &m).await? {
            out.push(json!({ "role": "user", "content": m.content }));
            out.push(json!({ "role": "assistant", "content": content }));
        }
    }
    Ok(Value::Array(out))
}

/// Deletes a thread and its messages; the runs that answered stay, under run retention.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/threads/{id}", tag = "chat",
    params(("workspace" = String, Path), ("id" = String, Path)),
    security(("session" = ["runs:read_payloads"]), ("token" = ["runs:read_payloads"])),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_thread(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.require(Permission::RunsReadPayloads)?;
    if !state.store().delete_thread(&access.workspace, &id).await? {
        return Err(ApiError::not_found(&format!("thread {id}")));
    }
    state.audit_in(&access, "thread.deleted", ("thread", &id), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
