//! What every handler shares: the store, the executor, the settings and the login throttles.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use steward_auth::throttle::Throttle;
use steward_engine::Timestamp;
use steward_executor::Executor;
use steward_store::{NewAuditEvent, ServerStore};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::rate_limit::Limits;

/// Cheap to clone: one shared value behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn ServerStore>,
    executor: Executor,
    config: Config,
    logins_per_account: Throttle,
    logins_per_address: Throttle,
    metrics: Arc<crate::metrics::Metrics>,
    limits: Limits,
    keyring: Arc<steward_vault::Keyring>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.inner.config).finish()
    }
}

/// The window failed logins are counted in.
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Drops idle rate-limit buckets once a minute while the state is alive.
async fn forget_idle_limits(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        shared.limits.forget_idle();
    }
}

impl AppState {
    /// Must be called inside the async runtime: metrics start following the executor.
    pub fn new(
        store: Arc<dyn ServerStore>,
        executor: Executor,
        config: Config,
        keyring: Arc<steward_vault::Keyring>,
    ) -> Self {
        let attempts = config.login_attempts;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        metrics.follow(&executor);
        let limits = Limits::new(
            config.rate_limit_address,
            config.rate_limit_token,
            config.rate_limit_webhook,
            metrics.clone(),
        );
        let inner = Shared {
            keyring,
            limits,
            metrics,
            store,
            executor,
            logins_per_account: Throttle::new(attempts, LOGIN_WINDOW),
            logins_per_address: Throttle::new(attempts * 4, LOGIN_WINDOW),
            config,
        };
        let inner = Arc::new(inner);
        tokio::spawn(forget_idle_limits(Arc::downgrade(&inner)));
        Self { inner }
    }

    pub fn store(&self) -> &dyn ServerStore {
        &*self.inner.store
    }

    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// Seals and opens connection secrets.
    pub fn keyring(&self) -> &steward_vault::Keyring {
        &self.inner.keyring
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn now(&self) -> Timestamp {
        self.inner.executor.now()
    }

    pub(crate) fn logins_per_account(&self) -> &Throttle {
        &self.inner.logins_per_account
    }

    pub(crate) fn logins_per_address(&self) -> &Throttle {
        &self.inner.logins_per_address
    }

    /// Appends to the audit log. An action whose audit entry cannot be written fails: an
    /// administrative change must not go unrecorded.
    pub async fn audit(&self, entry: Audit<'_>) -> ApiResult<()> {
        let event = NewAuditEvent {
            workspace: entry.workspace.map(str::to_owned),
            actor: entry.actor.to_owned(),
            action: entry.action.to_owned(),
            object_type: entry.object.0.to_owned(),
            object_id: entry.object.1.map(str::to_owned),
            source: entry.source.map(str::to_owned),
            details: entry.details,
            now: self.now(),
        };
        self.store().append_audit(event).await.map(drop).map_err(ApiError::from)
    }
}

impl AppState {
    /// The version a new run of flow `name` starts with: its newest, unless the flow is
    /// missing or deleted (404) or disabled (409 `flow_disabled`). Every way of starting runs
    /// (API, webhooks, schedules) asks here.
    pub async fn startable_version(
        &self,
        workspace: &str,
        name: &str,
    ) -> ApiResult<steward_store::FlowVersion> {
        let missing = || ApiError::not_found(&format!("flow {name}"));
        let (version, disabled_at) = self.store().startable(workspace, name).await?.ok_or_else(missing)?;
        if disabled_at.is_some() {
            let message = format!("flow {name} is disabled");
            return Err(ApiError::new(axum::http::StatusCode::CONFLICT, "flow_disabled", message));
        }
        Ok(version)
    }

    /// Audits an action `access`'s caller took in its workspace on `object` (type, id).
    pub async fn audit_in(
        &self,
        access: &crate::auth::Access,
        action: &str,
        object: (&str, &str),
        details: Value,
    ) -> ApiResult<()> {
        self.audit(Audit {
            workspace: Some(&access.workspace),
            actor: &access.actor(),
            action,
            object: (object.0, Some(object.1)),
            source: access.source(),
            details,
        })
        .await
    }
}

/// One audit entry, as handlers describe it.
#[derive(Debug)]
pub struct Audit<'a> {
    pub workspace: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    /// Object type and id: `("flow", Some("enrich"))`.
    pub object: (&'a str, Option<&'a str>),
    pub source: Option<&'a str>,
    pub details: Value,
}
