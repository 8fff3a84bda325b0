//! [`SqliteStore`]: the storage traits on one SQLite file.
//!
//! All writes go through a single connection and start with `BEGIN IMMEDIATE`, so writers
//! (claims included) take turns instead of failing on a busy database; a few more connections
//! serve reads, which WAL lets run next to the writer. Wakeups stay inside the process: every
//! store opened on the same file here shares one [`Notify`].
//!
//! The writes of runs (creating, claiming, appending, releasing, signalling) go to the
//! [`Writer`] thread, which owns a rusqlite connection and commits many writes at once, and
//! their frequent reads (journals, signals, due times, run records) to [`Reader`] threads;
//! sqlx keeps the migrations and everything else (flows, listing runs). The rusqlite and sqlx
//! writers both take SQLite's write lock, so they still take turns.

mod batch;
mod lite;
mod reader;
mod run_reads;
mod run_writes;
mod writer;

pub(crate) use reader::Reader;
pub(crate) use writer::Writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use steward_store::{Error, Result};
use tokio::sync::Notify;

use crate::backend::{Backend, Tx};
use crate::error::{db, migrate};
use crate::{shared, wake};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// sqlx connections for reads; writes use one more.
const READERS: u32 = 4;
/// Threads (each with a connection) for the frequent reads of runs.
const RUN_READERS: usize = 2;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in a SQLite file. Clones share the connections and the wakeups.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    runs: Writer,
    run_reads: Reader,
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
            .foreign_keys(true)
            // Deleted rows are overwritten with zeros, not left in free space in the file.
            .pragma("secure_delete", "ON");
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(db)?;
        MIGRATOR.run(&writer).await.map_err(migrate)?;
        let reader =
            SqlitePoolOptions::new().max_connections(READERS).connect_with(options).await.map_err(db)?;
        let file = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| Error::Backend(format!("cannot resolve {}: {e}", path.display())))?;
        let inserts = (1..=3).map(run_writes::insert_sql);
        let warm: Vec<&str> = run_writes::STATEMENTS.iter().copied().chain(inserts).collect();
        let runs = Writer::open(&file, &warm)?;
        let run_reads = Reader::open(&file, RUN_READERS, run_reads::STATEMENTS)?;
        Ok(Self { writer, reader, runs, run_reads, wakeup: notifier(file) })
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

impl Backend for SqliteStore {
    type Db = Sqlite;

    /// Holds the database's write lock from the start.
    async fn write(&self) -> Result<Tx<Self>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    /// The writer is alone.
    const ROW_LOCKS: bool = false;

    /// No other claim runs while this one writes.
    async fn lock_key(_tx: &mut Tx<Self>, _key: &str) -> Result<bool> {
        Ok(true)
    }

    /// Other processes on the file are not told; they find work when their wait times out.
    async fn notify(_tx: &mut Tx<Self>) -> Result<()> {
        Ok(())
    }

    fn wake_here(&self) {
        wake::wake(&self.wakeup);
    }

    fn wakeups(&self) -> &Notify {
        &self.wakeup
    }

    /// Reads run next to the writer (WAL) on their own connections.
    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn run_writer(&self) -> Option<&Writer> {
        Some(&self.runs)
    }

    fn run_reader(&self) -> Option<&Reader> {
        Some(&self.run_reads)
    }
}

shared::store_traits!(SqliteStore);
