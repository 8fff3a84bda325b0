//! [`Writer`]: the thread that performs this process's writes to a SQLite file.
//!
//! Why a thread of its own: through sqlx every statement, `BEGIN` and `COMMIT` is a message to
//! the connection's worker thread and a wake-up back, about six hand-offs per `append`, which
//! cost more than SQLite's own work. Here a whole write is one message: the caller sends a
//! closure, the thread runs it on its connection with cached prepared statements, and one reply
//! comes back once the transaction has committed.
//!
//! **Group commit.** The thread takes the first request in its queue and every request that
//! queued up behind it (up to [`MAX_BATCH`]) and runs them in one transaction, each inside its
//! own savepoint, so a request that fails (a lost lease, a journal that moved on) is rolled back
//! alone and the others still commit. Replies are sent only after `COMMIT` returned, so nobody
//! learns of a write before it is durable, exactly as with one transaction per request.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use steward_store::{Error, Result};
use tokio::sync::oneshot;

use super::lite::lite;

/// The statements that frame a batch.
const TRANSACTION: &[&str] =
    &["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT request", "ROLLBACK TO request", "RELEASE request"];

/// The most requests one transaction carries; a larger backlog is served by the next ones.
const MAX_BATCH: usize = 256;

/// How long the busy handler sleeps between attempts to take the write lock from another
/// connection (another process, or sqlx in this one), and how many attempts it makes: about
/// the 5 s the sqlx connections wait, in steps short enough not to idle after the lock frees.
const BUSY_SLEEP: Duration = Duration::from_micros(200);
const BUSY_ATTEMPTS: i32 = 25_000;

/// A handle to the writer thread of one database file. Clones share the thread, which ends
/// when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
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
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("steward-sqlite-writer".to_owned())
            .spawn(move || serve(&conn, &queue))
            .map_err(|e| Error::Backend(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in a write transaction on the writer thread and returns its result once the
    /// transaction has committed. An error from `work` rolls back what `work` wrote, and only
    /// that.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Call { work: Some(work), result: None, reply });
        self.jobs.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

fn gone() -> Error {
    Error::Backend("the SQLite writer thread has stopped".to_owned())
}

/// A connection with the settings of the store. The statements of `warm` are prepared now,
/// while the store opens, rather than by the first request that needs each.
pub(super) fn connect(path: &Path, warm: &[&str]) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // The same settings as the sqlx connections (`SqliteStore::open`): WAL, `synchronous =
    // NORMAL` (per connection, so it must be set here too), foreign keys.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_prepared_statement_cache_capacity(64);
    for sql in TRANSACTION.iter().chain(warm) {
        conn.prepare_cached(sql)?;
    }
    Ok(conn)
}

/// SQLite's busy handler: whether to try again for the write lock after `attempts` tries.
fn wait_for_lock(attempts: i32) -> bool {
    if attempts >= BUSY_ATTEMPTS {
        return false;
    }
    std::thread::sleep(BUSY_SLEEP);
    true
}

/// One request: runs inside the batch's transaction, then hears whether it committed.
trait Job: Send {
    /// Performs the request; false when it failed and its writes must be undone.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Answers the caller; `committed` is the outcome of the batch's `COMMIT`.
    fn reply(self: Box<Self>, committed: Result<(), String>);
}

struct Call<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.work.take() {
            // A panic must not take the thread, and every later write, down with it.
            Some(work) => catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(Error::Backend("a SQLite write panicked".to_owned()))),
            None => Err(Error::Backend("a SQLite write ran twice".to_owned())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, committed: Result<(), String>) {
        let result = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(Error::Backend(e)),
            (None, Ok(())) => Err(Error::Backend("a SQLite write did not run".to_owned())),
        };
        // The caller may have stopped waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// The thread's loop: a batch at a time until every [`Writer`] is gone.
fn serve(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = run_batch(conn, &mut batch).map_err(|e| lite(e).to_string());
        for job in batch {
            job.reply(committed.clone());
        }
    }
}

/// Runs a batch in one transaction and commits it. A lone request needs no savepoint: if it
/// fails, the whole transaction is rolled back.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = match batch {
        [only] => {
            if !only.run(conn) {
                return rollback(conn);
            }
            Ok(())
        }
        _ => batch.iter_mut().try_for_each(|job| in_savepoint(conn, job.as_mut())),
    };
    match result.and_then(|()| conn.prepare_cached("COMMIT")?.execute([]).map(drop)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = rollback(conn);
            Err(e)
        }
    }
}

fn in_savepoint(conn: &Connection, job: &mut dyn Job) -> rusqlite::Result<()> {
    conn.prepare_cached("SAVEPOINT request")?.execute([])?;
    if !job.run(conn) {
        if conn.is_autocommit() {
            // The failure ended the whole transaction (SQLite does so for a few errors, such
            // as a full disk): the requests before it are gone too.
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back".to_owned()),
            ));
        }
        conn.prepare_cached("ROLLBACK TO request")?.execute([])?;
    }
    conn.prepare_cached("RELEASE request")?.execute([])?;
    Ok(())
}

