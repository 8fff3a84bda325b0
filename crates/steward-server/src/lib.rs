//! `steward serve`: the JSON API under `/api/v1` over the store and an in-process executor.
//!
//! Shape: [`config::Settings`] (layered) → [`Config`] → [`AppState`] → [`app`] (the router
//! with its middleware) → [`serve`] on a listener until shutdown.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod hosts;
mod json;
pub mod metrics;
mod middleware;
pub mod pruner;
pub mod rate_limit;
pub mod routes;
pub mod schedule;
pub mod scheduler;
pub mod state;
mod views;
pub mod webhook_signature;

use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
pub use config::{Config, Settings};
pub use state::AppState;
use tokio::net::TcpListener;

/// The whole HTTP application: API, meta routes and middleware.
pub fn app(state: AppState) -> axum::Router {
    let (api, doc) = routes::api();
    let openapi = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render the OpenAPI document");
        "{}".to_owned()
    });
    let config = state.config().clone();
    api.merge(routes::meta::router(openapi))
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn_with_state(config.body_limit, middleware::refuse_large_bodies))
        .layer(axum::middleware::from_fn_with_state(config.request_timeout, middleware::timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), client::resolve))
        .layer(axum::middleware::from_fn_with_state(config.secure_cookies, middleware::security_headers))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting connections and
/// lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}

/// The OpenAPI document as JSON, for `steward` to print.
pub fn openapi_json() -> String {
    routes::api().1.to_pretty_json().unwrap_or_default()
}
