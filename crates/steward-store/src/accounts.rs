//! Accounts: users, workspaces and their members, invitations, sessions and API tokens.
//!
//! Users and their sessions are the only rows that belong to no workspace: a person can be a
//! member of several. Secrets (session ids, tokens, invitation codes) are stored only as
//! digests; the caller computes them with `steward_auth::token::digest`.

use async_trait::async_trait;
use serde::Serialize;
use steward_auth::{Permissions, Role};
use steward_engine::Timestamp;

use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub id: String,
    /// Compared without regard to case; stored in lowercase.
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workspace {
    /// A short name used in URLs (`acme`).
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub joined_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitation {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(skip)]
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The digest of the session id in the cookie.
    pub digest: String,
    pub user_id: String,
    /// The token unsafe requests made with this session must echo in a header.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub id: String,
    #[serde(skip)]
    pub digest: String,
    pub workspace_id: String,
    pub user_id: String,
    pub name: String,
    /// What the token may do; it never does more than its owner's role allows at the time.
    pub permissions: Permissions,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Users, workspaces, memberships, invitations, sessions and tokens.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Fails with `Conflict` when the e-mail address has an account.
    async fn create_user(&self, user: NewUser) -> Result<User>;

    async fn user(&self, id: &str) -> Result<User>;

    /// The account with this e-mail address and its password hash.
    async fn user_for_login(&self, email: &str) -> Result<Option<(User, String)>>;

    async fn count_users(&self) -> Result<u64>;

    /// Creates a workspace with `owner` as its first owner. `Conflict` if the id is taken.
    async fn create_workspace(&self, id: &str, name: &str, owner: &str, now: Timestamp) -> Result<Workspace>;

    async fn workspace(&self, id: &str) -> Result<Workspace>;

    /// The workspaces `user` belongs to, with their role in each.
    async fn workspaces_of(&self, user: &str) -> Result<Vec<(Workspace, Role)>>;

    /// The role of `user` in `workspace`, if a member (and the workspace is not deleted).
    async fn role(&self, workspace: &str, user: &str) -> Result<Option<Role>>;

    async fn members(&self, workspace: &str) -> Result<Vec<Member>>;

    /// Adds `user` with `role`, or changes their role. Refuses (`Conflict`) to demote the
    /// workspace's last owner.
    async fn set_member(&self, workspace: &str, user: &str, role: Role, now: Timestamp) -> Result<()>;

    /// Removes `user` and the API tokens they hold in the workspace. Refuses (`Conflict`) to
    /// remove the last owner; `NotFound` if not a member.
    async fn remove_member(&self, workspace: &str, user: &str, now: Timestamp) -> Result<()>;

    async fn create_invitation(&self, invitation: &Invitation) -> Result<()>;

    async fn invitations(&self, workspace: &str, now: Timestamp) -> Result<Vec<Invitation>>;

    /// The open (unused, unrevoked, unexpired) invitation with this digest.
    async fn open_invitation(&self, digest: &str, now: Timestamp) -> Result<Option<Invitation>>;

    /// Consumes an open invitation for `user` (whose e-mail must match it) and makes them a
    /// member. Returns the invitation. `NotFound` for unknown, used, revoked or expired codes.
    async fn accept_invitation(&self, digest: &str, user: &User, now: Timestamp) -> Result<Invitation>;

    async fn revoke_invitation(&self, workspace: &str, id: &str, now: Timestamp) -> Result<()>;

    async fn create_session(&self, session: &Session) -> Result<()>;

    /// The session with this digest, if it has not expired.
    async fn session(&self, digest: &str, now: Timestamp) -> Result<Option<Session>>;

    async fn delete_session(&self, digest: &str) -> Result<()>;

    /// Ends every session of `user` ("log out everywhere"); returns how many there were.
    async fn delete_sessions_of(&self, user: &str) -> Result<u64>;

    async fn create_token(&self, token: &ApiToken) -> Result<()>;

    /// The token with this digest, whatever its state (the caller checks expiry and revocation).
    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>>;

    /// The workspace's tokens, newest first; only `user`'s when given.
    async fn tokens(&self, workspace: &str, user: Option<&str>) -> Result<Vec<ApiToken>>;

    /// Marks a token revoked; `NotFound` if it is not the workspace's or already revoked.
    async fn revoke_token(&self, workspace: &str, id: &str, now: Timestamp) -> Result<ApiToken>;

    /// Records that a token was used (at most about once a minute is enough).
    async fn touch_token(&self, id: &str, now: Timestamp) -> Result<()>;
}
