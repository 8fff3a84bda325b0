//! The checks, by topic. Each is an `async fn(&TestDb)` that the conformance macro runs on
//! both backends.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod claims;
pub mod concurrency;
pub mod deletion;
pub mod flows;
pub mod journal;
pub mod listing;
pub mod retention;
pub mod signals;
pub mod threads;
pub mod triggers;
pub mod vault;
