//! [`thread_store!`]: `ThreadStore` for both stores.

/// Implements `ThreadStore` for `$Store`, in a module `threads` next to the invocation.
macro_rules! thread_store {
    ($Store:ident) => {
        /// `ThreadStore` for the store of this module's parent.
        mod threads {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{Error, Result, Thread, ThreadMessage, ThreadStore};

            use super::$Store as Store;
            use crate::backend::Backend;
            use crate::error::db;
            use crate::rows::RowExt as _;
            use crate::threads as sql;

            fn not_found(id: &str) -> Error {
                Error::NotFound(format!("thread {id}"))
            }

            #[async_trait]
            impl ThreadStore for Store {
                async fn create_thread(
                    &self,
                    workspace: &str,
                    agent: &str,
                    title: &str,
                    now: Timestamp,
                ) -> Result<Thread> {
                    let made = Thread {
                        id: uuid::Uuid::now_v7().to_string(),
                        workspace: workspace.to_owned(),
                        agent: agent.to_owned(),
                        title: title.to_owned(),
                        created_at: now,
                        updated_at: now,
                    };
                    let mut tx = self.write().await?;
                    sqlx::query(sql::INSERT)
                        .bind(&made.id)
                        .bind(workspace)
                        .bind(agent)
                        .bind(title)
                        .bind(now.0)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(made)
                }

                async fn thread(&self, workspace: &str, id: &str) -> Result<Thread> {
                    let row = sqlx::query(sql::BY_ID).bind(workspace).bind(id);
                    let row = row.fetch_optional(self.reader()).await.map_err(db)?;
                    sql::thread(&row.ok_or_else(|| not_found(id))?)
                }

                async fn list_threads(&self, workspace: &str, agent: Option<&str>) -> Result<Vec<Thread>> {
                    let query = sqlx::query(sql::LIST).bind(workspace).bind(agent.unwrap_or(""));
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::thread).collect()
                }

                async fn delete_thread(&self, workspace: &str, id: &str) -> Result<bool> {
                    let mut tx = self.write().await?;
                    let messages = sqlx::query(sql::DELETE_MESSAGES).bind(workspace).bind(id);
                    messages.execute(&mut *tx).await.map_err(db)?;
                    let done = sqlx::query(sql::DELETE).bind(workspace).bind(id);
                    let done = done.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn add_message(
                    &self,
                    workspace: &str,
                    thread_id: &str,
                    content: &str,
                    run_id: &str,
                    now: Timestamp,
                ) -> Result<ThreadMessage> {
                    let mut tx = self.write().await?;
                    // First the thread's row (locked on PostgreSQL until the commit; SQLite's
                    // writer is alone), so the next seq below is this transaction's alone.
                    let touch = sqlx::query(sql::TOUCH).bind(workspace).bind(thread_id).bind(now.0);
                    if touch.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                        return Err(not_found(thread_id));
                    }
                    let next = sqlx::query(sql::NEXT_SEQ).bind(thread_id);
                    let seq = next.fetch_one(&mut *tx).await.map_err(db)?.int("seq")?;
                    sqlx::query(sql::INSERT_MESSAGE)
                        .bind(thread_id)
                        .bind(seq)
                        .bind(workspace)
                        .bind(content)
                        .bind(run_id)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(ThreadMessage {
                        thread_id: thread_id.to_owned(),
                        seq,
                        content: content.to_owned(),
                        run_id: run_id.to_owned(),
                        created_at: now,
                    })
                }

                async fn thread_messages(
                    &self,
                    workspace: &str,
                    thread_id: &str,
                ) -> Result<Vec<ThreadMessage>> {
                    let query = sqlx::query(sql::MESSAGES).bind(workspace).bind(thread_id);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    if rows.is_empty() {
                        return Err(not_found(thread_id));
                    }
                    rows.iter().filter_map(|r| sql::message(r).transpose()).collect()
                }

                async fn prune_transcripts(&self, workspace: &str, before: Timestamp) -> Result<u64> {
                    let mut removed = 0;
                    loop {
                        let mut tx = self.write().await?;
                        let batch = sqlx::query(sql::PRUNE_MESSAGES)
                            .bind(workspace)
                            .bind(before.0)
                            .bind(sql::PRUNE_BATCH);
                        let n = batch.execute(&mut *tx).await.map_err(db)?.rows_affected();
                        removed += n;
                        let last = n < sql::PRUNE_BATCH.unsigned_abs();
                        if last {
                            let empty = sqlx::query(sql::PRUNE_EMPTY).bind(workspace).bind(before.0);
                            empty.execute(&mut *tx).await.map_err(db)?;
                        }
                        tx.commit().await.map_err(db)?;
                        if last {
                            return Ok(removed);
                        }
                    }
                }
            }
        }
    };
}

pub(crate) use thread_store;
