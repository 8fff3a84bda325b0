//! The frequent reads of runs for [`SqliteStore`](super::SqliteStore), served by its
//! [`Reader`] threads with the statements and row mappings the sqlx code uses.

use rusqlite::types::ToSql;
use steward_engine::{Entry, Timestamp};
use steward_store::{Error, Result, RunRecord, Signal};

use super::lite::{query_all, query_opt};
use super::reader::Reader;
use crate::{rows, sql};

/// The statements below, prepared when the reader connections open.
pub(crate) const STATEMENTS: &[&str] = &[sql::JOURNAL, sql::SIGNALS, sql::NEXT_DUE, sql::RUN];

impl Reader {
    pub(crate) async fn journal(&self, run_id: &str) -> Result<Vec<Entry>> {
        let run_id = run_id.to_owned();
        self.run(move |conn| query_all(conn, sql::JOURNAL, &[&run_id], |row| rows::entry(row))).await
    }

    pub(crate) async fn signals(&self, run_id: &str) -> Result<Vec<(i64, Signal)>> {
        let run_id = run_id.to_owned();
        self.run(move |conn| query_all(conn, sql::SIGNALS, &[&run_id], |row| rows::signal(row))).await
    }

    pub(crate) async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.run(|conn| query_opt(conn, sql::NEXT_DUE, &[], |row| row.opt_int_at(0)))
            .await
            .map(|due| due.flatten().map(Timestamp))
    }

    pub(crate) async fn run_record(&self, workspace: &str, id: &str) -> Result<RunRecord> {
        let (workspace, id) = (workspace.to_owned(), id.to_owned());
        self.run(move |conn| {
            let params: [&dyn ToSql; 2] = [&workspace, &id];
            query_opt(conn, sql::RUN, &params, |row| rows::run_record(row))?
                .ok_or_else(|| Error::NotFound(format!("run {id}")))
        })
        .await
    }
}
