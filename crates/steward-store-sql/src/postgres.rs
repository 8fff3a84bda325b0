//! [`PgStore`]: the storage traits on a PostgreSQL database, shared by many executors.
//!
//! Claims lock their candidates with `FOR UPDATE SKIP LOCKED`, so executors never take the
//! same run, and serialize per concurrency key with transaction-scoped advisory locks.
//! `create_run` and `signal` send `NOTIFY steward_wakeup` (payload: the schema) in their
//! transaction; a background task per store listens and wakes [`Wakeup::wait`](steward_store::Wakeup::wait).

mod listener;

use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres};
use steward_store::{Error, Result};
use tokio::sync::Notify;

use crate::backend::{Backend, Tx};
use crate::error::{db, migrate};
use crate::shared;
use listener::Listener;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;

/// Wakes the listeners of this schema when the transaction commits.
const NOTIFY: &str = "SELECT pg_notify('steward_wakeup', current_schema()::text)";

/// Takes the advisory lock of a concurrency key unless another claim holds it.
const TRY_LOCK_KEY: &str = "SELECT pg_try_advisory_xact_lock(hashtext($1))";

const SCHEMA_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";

/// A store in a PostgreSQL database (or one schema of it). Clones share the pool and the
/// wakeup listener, which stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    wakeup: Arc<Listener>,
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::start(parse(url)?).await
    }

    /// Connects with every connection's `search_path` set to `schema`, creating the schema if
    /// needed: separate schemas are separate stores (each test gets its own). `schema` must
    /// be lowercase letters, digits and underscores.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self> {
        check_schema(schema)?;
        let options = parse(url)?;
        let mut conn = PgConnection::connect_with(&options).await.map_err(db)?;
        let exists: bool =
            sqlx::query_scalar(SCHEMA_EXISTS).bind(schema).fetch_one(&mut conn).await.map_err(db)?;
        if !exists {
            let create = format!(r#"CREATE SCHEMA IF NOT EXISTS "{schema}""#);
            sqlx::query(AssertSqlSafe(create)).execute(&mut conn).await.map_err(db)?;
        }
        conn.close().await.map_err(db)?;
        Self::start(options.options([("search_path", schema)])).await
    }

    async fn start(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        MIGRATOR.run(&pool).await.map_err(migrate)?;
        let schema: Option<String> =
            sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&pool).await.map_err(db)?;
        let schema = schema.ok_or_else(|| Error::Invalid("no schema on the search path".to_owned()))?;
        let wakeup = Listener::start(options, schema).await?;
        Ok(Self { pool, wakeup: Arc::new(wakeup) })
    }
}

fn parse(url: &str) -> Result<PgConnectOptions> {
    url.parse().map_err(|_| Error::Invalid("not a valid PostgreSQL URL".to_owned()))
}

fn check_schema(schema: &str) -> Result<()> {
    let valid = schema.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if !valid {
        return Err(Error::Invalid(format!("schema name {schema:?}: use a-z, 0-9 and _")));
    }
    Ok(())
}

impl Backend for PgStore {
    type Db = Postgres;

    async fn write(&self) -> Result<Tx<Self>> {
        self.pool.begin().await.map_err(db)
    }

    const ROW_LOCKS: bool = true;

    /// The key's advisory lock, held until the transaction ends.
    async fn lock_key(tx: &mut Tx<Self>, key: &str) -> Result<bool> {
        sqlx::query_scalar(TRY_LOCK_KEY).bind(key).fetch_one(&mut **tx).await.map_err(db)
    }

    async fn notify(tx: &mut Tx<Self>) -> Result<()> {
        sqlx::query(NOTIFY).execute(&mut **tx).await.map_err(db)?;
        Ok(())
    }

    /// The listener wakes this process's executors when it hears a notification.
    fn wake_here(&self) {}

    fn wakeups(&self) -> &Notify {
        self.wakeup.notify()
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }
}

shared::store_traits!(PgStore);
