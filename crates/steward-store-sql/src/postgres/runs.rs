//! [`RunStore`] for [`PgStore`]. Writers lock the run row they change (`FOR UPDATE`), claims
//! skip rows other executors hold locked, and the concurrency count of a key is taken under
//! that key's advisory lock.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};
use steward_engine::{Entry, Event, Timestamp};
use steward_store::{Append, Error, NewRun, Result, RunFilter, RunRecord, RunStore, Signal};

use super::PgStore;
use crate::error::{db, to_json};
use crate::{check, rows, sql};

type Tx = Transaction<'static, Postgres>;

/// Wakes the listeners of this schema when the transaction commits.
const NOTIFY: &str = "SELECT pg_notify('steward_wakeup', current_schema()::text)";

/// Takes the advisory lock of a concurrency key unless another claim holds it.
const TRY_LOCK_KEY: &str = "SELECT pg_try_advisory_xact_lock(hashtext($1))";

#[async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, run: NewRun, events: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        let inserted = check::run_insert(&run)?
            .bind_all(sqlx::query(sql::INSERT_RUN))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if inserted == 0 {
            return Err(Error::NotFound(format!("flow version {}", run.flow_version_id)));
        }
        let entries = check::first_entries(events, run.now);
        insert_entries(&mut tx, &run.id, &entries).await?;
        sqlx::query(NOTIFY).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        check::lease(lease_ms)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut claimed = Vec::new();
        let mut cursor = check::Cursor::default();
        let batch = sql::claim_batch(limit);
        while claimed.len() < limit && !cursor.done {
            let rows = sqlx::query(sql::CLAIM_CANDIDATES_LOCKED)
                .bind(now.0)
                .bind(cursor.wake_at)
                .bind(cursor.id.clone())
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            cursor.page(rows.len(), batch);
            for row in &rows {
                let candidate = rows::candidate(row)?;
                cursor.after(&candidate);
                if claimed.len() < limit && under_limit(&mut tx, &candidate, now).await? {
                    claimed.push(take(&mut tx, &candidate.id, owner, now, lease_ms).await?);
                }
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn heartbeat(&self, owner: &str, runs: &[String], until: Timestamp) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut lost = Vec::new();
        for id in runs {
            let res = sqlx::query(sql::HEARTBEAT).bind(id).bind(owner).bind(until.0).execute(&mut *tx).await;
            if res.map_err(db)?.rows_affected() == 0 {
                lost.push(id.clone());
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(lost)
    }

    async fn journal(&self, run_id: &str) -> Result<Vec<Entry>> {
        let rows = sqlx::query(sql::JOURNAL).bind(run_id).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(rows::entry).collect()
    }

    async fn append(&self, append: Append<'_>) -> Result<()> {
        check::entries(append.after_seq, append.entries)?;
        let mut tx = self.begin().await?;
        let lease =
            sqlx::query(sql::LEASE_LOCKED).bind(append.run_id).fetch_optional(&mut *tx).await.map_err(db)?;
        check::holder(append.run_id, append.owner, lease.as_ref())?;
        let last: i64 =
            sqlx::query_scalar(sql::LAST_SEQ).bind(append.run_id).fetch_one(&mut *tx).await.map_err(db)?;
        check::after_seq(append.run_id, last, append.after_seq)?;
        insert_entries(&mut tx, append.run_id, append.entries).await?;
        let update = check::RunChange::new(&append)?;
        update.bind_all(sqlx::query(sql::UPDATE_RUN)).execute(&mut *tx).await.map_err(db)?;
        for id in &append.update.consumed_signals {
            let q = sqlx::query(sql::CONSUME_SIGNAL).bind(id).bind(append.run_id).bind(append.now.0);
            q.execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn release(&self, run_id: &str, owner: &str, wake_at: Option<Timestamp>) -> Result<()> {
        let mut tx = self.begin().await?;
        // The row lock orders this after any signal already updating the run, so the signal
        // query below sees it.
        let lease = sqlx::query(sql::LEASE_LOCKED).bind(run_id).fetch_optional(&mut *tx).await.map_err(db)?;
        if check::releasable(run_id, owner, lease.as_ref())? {
            let first: Option<i64> = sqlx::query_scalar(sql::FIRST_PENDING_SIGNAL)
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let wake_at = rows::release_wake(wake_at.map(|t| t.0), first);
            sqlx::query(sql::RELEASE).bind(run_id).bind(wake_at).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn signal(&self, workspace: &str, run_id: &str, signal: &Signal, now: Timestamp) -> Result<()> {
        let data = to_json(signal, "signal")?;
        let mut tx = self.begin().await?;
        let found = sqlx::query(sql::RUN_STATUS).bind(run_id).bind(workspace).fetch_optional(&mut *tx).await;
        if found.map_err(db)?.is_none() {
            return Err(Error::NotFound(format!("run {run_id}")));
        }
        let insert = sqlx::query(sql::INSERT_SIGNAL).bind(run_id).bind(workspace).bind(data).bind(now.0);
        insert.execute(&mut *tx).await.map_err(db)?;
        sqlx::query(sql::WAKE_RUN).bind(run_id).bind(now.0).execute(&mut *tx).await.map_err(db)?;
        sqlx::query(NOTIFY).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn signals(&self, run_id: &str) -> Result<Vec<(i64, Signal)>> {
        let rows = sqlx::query(sql::SIGNALS).bind(run_id).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(rows::signal).collect()
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        let due: Option<i64> = sqlx::query_scalar(sql::NEXT_DUE).fetch_one(&self.pool).await.map_err(db)?;
        Ok(due.map(Timestamp))
    }

    async fn run(&self, workspace: &str, id: &str) -> Result<RunRecord> {
        let row =
            sqlx::query(sql::RUN).bind(workspace).bind(id).fetch_optional(&self.pool).await.map_err(db)?;
        rows::run_record(&row.ok_or_else(|| Error::NotFound(format!("run {id}")))?)
    }

    async fn list_runs(&self, workspace: &str, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let mut query = sql::list_runs::<Postgres>(workspace, filter);
        let rows = query.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(rows::run_record).collect()
    }

    async fn rewrite_events(&self, run_id: &str, events: &[Entry]) -> Result<()> {
        let mut tx = self.begin().await?;
        for entry in events {
            let (kind, key, data) = rows::event_columns(&entry.event)?;
            let seq = check::seq(entry.seq)?;
            let q = sqlx::query(sql::REWRITE_EVENT)
                .bind(run_id)
                .bind(seq)
                .bind(entry.at.0)
                .bind(kind)
                .bind(key)
                .bind(data);
            if q.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                return Err(Error::NotFound(format!("event {seq} of run {run_id}")));
            }
        }
        tx.commit().await.map_err(db)
    }
}

async fn insert_entries(tx: &mut Tx, run_id: &str, entries: &[Entry]) -> Result<()> {
    for entry in entries {
        let (kind, key, data) = rows::event_columns(&entry.event)?;
        let q = sqlx::query(sql::INSERT_EVENT).bind(run_id).bind(check::seq(entry.seq)?).bind(entry.at.0);
        q.bind(kind).bind(key).bind(data).execute(&mut **tx).await.map_err(db)?;
    }
    Ok(())
}

/// Whether a candidate's concurrency key has room for one more leased run. Counting happens
/// under the key's advisory lock, held until commit, so two claims cannot both fill the last
/// slot; if another claim holds the lock the candidate is left for a later claim.
async fn under_limit(tx: &mut Tx, candidate: &rows::Candidate, now: Timestamp) -> Result<bool> {
    let Some((key, limit)) = &candidate.limit else {
        return Ok(true);
    };
    let locked: bool = sqlx::query_scalar(TRY_LOCK_KEY).bind(key).fetch_one(&mut **tx).await.map_err(db)?;
    if !locked {
        return Ok(false);
    }
    let q = sqlx::query_scalar(sql::COUNT_LEASED).bind(key).bind(&candidate.id).bind(now.0);
    let leased: i64 = q.fetch_one(&mut **tx).await.map_err(db)?;
    Ok(leased < *limit)
}

async fn take(tx: &mut Tx, id: &str, owner: &str, now: Timestamp, lease_ms: u64) -> Result<RunRecord> {
    let until = now.plus_millis(lease_ms);
    let q = sqlx::query(sql::TAKE_RUN).bind(id).bind(owner).bind(until.0).bind(now.0);
    rows::run_record(&q.fetch_one(&mut **tx).await.map_err(db)?)
}
