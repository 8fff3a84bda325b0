//! [`run_store!`]: `RunStore` for both stores.
//!
//! Writers run in one [`Backend::write`](crate::backend::Backend::write) transaction each,
//! unless the backend has a [`Backend::run_writer`](crate::backend::Backend::run_writer) of its
//! own (SQLite), which then performs the same statements and checks.
//! On SQLite that makes them the only writer, so claims can count leases without further
//! locking; on PostgreSQL ([`Backend::ROW_LOCKS`]) writers lock the run row they change,
//! claims skip rows other executors hold locked, and count a concurrency key under its
//! advisory lock ([`Backend::lock_key`]).
//!
//! [`Backend::ROW_LOCKS`]: crate::backend::Backend::ROW_LOCKS
//! [`Backend::lock_key`]: crate::backend::Backend::lock_key

/// Implements `RunStore` for `$Store`, in a module `runs` next to the invocation.
macro_rules! run_store {
    ($Store:ident) => {
        /// `RunStore` for the store of this module's parent, from [`crate::shared`].
        mod runs {
            use async_trait::async_trait;
            use steward_engine::{Entry, Event, Timestamp};
            use steward_store::{Append, Error, NewRun, Result, RunFilter, RunRecord, RunStore, Signal};

            use super::$Store as Store;
            use crate::backend::{Backend, Tx};
            use crate::error::{db, to_json};
            use crate::rows::RowExt as _;
            use crate::{check, rows, sql};

            #[async_trait]
            impl RunStore for Store {
                async fn create_run(&self, run: NewRun, events: &[Event]) -> Result<()> {
                    // A run created under a lease is its creator's: nobody needs waking.
                    let queued = run.leased_to.is_none();
                    if let Some(writer) = self.run_writer() {
                        writer.create_run(&run, events).await?;
                        if queued {
                            self.wake_here();
                        }
                        return Ok(());
                    }
                    let mut tx = self.write().await?;
                    create_in(&mut tx, &run, events).await?;
                    if queued {
                        Store::notify(&mut tx).await?;
                    }
                    tx.commit().await.map_err(db)?;
                    if queued {
                        self.wake_here();
                    }
                    Ok(())
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
                    if let Some(writer) = self.run_writer() {
                        return writer.claim(owner, now, lease_ms, limit).await;
                    }
                    let mut tx = self.write().await?;
                    let claimed = claim_in(&mut tx, &check::Lease { owner, now, lease_ms }, limit).await?;
                    tx.commit().await.map_err(db)?;
                    Ok(claimed)
                }

                async fn heartbeat(
                    &self,
                    owner: &str,
                    runs: &[String],
                    until: Timestamp,
                ) -> Result<Vec<String>> {
                    if let Some(writer) = self.run_writer() {
                        return writer.heartbeat(owner, runs, until).await;
                    }
                    let mut tx = self.write().await?;
                    let mut lost = Vec::new();
                    for id in runs {
                        let query = sqlx::query(sql::HEARTBEAT).bind(id).bind(owner).bind(until.0);
                        if query.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                            lost.push(id.clone());
                        }
                    }
                    tx.commit().await.map_err(db)?;
                    Ok(lost)
                }

                async fn journal(&self, run_id: &str) -> Result<Vec<Entry>> {
                    if let Some(reader) = self.run_reader() {
                        return reader.journal(run_id).await;
                    }
                    let query = sqlx::query(sql::JOURNAL).bind(run_id);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(rows::entry).collect()
                }

                async fn append(&self, append: Append<'_>) -> Result<()> {
                    check::entries(append.after_seq, append.entries)?;
                    if let Some(writer) = self.run_writer() {
                        return writer.append(&append).await;
                    }
                    let mut tx = self.write().await?;
                    append_in(&mut tx, &append).await?;
                    tx.commit().await.map_err(db)
                }

                async fn create_run_with(
                    &self,
                    run: NewRun,
                    events: &[Event],
                    append: Append<'_>,
                ) -> Result<()> {
                    check::created_with(&run, &append)?;
                    if let Some(writer) = self.run_writer() {
                        return writer.create_run_with(&run, events, &append).await;
                    }
                    let mut tx = self.write().await?;
                    create_in(&mut tx, &run, events).await?;
                    append_in(&mut tx, &append).await?;
                    tx.commit().await.map_err(db)
                }

                async fn release(&self, run_id: &str, owner: &str, wake_at: Option<Timestamp>) -> Result<()> {
                    if let Some(writer) = self.run_writer() {
                        writer.release(run_id, owner, wake_at).await?;
                        self.wake_here();
                        return Ok(());
                    }
                    let mut tx = self.write().await?;
                    // On PostgreSQL the row lock orders this after any signal already updating
                    // the run, so the signal query below sees it.
                    let lease = sqlx::query(sql::lease(Store::ROW_LOCKS)).bind(run_id);
                    let lease = lease.fetch_optional(&mut *tx).await.map_err(db)?;
                    if check::releasable(run_id, owner, lease.as_ref())? {
                        let first = sqlx::query_scalar(sql::FIRST_PENDING_SIGNAL).bind(run_id);
                        let first: Option<i64> = first.fetch_one(&mut *tx).await.map_err(db)?;
                        let wake_at = rows::release_wake(wake_at.map(|t| t.0), first);
                        let query = sqlx::query(sql::RELEASE).bind(run_id).bind(wake_at);
                        query.execute(&mut *tx).await.map_err(db)?;
                        // Other executors re-read the next due time (a drained run is due now).
                        if wake_at.is_some() {
                            Self::notify(&mut tx).await?;
                        }
                    }
                    tx.commit().await.map_err(db)?;
                    self.wake_here();
                    Ok(())
                }

                async fn signal(
                    &self,
                    workspace: &str,
                    run_id: &str,
                    signal: &Signal,
                    now: Timestamp,
                ) -> Result<()> {
                    if let Some(writer) = self.run_writer() {
                        writer.signal(workspace, run_id, signal, now).await?;
                        self.wake_here();
                        return Ok(());
                    }
                    let data = to_json(signal, "signal")?;
                    let mut tx = self.write().await?;
                    let found = sqlx::query(sql::RUN_STATUS).bind(run_id).bind(workspace);
                    if found.fetch_optional(&mut *tx).await.map_err(db)?.is_none() {
                        return Err(Error::NotFound(format!("run {run_id}")));
                    }
                    let insert = sqlx::query(sql::INSERT_SIGNAL).bind(run_id).bind(workspace);
                    insert.bind(data).bind(now.0).execute(&mut *tx).await.map_err(db)?;
                    sqlx::query(sql::WAKE_RUN)
                        .bind(run_id)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    Store::notify(&mut tx).await?;
                    tx.commit().await.map_err(db)?;
                    self.wake_here();
                    Ok(())
                }

                async fn signals(&self, run_id: &str) -> Result<Vec<(i64, Signal)>> {
                    if let Some(reader) = self.run_reader() {
                        return reader.signals(run_id).await;
                    }
                    let query = sqlx::query(sql::SIGNALS).bind(run_id);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(rows::signal).collect()
                }

                async fn next_due(&self) -> Result<Option<Timestamp>> {
                    if let Some(reader) = self.run_reader() {
                        return reader.next_due().await;
                    }
                    let query = sqlx::query_scalar(sql::NEXT_DUE);
                    let due: Option<i64> = query.fetch_one(self.reader()).await.map_err(db)?;
                    Ok(due.map(Timestamp))
                }

                async fn run(&self, workspace: &str, id: &str) -> Result<RunRecord> {
                    if let Some(reader) = self.run_reader() {
                        return reader.run_record(workspace, id).await;
                    }
                    let query = sqlx::query(sql::RUN).bind(workspace).bind(id);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    rows::run_record(&row.ok_or_else(|| Error::NotFound(format!("run {id}")))?)
                }

                async fn list_runs(&self, workspace: &str, filter: &RunFilter) -> Result<Vec<RunRecord>> {
                    let mut query = sql::list_runs::<<Store as Backend>::Db>(workspace, filter);
                    let rows = query.build().fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(rows::run_record).collect()
                }

                async fn rewrite_events(&self, run_id: &str, events: &[Entry]) -> Result<()> {
                    if let Some(writer) = self.run_writer() {
                        return writer.rewrite_events(run_id, events).await;
                    }
                    let mut tx = self.write().await?;
                    for entry in events {
                        rewrite_event(&mut tx, run_id, entry).await?;
                    }
                    tx.commit().await.map_err(db)
                }
            }

            async fn create_in(tx: &mut Tx<Store>, run: &NewRun, events: &[Event]) -> Result<()> {
                let inserted = check::run_insert(run)?
                    .bind_all(sqlx::query(sql::INSERT_RUN))
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                if inserted == 0 {
                    return Err(Error::NotFound(format!("flow version {}", run.flow_version_id)));
                }
                let entries = check::first_entries(events, run.now);
                insert_entries(tx, &run.id, &entries).await
            }

            async fn append_in(tx: &mut Tx<Store>, append: &Append<'_>) -> Result<()> {
                // One round trip for the lease and the journal position: appends are the
                // per-step cost of every run.
                let lease = sqlx::query(sql::lease_and_seq(Store::ROW_LOCKS)).bind(append.run_id);
                let lease = lease.fetch_optional(&mut **tx).await.map_err(db)?;
                check::holder(append.run_id, append.owner, lease.as_ref())?;
                let last = lease.as_ref().map(|row| row.int("last_seq")).transpose()?.unwrap_or(0);
                check::after_seq(append.run_id, last, append.after_seq)?;
                insert_entries(tx, append.run_id, append.entries).await?;
                let update = check::RunChange::new(append)?;
                let query = if update.is_touch() {
                    sqlx::query(sql::TOUCH_RUN).bind(update.id().to_owned()).bind(update.now())
                } else {
                    update.bind_all(sqlx::query(sql::UPDATE_RUN))
                };
                query.execute(&mut **tx).await.map_err(db)?;
                for id in &append.update.consumed_signals {
                    let q = sqlx::query(sql::CONSUME_SIGNAL).bind(id).bind(append.run_id);
                    q.bind(append.now.0).execute(&mut **tx).await.map_err(db)?;
                }
                Ok(())
            }

            async fn insert_entries(tx: &mut Tx<Store>, run_id: &str, entries: &[Entry]) -> Result<()> {
                // Batches of events go in one statement (bounded to stay under parameter limits).
                for chunk in entries.chunks(100) {
                    let text = sql::insert_events(chunk.len());
                    // The statement text holds only numbered placeholders, never values.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
                    for entry in chunk {
                        let (kind, key, data) = rows::event_columns(&entry.event)?;
                        q = q.bind(run_id).bind(check::seq(entry.seq)?).bind(entry.at.0);
                        q = q.bind(kind).bind(key).bind(data);
                    }
                    q.execute(&mut **tx).await.map_err(db)?;
                }
                Ok(())
            }

            /// Replaces a stored event of a run; `NotFound` when the run has no such event.
            async fn rewrite_event(tx: &mut Tx<Store>, run_id: &str, entry: &Entry) -> Result<()> {
                let (kind, key, data) = rows::event_columns(&entry.event)?;
                let seq = check::seq(entry.seq)?;
                let q = sqlx::query(sql::REWRITE_EVENT).bind(run_id).bind(seq).bind(entry.at.0);
                let done = q.bind(kind).bind(key).bind(data).execute(&mut **tx).await.map_err(db)?;
                if done.rows_affected() == 0 {
                    return Err(Error::NotFound(format!("event {seq} of run {run_id}")));
                }
                Ok(())
            }

            /// Takes up to `limit` due runs for `lease`, scanning the candidates page by page.
            async fn claim_in(
                tx: &mut Tx<Store>,
                lease: &check::Lease<'_>,
                limit: usize,
            ) -> Result<Vec<RunRecord>> {
                let mut claimed = Vec::new();
                let mut cursor = check::Cursor::default();
                let batch = sql::claim_batch(limit);
                while claimed.len() < limit && !cursor.done {
                    let rows = sqlx::query(sql::claim_candidates(Store::ROW_LOCKS))
                        .bind(lease.now.0)
                        .bind(cursor.wake_at)
                        .bind(cursor.id.clone())
                        .bind(batch)
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(db)?;
                    cursor.page(rows.len(), batch);
                    for row in &rows {
                        let candidate = rows::candidate(row)?;
                        cursor.after(&candidate);
                        if claimed.len() < limit && under_limit(tx, &candidate, lease.now).await? {
                            claimed.push(take(tx, &candidate.id, lease).await?);
                        }
                    }
                }
                Ok(claimed)
            }

            /// Whether a candidate's concurrency key has room for one more leased run. The
            /// count is taken under the key's lock, held until commit, so two claims cannot
            /// both fill the last slot.
            async fn under_limit(
                tx: &mut Tx<Store>,
                candidate: &rows::Candidate,
                now: Timestamp,
            ) -> Result<bool> {
                let Some((key, limit)) = &candidate.limit else {
                    return Ok(true);
                };
                if !Store::lock_key(tx, key).await? {
                    return Ok(false);
                }
                let q = sqlx::query_scalar(sql::COUNT_LEASED).bind(key).bind(&candidate.id).bind(now.0);
                let leased: i64 = q.fetch_one(&mut **tx).await.map_err(db)?;
                Ok(leased < *limit)
            }

            async fn take(tx: &mut Tx<Store>, id: &str, lease: &check::Lease<'_>) -> Result<RunRecord> {
                let until = lease.now.plus_millis(lease.lease_ms);
                let q = sqlx::query(sql::TAKE_RUN).bind(id).bind(lease.owner).bind(until.0);
                rows::run_record(&q.bind(lease.now.0).fetch_one(&mut **tx).await.map_err(db)?)
            }
        }
    };
}

pub(crate) use run_store;
