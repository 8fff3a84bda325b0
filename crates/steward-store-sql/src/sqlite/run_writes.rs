//! The run writes of [`SqliteStore`](super::SqliteStore), performed on its [`Writer`] thread.
//!
//! Each method mirrors the sqlx version in `shared/runs.rs`: the same statements from
//! [`crate::sql`], the same checks from [`crate::check`] and the same rows from
//! [`crate::rows`], run synchronously on the writer's connection. What can be prepared
//! without the database (JSON encoding, parameters) is done by the caller, so the writer
//! thread, which every write of the process waits for, does only database work.
//! The SQLite flavour of the shared code applies: no row locks, and `claim` needs no key lock
//! because the writer is alone.

use rusqlite::Connection;
use rusqlite::types::ToSql;
use steward_engine::{Entry, Event, Timestamp};
use steward_store::{Append, Error, NewRun, Result, RunRecord, Signal};

use super::lite::{Lite, execute, query_all, query_opt};
use super::writer::Writer;
use crate::error::to_json;
use crate::rows::{self, RowExt as _};
use crate::{check, sql};

/// The statements below, prepared when the writer's connection opens (with the inserts of
/// events, whose text is built at run time).
pub(crate) const STATEMENTS: &[&str] = &[
    sql::INSERT_RUN,
    sql::INSERT_FINISHED_RUN,
    sql::CLAIM_CANDIDATES,
    sql::COUNT_LEASED,
    sql::TAKE_RUN,
    sql::HEARTBEAT,
    sql::LEASE_AND_SEQ,
    sql::TOUCH_RUN,
    sql::UPDATE_RUN,
    sql::CONSUME_SIGNAL,
    sql::LEASE,
    sql::FIRST_PENDING_SIGNAL,
    sql::RELEASE,
    sql::RUN_STATUS,
    sql::INSERT_SIGNAL,
    sql::WAKE_RUN,
    sql::REWRITE_EVENT,
];

/// A journal entry as its `run_events` columns.
struct EventRow {
    seq: i64,
    at: i64,
    kind: &'static str,
    key: Option<String>,
    data: String,
}

fn event_rows(entries: &[Entry]) -> Result<Vec<EventRow>> {
    entries
        .iter()
        .map(|entry| {
            let (kind, key, data) = rows::event_columns(&entry.event)?;
            Ok(EventRow { seq: check::seq(entry.seq)?, at: entry.at.0, kind, key, data })
        })
        .collect()
}

impl Writer {
    pub(crate) async fn create_run(&self, run: &NewRun, events: &[Event]) -> Result<()> {
        let create = CreateWrite::new(run, events)?;
        self.run(move |conn| create.apply(conn)).await
    }

    /// `create_run`, then `append`, in one transaction.
    pub(crate) async fn create_run_with(
        &self,
        run: &NewRun,
        events: &[Event],
        append: &Append<'_>,
    ) -> Result<()> {
        let create = CreateWrite::new(run, events)?;
        let write = AppendWrite::new(append)?;
        if write.change.finished && write.consumed.is_empty() {
            return self.run(move |conn| create.apply_finished(conn, &write)).await;
        }
        self.run(move |conn| {
            create.apply(conn)?;
            write.apply(conn)
        })
        .await
    }

