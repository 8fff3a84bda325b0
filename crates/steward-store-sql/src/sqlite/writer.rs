//! [`Writer`]: how this process writes to a SQLite file: on the caller's thread when the write
//! connection is free, else on the writer thread, which commits what queued up in groups.
//!
//! Why not sqlx here: through sqlx every statement, `BEGIN` and `COMMIT` is a message to the
//! connection's worker thread and a wake-up back, about six hand-offs per `append`, which cost
//! more than SQLite's own work. Here a write is a closure run on one rusqlite connection with
//! cached prepared statements:
//!
//! - **In place.** When no other request is open and the connection is free, the caller runs
//!   the transaction itself, with no hand-off at all. It never waits there: if another connection
//!   (another process, or sqlx in this one) holds SQLite's write lock, the request goes to the
//!   thread instead. What is left is SQLite's own work for one transaction, tens of
//!   microseconds.
//! - **On the thread, in groups.** Otherwise the request is queued. The thread takes the first
//!   request and every one that queued up behind it (up to [`MAX_BATCH`]) and commits them in
//!   one transaction (see [`super::batch`]), so under load many writes share a commit.
//!
//! Either way the caller is answered after `COMMIT` returned. Checkpoints, which copy the log
//! into the database and flush it to disk, run on a third thread with a connection of their
//! own: a passive checkpoint does not hold the write lock, so writes go on meanwhile.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use steward_store::{Error, Result};
use tokio::sync::oneshot;

use super::batch::{self, Call, Job};
use super::lite::lite;

/// The most requests one transaction carries; a larger backlog is served by the next ones.
const MAX_BATCH: usize = 256;

/// WAL pages after which the thread checkpoints: SQLite's own `wal_autocheckpoint` default,
/// so the log is folded into the database as often as it would be otherwise.
const CHECKPOINT_PAGES: i32 = 1000;

/// How long the busy handler sleeps between attempts to take the write lock from another
/// connection, and how many attempts it makes: about the 5 s the sqlx connections wait, in
/// steps short enough not to idle after the lock frees.
const BUSY_SLEEP: Duration = Duration::from_micros(200);
const BUSY_ATTEMPTS: i32 = 25_000;

thread_local! {
    /// Set while a write runs in place: the busy handler then gives up at once.
    static IN_PLACE: Cell<bool> = const { Cell::new(false) };
    /// The WAL's size in pages after the last commit on this thread, from the WAL hook.
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// A handle to the write connection of one database file. Clones share it; its thread ends
/// when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: mpsc::Sender<Box<dyn Job>>,
    checkpoints: Checkpointer,
}

struct Shared {
    conn: Mutex<Connection>,
    /// Requests sent to the thread and not yet taken: while there are any, new requests queue
    /// behind them rather than overtake them in place.
    queued: AtomicUsize,
    /// Requests not answered yet. A request runs in place only when it is alone: under load
    /// they go to the thread, which commits them in groups, and the callers' threads (the
    /// async runtime's) are not held up by SQLite's work.
    open: AtomicUsize,
}

