//! API errors: a status, a stable machine-readable `code` and a message for people.
//!
//! Internal details (database messages, file paths) never reach a response: they are logged
//! with a reference the response carries, so an operator can find them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait, for 429 responses.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable across releases: `not_found`, `forbidden`, `invalid`, `conflict`, ...
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in or send an API token")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A failure of the server itself: the cause goes to the log, the caller gets a reference.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::now_v7().simple().to_string();
        tracing::error!(reference = %reference, error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server failed; the log has details under reference {reference}"),
        )
    }
}

impl From<steward_store::Error> for ApiError {
    fn from(e: steward_store::Error) -> Self {
        use steward_store::Error as E;
        match e {
            E::NotFound(what) => ApiError::not_found(&what),
            E::Conflict(message) => ApiError::conflict(message),
            E::Invalid(message) => ApiError::invalid(message),
            E::Backend(cause) => ApiError::internal(cause),
        }
    }
}

impl From<steward_executor::Error> for ApiError {
    fn from(e: steward_executor::Error) -> Self {
        match e {
            steward_executor::Error::Store(e) => e.into(),
            steward_executor::Error::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_inputs", message)
            }
            steward_executor::Error::Setup(cause) => ApiError::internal(cause),
            e @ steward_executor::Error::NotCreated => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
