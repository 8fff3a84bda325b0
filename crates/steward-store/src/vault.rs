//! What the vault keeps: each workspace's wrapped data key and the workspace's connections,
//! whose secret values are stored sealed (never in plaintext; sealing is `steward-vault`'s).

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use steward_engine::Timestamp;

use crate::Result;

/// A workspace's data key, wrapped by the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceKey {
    pub workspace_id: String,
    /// The wrapped key in its stored text form.
    pub wrapped: String,
    /// The id of the master key that wrapped it.
    pub master_key_id: String,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
}

/// A credential for an outside service, and the hosts it may be sent to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub id: String,
    pub workspace_id: String,
    /// Unique in its workspace; flows refer to it by this name.
    pub name: String,
    /// `api_key`, `bearer`, `basic`, `headers` or `oauth2_client_credentials`.
    pub kind: String,
    /// The hosts the secret may be sent to.
    pub hosts: Vec<String>,
    /// Settings that are not secret: a header or query parameter name, a user name, a token URL.
    pub settings: Value,
    /// The secret value, sealed.
    #[serde(skip)]
    pub sealed: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

#[async_trait]
pub trait VaultStore: Send + Sync {
    /// The workspace's data key, if it has one.
    async fn workspace_key(&self, workspace: &str) -> Result<Option<WorkspaceKey>>;

    /// Stores a workspace's first data key. If another writer stored one first, that one is
    /// returned and `key` is dropped: a workspace has one data key.
    async fn put_workspace_key(&self, key: &WorkspaceKey) -> Result<WorkspaceKey>;

    /// Every workspace's data key, for rotating the master key and checking it at startup.
    async fn workspace_keys(&self) -> Result<Vec<WorkspaceKey>>;

    /// Replaces a data key's wrapping if it is still wrapped with `from_master_key`; false
    /// when it changed meanwhile (another rotation got there first).
    async fn rewrap_workspace_key(&self, key: &WorkspaceKey, from_master_key: &str) -> Result<bool>;

    /// `Conflict` when the workspace already has a connection of that name (deleted or not).
    async fn create_connection(&self, connection: &Connection) -> Result<()>;

    /// A connection by name, deleted or not; `NotFound` for other workspaces'.
    async fn connection(&self, workspace: &str, name: &str) -> Result<Connection>;

    /// The workspace's connections by name; deleted ones too when `deleted` is set.
    async fn connections(&self, workspace: &str, deleted: bool) -> Result<Vec<Connection>>;

    /// Replaces a connection's sealed secret (rotation); a revoked connection becomes usable
    /// again. `NotFound` for deleted connections.
    async fn rotate_connection(
        &self,
        workspace: &str,
        name: &str,
        sealed: &str,
        now: Timestamp,
    ) -> Result<Connection>;

    /// Marks a connection revoked: it stays listed, and nothing may use it.
    async fn revoke_connection(&self, workspace: &str, name: &str, now: Timestamp) -> Result<Connection>;

    /// Soft-deletes (or restores) a connection.
    async fn set_connection_deleted(
        &self,
        workspace: &str,
        name: &str,
        deleted: bool,
        now: Timestamp,
    ) -> Result<Connection>;
}