/// Counts a request in [`Shared::open`] until dropped.
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    /// Counts one more request; true when no other was open.
    fn enter(open: &'a AtomicUsize) -> (Self, bool) {
        let before = open.fetch_add(1, Ordering::AcqRel);
        (Open(open), before == 0)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Asks the checkpoint thread for a checkpoint; requests made while one is pending are one.
#[derive(Clone)]
struct Checkpointer(mpsc::SyncSender<()>);

impl Checkpointer {
    fn start(path: &Path) -> Result<Self> {
        let conn = connect(path, &[]).map_err(lite)?;
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("steward-sqlite-checkpoint".to_owned())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Folds the log into the database without waiting for readers or the
                    // writer; a failure leaves the log to grow until the next attempt, as
                    // SQLite's own checkpoints do.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "SQLite checkpoint failed");
                    }
                }
            })
            .map_err(|e| Error::Backend(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(Checkpointer(tx))
    }

    /// Asks for a checkpoint when the last commit on this thread left a big log.
    fn after_commit(&self, committed: bool) {
        if committed && WAL_PAGES.with(Cell::take) >= CHECKPOINT_PAGES {
            // Full: one is pending already. Gone: nothing left to checkpoint for.
            let _ = self.0.try_send(());
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens a write connection to the (already migrated) database at `path`, prepares the
    /// statements of `warm`, and starts its thread.
    pub(crate) fn open(path: &Path, warm: &[&str]) -> Result<Self> {
        let conn = connect(path, warm).map_err(lite)?;
        // Replaces SQLite's automatic checkpoint, which would run (and flush to disk) inside
        // whichever commit crosses the threshold, possibly one running in place.
        conn.wal_hook(Some(note_wal_size));
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            queued: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let checkpoints = Checkpointer::start(path)?;
        let (thread, queue) = mpsc::channel();
        let for_thread = shared.clone();
        let thread_checkpoints = checkpoints.clone();
        std::thread::Builder::new()
            .name("steward-sqlite-writer".to_owned())
            .spawn(move || serve(&for_thread, &queue, &thread_checkpoints))
            .map_err(|e| Error::Backend(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { shared, thread, checkpoints })
    }

    /// Runs `work` in a write transaction and returns its result once the transaction has
    /// committed. An error from `work` rolls back what `work` wrote, and only that.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, mut result) = oneshot::channel();
        let mut job: Box<dyn Job> = Box::new(Call::new(work, reply));
        let (_open, alone) = Open::enter(&self.shared.open);
        if alone
            && self.shared.queued.load(Ordering::Acquire) == 0
            && let Ok(conn) = self.shared.conn.try_lock()
            && let Some(committed) = in_place(&conn, &mut job)
        {
            drop(conn);
            self.checkpoints.after_commit(committed.is_ok());
            job.reply(committed);
            return result.try_recv().map_err(|_| gone())?;
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if self.thread.send(job).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(gone());
        }
        result.await.map_err(|_| gone())?
    }
}

fn gone() -> Error {
    Error::Backend("the SQLite writer thread has stopped".to_owned())
}

/// Runs one request on the caller's thread. `None` when another connection holds SQLite's
/// write lock: the request has not run and must go to the thread, which waits for the lock.
fn in_place(conn: &Connection, job: &mut Box<dyn Job>) -> Option<Result<(), String>> {
    IN_PLACE.with(|f| f.set(true));
    let begun = batch::begin(conn);
    IN_PLACE.with(|f| f.set(false));
    match begun {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => None,
        Err(e) => Some(Err(lite(e).to_string())),
        Ok(()) => {
            Some(batch::run_and_commit(conn, std::slice::from_mut(job)).map_err(|e| lite(e).to_string()))
        }
    }
}

/// A connection with the settings of the store. The statements of `warm` are prepared now,
/// while the store opens, rather than by the first request that needs each.
pub(super) fn connect(path: &Path, warm: &[&str]) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // The same settings as the sqlx connections (`SqliteStore::open`): WAL, `synchronous =
    // NORMAL` (per connection, so it must be set here too), foreign keys, `secure_delete`.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "secure_delete", true)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_prepared_statement_cache_capacity(64);
    for sql in batch::STATEMENTS.iter().chain(warm) {
        conn.prepare_cached(sql)?;
    }
    Ok(conn)
}

/// SQLite's busy handler: whether to try again for the write lock after `attempts` tries.
fn wait_for_lock(attempts: i32) -> bool {
    if IN_PLACE.with(Cell::get) || attempts >= BUSY_ATTEMPTS {
        return false;
    }
    std::thread::sleep(BUSY_SLEEP);
    true
}

/// The WAL hook: remembers the log's size for [`Writer::after_commit`] and the thread.
fn note_wal_size(_: &Wal, pages: i32) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// The thread's loop: a batch at a time until every [`Writer`] is gone.
fn serve(shared: &Shared, queue: &mpsc::Receiver<Box<dyn Job>>, checkpoints: &Checkpointer) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        let conn = shared.conn.lock().unwrap_or_else(PoisonError::into_inner);
        shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let committed = batch::begin(&conn)
            .and_then(|()| batch::run_and_commit(&conn, &mut batch))
            .map_err(|e| lite(e).to_string());
        drop(conn);
        checkpoints.after_commit(committed.is_ok());
        for job in batch {
            job.reply(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(path: &Path) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)")
            .expect("create");
    }

    fn rows(path: &Path) -> Vec<i64> {
        let conn = Connection::open(path).expect("open");
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    }

    fn insert(n: i64) -> impl FnOnce(&Connection) -> Result<i64> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (n, pad) VALUES (?1, zeroblob(2000))", [n]).map_err(lite)?;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn writes_are_durable_when_answered_and_panics_do_not_stop_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&path);
        let writer = Writer::open(&path, &[]).expect("writer");
        let panicked = writer.run(|_| -> Result<()> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(Error::Backend(_))), "{panicked:?}");
        let sync: i64 = writer
            .run(|conn| {
                insert(7)(conn)?;
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(lite)
            })
            .await
            .expect("write");
        assert_eq!(sync, 1, "synchronous = NORMAL, never lower");
        assert_eq!(rows(&path), vec![7], "another connection sees the row once the write is answered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_all_commit_and_failures_stay_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&path);
        let writer = Writer::open(&path, &[]).expect("writer");
        let calls: Vec<_> = (0..200_i64)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let write = insert(n);
                    writer
                        .run(move |conn| {
                            write(conn)?;
                            if n % 10 == 0 { Err(Error::Conflict("no".to_owned())) } else { Ok(n) }
                        })
                        .await
                })
            })
            .collect();
        let mut ok = Vec::new();
        for call in calls {
            ok.extend(call.await.expect("task"));
        }
        assert_eq!(ok.len(), 180);
        assert_eq!(rows(&path), ok);
    }

    /// A single-threaded runtime: a write that waited for the lock in place would stall it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_meeting_another_writer_waits_on_the_thread_not_in_place() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&path);
        let writer = Writer::open(&path, &[]).expect("writer");
        let other = Connection::open(&path).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let pending = tokio::spawn({
            let writer = writer.clone();
            async move { writer.run(insert(1)).await }
        });
        let slept = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(slept.elapsed() < Duration::from_secs(1), "the runtime was blocked");
        assert!(!pending.is_finished());
        other.execute_batch("COMMIT").expect("release the lock");
        assert_eq!(pending.await.expect("task").expect("write"), 1);
        assert_eq!(writer.run(insert(2)).await.expect("in place again"), 2);
    }

    #[tokio::test]
    async fn the_log_is_still_checkpointed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&path);
        let size = || std::fs::metadata(&path).expect("db file").len();
        let before = size();
        let writer = Writer::open(&path, &[]).expect("writer");
        for n in 0..1500 {
            writer.run(insert(n)).await.expect("write");
        }
        // A checkpoint runs on its thread after the write that crossed the threshold.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while size() <= before && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(size() > before, "pages were copied from the log into the database");
    }
}
