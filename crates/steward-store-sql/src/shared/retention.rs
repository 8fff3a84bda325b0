//! [`retention_store!`]: `PolicyStore` and `RetentionStore` for both stores.
//!
//! Each request is one write transaction over a bounded batch, so runs and appends wait at
//! most one batch for the write lock. A dry run performs the same statements and rolls back,
//! so what it reports is exactly what the real request would do.

/// Implements `PolicyStore` and `RetentionStore` for `$Store`, in a module `retention` next
/// to the invocation.
macro_rules! retention_store {
    ($Store:ident) => {
        /// `PolicyStore` and `RetentionStore` for the store of this module's parent.
        mod retention {
            use std::collections::BTreeMap;

            use async_trait::async_trait;
            use steward_engine::{Event, StepError, Timestamp};
            use steward_store::prune::{
                payload_summary, strip_error, strip_errors, strip_payloads, strip_signal_errors,
                strip_signal_payloads,
            };
            use steward_store::{
                AuditSweep, AuditSwept, Category, Error, FlowSource, PolicySettings, PolicyStore,
                PrunedRange, PurgeStep, Purgeable, Result, RetentionStore, RunSweep, Signal, Swept,
                WorkspacePolicy,
            };

            use super::$Store as Store;
            use crate::backend::{Backend, Tx};
            use crate::error::{db, from_json, to_json};
            use crate::retention::{self as sql, Counts};
            use crate::rows::{self, RowExt as _};

            fn store_kind() -> &'static str {
                crate::accounts::store_kind::<<Store as Backend>::Db>()
            }

            /// Commits, or in a dry run rolls back.
            async fn end(tx: Tx<Store>, dry_run: bool) -> Result<()> {
                if dry_run { tx.rollback().await.map_err(db) } else { tx.commit().await.map_err(db) }
            }

            fn batch(limit: usize) -> i64 {
                i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
            }

            #[async_trait]
            impl PolicyStore for Store {
                async fn policy(&self, workspace: &str) -> Result<WorkspacePolicy> {
                    let query = sqlx::query(sql::POLICY).bind(workspace);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    match row {
                        Some(row) => sql::policy(&row),
                        None => Ok(WorkspacePolicy::default_for(workspace)),
                    }
                }

                async fn set_policy(
                    &self,
                    workspace: &str,
                    settings: &PolicySettings,
                    by: &str,
                    now: Timestamp,
                ) -> Result<WorkspacePolicy> {
                    settings.check().map_err(Error::Invalid)?;
                    let hosts =
                        settings.egress_hosts.as_ref().map(|h| to_json(h, "egress hosts")).transpose()?;
                    let mut tx = self.write().await?;
                    sqlx::query(sql::UPSERT_POLICY)
                        .bind(workspace)
                        .bind(sql::bind_days(settings.payload_days))
                        .bind(sql::bind_days(settings.error_days))
                        .bind(sql::bind_days(settings.metadata_days))
                        .bind(sql::bind_days(settings.audit_days))
                        .bind(sql::bind_days(settings.transcript_days))
                        .bind(hosts)
                        .bind(now.0)
                        .bind(by)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    let row =
                        sqlx::query(sql::POLICY).bind(workspace).fetch_one(&mut *tx).await.map_err(db)?;
                    let stored = sql::policy(&row)?;
                    tx.commit().await.map_err(db)?;
                    Ok(stored)
                }
            }

            #[async_trait]
            impl RetentionStore for Store {
                async fn retention_workspaces(&self) -> Result<Vec<String>> {
                    let rows = sqlx::query(sql::WORKSPACES).fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(|r| r.text("id")).collect()
                }

                async fn flow_sources(&self, workspace: &str) -> Result<Vec<FlowSource>> {
                    let query = sqlx::query(sql::FLOW_SOURCES).bind(workspace);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::flow_source).collect()
                }

                async fn sweep_runs(&self, sweep: &RunSweep<'_>) -> Result<Swept> {
                    let mut tx = self.write().await?;
                    let rows = sqlx::query(sql::expired_runs(sweep.category))
                        .bind(sweep.workspace)
                        .bind(sweep.flow)
                        .bind(sweep.finished_after.0)
                        .bind(sweep.finished_until.0)
                        .bind(sweep.cursor.as_deref().unwrap_or(""))
                        .bind(batch(sweep.limit))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                    let mut counts = Counts::default();
                    let runs = rows.iter().map(ExpiredRun::read).collect::<Result<Vec<_>>>()?;
                    match sweep.category {
                        Category::Metadata => {
                            let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
                            delete_runs(&mut tx, &ids, &mut counts).await?;
                        }
                        Category::Payloads => {
                            for run in &runs {
                                strip_run_payloads(&mut tx, run, sweep.now, &mut counts).await?;
                            }
                        }
                        Category::Errors => {
                            for run in &runs {
                                strip_run_errors(&mut tx, run, sweep.now, &mut counts).await?;
                            }
                        }
                    }
                    let cursor = runs.last().map(|r| r.id.clone());
                    end(tx, sweep.dry_run).await?;
                    let done = rows.len() < sweep.limit.max(1);
                    Ok(Swept { tables: counts.tables(store_kind()), cursor, done })
                }

                async fn purgeable(&self, deleted_before: Timestamp) -> Result<Vec<Purgeable>> {
                    let query = sqlx::query(sql::PURGEABLE).bind(deleted_before.0);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::purgeable).collect()
                }

                async fn purge_step(&self, step: &PurgeStep<'_>) -> Result<Swept> {
                    let target = step.target;
                    let mut tx = self.write().await?;
                    let found = sqlx::query(sql::still_deleted(target.kind))
                        .bind(&target.id)
                        .bind(&target.workspace)
                        .bind(target.deleted_at.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                    let mut counts = Counts::default();
                    if found.is_none() {
                        // Restored (or deleted again later) since it was found: not due.
                        tx.rollback().await.map_err(db)?;
                        return Ok(Swept { done: true, ..Swept::default() });
                    }
                    // A dry run purges everything in its one transaction; otherwise one batch
                    // of runs per transaction, then the rest.
                    loop {
                        let deleted = delete_runs_of(&mut tx, target, step.limit, &mut counts).await?;
                        if deleted == step.limit.max(1) && !step.dry_run {
                            end(tx, false).await?;
                            return Ok(Swept {
                                tables: counts.tables(store_kind()),
                                cursor: None,
                                done: false,
                            });
                        }
                        if deleted < step.limit.max(1) {
                            break;
                        }
                    }
                    for &(table, statement) in sql::purge_rest(target.kind) {
                        let done = sqlx::query(statement)
                            .bind(&target.id)
                            .bind(&target.workspace)
                            .bind(&target.name)
                            .execute(&mut *tx)
                            .await
                            .map_err(db)?;
                        counts.add(table, done.rows_affected());
                    }
                    end(tx, step.dry_run).await?;
                    Ok(Swept { tables: counts.tables(store_kind()), cursor: None, done: true })
                }

                async fn sweep_audit(&self, sweep: &AuditSweep<'_>) -> Result<AuditSwept> {
                    let mut tx = self.write().await?;
                    if <Store as Backend>::ROW_LOCKS {
                        sqlx::query(crate::accounts::LOCK_AUDIT).execute(&mut *tx).await.map_err(db)?;
                    }
                    let rows = sqlx::query(sql::EXPIRED_AUDIT)
                        .bind(sweep.after_seq)
                        .bind(sweep.now.0)
                        .bind(i64::from(sweep.default_days))
                        .bind(sweep.workspace.unwrap_or(""))
                        .bind(batch(sweep.limit))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                    let entries = rows.iter().map(AuditLink::read).collect::<Result<Vec<_>>>()?;
                    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
                    for (first, last) in sql::spans(&seqs) {
                        prune_span(&mut tx, &entries[first], &entries[last], sweep.now).await?;
                    }
                    end(tx, sweep.dry_run).await?;
                    let mut removed: BTreeMap<Option<String>, u64> = BTreeMap::new();
                    for e in &entries {
                        *removed.entry(e.workspace.clone()).or_default() += 1;
                    }
                    Ok(AuditSwept {
                        store: store_kind().to_owned(),
                        removed: removed.into_iter().collect(),
                        last_seq: seqs.last().copied(),
                    })
                }

                async fn audit_pruned(&self) -> Result<Vec<PrunedRange>> {
                    let rows = sqlx::query(sql::AUDIT_PRUNED).fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::pruned_range).collect()
                }

                async fn flush_deleted(&self) -> Result<()> {
                    if store_kind() == "sqlite" {
                        sqlx::query(crate::accounts::TRUNCATE_LOG)
                            .execute(self.reader())
                            .await
                            .map_err(db)?;
                    }
                    Ok(())
                }
            }

            /// A finished run as the sweeps read it.
            struct ExpiredRun {
                id: String,
                inputs: String,
                output: Option<String>,
                error: Option<String>,
            }

            impl ExpiredRun {
                fn read(row: &impl crate::rows::RowExt) -> Result<Self> {
                    Ok(Self {
                        id: row.text("id")?,
                        inputs: row.text("inputs")?,
                        output: row.opt_text("output")?,
                        error: row.opt_text("error")?,
                    })
                }
            }

            /// Deletes a run: its journal, its signals, its children's link to it, the row.
            /// Deletes a batch of runs with one statement per table.
            async fn delete_runs(tx: &mut Tx<Store>, ids: &[String], counts: &mut Counts) -> Result<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                for &(table, statement) in sql::DELETE_RUNS {
                    // The statement text holds only numbered placeholders, never values.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql::for_ids(statement, ids.len())));
                    for id in ids {
                        query = query.bind(id);
                    }
                    let done = query.execute(&mut **tx).await.map_err(db)?;
                    counts.add(table, done.rows_affected());
                }
                Ok(())
            }

            /// Deletes up to `limit` runs of a purged object; returns how many.
            async fn delete_runs_of(
                tx: &mut Tx<Store>,
                target: &Purgeable,
                limit: usize,
                counts: &mut Counts,
            ) -> Result<usize> {
                let Some(select) = sql::runs_of(target.kind) else { return Ok(0) };
                let query = sqlx::query(select).bind(&target.id).bind(&target.workspace).bind(batch(limit));
                let rows = query.fetch_all(&mut **tx).await.map_err(db)?;
                let ids = rows.iter().map(|r| r.text("id")).collect::<Result<Vec<_>>>()?;
                delete_runs(tx, &ids, counts).await?;
                Ok(ids.len())
            }

            /// Rewrites the journal entries of a run that `strip` changes; returns how many.
            async fn rewrite_journal(
                tx: &mut Tx<Store>,
                run: &str,
                strip: fn(&mut Event) -> bool,
            ) -> Result<u64> {
                let rows =
                    sqlx::query(crate::sql::JOURNAL).bind(run).fetch_all(&mut **tx).await.map_err(db)?;
                let mut n = 0;
                for row in &rows {
                    let mut entry = rows::entry(row)?;
                    if !strip(&mut entry.event) {
                        continue;
                    }
                    let (kind, key, data) = rows::event_columns(&entry.event)?;
                    sqlx::query(crate::sql::REWRITE_EVENT)
                        .bind(run)
                        .bind(row.int("seq")?)
                        .bind(entry.at.0)
                        .bind(kind)
                        .bind(key)
                        .bind(data)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                    n += 1;
                }
                Ok(n)
            }

            /// Rewrites the signals of a run that `strip` changes; returns how many.
            async fn rewrite_signals(
                tx: &mut Tx<Store>,
                run: &str,
                strip: fn(&mut Signal) -> bool,
            ) -> Result<u64> {
                let rows = sqlx::query(sql::RUN_SIGNALS).bind(run).fetch_all(&mut **tx).await.map_err(db)?;
                let mut n = 0;
                for row in &rows {
                    let (id, mut signal) = rows::signal(row)?;
                    if strip(&mut signal) {
                        let data = to_json(&signal, "signal")?;
                        let q = sqlx::query(sql::REWRITE_SIGNAL).bind(id).bind(data);
                        q.execute(&mut **tx).await.map_err(db)?;
                        n += 1;
                    }
                }
                Ok(n)
            }

            async fn strip_run_payloads(
                tx: &mut Tx<Store>,
                run: &ExpiredRun,
                now: Timestamp,
                counts: &mut Counts,
            ) -> Result<()> {
                counts.add("run_events", rewrite_journal(tx, &run.id, strip_payloads).await?);
                counts.add("run_signals", rewrite_signals(tx, &run.id, strip_signal_payloads).await?);
                let summary = |text: &str| -> Result<String> {
                    let value: serde_json::Value = from_json(text, "run payload")?;
                    to_json(&payload_summary(&value), "run payload")
                };
                let output = run.output.as_deref().map(summary).transpose()?;
                let q = sqlx::query(sql::STRIP_RUN_PAYLOADS).bind(&run.id).bind(summary(&run.inputs)?);
                let done = q.bind(output).bind(now.0).execute(&mut **tx).await.map_err(db)?;
                counts.add("runs", done.rows_affected());
                Ok(())
            }

            async fn strip_run_errors(
                tx: &mut Tx<Store>,
                run: &ExpiredRun,
                now: Timestamp,
                counts: &mut Counts,
            ) -> Result<()> {
                counts.add("run_events", rewrite_journal(tx, &run.id, strip_errors).await?);
                counts.add("run_signals", rewrite_signals(tx, &run.id, strip_signal_errors).await?);
                let stripped = |text: &str| -> Result<String> {
                    let mut error: StepError = from_json(text, "run error")?;
                    strip_error(&mut error);
                    to_json(&error, "run error")
                };
                let error = run.error.as_deref().map(stripped).transpose()?;
                let q = sqlx::query(sql::STRIP_RUN_ERROR).bind(&run.id).bind(error).bind(now.0);
                counts.add("runs", q.execute(&mut **tx).await.map_err(db)?.rows_affected());
                Ok(())
            }

            /// An audit entry's place in the chain.
            struct AuditLink {
                seq: i64,
                workspace: Option<String>,
                prev_hash: String,
                hash: String,
            }

            impl AuditLink {
                fn read(row: &impl crate::rows::RowExt) -> Result<Self> {
                    Ok(Self {
                        seq: row.int("seq")?,
                        workspace: row.opt_text("workspace_id")?,
                        prev_hash: row.text("prev_hash")?,
                        hash: row.text("hash")?,
                    })
                }
            }

            /// Removes the consecutive entries `first..=last` and records the stretch, merged
            /// with the stretches already removed right before and after it.
            async fn prune_span(
                tx: &mut Tx<Store>,
                first: &AuditLink,
                last: &AuditLink,
                now: Timestamp,
            ) -> Result<()> {
                let (mut from, mut prev_hash) = (first.seq, first.prev_hash.clone());
                let (mut to, mut last_hash) = (last.seq, last.hash.clone());
                let before = sqlx::query(sql::PRUNED_ENDING_AT).bind(from - 1);
                if let Some(row) = before.fetch_optional(&mut **tx).await.map_err(db)? {
                    (from, prev_hash) = (row.int("first_seq")?, row.text("prev_hash")?);
                    sqlx::query(sql::DELETE_PRUNED).bind(from).execute(&mut **tx).await.map_err(db)?;
                }
                let after = sqlx::query(sql::PRUNED_STARTING_AT).bind(to + 1);
                if let Some(row) = after.fetch_optional(&mut **tx).await.map_err(db)? {
                    sqlx::query(sql::DELETE_PRUNED).bind(to + 1).execute(&mut **tx).await.map_err(db)?;
                    (to, last_hash) = (row.int("last_seq")?, row.text("last_hash")?);
                }
                let delete = sqlx::query(sql::DELETE_AUDIT_SPAN).bind(first.seq).bind(last.seq);
                delete.execute(&mut **tx).await.map_err(db)?;
                sqlx::query(sql::INSERT_PRUNED)
                    .bind(from)
                    .bind(to)
                    .bind(prev_hash)
                    .bind(last_hash)
                    .bind(now.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok(())
            }
        }
    };
}

pub(crate) use retention_store;