    pub(crate) async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let owner = owner.to_owned();
        self.run(move |conn| claim(conn, &check::Lease { owner: &owner, now, lease_ms }, limit)).await
    }

    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        runs: &[String],
        until: Timestamp,
    ) -> Result<Vec<String>> {
        let (owner, runs) = (owner.to_owned(), runs.to_vec());
        self.run(move |conn| {
            let mut lost = Vec::new();
            for id in runs {
                if execute(conn, sql::HEARTBEAT, &[&id, &owner, &until.0])? == 0 {
                    lost.push(id);
                }
            }
            Ok(lost)
        })
        .await
    }

    pub(crate) async fn append(&self, append: &Append<'_>) -> Result<()> {
        let write = AppendWrite::new(append)?;
        self.run(move |conn| write.apply(conn)).await
    }

    pub(crate) async fn release(&self, run_id: &str, owner: &str, wake_at: Option<Timestamp>) -> Result<()> {
        let (run_id, owner) = (run_id.to_owned(), owner.to_owned());
        self.run(move |conn| {
            let releasable =
                query_opt(conn, sql::LEASE, &[&run_id], |row| check::releasable(&run_id, &owner, Some(row)))?;
            let releasable = match releasable {
                Some(releasable) => releasable,
                None => check::releasable(&run_id, &owner, None::<&Lite<'_>>)?,
            };
            if releasable {
                let first = query_opt(conn, sql::FIRST_PENDING_SIGNAL, &[&run_id], |r| r.opt_int_at(0))?;
                let wake_at = rows::release_wake(wake_at.map(|t| t.0), first.flatten());
                execute(conn, sql::RELEASE, &[&run_id, &wake_at])?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn signal(
        &self,
        workspace: &str,
        run_id: &str,
        signal: &Signal,
        now: Timestamp,
    ) -> Result<()> {
        let data = to_json(signal, "signal")?;
        let (workspace, run_id) = (workspace.to_owned(), run_id.to_owned());
        self.run(move |conn| {
            if query_opt(conn, sql::RUN_STATUS, &[&run_id, &workspace], |_| Ok(()))?.is_none() {
                return Err(Error::NotFound(format!("run {run_id}")));
            }
            execute(conn, sql::INSERT_SIGNAL, &[&run_id, &workspace, &data, &now.0])?;
            execute(conn, sql::WAKE_RUN, &[&run_id, &now.0])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn rewrite_events(&self, run_id: &str, events: &[Entry]) -> Result<()> {
        let (run_id, rows) = (run_id.to_owned(), event_rows(events)?);
        self.run(move |conn| {
            for row in &rows {
                let params: [&dyn ToSql; 6] = [&run_id, &row.seq, &row.at, &row.kind, &row.key, &row.data];
                if execute(conn, sql::REWRITE_EVENT, &params)? == 0 {
                    return Err(Error::NotFound(format!("event {} of run {run_id}", row.seq)));
                }
            }
            Ok(())
        })
        .await
    }
}

/// An `append`, owned so that it can move to the writer thread.
/// A new run and its first entries, ready for the writer.
struct CreateWrite {
    insert: check::RunInsert,
    entries: Vec<EventRow>,
}

impl CreateWrite {
    fn new(run: &NewRun, events: &[Event]) -> Result<Self> {
        let insert = check::run_insert(run)?;
        let entries = event_rows(&check::first_entries(events, run.now))?;
        Ok(CreateWrite { insert, entries })
    }

    /// The parameters `$1`..`$9` both inserts share, then `more`.
    fn params<'a>(&'a self, more: &[&'a dyn ToSql]) -> Vec<&'a dyn ToSql> {
        let i = &self.insert;
        let mut params: Vec<&dyn ToSql> = vec![
            &i.id,
            &i.workspace,
            &i.version,
            &i.inputs,
            &i.parent_run,
            &i.parent_step,
            &i.key,
            &i.limit,
            &i.now,
        ];
        params.extend_from_slice(more);
        params
    }

    fn apply(&self, conn: &Connection) -> Result<()> {
        let i = &self.insert;
        let params = self.params(&[&i.lease_owner, &i.lease_until]);
        if execute(conn, sql::INSERT_RUN, &params)? == 0 {
            return Err(Error::NotFound(format!("flow version {}", i.version)));
        }
        insert_events(conn, &i.id, &self.entries)
    }

    /// [`CreateWrite::apply`] then [`AppendWrite::apply`] for a run that ends in `end`: the
    /// row goes in as it ends, so the lease and due-time index entries an insert and an update
    /// would add and then remove are never written. `end` must follow the first entries (the
    /// caller checked that it is this run's, by the lease holder: `check::created_with`).
    fn apply_finished(&self, conn: &Connection, end: &AppendWrite) -> Result<()> {
        let (i, c) = (&self.insert, &end.change);
        check::after_seq(&i.id, self.entries.len() as i64, end.after_seq)?;
        let params = self.params(&[&c.status, &c.output, &c.error, &c.finished_at, &c.now]);
        if execute(conn, sql::INSERT_FINISHED_RUN, &params)? == 0 {
            return Err(Error::NotFound(format!("flow version {}", i.version)));
        }
        insert_events(conn, &i.id, &self.entries)?;
        insert_events(conn, &i.id, &end.entries)
    }
}

/// An append, ready for the writer.
struct AppendWrite {
    run_id: String,
    owner: String,
    after_seq: u64,
    entries: Vec<EventRow>,
    change: check::RunChange,
    consumed: Vec<i64>,
    now: i64,
}

impl AppendWrite {
    fn new(append: &Append<'_>) -> Result<Self> {
        Ok(AppendWrite {
            run_id: append.run_id.to_owned(),
            owner: append.owner.to_owned(),
            after_seq: append.after_seq,
            entries: event_rows(append.entries)?,
            change: check::RunChange::new(append)?,
            consumed: append.update.consumed_signals.clone(),
            now: append.now.0,
        })
    }

    fn apply(&self, conn: &Connection) -> Result<()> {
        let id = &self.run_id;
        // The lease and the journal position in one statement, as in the shared code.
        let last = query_opt(conn, sql::LEASE_AND_SEQ, &[id], |row| {
            check::holder(id, &self.owner, Some(row))?;
            row.int("last_seq")
        })?;
        let Some(last) = last else {
            return check::holder(id, &self.owner, None::<&Lite<'_>>);
        };
        check::after_seq(id, last, self.after_seq)?;
        insert_events(conn, id, &self.entries)?;
        let c = &self.change;
        if c.is_touch() {
            execute(conn, sql::TOUCH_RUN, &[&c.id, &c.now])?;
        } else {
            let params: [&dyn ToSql; 7] =
                [&c.id, &c.status, &c.output, &c.error, &c.finished_at, &c.now, &c.finished];
            execute(conn, sql::UPDATE_RUN, &params)?;
        }
        for signal in &self.consumed {
            execute(conn, sql::CONSUME_SIGNAL, &[signal, id, &self.now])?;
        }
        Ok(())
    }
}

/// Events go in with one statement per [`INSERT_BATCH`] of them (a step's commit carries three);
/// the statement for each size is prepared once and cached.
fn insert_events(conn: &Connection, run_id: &str, entries: &[EventRow]) -> Result<()> {
    for chunk in entries.chunks(INSERT_BATCH) {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 6);
        for e in chunk {
            params.extend([&run_id as &dyn ToSql, &e.seq, &e.at, &e.kind, &e.key, &e.data]);
        }
        execute(conn, insert_sql(chunk.len()), &params)?;
    }
    Ok(())
}

/// The most events one insert statement carries.
const INSERT_BATCH: usize = 8;

/// The insert of `n` events (1 to [`INSERT_BATCH`]).
pub(crate) fn insert_sql(n: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (1..=INSERT_BATCH).map(sql::insert_events).collect());
    SQL.get(n.saturating_sub(1)).map_or("", String::as_str)
}

/// `claim_in` of the shared code: takes up to `limit` due runs, page by page.
fn claim(conn: &Connection, lease: &check::Lease<'_>, limit: usize) -> Result<Vec<RunRecord>> {
    let mut claimed = Vec::new();
    let mut cursor = check::Cursor::default();
    let batch = sql::claim_batch(limit);
    while claimed.len() < limit && !cursor.done {
        let params: [&dyn ToSql; 4] = [&lease.now.0, &cursor.wake_at, &cursor.id, &batch];
        let candidates = query_all(conn, sql::CLAIM_CANDIDATES, &params, |row| rows::candidate(row))?;
        cursor.page(candidates.len(), batch);
        for candidate in &candidates {
            cursor.after(candidate);
            if claimed.len() < limit && under_limit(conn, candidate, lease.now)? {
                claimed.push(take(conn, &candidate.id, lease)?);
            }
        }
    }
    Ok(claimed)
}

/// Whether a candidate's concurrency key has room for one more leased run; the writer is
/// alone, so nothing can fill the slot between this count and the take.
fn under_limit(conn: &Connection, candidate: &rows::Candidate, now: Timestamp) -> Result<bool> {
    let Some((key, limit)) = &candidate.limit else {
        return Ok(true);
    };
    let leased = query_opt(conn, sql::COUNT_LEASED, &[key, &candidate.id, &now.0], |r| r.int_at(0))?;
    Ok(leased.unwrap_or(0) < *limit)
}

fn take(conn: &Connection, id: &str, lease: &check::Lease<'_>) -> Result<RunRecord> {
    let until = lease.now.plus_millis(lease.lease_ms);
    let params: [&dyn ToSql; 4] = [&id, &lease.owner, &until.0, &lease.now.0];
    query_opt(conn, sql::TAKE_RUN, &params, |row| rows::run_record(row))?
        .ok_or_else(|| Error::NotFound("row".to_owned()))
}
