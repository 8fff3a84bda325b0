//! The wakeup listener: a background task that holds a `LISTEN steward_wakeup` connection and
//! turns notifications for its schema into in-process wakeups. When the connection drops it
//! reconnects with backoff and wakes everyone once, since notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use steward_store::Result;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::db;
use crate::wake;

/// The channel `create_run` and `signal` notify; the payload is the store's schema.
pub(crate) const CHANNEL: &str = "steward_wakeup";

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Listener {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Listens before returning, so nothing notified after this is missed.
    pub(crate) async fn start(options: PgConnectOptions, schema: String) -> Result<Self> {
        // Its own pool: the listening connection is held for good and must not starve queries.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let first = listen(&pool).await.map_err(db)?;
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(forward_forever(first, pool, schema, Arc::clone(&notify)));
        Ok(Self { notify, task })
    }

    /// Woken on every notification for the schema.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn forward_forever(mut listener: PgListener, pool: PgPool, schema: String, notify: Arc<Notify>) {
    let mut delay = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let err = forward(&mut listener, &schema, &notify).await;
        tracing::warn!(error = %err, "wakeup listener lost its connection");
        if started.elapsed() > STABLE {
            delay = MIN_BACKOFF;
        }
        listener = reconnect(&pool, &mut delay).await;
        wake::wake(&notify);
    }
}

/// Passes notifications on until the listener fails.
async fn forward(listener: &mut PgListener, schema: &str, notify: &Notify) -> sqlx::Error {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.payload() == schema => wake::wake(notify),
            Ok(Some(_)) => {}
            // sqlx reconnected by itself; what was sent in between is lost.
            Ok(None) => wake::wake(notify),
            Err(err) => return err,
        }
    }
}

async fn reconnect(pool: &PgPool, delay: &mut Duration) -> PgListener {
    loop {
        tokio::time::sleep(*delay).await;
        *delay = (*delay * 2).min(MAX_BACKOFF);
        match listen(pool).await {
            Ok(listener) => return listener,
            Err(err) => tracing::warn!(error = %err, "wakeup listener cannot reconnect"),
        }
    }
}
