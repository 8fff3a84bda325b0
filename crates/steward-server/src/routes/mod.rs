//! The API's routes, one module per resource. Each handler documents itself with
//! `#[utoipa::path]`, including the permission it needs as the security scope, so the
//! OpenAPI document is built from the same code that serves the requests.

pub mod agents;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod connections;
pub mod export;
pub mod flows;
pub mod meta;
pub mod policy;
pub mod receipts;
pub mod runs;
pub mod schedules;
pub mod tokens;
pub mod webhooks;
pub mod workspaces;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every documented route, and the document describing them.
pub fn api() -> (axum::Router<AppState>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::new()
        .merge(auth::router())
        .merge(workspaces::router())
        .merge(tokens::router())
        .merge(flows::router())
        .merge(runs::router())
        .merge(receipts::router())
        .merge(audit::router())
        .merge(webhooks::router())
        .merge(schedules::router())
        .merge(connections::router())
        .merge(export::router())
        .merge(policy::router())
        .merge(agents::router())
        .merge(approvals::router())
        .merge(chat::router())
        .split_for_parts();
    doc.info = InfoBuilder::new()
        .title("Steward API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Flows, agents, chat threads, runs, approvals, usage, connections, workspaces and the audit log. Errors are JSON: {\"error\": {\"code\", \"message\"}}. \
             Each operation's security scope is the permission it needs in the workspace.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("stw_…").build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
    );
    (router, doc)
}
