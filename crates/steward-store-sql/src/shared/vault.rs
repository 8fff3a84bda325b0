//! [`vault_store!`]: `VaultStore` for both stores.

/// Implements `VaultStore` for `$Store`, in a module `vault` next to the invocation.
macro_rules! vault_store {
    ($Store:ident) => {
        /// `VaultStore` for the store of this module's parent.
        mod vault {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{Connection, Error, Result, VaultStore, WorkspaceKey};

            use super::$Store as Store;
            use crate::backend::Backend;
            use crate::error::{db, to_json};
            use crate::vault as sql;

            #[async_trait]
            impl VaultStore for Store {
                async fn workspace_key(&self, workspace: &str) -> Result<Option<WorkspaceKey>> {
                    let query = sqlx::query(sql::WORKSPACE_KEY).bind(workspace);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::workspace_key(&r)).transpose()
                }

                async fn put_workspace_key(&self, key: &WorkspaceKey) -> Result<WorkspaceKey> {
                    let mut tx = self.write().await?;
                    sqlx::query(sql::INSERT_WORKSPACE_KEY)
                        .bind(&key.workspace_id)
                        .bind(&key.wrapped)
                        .bind(&key.master_key_id)
                        .bind(key.created_at.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    let stored = sqlx::query(sql::WORKSPACE_KEY).bind(&key.workspace_id);
                    let stored = sql::workspace_key(&stored.fetch_one(&mut *tx).await.map_err(db)?)?;
                    tx.commit().await.map_err(db)?;
                    Ok(stored)
                }

                async fn workspace_keys(&self) -> Result<Vec<WorkspaceKey>> {
                    let rows = sqlx::query(sql::WORKSPACE_KEYS).fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::workspace_key).collect()
                }

                async fn rewrap_workspace_key(
                    &self,
                    key: &WorkspaceKey,
                    from_master_key: &str,
                ) -> Result<bool> {
                    let mut tx = self.write().await?;
                    let done = sqlx::query(sql::REWRAP_WORKSPACE_KEY)
                        .bind(&key.workspace_id)
                        .bind(&key.wrapped)
                        .bind(&key.master_key_id)
                        .bind(key.rotated_at.map(|t| t.0))
                        .bind(from_master_key)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn create_connection(&self, c: &Connection) -> Result<()> {
                    let query = sqlx::query(sql::INSERT_CONNECTION)
                        .bind(&c.id)
                        .bind(&c.workspace_id)
                        .bind(&c.name)
                        .bind(&c.kind)
                        .bind(to_json(&c.hosts, "connection hosts")?)
                        .bind(to_json(&c.settings, "connection settings")?)
                        .bind(&c.sealed)
                        .bind(&c.created_by)
                        .bind(c.created_at.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(|e| match db(e) {
                        Error::Conflict(_) => {
                            Error::Conflict(format!("a connection named {} exists", c.name))
                        }
                        other => other,
                    })?;
                    tx.commit().await.map_err(db)
                }

                async fn connection(&self, workspace: &str, name: &str) -> Result<Connection> {
                    let query = sqlx::query(sql::CONNECTION).bind(workspace).bind(name);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::connection(&r)).transpose()?.ok_or_else(|| not_found(name))
                }

                async fn connections(&self, workspace: &str, deleted: bool) -> Result<Vec<Connection>> {
                    let query = sqlx::query(sql::CONNECTIONS).bind(workspace).bind(deleted);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::connection).collect()
                }

                async fn rotate_connection(
                    &self,
                    workspace: &str,
                    name: &str,
                    sealed: &str,
                    now: Timestamp,
                ) -> Result<Connection> {
                    let query = sqlx::query(sql::ROTATE_CONNECTION).bind(workspace).bind(name);
                    self.change(query.bind(sealed).bind(now.0), name).await
                }

                async fn revoke_connection(
                    &self,
                    workspace: &str,
                    name: &str,
                    now: Timestamp,
                ) -> Result<Connection> {
                    let query = sqlx::query(sql::REVOKE_CONNECTION).bind(workspace).bind(name).bind(now.0);
                    self.change(query, name).await
                }

                async fn set_connection_deleted(
                    &self,
                    workspace: &str,
                    name: &str,
                    deleted: bool,
                    now: Timestamp,
                ) -> Result<Connection> {
                    let query = sqlx::query(sql::SET_CONNECTION_DELETED).bind(workspace).bind(name);
                    self.change(query.bind(deleted.then_some(now.0)).bind(now.0), name).await
                }
            }

            impl Store {
                /// Runs an `UPDATE … RETURNING` of one connection; `NotFound` when it matched none.
                async fn change<'q>(
                    &self,
                    query: sqlx::query::Query<
                        'q,
                        <Store as Backend>::Db,
                        <<Store as Backend>::Db as sqlx::Database>::Arguments,
                    >,
                    name: &str,
                ) -> Result<Connection> {
                    let mut tx = self.write().await?;
                    let row = query.fetch_optional(&mut *tx).await.map_err(db)?;
                    let changed =
                        row.map(|r| sql::connection(&r)).transpose()?.ok_or_else(|| not_found(name))?;
                    tx.commit().await.map_err(db)?;
                    Ok(changed)
                }
            }

            fn not_found(name: &str) -> Error {
                Error::NotFound(format!("connection {name}"))
            }
        }
    };
}

pub(crate) use vault_store;
