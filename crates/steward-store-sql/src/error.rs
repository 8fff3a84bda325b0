//! Turning database and JSON failures into [`steward_store::Error`].
//!
//! Messages name what failed (a table, a constraint, a column) but never the values bound to
//! a statement: those are user payloads and end up in server logs.

use serde::Serialize;
use serde::de::DeserializeOwned;
use steward_store::Error;

/// Maps a sqlx error: a missing row is `NotFound`, a unique violation is `Conflict` (someone
/// else wrote the same key first), anything else is `Backend`.
pub(crate) fn db(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::RowNotFound => Error::NotFound("row".to_owned()),
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            Error::Conflict(format!("duplicate key ({})", e.constraint().unwrap_or("unique")))
        }
        sqlx::Error::Database(e) => Error::Backend(format!(
            "database error{}: {}",
            e.code().map(|c| format!(" {c}")).unwrap_or_default(),
            e.message()
        )),
        other => Error::Backend(other.to_string()),
    }
}

pub(crate) fn migrate(err: sqlx::migrate::MigrateError) -> Error {
    Error::Backend(format!("migration failed: {err}"))
}

/// Encodes a value stored as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|e| Error::Invalid(format!("cannot encode {what}: {}", json_class(&e))))
}

/// Decodes JSON text read back from the database.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::Backend(format!(
            "stored {what} is not valid ({} at line {} column {})",
            json_class(&e),
            e.line(),
            e.column()
        ))
    })
}

/// The kind of a JSON error without its message, which may quote the payload.
fn json_class(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated",
    }
}

/// A stored integer that must fit a narrower type.
pub(crate) fn narrow<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, Error> {
    T::try_from(value).map_err(|_| Error::Backend(format!("stored {what} is out of range")))
}
