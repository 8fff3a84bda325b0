//! [`Reader`]: threads that serve the frequent reads of runs (journals, signals, the next due
//! time, run records) on rusqlite connections of their own, next to the [`Writer`] (WAL lets
//! readers and the writer proceed at once).
//!
//! As with the writer, a read is one message to a thread and one reply, where sqlx's worker
//! needs a round trip per step of the statement. The threads share one queue, so a long read
//! (a big journal) does not hold up the others.
//!
//! [`Writer`]: super::Writer

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use rusqlite::Connection;
use steward_store::{Error, Result};
use tokio::sync::oneshot;

use super::lite::lite;

type Read = Box<dyn FnOnce(&Connection) + Send>;

/// A handle to the reader threads of one database file. Clones share the threads, which end
/// when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Reader {
    reads: mpsc::Sender<Read>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens `threads` read connections to the (already migrated) database at `path`, each
    /// with the statements of `warm` prepared, and starts their threads.
    pub(crate) fn open(path: &Path, threads: usize, warm: &[&str]) -> Result<Self> {
        let (reads, queue) = mpsc::channel::<Read>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let conn = super::writer::connect(path, warm).map_err(lite)?;
            conn.pragma_update(None, "query_only", true).map_err(lite)?;
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("steward-sqlite-reader-{i}"))
                .spawn(move || serve(&conn, &queue))
                .map_err(|e| Error::Backend(format!("cannot start a SQLite reader thread: {e}")))?;
        }
        Ok(Self { reads })
    }

    /// Runs `read` on one of the reader connections.
    pub(crate) async fn run<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Read = Box::new(move |conn| {
            let value = catch_unwind(AssertUnwindSafe(|| read(conn)))
                .unwrap_or_else(|_| Err(Error::Backend("a SQLite read panicked".to_owned())));
            // The caller may have stopped waiting.
            let _ = reply.send(value);
        });
        self.reads.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

fn gone() -> Error {
    Error::Backend("the SQLite reader threads have stopped".to_owned())
}

fn serve(conn: &Connection, queue: &Mutex<mpsc::Receiver<Read>>) {
    loop {
        // Waiting for the next read holds the lock; the other threads wait behind it, and the
        // one that gets a read lets the next one wait while it works.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(read) => read(conn),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_see_committed_writes_and_cannot_write() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db");
        let setup = Connection::open(&path).expect("open");
        setup.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER)").expect("create");
        let reader = Reader::open(&path, 2, &["SELECT COUNT(*) FROM t"]).expect("reader");
        setup.execute("INSERT INTO t VALUES (1), (2)", []).expect("insert");
        let count = |conn: &Connection| conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0));
        assert_eq!(reader.run(move |conn| count(conn).map_err(lite)).await.expect("read"), 2);
        let write = reader.run(|conn| conn.execute("DELETE FROM t", []).map_err(lite)).await;
        assert!(write.is_err(), "readers are query-only");
        let panicked = reader.run(|_| -> Result<()> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(Error::Backend(_))));
        assert_eq!(reader.run(move |conn| count(conn).map_err(lite)).await.expect("still serving"), 2);
    }

    #[tokio::test]
    async fn many_reads_at_once_are_all_answered() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db");
        Connection::open(&path).expect("open").execute_batch("PRAGMA journal_mode = WAL").expect("wal");
        let reader = Reader::open(&path, 2, &[]).expect("reader");
        let reads: Vec<_> = (0..100_i64)
            .map(|n| {
                let reader = reader.clone();
                tokio::spawn(async move { reader.run(move |_| Ok(n)).await })
            })
            .collect();
        let mut sum = 0;
        for r in reads {
            sum += r.await.expect("task").expect("read");
        }
        assert_eq!(sum, (0..100).sum::<i64>());
    }
}
