//! [`flow_store!`]: `FlowStore` for both stores.

/// Implements `FlowStore` for `$Store`, in a module `flows` next to the invocation.
macro_rules! flow_store {
    ($Store:ident) => {
        /// `FlowStore` for the store of this module's parent, from [`crate::shared`].
        mod flows {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{Error, FlowStore, FlowSummary, FlowVersion, NewFlowVersion, Result};

            use super::$Store as Store;
            use crate::backend::{Backend, Tx};
            use crate::error::db;
            use crate::{rows, sql};

            #[async_trait]
            impl FlowStore for Store {
                async fn save_version(&self, new: NewFlowVersion) -> Result<FlowVersion> {
                    let mut tx = self.write().await?;
                    // On PostgreSQL this also locks the flow row: concurrent saves of this
                    // flow wait here.
                    let flow_id: String = sqlx::query_scalar(sql::UPSERT_FLOW)
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(&new.workspace)
                        .bind(&new.name)
                        .bind(new.now.0)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db)?;
                    let newest = sqlx::query(sql::NEWEST_VERSION)
                        .bind(&flow_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                    let newest = newest.map(|row| rows::flow_version(&row)).transpose()?;
                    let version = match newest {
                        Some(newest) if newest.digest == new.digest => newest,
                        newest => {
                            let number = newest.map_or(1, |v| v.version + 1);
                            let version = rows::new_version(new, flow_id, number);
                            insert_version(&mut tx, &version).await?;
                            version
                        }
                    };
                    tx.commit().await.map_err(db)?;
                    Ok(version)
                }

                async fn version(&self, workspace: &str, id: &str) -> Result<FlowVersion> {
                    let query = sqlx::query(sql::VERSION).bind(workspace).bind(id);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    let row = row.ok_or_else(|| Error::NotFound(format!("flow version {id}")))?;
                    rows::flow_version(&row)
                }

                async fn latest_version(&self, workspace: &str, name: &str) -> Result<Option<FlowVersion>> {
                    let query = sqlx::query(sql::LATEST_VERSION).bind(workspace).bind(name);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|row| rows::flow_version(&row)).transpose()
                }

                async fn startable(
                    &self,
                    workspace: &str,
                    name: &str,
                ) -> Result<Option<(FlowVersion, Option<Timestamp>)>> {
                    if let Some(reader) = self.run_reader() {
                        return reader.startable(workspace, name).await;
                    }
                    let query = sqlx::query(sql::STARTABLE).bind(workspace).bind(name);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|row| rows::startable(&row)).transpose()
                }

                async fn list_flows(&self, workspace: &str, deleted: bool) -> Result<Vec<FlowSummary>> {
                    let query = sqlx::query(sql::LIST_FLOWS).bind(workspace).bind(deleted);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(rows::flow_summary).collect()
                }

                async fn flow(&self, workspace: &str, name: &str) -> Result<FlowSummary> {
                    let query = sqlx::query(sql::FLOW).bind(workspace).bind(name);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    let row = row.ok_or_else(|| Error::NotFound(format!("flow {name}")))?;
                    rows::flow_summary(&row)
                }

                async fn versions(&self, workspace: &str, name: &str) -> Result<Vec<FlowVersion>> {
                    let query = sqlx::query(sql::VERSIONS).bind(workspace).bind(name);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(rows::flow_version).collect()
                }

                async fn set_flow_disabled(
                    &self,
                    workspace: &str,
                    name: &str,
                    disabled: bool,
                    now: Timestamp,
                ) -> Result<FlowSummary> {
                    let at = disabled.then_some(now.0);
                    let query = sqlx::query(sql::SET_FLOW_DISABLED).bind(workspace).bind(name).bind(at);
                    self.change_flow(query.bind(now.0), workspace, name).await
                }

                async fn set_flow_deleted(
                    &self,
                    workspace: &str,
                    name: &str,
                    deleted: bool,
                    now: Timestamp,
                ) -> Result<FlowSummary> {
                    let at = deleted.then_some(now.0);
                    let query = sqlx::query(sql::SET_FLOW_DELETED).bind(workspace).bind(name).bind(at);
                    self.change_flow(query.bind(now.0), workspace, name).await
                }
            }

            impl Store {
                /// Runs an update of one flow row and returns the flow as it is now.
                async fn change_flow(
                    &self,
                    update: sqlx::query::Query<
                        '_,
                        <Store as Backend>::Db,
                        <<Store as Backend>::Db as sqlx::Database>::Arguments,
                    >,
                    workspace: &str,
                    name: &str,
                ) -> Result<FlowSummary> {
                    let mut tx = self.write().await?;
                    if update.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                        return Err(Error::NotFound(format!("flow {name}")));
                    }
                    tx.commit().await.map_err(db)?;
                    self.flow(workspace, name).await
                }
            }

            /// Inserts a new version and marks its flow updated.
            async fn insert_version(tx: &mut Tx<Store>, v: &FlowVersion) -> Result<()> {
                sqlx::query(sql::INSERT_VERSION)
                    .bind(&v.id)
                    .bind(&v.workspace)
                    .bind(&v.flow_id)
                    .bind(v.version)
                    .bind(&v.file_name)
                    .bind(&v.source)
                    .bind(&v.digest)
                    .bind(v.concurrency.map(i64::from))
                    .bind(v.created_at.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                let touch = sqlx::query(sql::TOUCH_FLOW).bind(&v.flow_id).bind(v.created_at.0);
                touch.execute(&mut **tx).await.map_err(db)?;
                Ok(())
            }
        }
    };
}

pub(crate) use flow_store;
