//! Why a step failed, in a form retry policies can select on.

use serde::{Deserialize, Serialize};
use steward_flow::RetryOn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The attempt took longer than the step's timeout.
    Timeout,
    /// The request could not be sent or no response came back.
    Network,
    /// The response status was not one the step expects.
    Http,
    /// An expression failed to evaluate.
    Expression,
    /// JavaScript threw.
    Code,
    /// A sandbox limit (memory, CPU) was hit.
    Limit,
    /// A person rejected an approval (or it timed out as rejected).
    Rejected,
    /// The run was cancelled.
    Cancelled,
    /// The executor died while running the step too many times.
    Interrupted,
    /// The step's input was invalid (for example a bad URL).
    Input,
    /// A called flow failed.
    Child,
    /// A policy refused the step (for example egress to a forbidden address).
    Refused,
    /// A budget ran out: an agent's turns, tokens or cost per run, or the workspace's daily
    /// or monthly allowance. Nothing over the limit was sent.
    Budget,
    /// A model provider failed (bad key, unknown model, or errors after its retries).
    Model,
    /// A bug or an unexpected condition.
    Internal,
}

/// A step's error: kind, message and, for HTTP, the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The step the error started in, when it came up from a nested step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None, step: None }
    }

    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self { status: Some(status), ..Self::new(ErrorKind::Http, message) }
    }

    /// Whether a retry policy's `on` list selects this error.
    pub fn retryable(&self, on: &[RetryOn]) -> bool {
        let status = self.status.unwrap_or(0);
        on.iter().any(|class| match class {
            RetryOn::Timeout => self.kind == ErrorKind::Timeout,
            RetryOn::Network => self.kind == ErrorKind::Network,
            RetryOn::Http4xx => self.kind == ErrorKind::Http && (400..500).contains(&status),
            RetryOn::Http429 => self.kind == ErrorKind::Http && status == 429,
            RetryOn::Http5xx => self.kind == ErrorKind::Http && (500..600).contains(&status),
            RetryOn::Code => matches!(self.kind, ErrorKind::Code | ErrorKind::Limit),
            RetryOn::Any => !matches!(
                self.kind,
                ErrorKind::Cancelled | ErrorKind::Rejected | ErrorKind::Interrupted | ErrorKind::Refused
            ),
        })
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(step) = &self.step {
            write!(f, "step `{step}`: ")?;
        }
        f.write_str(&self.message)
    }
}
