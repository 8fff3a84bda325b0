//! Reading records out of result rows, the same way on both backends, and building the
//! records that are written.
//!
//! Both schemas use the same column names and only TEXT and 64-bit INTEGER/BIGINT columns,
//! so one set of mapping functions serves SQLite and PostgreSQL rows.

use sqlx::{ColumnIndex, Decode, Row, Type};
use steward_engine::{Entry, Event, RunStatus, StepError, Timestamp};
use steward_store::{Error, FlowSummary, FlowVersion, NewFlowVersion, Result, RunRecord, Signal};

use crate::error::{db, from_json, narrow};

/// Typed column access by name.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
}

impl<R> RowExt for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(db)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(db)
    }

    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(db)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(db)
    }
}

pub(crate) fn flow_version(row: &impl RowExt) -> Result<FlowVersion> {
    Ok(FlowVersion {
        id: row.text("id")?,
        workspace: row.text("workspace_id")?,
        flow_id: row.text("flow_id")?,
        name: row.text("name")?,
        version: row.int("version")?,
        file_name: row.text("file_name")?,
        source: row.text("source")?,
        digest: row.text("digest")?,
        concurrency: row.opt_int("concurrency")?.map(|c| narrow(c, "concurrency")).transpose()?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// A row of [`crate::sql::STARTABLE`].
pub(crate) fn startable(row: &impl RowExt) -> Result<(FlowVersion, Option<Timestamp>)> {
    Ok((flow_version(row)?, row.opt_int("disabled_at")?.map(Timestamp)))
}

pub(crate) fn flow_summary(row: &impl RowExt) -> Result<FlowSummary> {
    Ok(FlowSummary {
        id: row.text("id")?,
        name: row.text("name")?,
        latest_version: row.int("latest_version")?,
        updated_at: Timestamp(row.int("updated_at")?),
        disabled_at: row.opt_int("disabled_at")?.map(Timestamp),
        deleted_at: row.opt_int("deleted_at")?.map(Timestamp),
    })
}

pub(crate) fn run_record(row: &impl RowExt) -> Result<RunRecord> {
    let output = row.opt_text("output")?;
    let error = row.opt_text("error")?;
    Ok(RunRecord {
        id: row.text("id")?,
        workspace: row.text("workspace_id")?,
        flow_version_id: row.text("flow_version_id")?,
        flow_name: row.text("flow_name")?,
        status: status(&row.text("status")?)?,
        output: output.map(|o| from_json(&o, "run output")).transpose()?,
        error: error.map(|e| from_json::<StepError>(&e, "run error")).transpose()?,
        parent_run_id: row.opt_text("parent_run_id")?,
        parent_step_key: row.opt_text("parent_step_key")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
        finished_at: row.opt_int("finished_at")?.map(Timestamp),
        wake_at: row.opt_int("wake_at")?.map(Timestamp),
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires_at: row.opt_int("lease_expires_at")?.map(Timestamp),
    })
}

pub(crate) fn entry(row: &impl RowExt) -> Result<Entry> {
    Ok(Entry {
        seq: narrow(row.int("seq")?, "event seq")?,
        at: Timestamp(row.int("at")?),
        event: from_json::<Event>(&row.text("data")?, "event")?,
    })
}

pub(crate) fn signal(row: &impl RowExt) -> Result<(i64, Signal)> {
    Ok((row.int("id")?, from_json(&row.text("data")?, "signal")?))
}

pub(crate) fn status(text: &str) -> Result<RunStatus> {
    RunStatus::parse(text).ok_or_else(|| Error::Backend("stored run status is unknown".to_owned()))
}

/// A run `claim` may take, with what it needs to check the run's concurrency limit.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub id: String,
    pub wake_at: i64,
    /// The concurrency key and limit, when the run has both.
    pub limit: Option<(String, i64)>,
}

pub(crate) fn candidate(row: &impl RowExt) -> Result<Candidate> {
    let key = row.opt_text("concurrency_key")?;
    let limit = row.opt_int("concurrency_limit")?;
    Ok(Candidate { id: row.text("id")?, wake_at: row.int("wake_at")?, limit: key.zip(limit) })
}

/// The record of a new version of `flow_id`, numbered `version`.
pub(crate) fn new_version(new: NewFlowVersion, flow_id: String, version: i64) -> FlowVersion {
    FlowVersion {
        id: uuid::Uuid::now_v7().to_string(),
        workspace: new.workspace,
        flow_id,
        name: new.name,
        version,
        file_name: new.file_name,
        source: new.source,
        digest: new.digest,
        concurrency: new.concurrency,
        created_at: new.now,
    }
}

/// Where a released run waits until: its own time or, when signals arrived that nobody
/// consumed yet, the first of those, so a signal sent while the run was leased is not lost.
pub(crate) fn release_wake(wake_at: Option<i64>, first_signal: Option<i64>) -> Option<i64> {
    match (wake_at, first_signal) {
        (Some(w), Some(s)) => Some(w.min(s)),
        (w, s) => w.or(s),
    }
}

/// The stored columns of an event: `kind`, `step_key` and `data`.
pub(crate) fn event_columns(event: &Event) -> Result<(&'static str, Option<String>, String)> {
    Ok((event.kind(), event.key().map(str::to_owned), crate::error::to_json(event, "event")?))
}
