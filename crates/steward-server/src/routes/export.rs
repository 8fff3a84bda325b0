//! Exports: a whole workspace as newline-delimited JSON, and a person's own data.
//!
//! The workspace export streams: rows go from the store to the client a page at a time, so
//! its size is not limited by memory. It carries no secret values (see
//! `steward_store::Table::columns`). Both exports are audited before the first byte is sent,
//! and fail if they cannot be.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde_json::json;
use steward_auth::Permission;
use steward_store::{FORMAT, PAGE, Row, Table};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Access, Caller, Via};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Audit};

pub const NDJSON: &str = "application/x-ndjson";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_workspace)).routes(routes!(export_me))
}

/// The whole workspace as newline-delimited JSON: first a header line
/// (`{"format", "workspace", "exported_at", "counts"}`), then one `{"table", "row"}` line per
/// row, tables in load order. Secret values (connection secrets, webhook signing secrets,
/// token and session digests) are never included.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/export", tag = "workspaces",
    params(("workspace" = String, Path)),
    security(("session" = ["workspace:export"]), ("token" = ["workspace:export"])),
    responses((status = 200, content_type = "application/x-ndjson", body = String,
        description = "One JSON object per line")))]
async fn export_workspace(
    State(state): State<AppState>,
    access: Access,
    Path(_): Path<String>,
) -> ApiResult<Response> {
    access.require(Permission::WorkspaceExport)?;
    let counts = state.store().export_counts(&access.workspace).await?;
    let details = json!({ "format": FORMAT, "counts": counts });
    state.audit_in(&access, "workspace.exported", ("workspace", &access.workspace), details).await?;
    let header = json!({
        "format": FORMAT,
        "workspace": access.workspace,
        "exported_at": state.now().0,
        "counts": counts,
    });
    let body = Body::from_stream(rows(state, access.workspace, line(&header)));
    Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

/// Where the stream is: the header is still to send, or the next page of a table follows
/// the row last sent.
enum Cursor {
    Header(Bytes),
    Table { index: usize, after: Option<Row> },
}

/// The header, then every table's rows, a page per chunk.
fn rows(
    state: AppState,
    workspace: String,
    header: Bytes,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::try_unfold(Some(Cursor::Header(header)), move |cursor| {
        let state = state.clone();
        let workspace = workspace.clone();
        async move {
            let Some(cursor) = cursor else { return Ok(None) };
            let (mut index, mut after) = match cursor {
                Cursor::Header(bytes) => {
                    return Ok(Some((bytes, Some(Cursor::Table { index: 0, after: None }))));
                }
                Cursor::Table { index, after } => (index, after),
            };
            while let Some(table) = Table::ALL.get(index).copied() {
                let page = state.store().export_page(&workspace, table, after.as_ref(), PAGE).await;
                let page = page.map_err(|e| {
                    tracing::error!(error = %e, table = table.name(), "export failed");
                    std::io::Error::other("the export failed")
                })?;
                let Some(last) = page.last().cloned() else {
                    (index, after) = (index + 1, None);
                    continue;
                };
                let mut chunk = Vec::new();
                for row in page.iter() {
                    chunk.extend_from_slice(&line(&json!({ "table": table.name(), "row": row })));
                }
                let next = if page.len() < PAGE {
                    Cursor::Table { index: index + 1, after: None }
                } else {
                    Cursor::Table { index, after: Some(last) }
                };
                return Ok(Some((Bytes::from(chunk), Some(next))));
            }
            Ok(None)
        }
    })
}

fn line(value: &serde_json::Value) -> Bytes {
    let mut out = value.to_string().into_bytes();
    out.push(b'\n');
    Bytes::from(out)
}

/// Everything held about the caller: account (no password hash), memberships, sessions and
/// API tokens (no secrets or digests), and the audit entries of what they did. Only with a
/// login session: an API token is limited to one workspace, this spans all of them.
#[utoipa::path(get, path = "/api/v1/me/export", tag = "auth", security(("session" = [])),
    responses((status = 200, body = Object), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
async fn export_me(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    if let Via::Token(_) = caller.via {
        return Err(ApiError::forbidden("exporting one's own data needs a login session, not an API token"));
    }
    let actor = caller.actor();
    state
        .audit(Audit {
            workspace: None,
            actor: &actor,
            action: "user.data_exported",
            object: ("user", Some(&caller.user.id)),
            source: caller.source.as_deref(),
            details: json!({ "format": steward_store::PERSONAL_FORMAT }),
        })
        .await?;
    let data = steward_store::personal_data(state.store(), &caller.user.id, state.now()).await?;
    let disposition = "attachment; filename=\"steward-personal-data.json\"";
    Ok((StatusCode::OK, [(header::CONTENT_DISPOSITION, disposition)], axum::Json(data)).into_response())
}
