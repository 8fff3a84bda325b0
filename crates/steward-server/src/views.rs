//! What the API returns: the records of the store as the API contract shows them.

use serde::Serialize;
use steward_auth::Role;
use steward_engine::Timestamp;
use utoipa::ToSchema;

/// Milliseconds since the Unix epoch.
pub fn millis(t: Timestamp) -> i64 {
    t.0
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<&steward_store::User> for UserView {
    fn from(u: &steward_store::User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            created_at: millis(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    /// The caller's role in it.
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    /// The caller's permissions in it.
    pub permissions: Vec<&'static str>,
    pub created_at: i64,
    /// Only for a deleted workspace: when it was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// Only for a deleted workspace: until when its owners can restore it; it is purged then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restorable_until: Option<i64>,
}

impl WorkspaceView {
    pub fn new(w: &steward_store::Workspace, role: Role) -> Self {
        Self {
            id: w.id.clone(),
            name: w.name.clone(),
            role,
            permissions: role.permissions().names(),
            created_at: millis(w.created_at),
            deleted_at: w.deleted_at.map(millis),
            restorable_until: w.restorable_until().map(millis),
        }
    }
}
