//! The storage traits written once for both stores.
//!
//! [`store_traits!`] stamps out `FlowStore`, `RunStore`, `Wakeup`, `AccountStore`, `AuditStore`, `StatsStore` and `TriggerStore` for a store type that
//! implements [`Backend`](crate::backend::Backend); `sqlite.rs` and `postgres.rs` each invoke
//! it once.
//! The method bodies use only the [`Backend`](crate::backend::Backend) hooks, the shared SQL
//! in [`crate::sql`] and the checks in [`crate::check`], so each piece of logic exists once.
//!
//! Why a macro and not `impl<B: Backend> RunStore for ...`:
//! - The orphan rule: the storage traits belong to `steward-store`, so they cannot be
//!   implemented for every `B: Backend` at once. A generic wrapper type would have to become
//!   the public `SqliteStore`/`PgStore` (changing the API) or be forwarded to, method by
//!   method, on both stores (duplication again).
//! - Generic sqlx code needs a long `where` clause (`for<'c> &'c mut DB::Connection:
//!   Executor<'c, Database = DB>`, `Encode + Type + Decode` for every bound Rust type,
//!   `ColumnIndex` for the row, and a hook for `rows_affected`, which `Database::QueryResult`
//!   lacks), and Rust does not imply such clauses, so it would be repeated on every impl and
//!   helper. After expansion the macro's code is concrete, so it needs none of them.
//!
//! The expanded code lives in modules `flows` and `runs` inside the invoking module.

mod accounts;
mod agents;
mod dataflow;
mod export;
mod flows;
mod retention;
mod runs;
mod threads;
mod triggers;
mod vault;

pub(crate) use accounts::account_store;
pub(crate) use agents::agent_store;
pub(crate) use dataflow::dataflow_store;
pub(crate) use export::export_store;
pub(crate) use flows::flow_store;
pub(crate) use retention::retention_store;
pub(crate) use runs::run_store;
pub(crate) use threads::thread_store;
pub(crate) use triggers::trigger_store;
pub(crate) use vault::vault_store;

/// Implements `FlowStore`, `RunStore` and `Wakeup` (so `Store`), `AccountStore`, `AuditStore`, `StatsStore` and `TriggerStore` for `$Store`, a
/// [`Backend`](crate::backend::Backend) named by an identifier in scope where this is invoked.
macro_rules! store_traits {
    ($Store:ident) => {
        $crate::shared::account_store!($Store);
        $crate::shared::flow_store!($Store);
        $crate::shared::trigger_store!($Store);
        $crate::shared::run_store!($Store);
        $crate::shared::vault_store!($Store);
        $crate::shared::export_store!($Store);
        $crate::shared::retention_store!($Store);
        $crate::shared::dataflow_store!($Store);
        $crate::shared::agent_store!($Store);
        $crate::shared::thread_store!($Store);

        #[async_trait::async_trait]
        impl steward_store::Wakeup for $Store {
            async fn wait(&self, timeout_ms: u64) {
                $crate::wake::wait($crate::backend::Backend::wakeups(self), timeout_ms).await;
            }
        }
    };
}

pub(crate) use store_traits;
