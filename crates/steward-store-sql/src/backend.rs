//! [`Backend`]: what truly differs between [`SqliteStore`](crate::SqliteStore) and
//! [`PgStore`](crate::PgStore). Everything else is written once in [`crate::shared`].
//!
//! | | SQLite | PostgreSQL |
//! | --- | --- | --- |
//! | write transaction | `BEGIN IMMEDIATE` on the one writer connection | from the pool |
//! | claim candidates, lease reads | plain (the writer is alone) | `FOR UPDATE` row locks |
//! | concurrency key | nothing to lock (the writer is alone) | `pg_try_advisory_xact_lock` |
//! | wakeups | writers wake the process's [`Notify`] | `pg_notify`; a listener wakes it |
//! | reads | their own connections | the same pool |
//! | run writes | the writer thread ([`Backend::run_writer`]) | the shared sqlx code |
//! | frequent run reads | reader threads ([`Backend::run_reader`]) | the shared sqlx code |

use sqlx::{Database, Pool, Transaction};
use steward_store::Result;
use tokio::sync::Notify;

/// A write transaction of the backend `B`.
pub(crate) type Tx<B> = Transaction<'static, <B as Backend>::Db>;

/// The backend-specific pieces the shared store code calls: first how writers keep out of
/// each other's way, then how executors learn of work, last where reads go.
pub(crate) trait Backend {
    type Db: Database;

    /// Starts a write transaction.
    async fn write(&self) -> Result<Tx<Self>>;

    /// Whether writers lock the rows they read before changing them (PostgreSQL), rather than
    /// relying on being the only writer (SQLite). Picks the `_LOCKED` variants in
    /// [`crate::sql`] for reading a run's lease and `claim`'s candidates.
    const ROW_LOCKS: bool;

    /// Takes the lock under which `claim` counts a concurrency key's leased runs; `false` when
    /// another claim holds it, leaving the candidate for a later claim.
    async fn lock_key(tx: &mut Tx<Self>, key: &str) -> Result<bool>;

    /// Tells executors in other processes, once `tx` commits, that work arrived.
    async fn notify(tx: &mut Tx<Self>) -> Result<()>;

    /// Wakes the executors of this process, after a commit that may have given them work.
    fn wake_here(&self);

    /// Where this process's executors wait for work.
    fn wakeups(&self) -> &Notify;

    /// Connections for reads outside a write transaction.
    fn reader(&self) -> &Pool<Self::Db>;

    /// Where the writes of runs go instead of the shared sqlx code, if anywhere: SQLite's
    /// writer thread, which takes a whole write as one message and commits writes in groups.
    fn run_writer(&self) -> Option<&crate::sqlite::Writer> {
        None
    }

    /// Where the frequent reads of runs go instead of [`Backend::reader`], if anywhere:
    /// SQLite's reader threads.
    fn run_reader(&self) -> Option<&crate::sqlite::Reader> {
        None
    }
}
