//! SQL and row mapping for triggers, shared by both backends (the trait implementation is in
//! [`crate::shared`]).

use steward_engine::Timestamp;
use steward_store::{Result, Webhook};

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
