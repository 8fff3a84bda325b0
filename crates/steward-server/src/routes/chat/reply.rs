//! Sending a message and streaming the reply as Server-Sent Events:
//!
//! - `started` `{run_id, seq}`: the message is stored and its run queued;
//! - `token` `{text}`: a piece of the answer as the model writes it (when this process runs
//!   the model call);
//! - `tool_call` `{id, name, arguments}` and `tool_result` `{id, name, is_error, content}`;
//! - `approval` `{run_id, step, message, timeout_at}`: a tool call waits for a person
//!   (decide with the run's approve or reject endpoint; the stream goes on);
//! - `decision` `{approved, by, reason}`;
//! - `message` `{content}`: the final answer, or `error` `{kind, message}`;
//! - `done` `{status}`, last.
//!
//! The run is durable: a client that goes away loses only the stream; the answer is in the
//! thread (and the run) once it comes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use steward_auth::Permission;
use steward_engine::{Entry, Event, RunStatus};
use tokio::sync::{broadcast, mpsc};
use utoipa::ToSchema;

use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::state::AppState;

/// How often the journal is re-read when no local progress arrives.
const POLL: Duration = Duration::from_secs(1);

/// The longest message a person may send, in bytes.
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMessage {
    pub content: String,
}

/// Sends a message to the thread's agent and streams the reply (`text/event-stream`).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace}/threads/{id}/messages", tag = "chat",
    params(("workspace" = String, Path), ("id" = String, Path)), request_body = NewMessage,
    security(("session" = ["runs:read_payloads"]), ("token" = ["runs:read_payloads"])),
    responses((status = 200, description = "text/event-stream of the reply", content_type = "text/event-stream"),
        (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn send_message(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<NewMessage>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    access.require(Permission::RunsReadPayloads)?;
    access.require(Permission::RunsStart)?;
    if req.content.trim().is_empty() {
        return Err(ApiError::invalid("a message needs some text"));
    }
    if req.content.len() > MAX_MESSAGE {
        let message = format!("a message is at most {MAX_MESSAGE} bytes");
        return Err(ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message));
    }
    let thread = state.store().thread(&access.workspace, &id).await?;
    // A secret pasted into a message is replaced before it is kept or sent anywhere.
    let mut content = Value::String(req.content);
    state.executor().redact(&access.workspace, &mut content).await;
    let content = super::text_of(&content);
    let version = super::super::agents::runner_version(&state, &access, &thread.agent).await?;
    let history = super::history(&state, &access.workspace, &thread.id).await?;
    let run_id = uuid::Uuid::now_v7().to_string();
    // Listen before the run starts, so that no piece of the answer is missed.
    let tap = state.executor().tap(&run_id);
    let progress = state.executor().subscribe();
    let message =
        state.store().add_message(&access.workspace, &thread.id, &content, &run_id, state.now()).await?;
    let inputs = json!({ "task": content, "history": history });
    let trigger = json!({ "type": "chat", "thread_id": thread.id, "seq": message.seq });
    state.executor().start_triggered(&version, inputs, run_id.clone(), trigger).await?;
    state.metrics().run_started("chat");

    let (tx, rx) = mpsc::channel(64);
    let first = event("started", json!({ "run_id": run_id, "seq": message.seq }));
    let follow = Follow { state, workspace: access.workspace, run_id, seen: 0, tx };
    tokio::spawn(follow.run(tap, progress, first));
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn event(name: &str, data: Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

struct Follow {
    state: AppState,
    workspace: String,
    run_id: String,
    seen: u64,
    tx: mpsc::Sender<SseEvent>,
}

impl Follow {
    /// Sends the reply's events until the run ends or the client goes away.
    async fn run(
        mut self,
        mut tap: steward_executor::agent::Tap,
        mut progress: broadcast::Receiver<steward_executor::Progress>,
        first: SseEvent,
    ) {
        if self.tx.send(first).await.is_err() {
            return;
        }
        loop {
            match self.refill(true, &mut tap).await {
                Ok(true) | Err(()) => return,
                Ok(false) => {}
            }
            let poll = tokio::time::sleep(POLL);
            tokio::pin!(poll);
            loop {
                // Text first: it was sent before the commit that ends its turn.
                tokio::select! {
                    biased;
                    text = tap.recv() => {
                        let Some(text) = text else { continue };
                        // What was journaled before this turn began (a tool's result) goes
                        // first, so that events keep their order.
                        if self.noticed(&mut progress) && self.refill(false, &mut tap).await.is_err() {
                            return;
                        }
                        if self.tx.send(event("token", json!({ "text": text }))).await.is_err() {
                            return;
                        }
                    }
                    got = progress.recv() => match got {
                        Ok(p) if p.run_id == self.run_id => break,
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        _ => {}
                    },
                    _ = &mut poll => break,
                }
            }
        }
    }

    /// Whether progress of this run was committed since it was last looked at.
    fn noticed(&self, progress: &mut broadcast::Receiver<steward_executor::Progress>) -> bool {
        let mut any = false;
        loop {
            match progress.try_recv() {
                Ok(p) => any |= p.run_id == self.run_id,
                Err(broadcast::error::TryRecvError::Lagged(_)) => any = true,
                Err(_) => return any,
            }
        }
    }

    /// Sends the events of new journal entries, and with `end` the answer once the run has
    /// ended (then `Ok(true)`); `Err` when the client went away or the run cannot be read.
    async fn refill(&mut self, end: bool, tap: &mut steward_executor::agent::Tap) -> Result<bool, ()> {
        let journal = match self.state.store().journal(&self.run_id).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(run_id = %self.run_id, error = %e, "chat reply stopped: cannot read the run");
                return Err(());
            }
        };
        let after = self.seen;
        for entry in journal.iter().filter(|e| e.seq > after) {
            self.seen = entry.seq;
            for e in events_of(&self.run_id, entry) {
                self.tx.send(e).await.map_err(|_| ())?;
            }
        }
        if !end {
            return Ok(false);
        }
        let Ok(run) = self.state.store().run(&self.workspace, &self.run_id).await else { return Err(()) };
        if !run.status.is_finished() {
            return Ok(false);
        }
        // Text sent just before the end goes before the answer.
        while let Some(text) = tap.try_recv() {
            self.tx.send(event("token", json!({ "text": text }))).await.map_err(|_| ())?;
        }
        let last = match (&run.status, &run.output, &run.error) {
            (RunStatus::Succeeded, Some(output), _) => {
                event("message", json!({ "content": super::text_of(output) }))
            }
            (_, _, Some(err)) => event("error", json!({ "kind": err.kind, "message": err.message })),
            _ => event("error", json!({ "kind": "cancelled", "message": "the run ended without an answer" })),
        };
        self.tx.send(last).await.map_err(|_| ())?;
        self.tx.send(event("done", json!({ "status": run.status.as_str() }))).await.map_err(|_| ())?;
        Ok(true)
    }
}

/// What a journal entry tells a person watching the chat.
fn events_of(run_id: &str, entry: &Entry) -> Vec<SseEvent> {
    match &entry.event {
        Event::StepRecorded { record, .. } => match record["type"].as_str() {
            Some("turn") => record["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    event(
                        "tool_call",
                        json!({ "id": c["id"], "name": c["name"], "arguments": c["arguments"] }),
                    )
                })
                .collect(),
            Some("tool") => vec![event(
                "tool_result",
                json!({ "id": record["call_id"], "name": record["name"], "is_error": record["is_error"], "content": record["content"] }),
            )],
            _ => Vec::new(),
        },
        Event::StepSuspended { key, message, timeout_at } => vec![event(
            "approval",
            json!({ "run_id": run_id, "step": key, "message": message, "timeout_at": timeout_at.map(|t| t.millis()) }),
        )],
        Event::ApprovalDecided { approved, by, reason, .. } => {
            vec![event("decision", json!({ "approved": approved, "by": by, "reason": reason }))]
        }
        _ => Vec::new(),
    }
}
