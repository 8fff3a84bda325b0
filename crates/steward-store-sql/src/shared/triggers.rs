//! [`trigger_store!`]: `TriggerStore` for both stores.

/// Implements `TriggerStore` for `$Store`, in a module `triggers` next to the invocation.
macro_rules! trigger_store {
    ($Store:ident) => {
        /// `TriggerStore` for the store of this module's parent.
        mod triggers {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{Error, Result, TriggerStore, Webhook};

            use super::$Store as Store;
            use crate::backend::Backend;
            use crate::error::db;
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
        }
    };
}

pub(crate) use trigger_store;
