//! Step adapters: the code that performs a step's side effects or computation.
//!
//! Everything here is called by the executor with already-templated inputs; nothing here
//! touches the store or the engine.

pub mod code;
pub mod credential;
pub mod egress;
pub mod http;
pub mod oauth;
