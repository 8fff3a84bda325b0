//! [`SqliteStore`]: the storage traits on one SQLite file.
//!
//! All writes go through a single connection and start with `BEGIN IMMEDIATE`, so writers
//! (claims included) take turns instead of failing on a busy database; a few more connections
//! serve reads, which WAL lets run next to the writer. Wakeups stay inside the process: every
//! store opened on the same file here shares one [`Notify`].

mod runs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use steward_store::{Error, FlowStore, FlowSummary, FlowVersion, NewFlowVersion, Result, Wakeup};
use tokio::sync::Notify;

use crate::error::{db, migrate};
use crate::{rows, sql, wake};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections for reads; writes use one more.
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in a SQLite file. Clones share the connections and the wakeups.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    wakeup: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(db)?;
        MIGRATOR.run(&writer).await.map_err(migrate)?;
        let reader =
            SqlitePoolOptions::new().max_connections(READERS).connect_with(options).await.map_err(db)?;
        let file = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| Error::Backend(format!("cannot resolve {}: {e}", path.display())))?;
        Ok(Self { writer, reader, wakeup: notifier(file) })
    }

    /// Starts a write transaction, holding the database's write lock from the start.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
}

/// The wakeups of the database file `file`, shared by every store open on it.
fn notifier(file: PathBuf) -> Arc<Notify> {
    static NOTIFIERS: LazyLock<Mutex<HashMap<PathBuf, Weak<Notify>>>> = LazyLock::new(Default::default);
    let mut map = NOTIFIERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(notify) = map.get(&file).and_then(Weak::upgrade) {
        return notify;
    }
    map.retain(|_, n| n.strong_count() > 0);
    let notify = Arc::new(Notify::new());
    map.insert(file, Arc::downgrade(&notify));
    notify
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn save_version(&self, new: NewFlowVersion) -> Result<FlowVersion> {
        let mut tx = self.write().await?;
        let flow_id: String = sqlx::query_scalar(sql::UPSERT_FLOW)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&new.workspace)
            .bind(&new.name)
            .bind(new.now.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let newest =
            sqlx::query(sql::NEWEST_VERSION).bind(&flow_id).fetch_optional(&mut *tx).await.map_err(db)?;
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
        let row = sqlx::query(sql::VERSION)
            .bind(workspace)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        let row = row.ok_or_else(|| Error::NotFound(format!("flow version {id}")))?;
        rows::flow_version(&row)
    }

    async fn latest_version(&self, workspace: &str, name: &str) -> Result<Option<FlowVersion>> {
        let row = sqlx::query(sql::LATEST_VERSION)
            .bind(workspace)
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        row.map(|row| rows::flow_version(&row)).transpose()
    }

    async fn list_flows(&self, workspace: &str) -> Result<Vec<FlowSummary>> {
        let rows = sqlx::query(sql::LIST_FLOWS).bind(workspace).fetch_all(&self.reader).await.map_err(db)?;
        rows.iter().map(rows::flow_summary).collect()
    }
}

/// Inserts a new version and marks its flow updated.
async fn insert_version(tx: &mut Transaction<'static, Sqlite>, v: &FlowVersion) -> Result<()> {
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
    sqlx::query(sql::TOUCH_FLOW)
        .bind(&v.flow_id)
        .bind(v.created_at.0)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Wakeup for SqliteStore {
    async fn wait(&self, timeout_ms: u64) {
        wake::wait(&self.wakeup, timeout_ms).await;
    }
}
