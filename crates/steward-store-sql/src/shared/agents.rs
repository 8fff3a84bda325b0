//! [`agent_store!`]: `AgentStore` for both stores.

/// Implements `AgentStore` for `$Store`, in a module `agents` next to the invocation.
macro_rules! agent_store {
    ($Store:ident) => {
        /// `AgentStore` for the store of this module's parent.
        mod agents {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{AgentStore, AgentVersion, Error, Result, UsageDelta, UsageRow};

            use super::$Store as Store;
            use crate::agents as sql;
            use crate::backend::Backend;
            use crate::error::db;

            fn signed(n: u64) -> i64 {
                i64::try_from(n).unwrap_or(i64::MAX)
            }

            #[async_trait]
            impl AgentStore for Store {
                async fn save_agent(
                    &self,
                    workspace: &str,
                    name: &str,
                    source: &str,
                    digest: &str,
                    now: Timestamp,
                ) -> Result<(AgentVersion, bool)> {
                    let mut tx = self.write().await?;
                    // Saving a deleted agent's name brings the agent back.
                    let restore = sqlx::query(sql::RESTORE).bind(workspace).bind(name);
                    restore.execute(&mut *tx).await.map_err(db)?;
                    let row = sqlx::query(sql::NEWEST).bind(workspace).bind(name);
                    let current = row.fetch_optional(&mut *tx).await.map_err(db)?;
                    let current = current.map(|r| sql::agent_version(&r)).transpose()?;
                    if let Some(c) = current.as_ref().filter(|c| c.digest == digest) {
                        tx.commit().await.map_err(db)?;
                        return Ok((c.clone(), false));
                    }
                    let made = AgentVersion {
                        id: uuid::Uuid::now_v7().to_string(),
                        workspace: workspace.to_owned(),
                        name: name.to_owned(),
                        version: current.map_or(1, |c| c.version + 1),
                        source: source.to_owned(),
                        digest: digest.to_owned(),
                        created_at: now,
                    };
                    sqlx::query(sql::INSERT)
                        .bind(&made.id)
                        .bind(workspace)
                        .bind(name)
                        .bind(made.version)
                        .bind(source)
                        .bind(digest)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok((made, true))
                }

                async fn agent(&self, workspace: &str, name: &str) -> Result<Option<AgentVersion>> {
                    let row = sqlx::query(sql::LATEST).bind(workspace).bind(name);
                    let row = row.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::agent_version(&r)).transpose()
                }

                async fn agent_version(&self, workspace: &str, id: &str) -> Result<AgentVersion> {
                    let row = sqlx::query(sql::BY_ID).bind(workspace).bind(id);
                    let row = row.fetch_optional(self.reader()).await.map_err(db)?;
                    let row = row.ok_or_else(|| Error::NotFound(format!("agent version {id}")))?;
                    sql::agent_version(&row)
                }

                async fn list_agents(&self, workspace: &str) -> Result<Vec<AgentVersion>> {
                    let rows =
                        sqlx::query(sql::LIST).bind(workspace).fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::agent_version).collect()
                }

                async fn delete_agent(&self, workspace: &str, name: &str, now: Timestamp) -> Result<bool> {
                    let mut tx = self.write().await?;
                    let done = sqlx::query(sql::DELETE).bind(workspace).bind(name).bind(now.0);
                    let done = done.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn restore_agent(&self, workspace: &str, name: &str, _now: Timestamp) -> Result<bool> {
                    let mut tx = self.write().await?;
                    let done = sqlx::query(sql::RESTORE).bind(workspace).bind(name);
                    let done = done.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn add_usage(&self, d: &UsageDelta) -> Result<()> {
                    let mut tx = self.write().await?;
                    sqlx::query(sql::ADD_USAGE)
                        .bind(&d.workspace)
                        .bind(&d.day)
                        .bind(&d.agent)
                        .bind(signed(d.input_tokens))
                        .bind(signed(d.output_tokens))
                        .bind(signed(d.cost_micros))
                        .bind(signed(d.model_calls))
                        .bind(signed(d.tool_calls))
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(())
                }

                async fn usage(&self, workspace: &str, from: &str, to: &str) -> Result<Vec<UsageRow>> {
                    let query = sqlx::query(sql::USAGE).bind(workspace).bind(from).bind(to);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::usage_row).collect()
                }
            }
        }
    };
}

pub(crate) use agent_store;
