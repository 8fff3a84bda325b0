//! [`trigger_store!`]: `TriggerStore` for both stores.

/// Implements `TriggerStore` for `$Store`, in a module `triggers` next to the invocation.
macro_rules! trigger_store {
    ($Store:ident) => {
        /// `TriggerStore` for the store of this module's parent.
        mod triggers {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{Error, Result, Schedule, ScheduleStore, TriggerStore, Webhook};

            use super::$Store as Store;
            use crate::backend::Backend;
            use crate::error::{db, to_json};
            use crate::rows::RowExt as _;
            use crate::triggers as sql;

            #[async_trait]
            impl TriggerStore for Store {
                async fn create_webhook(&self, w: &Webhook) -> Result<()> {
                    let query = sqlx::query(sql::INSERT_WEBHOOK)
                        .bind(&w.id)
                        .bind(&w.workspace_id)
                        .bind(&w.flow_name)
                        .bind(&w.path_digest)
                        .bind(&w.scheme)
                        .bind(&w.signing_secret)
                        .bind(&w.mode)
                        .bind(i64::try_from(w.sync_timeout_ms).unwrap_or(i64::MAX))
                        .bind(&w.created_by)
                        .bind(w.created_at.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn webhook_by_path(&self, digest: &str) -> Result<Option<Webhook>> {
                    if let Some(reader) = self.run_reader() {
                        return reader.webhook_by_path(digest).await;
                    }
                    let query = sqlx::query(sql::WEBHOOK_BY_PATH).bind(digest);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::webhook(&r)).transpose()
                }

                async fn webhooks(&self, workspace: &str, flow: Option<&str>) -> Result<Vec<Webhook>> {
                    let query = sqlx::query(sql::WEBHOOKS).bind(workspace).bind(flow);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::webhook).collect()
                }

                async fn revoke_webhook(&self, workspace: &str, id: &str, now: Timestamp) -> Result<Webhook> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::REVOKE_WEBHOOK).bind(workspace).bind(id).bind(now.0);
                    let row = query.fetch_optional(&mut *tx).await.map_err(db)?;
                    let webhook = row
                        .map(|r| sql::webhook(&r))
                        .transpose()?
                        .ok_or_else(|| Error::NotFound("webhook".into()))?;
                    tx.commit().await.map_err(db)?;
                    Ok(webhook)
                }
            }

            #[async_trait]
            impl ScheduleStore for Store {
                async fn create_schedule(&self, s: &Schedule) -> Result<()> {
                    let query = sqlx::query(sql::INSERT_SCHEDULE)
                        .bind(&s.id)
                        .bind(&s.workspace_id)
                        .bind(&s.flow_name)
                        .bind(&s.cron)
                        .bind(&s.timezone)
                        .bind(&s.catch_up)
                        .bind(to_json(&s.inputs, "schedule inputs")?)
                        .bind(s.next_fire_at.map(|t| t.0))
                        .bind(&s.created_by)
                        .bind(s.created_at.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn schedules(&self, workspace: &str, flow: Option<&str>) -> Result<Vec<Schedule>> {
                    let query = sqlx::query(sql::SCHEDULES).bind(workspace).bind(flow);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::schedule).collect()
                }

                async fn delete_schedule(&self, workspace: &str, id: &str, now: Timestamp) -> Result<()> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::DELETE_SCHEDULE).bind(workspace).bind(id).bind(now.0);
                    if query.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                        return Err(Error::NotFound("schedule".into()));
                    }
                    tx.commit().await.map_err(db)
                }

                async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
                    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                    let query = sqlx::query(sql::DUE_SCHEDULES).bind(now.0).bind(limit);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::schedule).collect()
                }

                async fn advance_schedule(
                    &self,
                    id: &str,
                    from: Timestamp,
                    to: Option<Timestamp>,
                ) -> Result<bool> {
                    let mut tx = self.write().await?;
                    let query =
                        sqlx::query(sql::ADVANCE_SCHEDULE).bind(id).bind(from.0).bind(to.map(|t| t.0));
                    let moved = query.execute(&mut *tx).await.map_err(db)?.rows_affected() == 1;
                    tx.commit().await.map_err(db)?;
                    Ok(moved)
                }

                async fn next_schedule_tick(&self) -> Result<Option<Timestamp>> {
                    let row =
                        sqlx::query(sql::NEXT_SCHEDULE_TICK).fetch_one(self.reader()).await.map_err(db)?;
                    Ok(row.opt_int("next")?.map(Timestamp))
                }
            }
        }
    };
}

pub(crate) use trigger_store;
