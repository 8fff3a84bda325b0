//! Decisions and statement parameters shared by both backends: what a call is allowed to do,
//! checked before or between its statements, and the values its statements bind.

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};
use steward_engine::{Entry, Event, RunStatus, Timestamp};
use steward_store::{Append, Error, NewRun, Result};

use crate::error::{narrow, to_json};
use crate::rows::{self, Candidate, RowExt};

pub(crate) type Q<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// The parameters of [`crate::sql::INSERT_RUN`].
#[derive(Debug)]
pub(crate) struct RunInsert {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) version: String,
    pub(crate) inputs: String,
    pub(crate) parent_run: Option<String>,
    pub(crate) parent_step: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<i64>,
    pub(crate) now: i64,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_until: Option<i64>,
}

pub(crate) fn run_insert(run: &NewRun) -> Result<RunInsert> {
    let (parent_run, parent_step) = run.parent.clone().unzip();
    Ok(RunInsert {
        id: run.id.clone(),
        workspace: run.workspace.clone(),
        version: run.flow_version_id.clone(),
        inputs: to_json(&run.inputs, "run inputs")?,
        parent_run,
        parent_step,
        key: run.concurrency_key.clone(),
        limit: run.concurrency_limit.map(i64::from),
        now: run.now.0,
        lease_owner: run.leased_to.as_ref().map(|(owner, _)| owner.clone()),
        lease_until: run.leased_to.as_ref().map(|(_, until)| until.0),
    })
}

impl RunInsert {
    pub(crate) fn bind_all<'q, DB>(self, q: Q<'q, DB>) -> Q<'q, DB>
    where
        DB: Database,
        for<'e> String: Encode<'e, DB> + Type<DB>,
        for<'e> i64: Encode<'e, DB> + Type<DB>,
        for<'e> Option<String>: Encode<'e, DB> + Type<DB>,
        for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
    {
        q.bind(self.id)
            .bind(self.workspace)
            .bind(self.version)
            .bind(self.inputs)
            .bind(self.parent_run)
            .bind(self.parent_step)
            .bind(self.key)
            .bind(self.limit)
            .bind(self.now)
            .bind(self.lease_owner)
            .bind(self.lease_until)
    }
}

/// A new run's journal: `events` numbered from 1, recorded at `now`.
pub(crate) fn first_entries(events: &[Event], now: Timestamp) -> Vec<Entry> {
    steward_store::first_entries(events, now)
}

/// A run created with its first commit: the commit is for that run, by the lease holder.
pub(crate) fn created_with(run: &NewRun, append: &Append<'_>) -> Result<()> {
    let leased_to_committer = run.leased_to.as_ref().is_some_and(|(owner, _)| owner == append.owner);
    if run.id != append.run_id || !leased_to_committer {
        return Err(Error::Invalid(
            "a run created with its first commit is that run's, leased to the committer".to_owned(),
        ));
    }
    entries(append.after_seq, append.entries)
}

pub(crate) fn lease(lease_ms: u64) -> Result<()> {
    if lease_ms == 0 {
        return Err(Error::Invalid("a lease must last at least 1 ms".to_owned()));
    }
    Ok(())
}

/// The lease `claim` gives the runs it takes: to `owner`, from `now` for `lease_ms`.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    pub owner: &'a str,
    pub now: Timestamp,
    pub lease_ms: u64,
}

/// Where `claim` is in its scan of due runs, in `(wake_at, id)` order.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub wake_at: i64,
    pub id: String,
    /// The last page was not full: there is nothing after it.
    pub done: bool,
}

impl Default for Cursor {
    fn default() -> Self {
        Self { wake_at: i64::MIN, id: String::new(), done: false }
    }
}

impl Cursor {
    pub(crate) fn page(&mut self, rows: usize, batch: i64) {
        self.done = i64::try_from(rows).map_or(true, |rows| rows < batch);
    }

    pub(crate) fn after(&mut self, candidate: &Candidate) {
        self.wake_at = candidate.wake_at;
        self.id.clone_from(&candidate.id);
    }
}

/// The entries of an append must continue the journal without gaps.
pub(crate) fn entries(after_seq: u64, entries: &[Entry]) -> Result<()> {
    for (expected, entry) in (after_seq + 1..).zip(entries) {
        if entry.seq != expected {
            return Err(Error::Invalid(format!("entry seq {} where {expected} was expected", entry.seq)));
        }
    }
    Ok(())
}

pub(crate) fn seq(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Invalid(format!("seq {seq} is too large")))
}

/// `owner` must hold the lease of the run whose `status, lease_owner` row is `lease`.
pub(crate) fn holder(run_id: &str, owner: &str, lease: Option<&impl RowExt>) -> Result<()> {
    let lease = lease.ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
    if lease.opt_text("lease_owner")?.as_deref() != Some(owner) {
        return Err(Error::Conflict(format!("run {run_id} is not leased by {owner}")));
    }
    Ok(())
}

/// Whether `release` has work to do: not for a finished run; an error when the lease is gone.
pub(crate) fn releasable(run_id: &str, owner: &str, lease: Option<&impl RowExt>) -> Result<bool> {
    let row = lease.ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
    if rows::status(&row.text("status")?)?.is_finished() {
        return Ok(false);
    }
    holder(run_id, owner, lease).map(|()| true)
}

pub(crate) fn after_seq(run_id: &str, last: i64, after_seq: u64) -> Result<()> {
    let last: u64 = narrow(last, "event seq")?;
    if last != after_seq {
        return Err(Error::Conflict(format!("journal of run {run_id} is at {last}, not {after_seq}")));
    }
    Ok(())
}

/// The parameters of [`crate::sql::UPDATE_RUN`].
#[derive(Debug)]
pub(crate) struct RunChange {
    pub(crate) id: String,
    pub(crate) status: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) now: i64,
    pub(crate) finished: bool,
}

impl RunChange {
    pub(crate) fn new(append: &Append<'_>) -> Result<Self> {
        let update = &append.update;
        let finished = update.status.is_some_and(RunStatus::is_finished);
        Ok(Self {
            id: append.run_id.to_owned(),
            status: update.status.map(|s| s.as_str().to_owned()),
            output: update.output.as_ref().map(|o| to_json(o, "run output")).transpose()?,
            error: update.error.as_ref().map(|e| to_json(e, "run error")).transpose()?,
            finished_at: update.finished_at.or(finished.then_some(append.now)).map(|t| t.0),
            now: append.now.0,
            finished,
        })
    }

    /// Nothing changes but the time of the last write: the common case, which needs no
    /// index maintenance (see [`crate::sql::TOUCH_RUN`]).
    pub(crate) fn is_touch(&self) -> bool {
        self.status.is_none() && self.output.is_none() && self.error.is_none() && self.finished_at.is_none()
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    pub(crate) fn bind_all<'q, DB>(self, q: Q<'q, DB>) -> Q<'q, DB>
    where
        DB: Database,
        for<'e> String: Encode<'e, DB> + Type<DB>,
        for<'e> i64: Encode<'e, DB> + Type<DB>,
        for<'e> Option<String>: Encode<'e, DB> + Type<DB>,
        for<'e> Option<i64>: Encode<'e, DB> + Type<DB>,
        for<'e> bool: Encode<'e, DB> + Type<DB>,
    {
        q.bind(self.id)
            .bind(self.status)
            .bind(self.output)
            .bind(self.error)
            .bind(self.finished_at)
            .bind(self.now)
            .bind(self.finished)
    }
}
