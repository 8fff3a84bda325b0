//! The transactions of the [`Writer`](super::Writer): a batch of requests runs in one
//! transaction, each request inside its own savepoint so that one that fails (a lost lease, a
//! journal that moved on) is rolled back alone and the others still commit. Callers are
//! answered only after `COMMIT` returned, so nobody learns of a write before it is durable.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use steward_store::{Error, Result};
use tokio::sync::oneshot;

/// The statements that frame a batch, prepared when the connection opens.
pub(super) const STATEMENTS: &[&str] =
    &["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT request", "ROLLBACK TO request", "RELEASE request"];

/// One request: runs inside the batch's transaction, then hears whether it committed.
pub(super) trait Job: Send {
    /// Performs the request; false when it failed and its writes must be undone.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Answers the caller; `committed` is the outcome of the batch's `COMMIT`.
    fn reply(self: Box<Self>, committed: Result<(), String>);
}

/// A request made of a closure, answered through a oneshot channel.
pub(super) struct Call<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Call<T, F> {
    pub(super) fn new(work: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self { work: Some(work), result: None, reply }
    }
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

/// Opens the transaction of a batch; the caller holds SQLite's write lock from here on.
pub(super) fn begin(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]).map(drop)
}

/// Runs a batch in the transaction [`begin`] opened and commits it. A lone request needs no
/// savepoint: if it fails, the whole transaction is rolled back.
pub(super) fn run_and_commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
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
    use crate::sqlite::lite::lite;

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
        (Box::new(Call::new(work, reply)), result)
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    }

    fn serve_once(conn: &Connection, jobs: Vec<Pending>) -> Vec<Result<i64>> {
        let (mut batch, mut results): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let committed =
            begin(conn).and_then(|()| run_and_commit(conn, &mut batch)).map_err(|e| e.to_string());
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
        let breaker: Box<dyn Job> = Box::new(Call::new(work, reply));
        let (first, mut first_result) = insert(1, false);
        let (last, mut last_result) = insert(3, false);
        let mut batch = vec![first, breaker, last];
        let committed =
            begin(&conn).and_then(|()| run_and_commit(&conn, &mut batch)).map_err(|e| e.to_string());
        batch.into_iter().for_each(|job| job.reply(committed.clone()));
        assert!(rows(&conn).is_empty());
        assert!(first_result.try_recv().expect("answered").is_err(), "its write was lost");
        assert!(result.try_recv().expect("answered").is_err());
        assert!(last_result.try_recv().expect("answered").is_err(), "it never ran");
    }
}
