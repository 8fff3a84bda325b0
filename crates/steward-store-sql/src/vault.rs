//! SQL and row mapping for the vault's tables, shared by both backends (the trait
//! implementation is in [`crate::shared`]).

use steward_engine::Timestamp;
use steward_store::{Connection, Result, WorkspaceKey};

use crate::error::from_json;
use crate::rows::RowExt;

pub(crate) const WORKSPACE_KEY: &str = "SELECT workspace_id, wrapped, master_key_id, created_at, rotated_at \
     FROM workspace_keys WHERE workspace_id = $1";
pub(crate) const WORKSPACE_KEYS: &str = "SELECT workspace_id, wrapped, master_key_id, created_at, rotated_at \
     FROM workspace_keys ORDER BY workspace_id";
/// Inserts nothing when the workspace has a key already.
pub(crate) const INSERT_WORKSPACE_KEY: &str = "INSERT INTO workspace_keys \
     (workspace_id, wrapped, master_key_id, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (workspace_id) DO NOTHING";
pub(crate) const REWRAP_WORKSPACE_KEY: &str = "UPDATE workspace_keys \
     SET wrapped = $2, master_key_id = $3, rotated_at = $4 WHERE workspace_id = $1 AND master_key_id = $5";

macro_rules! connection_cols {
    () => {
        "id, workspace_id, name, kind, hosts, settings, sealed, created_by, created_at, updated_at, \
         rotated_at, revoked_at, deleted_at"
    };
}

pub(crate) const INSERT_CONNECTION: &str = concat!(
    "INSERT INTO connections (",
    connection_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, NULL, NULL, NULL)"
);
pub(crate) const CONNECTION: &str =
    concat!("SELECT ", connection_cols!(), " FROM connections WHERE workspace_id = $1 AND name = $2");
pub(crate) const CONNECTIONS: &str = concat!(
    "SELECT ",
    connection_cols!(),
    " FROM connections WHERE workspace_id = $1 AND ($2 OR deleted_at IS NULL) ORDER BY name"
);
pub(crate) const ROTATE_CONNECTION: &str = concat!(
    "UPDATE connections SET sealed = $3, rotated_at = $4, updated_at = $4, revoked_at = NULL \
     WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL RETURNING ",
    connection_cols!()
);
pub(crate) const REVOKE_CONNECTION: &str = concat!(
    "UPDATE connections SET revoked_at = COALESCE(revoked_at, $3), updated_at = $3 \
     WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL RETURNING ",
    connection_cols!()
);
/// `$3`: delete (a time) or restore (NULL).
pub(crate) const SET_CONNECTION_DELETED: &str = concat!(
    "UPDATE connections SET deleted_at = $3, updated_at = $4 WHERE workspace_id = $1 AND name = $2 RETURNING ",
    connection_cols!()
);

pub(crate) fn workspace_key(row: &impl RowExt) -> Result<WorkspaceKey> {
    Ok(WorkspaceKey {
        workspace_id: row.text("workspace_id")?,
        wrapped: row.text("wrapped")?,
        master_key_id: row.text("master_key_id")?,
        created_at: Timestamp(row.int("created_at")?),
        rotated_at: row.opt_int("rotated_at")?.map(Timestamp),
    })
}

pub(crate) fn connection(row: &impl RowExt) -> Result<Connection> {
    Ok(Connection {
        id: row.text("id")?,
        workspace_id: row.text("workspace_id")?,
        name: row.text("name")?,
        kind: row.text("kind")?,
        hosts: from_json(&row.text("hosts")?, "connection hosts")?,
        settings: from_json(&row.text("settings")?, "connection settings")?,
        sealed: row.text("sealed")?,
        created_by: row.text("created_by")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
        rotated_at: row.opt_int("rotated_at")?.map(Timestamp),
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp),
        deleted_at: row.opt_int("deleted_at")?.map(Timestamp),
    })
}
