//! A run's journal as Server-Sent Events, live.
//!
//! The stream sends every entry after `Last-Event-ID` (or `after`), then new entries as they
//! are committed, and ends with an `end` event once the run has finished. New entries are
//! noticed at once when this process's executor commits them, and within a second when
//! another process runs the run (the journal is re-read).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use steward_auth::Permission;
use tokio::sync::broadcast;

use super::{After, entry_view};
use crate::auth::Access;
use crate::error::ApiResult;
use crate::state::AppState;

/// How often the journal is re-read when no local progress arrives.
const POLL: Duration = Duration::from_secs(1);

struct Follow {
    state: AppState,
    workspace: String,
    run_id: String,
    payloads: bool,
    seen: u64,
    progress: broadcast::Receiver<steward_executor::Progress>,
    pending: std::collections::VecDeque<SseEvent>,
    done: bool,
    first: bool,
}

/// Streams the run's journal entries (`event: entry`, `id: <seq>`) until it finishes
/// (`event: end`).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/runs/{id}/stream", tag = "runs",
    params(("workspace" = String, Path), ("id" = String, Path), After),
    security(("session" = ["runs:read"]), ("token" = ["runs:read"])),
    responses((status = 200, description = "text/event-stream of journal entries", content_type = "text/event-stream")))]
pub(super) async fn stream_run(
    State(state): State<AppState>,
    access: Access,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    access.require(Permission::RunsRead)?;
    let run = state.store().run(&access.workspace, &id).await?;
    let last_event_id =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let follow = Follow {
        progress: state.executor().subscribe(),
        state,
        workspace: access.workspace.clone(),
        run_id: run.id,
        payloads: access.permissions.contains(Permission::RunsReadPayloads),
        seen: last_event_id.or(q.after).unwrap_or(0),
        pending: Default::default(),
        done: false,
        first: true,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok(event), f));
            }
            if f.done {
                return None;
            }
            if !f.first {
                f.wait().await;
            }
            f.first = false;
            f.refill().await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

impl Follow {
    /// Queues new journal entries, and the end once the run has finished.
    async fn refill(&mut self) {
        let store = self.state.store();
        let (journal, run) = match (
            store.journal(&self.run_id).await,
            store.run(&self.workspace, &self.run_id).await,
        ) {
            (Ok(journal), Ok(run)) => (journal, run),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(run_id = %self.run_id, error = %e, "run stream stopped: cannot read the run");
                self.done = true;
                return;
            }
        };
        let after = self.seen;
        for e in journal.iter().filter(|e| e.seq > after) {
            self.seen = e.seq;
            let data = serde_json::to_string(&entry_view(e, self.payloads)).unwrap_or_default();
            self.pending.push_back(SseEvent::default().event("entry").id(e.seq.to_string()).data(data));
        }
        if run.status.is_finished() {
            let data = serde_json::json!({ "status": run.status.as_str() }).to_string();
            self.pending.push_back(SseEvent::default().event("end").data(data));
            self.done = true;
        }
    }

    /// Returns when this run may have new entries.
    async fn wait(&mut self) {
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                got = self.progress.recv() => match got {
                    Ok(p) if p.run_id == self.run_id => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => { deadline.as_mut().await; return }
                },
            }
        }
    }
}
