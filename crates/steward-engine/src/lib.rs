//! The deterministic run engine.
//!
//! A run is a journal of [`Event`]s; its [`RunState`] is their fold. The [`Engine`] takes the
//! state, an input (the executor's outcome for a step, a cancellation, an approval, the time)
//! and returns the events that follow. There is no clock, randomness or I/O in this crate: time
//! is a parameter, retry jitter is a hash of the run and step, and replaying a journal always
//! rebuilds the same state.

mod engine;
mod error;
mod event;
mod index;
mod plan;
mod retry;
mod state;
mod time;
mod transitions;

pub use engine::{Engine, EngineError, MAX_INTERRUPTIONS, Outcome, Work};
pub use error::{ErrorKind, StepError};
pub use event::{Entry, Event, RunStatus};
pub use plan::{Block, BlockId, BlockRole, ErrorMode, Node, NodeId, NodeKind, Plan, ROOT};
pub use retry::delay_ms;
pub use state::{BlockInstance, Role, RunState, StepState, StepStatus, split_key};
pub use time::Timestamp;
