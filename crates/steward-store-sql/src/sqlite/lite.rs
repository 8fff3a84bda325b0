//! Running the shared SQL of [`crate::sql`] through rusqlite on the writer thread: binding
//! numbered parameters, reading rows with [`RowExt`], and mapping errors the way
//! [`crate::error::db`] maps sqlx's.

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, ErrorCode, Row};
use steward_store::{Error, Result};

use crate::rows::RowExt;

/// Maps a rusqlite error as [`crate::error::db`] maps the same failure from sqlx: a missing
/// row is `NotFound`, a unique violation `Conflict`, anything else `Backend`.
pub(crate) fn lite(err: rusqlite::Error) -> Error {
    match err {
        rusqlite::Error::QueryReturnedNoRows => Error::NotFound("row".to_owned()),
        rusqlite::Error::SqliteFailure(e, message) => {
            let unique = matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            );
            if e.code == ErrorCode::ConstraintViolation && unique {
                return Error::Conflict("duplicate key (unique)".to_owned());
            }
            let message = message.unwrap_or_else(|| e.to_string());
            Error::Backend(format!("database error {}: {message}", e.extended_code))
        }
        other => Error::Backend(other.to_string()),
    }
}

/// The cached statement `sql` with `params` bound by number.
///
/// The shared statements use PostgreSQL's `$1`, `$2`, ... placeholders. SQLite takes them as
/// names and numbers parameters in order of first use, which is not always the order of their
/// numbers (`INSERT_RUN` uses `$3` last), so each is bound by the number in its name, as sqlx
/// does.
fn statement<'c>(conn: &'c Connection, sql: &str, params: &[&dyn ToSql]) -> Result<CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite)?;
    for index in 1..=stmt.parameter_count() {
        let number = stmt.parameter_name(index).and_then(|n| n.strip_prefix('$')?.parse::<usize>().ok());
        let param = number
            .and_then(|n| params.get(n.checked_sub(1)?))
            .ok_or_else(|| Error::Backend(format!("statement parameter {index} has no value: {sql}")))?;
        stmt.raw_bind_parameter(index, param).map_err(lite)?;
    }
    Ok(stmt)
}

/// Runs a statement that returns no rows; returns the number of rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<usize> {
    statement(conn, sql, params)?.raw_execute().map_err(lite)
}

/// The first row of a query, read with `read`.
pub(crate) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    read: impl FnOnce(&Lite<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = statement(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    match rows.next().map_err(lite)? {
        Some(row) => read(&Lite(row)).map(Some),
        None => Ok(None),
    }
}

/// Every row of a query, each read with `read`.
pub(crate) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    mut read: impl FnMut(&Lite<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = statement(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(lite)? {
        out.push(read(&Lite(row))?);
    }
    Ok(out)
}

/// A rusqlite row, readable by column name like an sqlx row.
pub(crate) struct Lite<'r>(&'r Row<'r>);

impl Lite<'_> {
    /// A column by position, for aggregates, whose names are their SQL text.
    pub(crate) fn int_at(&self, index: usize) -> Result<i64> {
        self.0.get(index).map_err(lite)
    }

    pub(crate) fn opt_int_at(&self, index: usize) -> Result<Option<i64>> {
        self.0.get(index).map_err(lite)
    }
}

impl RowExt for Lite<'_> {
    fn text(&self, col: &str) -> Result<String> {
        self.0.get(col).map_err(lite)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.0.get(col).map_err(lite)
    }

    fn int(&self, col: &str) -> Result<i64> {
        self.0.get(col).map_err(lite)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.0.get(col).map_err(lite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT UNIQUE)").expect("create");
        conn
    }

    #[test]
    fn binds_numbered_parameters_by_their_number_not_their_position() {
        let conn = conn();
        // `$2` is used first, so SQLite numbers it 1.
        let n = execute(&conn, "INSERT INTO t (b, a) VALUES ($2, $1)", &[&7_i64, &"seven"]).expect("insert");
        assert_eq!(n, 1);
        let row = query_opt(&conn, "SELECT a, b FROM t WHERE a = $1", &[&7_i64], |r| {
            Ok((r.int("a")?, r.text("b")?))
        });
        assert_eq!(row.expect("query"), Some((7, "seven".to_owned())));
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_null() {
        let err = execute(&conn(), "INSERT INTO t (a) VALUES ($2)", &[&1_i64]).expect_err("no $2");
        assert!(matches!(err, Error::Backend(_)), "{err:?}");
    }

    #[test]
    fn unique_violations_are_conflicts() {
        let conn = conn();
        execute(&conn, "INSERT INTO t (b) VALUES ($1)", &[&"x"]).expect("first");
        let err = execute(&conn, "INSERT INTO t (b) VALUES ($1)", &[&"x"]).expect_err("duplicate");
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    }

    #[test]
    fn reads_every_row_and_nulls() {
        let conn = conn();
        execute(&conn, "INSERT INTO t (a, b) VALUES (1, NULL), (2, 'two')", &[]).expect("insert");
        let rows =
            query_all(&conn, "SELECT a, b FROM t ORDER BY a", &[], |r| Ok((r.int("a")?, r.opt_text("b")?)));
        assert_eq!(rows.expect("query"), vec![(1, None), (2, Some("two".to_owned()))]);
    }
}
