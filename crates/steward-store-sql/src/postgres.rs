//! [`PgStore`]: the storage traits on a PostgreSQL database, shared by many executors.
//!
//! Claims lock their candidates with `FOR UPDATE SKIP LOCKED`, so executors never take the
//! same run, and serialize per concurrency key with transaction-scoped advisory locks.
//! `create_run` and `signal` send `NOTIFY steward_wakeup` (payload: the schema) in their
//! transaction; a background task per store listens and wakes [`Wakeup::wait`].

mod listener;
mod runs;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, Transaction};
use steward_store::{Error, FlowStore, FlowSummary, FlowVersion, NewFlowVersion, Result, Wakeup};

use crate::error::{db, migrate};
use crate::{rows, sql};
use listener::Listener;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;

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

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
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

#[async_trait]
impl FlowStore for PgStore {
    async fn save_version(&self, new: NewFlowVersion) -> Result<FlowVersion> {
        let mut tx = self.begin().await?;
        // Also locks the flow row: concurrent saves of this flow wait here.
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
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let row = row.ok_or_else(|| Error::NotFound(format!("flow version {id}")))?;
        rows::flow_version(&row)
    }

    async fn latest_version(&self, workspace: &str, name: &str) -> Result<Option<FlowVersion>> {
        let row = sqlx::query(sql::LATEST_VERSION)
            .bind(workspace)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|row| rows::flow_version(&row)).transpose()
    }

    async fn list_flows(&self, workspace: &str) -> Result<Vec<FlowSummary>> {
        let rows = sqlx::query(sql::LIST_FLOWS).bind(workspace).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(rows::flow_summary).collect()
    }
}

/// Inserts a new version and marks its flow updated.
async fn insert_version(tx: &mut Transaction<'static, Postgres>, v: &FlowVersion) -> Result<()> {
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
impl Wakeup for PgStore {
    async fn wait(&self, timeout_ms: u64) {
        self.wakeup.wait(timeout_ms).await;
    }
}
