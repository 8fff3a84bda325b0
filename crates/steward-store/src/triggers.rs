//! Triggers that start runs from outside: webhooks (and, later, schedules).

use async_trait::async_trait;
use serde::Serialize;
use steward_engine::Timestamp;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: String,
    pub workspace_id: String,
    pub flow_name: String,
    /// The digest of the secret path segment of the webhook's URL.
    #[serde(skip)]
    pub path_digest: String,
    /// `none`, `github`, `stripe`, `slack` or `generic`.
    pub scheme: String,
    /// The HMAC key deliveries are signed with, when `scheme` is not `none`.
    #[serde(skip)]
    pub signing_secret: Option<String>,
    /// `async` (answer 202 at once) or `sync` (wait for the run's output).
    pub mode: String,
    pub sync_timeout_ms: u64,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()>;

    /// The webhook whose URL path has this digest, unless revoked.
    async fn webhook_by_path(&self, digest: &str) -> Result<Option<Webhook>>;

    /// A workspace's webhooks that are not revoked; one flow's when `flow` is given.
    async fn webhooks(&self, workspace: &str, flow: Option<&str>) -> Result<Vec<Webhook>>;

    /// Revokes a webhook; `NotFound` if it is not the workspace's or already revoked.
    async fn revoke_webhook(&self, workspace: &str, id: &str, now: Timestamp) -> Result<Webhook>;
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub id: String,
    pub workspace_id: String,
    pub flow_name: String,
    /// Five fields, or six with seconds first.
    pub cron: String,
    /// An IANA time zone name.
    pub timezone: String,
    /// `skip` or `once`: what happens to ticks missed while no server ran.
    pub catch_up: String,
    /// The inputs each run starts with.
    pub inputs: serde_json::Value,
    /// The next tick; `None` when the expression has no future times.
    pub next_fire_at: Option<Timestamp>,
    pub created_by: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn create_schedule(&self, schedule: &Schedule) -> Result<()>;

    /// A workspace's schedules that are not deleted; one flow's when `flow` is given.
    async fn schedules(&self, workspace: &str, flow: Option<&str>) -> Result<Vec<Schedule>>;

    /// Deletes a schedule; `NotFound` if it is not the workspace's.
    async fn delete_schedule(&self, workspace: &str, id: &str, now: Timestamp) -> Result<()>;

    /// Schedules of every workspace whose next tick is at or before `now`, earliest first.
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>>;

    /// Moves a schedule's next tick from `from` to `to`, if nobody moved it first; returns
    /// whether this call moved it.
    async fn advance_schedule(&self, id: &str, from: Timestamp, to: Option<Timestamp>) -> Result<bool>;

    /// The earliest next tick of any schedule, to sleep until.
    async fn next_schedule_tick(&self) -> Result<Option<Timestamp>>;
}