fn rollback(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        conn.prepare_cached("ROLLBACK")?.execute([])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(conn: &Connection) {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)").expect("create");
    }

    /// A request and where its answer arrives.
    type Pending = (Box<dyn Job>, oneshot::Receiver<Result<i64>>);

    fn insert(n: i64, fail: bool) -> Pending {
        let (reply, result) = oneshot::channel();
        let work = move |conn: &Connection| {
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(lite)?;
            if fail {
                return Err(Error::Conflict(format!("request {n} failed")));
            }
            Ok(n)
        };
        (Box::new(Call { work: Some(work), result: None, reply }), result)
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    }

    fn serve_once(conn: &Connection, jobs: Vec<Pending>) -> Vec<Result<i64>> {
        let (mut batch, mut results): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let committed = run_batch(conn, &mut batch).map_err(|e| e.to_string());
        batch.into_iter().for_each(|job| job.reply(committed.clone()));
        results.iter_mut().map(|r| r.try_recv().expect("answered")).collect()
    }

    #[test]
    fn a_failed_request_is_rolled_back_alone() {
        let conn = Connection::open_in_memory().expect("open");
        table(&conn);
        let results = serve_once(&conn, vec![insert(1, false), insert(2, true), insert(3, false)]);
        assert_eq!(rows(&conn), vec![1, 3]);
        assert!(matches!(results[0], Ok(1)));
        assert!(matches!(&results[1], Err(Error::Conflict(m)) if m.contains("request 2")), "{results:?}");
        assert!(matches!(results[2], Ok(3)));
        assert!(conn.is_autocommit(), "the batch's transaction ended");
    }

    #[test]
    fn a_lone_failed_request_writes_nothing() {
        let conn = Connection::open_in_memory().expect("open");
        table(&conn);
        let results = serve_once(&conn, vec![insert(1, true)]);
        assert!(rows(&conn).is_empty());
        assert!(matches!(results[0], Err(Error::Conflict(_))));
    }

    #[test]
    fn a_request_that_breaks_the_transaction_fails_the_whole_batch() {
        let conn = Connection::open_in_memory().expect("open");
        table(&conn);
        let (reply, mut result) = oneshot::channel::<Result<()>>();
        // Ends the transaction under the batch's feet, as SQLite does on a full disk.
        let work = |conn: &Connection| {
            conn.execute_batch("ROLLBACK").map_err(lite)?;
            Err(Error::Backend("disk full".to_owned()))
        };
        let breaker: Box<dyn Job> = Box::new(Call { work: Some(work), result: None, reply });
        let (first, mut first_result) = insert(1, false);
        let (last, mut last_result) = insert(3, false);
        let mut batch = vec![first, breaker, last];
        let committed = run_batch(&conn, &mut batch).map_err(|e| e.to_string());
        batch.into_iter().for_each(|job| job.reply(committed.clone()));
        assert!(rows(&conn).is_empty());
        assert!(first_result.try_recv().expect("answered").is_err(), "its write was lost");
        assert!(result.try_recv().expect("answered").is_err());
        assert!(last_result.try_recv().expect("answered").is_err(), "it never ran");
    }

    #[tokio::test]
    async fn writes_are_durable_when_answered_and_panics_do_not_stop_the_thread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&Connection::open(&path).expect("open"));
        let writer = Writer::open(&path, &[]).expect("writer");
        let panicked = writer.run(|_| -> Result<()> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(Error::Backend(_))), "{panicked:?}");
        let sync: i64 = writer
            .run(|conn| {
                conn.execute("INSERT INTO t (n) VALUES (7)", []).map_err(lite)?;
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).map_err(lite)
            })
            .await
            .expect("write");
        assert_eq!(sync, 1, "synchronous = NORMAL, never lower");
        // Another connection sees the row as soon as the write is answered.
        assert_eq!(rows(&Connection::open(&path).expect("reader")), vec![7]);
    }

    #[tokio::test]
    async fn concurrent_requests_all_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        table(&Connection::open(&path).expect("open"));
        let writer = Writer::open(&path, &[]).expect("writer");
        let calls = (0..200_i64).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |conn| {
                        conn.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(lite)?;
                        if n % 10 == 0 { Err(Error::Conflict("no".to_owned())) } else { Ok(n) }
                    })
                    .await
            })
        });
        let results = futures_join(calls.collect()).await;
        let ok: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(ok.len(), 180);
        assert_eq!(rows(&Connection::open(&path).expect("reader")), ok);
    }

    async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Result<i64>>>) -> Vec<Result<i64>> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }
}
