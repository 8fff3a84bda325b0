//! SQL and row mapping for triggers, shared by both backends (the trait implementation is in
//! [`crate::shared`]).

use steward_engine::Timestamp;
use steward_store::{Result, Schedule, Webhook};

use crate::error::from_json;

use crate::rows::RowExt;

macro_rules! webhook_cols {
    () => {
        "id, workspace_id, flow_name, path_digest, scheme, signing_secret, mode, sync_timeout_ms, \
         created_by, created_at, revoked_at"
    };
}

pub(crate) const INSERT_WEBHOOK: &str = concat!(
    "INSERT INTO webhooks (",
    webhook_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)"
);
pub(crate) const WEBHOOK_BY_PATH: &str =
    concat!("SELECT ", webhook_cols!(), " FROM webhooks WHERE path_digest = $1 AND revoked_at IS NULL");
pub(crate) const WEBHOOKS: &str = concat!(
    "SELECT ",
    webhook_cols!(),
    " FROM webhooks WHERE workspace_id = $1 AND ($2 IS NULL OR flow_name = $2) AND revoked_at IS NULL \
     ORDER BY created_at, id"
);
pub(crate) const REVOKE_WEBHOOK: &str = concat!(
    "UPDATE webhooks SET revoked_at = $3 WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING ",
    webhook_cols!()
);

pub(crate) fn webhook(row: &impl RowExt) -> Result<Webhook> {
    Ok(Webhook {
        id: row.text("id")?,
        workspace_id: row.text("workspace_id")?,
        flow_name: row.text("flow_name")?,
        path_digest: row.text("path_digest")?,
        scheme: row.text("scheme")?,
        signing_secret: row.opt_text("signing_secret")?,
        mode: row.text("mode")?,
        sync_timeout_ms: u64::try_from(row.int("sync_timeout_ms")?).unwrap_or(0),
        created_by: row.text("created_by")?,
        created_at: Timestamp(row.int("created_at")?),
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp),
    })
}

macro_rules! schedule_cols {
    () => {
        "id, workspace_id, flow_name, cron, timezone, catch_up, inputs, next_fire_at, created_by, created_at"
    };
}

pub(crate) const INSERT_SCHEDULE: &str = concat!(
    "INSERT INTO schedules (",
    schedule_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(crate) const SCHEDULES: &str = concat!(
    "SELECT ",
    schedule_cols!(),
    " FROM schedules WHERE workspace_id = $1 AND ($2 IS NULL OR flow_name = $2) AND deleted_at IS NULL \
     ORDER BY created_at, id"
);
pub(crate) const DELETE_SCHEDULE: &str =
    "UPDATE schedules SET deleted_at = $3 WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL";
pub(crate) const DUE_SCHEDULES: &str = concat!(
    "SELECT ",
    schedule_cols!(),
    " FROM schedules WHERE deleted_at IS NULL AND next_fire_at <= $1 ORDER BY next_fire_at, id LIMIT $2"
);
/// Compare-and-set: only the server that still sees `$2` moves the tick.
pub(crate) const ADVANCE_SCHEDULE: &str =
    "UPDATE schedules SET next_fire_at = $3 WHERE id = $1 AND next_fire_at = $2 AND deleted_at IS NULL";
pub(crate) const NEXT_SCHEDULE_TICK: &str =
    "SELECT MIN(next_fire_at) AS next FROM schedules WHERE deleted_at IS NULL";

pub(crate) fn schedule(row: &impl RowExt) -> Result<Schedule> {
    Ok(Schedule {
        id: row.text("id")?,
        workspace_id: row.text("workspace_id")?,
        flow_name: row.text("flow_name")?,
        cron: row.text("cron")?,
        timezone: row.text("timezone")?,
        catch_up: row.text("catch_up")?,
        inputs: from_json(&row.text("inputs")?, "schedule inputs")?,
        next_fire_at: row.opt_int("next_fire_at")?.map(Timestamp),
        created_by: row.text("created_by")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}
