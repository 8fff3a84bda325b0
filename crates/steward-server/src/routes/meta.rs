//! Health, readiness, and the API description (the OpenAPI document and a page that shows
//! it, both served from the binary).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

const DOCS_HTML: &str = include_str!("../../assets/api-docs.html");
const DOCS_JS: &str = include_str!("../../assets/api-docs.js");
const DOCS_CSS: &str = include_str!("../../assets/api-docs.css");

/// Routes outside the API description.
pub fn router(openapi: String) -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .route(
            "/api/docs",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DOCS_HTML) }),
        )
        .route(
            "/api/docs/docs.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], DOCS_JS) }),
        )
        .route(
            "/api/docs/docs.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], DOCS_CSS) }),
        )
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().queue_depth(state.now()).await {
        Ok(depth) => {
            let body = state.metrics().render(depth);
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the queue depth");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                String::new(),
            )
        }
    }
}

/// Ready when the database answers.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().count_users().await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "database unavailable" })))
        }
    }
}
