//! SQLite and PostgreSQL implementations of the `steward-store` traits.
//!
//! - [`SqliteStore`]: one file, for a single machine. Writers take turns on one connection;
//!   executors in the same process wake each other directly.
//! - [`PgStore`]: a shared server. Executors claim runs with `FOR UPDATE SKIP LOCKED` and wake
//!   each other with `LISTEN/NOTIFY`.
//!
//! Both keep the same tables (see `migrations/`), store timestamps as milliseconds and JSON as
//! text (so values come back byte for byte), and bring their schema up to date when opened.
//! [`open`] picks the backend from a URL.

mod accounts;
mod agents;
mod backend;
mod check;
mod dataflow;
mod error;
mod export;
mod postgres;
mod retention;
mod rows;
mod shared;
mod sql;
mod sqlite;
mod threads;
mod triggers;
mod vault;
mod wake;

use std::path::Path;
use std::sync::Arc;

use steward_store::{Error, Result, ServerStore};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Opens a store by URL: `postgres://` or `postgresql://` for PostgreSQL, `sqlite://PATH`,
/// `sqlite:PATH` or a plain file path for SQLite.
pub async fn open(url_or_path: &str) -> Result<Arc<dyn ServerStore>> {
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url_or_path).await?));
    }
    let path = url_or_path
        .strip_prefix("sqlite://")
        .or_else(|| url_or_path.strip_prefix("sqlite:"))
        .unwrap_or(url_or_path);
    if path.is_empty() || path.starts_with(":memory:") {
        // Executors and the CLI must see the same runs: an in-memory database cannot do that.
        return Err(Error::Invalid("SQLite needs a file path".to_owned()));
    }
    Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
}
