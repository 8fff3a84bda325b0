//! Cross-cutting behaviour of every response: security headers, a time limit, and a clear 413
//! for bodies that announce a size over the limit.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::json::too_large;

/// Headers that keep browsers from sniffing types, framing pages or leaking referrers, and a
/// content security policy that allows only this server's own scripts and styles.
pub async fn security_headers(State(secure): State<bool>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Answers 408 when a handler takes longer than the limit. Streams (server-sent events) are
/// not cut: the limit covers producing the response head.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {}s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Refuses before reading it a body whose `Content-Length` is over the limit; bodies without
/// a length are cut off while they are read (`DefaultBodyLimit`).
pub async fn refuse_large_bodies(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        tracing::info!(length = announced, limit, path = %req.uri().path(), "refused an oversized request body");
        return too_large(limit).into_response();
    }
    next.run(req).await
}
