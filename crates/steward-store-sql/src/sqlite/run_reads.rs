//! The frequent reads for [`SqliteStore`](super::SqliteStore) (runs, and what starting a run
//! reads), served by its [`Reader`] threads with the statements and row mappings the sqlx code
//! uses.

use rusqlite::types::ToSql;
use steward_engine::{Entry, Timestamp};
use steward_store::{Error, FlowVersion, Result, RunRecord, Signal, Webhook};

use super::lite::{query_all, query_opt};
use super::reader::Reader;
use crate::{rows, sql, triggers};

/// The statements below, prepared when the reader connections open.
pub(crate) const STATEMENTS: &[&str] =
    &[sql::JOURNAL, sql::SIGNALS, sql::NEXT_DUE, sql::RUN, sql::STARTABLE, triggers::WEBHOOK_BY_PATH];

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

    pub(crate) async fn startable(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Option<(FlowVersion, Option<Timestamp>)>> {
        let (workspace, name) = (workspace.to_owned(), name.to_owned());
        self.run(move |conn| {
            let params: [&dyn ToSql; 2] = [&workspace, &name];
            query_opt(conn, sql::STARTABLE, &params, |row| rows::startable(row))
        })
        .await
    }

    pub(crate) async fn webhook_by_path(&self, digest: &str) -> Result<Option<Webhook>> {
        let digest = digest.to_owned();
        self.run(move |conn| {
            query_opt(conn, triggers::WEBHOOK_BY_PATH, &[&digest], |row| triggers::webhook(row))
        })
        .await
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
