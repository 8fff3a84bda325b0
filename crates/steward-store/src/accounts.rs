//! Accounts: users, workspaces and their members, invitations, sessions and API tokens.
//!
//! Users and their sessions are the only rows that belong to no workspace: a person can be a
//! member of several. Secrets (session ids, tokens, invitation codes) are stored only as
//! digests; the caller computes them with `steward_auth::token::digest`.

use async_trait::async_trait;
use serde::Serialize;
use steward_auth::{Permissions, Role};
use steward_engine::Timestamp;

use crate::{DeletionReceipt, Result};

/// How long a deleted workspace can be restored: the pruner purges it once this has passed
/// since its deletion ([`crate::PURGE_AFTER_DAYS`]), and restoring it is refused from then on.
pub const RESTORE_WINDOW_MS: i64 = crate::PURGE_AFTER_DAYS * crate::DAY_MS;

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
    /// When it was soft-deleted; `None` while it is in use.
    pub deleted_at: Option<Timestamp>,
}

impl Workspace {
    /// Until when a deleted workspace can be restored.
    pub fn restorable_until(&self) -> Option<Timestamp> {
        self.deleted_at.map(|at| Timestamp(at.0.saturating_add(RESTORE_WINDOW_MS)))
    }
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

/// Who deleted an account, for the audit entries the deletion writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleter {
    /// `user:<id>` when people delete their own account, `system:cli` for an administrator.
    pub actor: String,
    /// The client address of the request, if any.
    pub source: Option<String>,
}

/// What deleting an account did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountDeletion {
    /// Every row removed, in every table.
    pub receipt: DeletionReceipt,
    /// The workspaces rows were removed from, each with its own part of the receipt: what
    /// that workspace's audit log records (it is not told about the person's other
    /// workspaces).
    pub per_workspace: Vec<(String, DeletionReceipt)>,
    /// The workspaces soft-deleted with the account because the person was their only member.
    pub workspaces_deleted: Vec<String>,
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

    /// A workspace that is not deleted.
    async fn workspace(&self, id: &str) -> Result<Workspace>;

    /// The workspaces `user` belongs to, with their role in each (not the deleted ones).
    async fn workspaces_of(&self, user: &str) -> Result<Vec<(Workspace, Role)>>;

    /// The soft-deleted workspaces `user` belongs to (purged ones are gone), with their role.
    async fn deleted_workspaces_of(&self, user: &str) -> Result<Vec<(Workspace, Role)>>;

    /// Soft-deletes a workspace (`deleted`) or restores it. A deleted workspace keeps its rows
    /// but has no members as far as [`AccountStore::role`] is concerned, its tokens are not
    /// found and its flows are not startable.
    ///
    /// Deleting: `NotFound` if it does not exist or is deleted already; `Conflict` if it is
    /// the server's last workspace in use (someone must be able to work on the server).
    /// Restoring: `NotFound` if it does not exist; `Conflict` if it is not deleted or was
    /// deleted [`RESTORE_WINDOW_MS`] or more before `now`.
    async fn set_workspace_deleted(&self, id: &str, deleted: bool, now: Timestamp) -> Result<Workspace>;

    /// Deletes an account and the personal data that belongs to no one else, in one
    /// transaction: the user row (e-mail, name, password hash), their sessions, API tokens
    /// and memberships, the invitations addressed to their e-mail address and the unaccepted
    /// ones they sent. Workspaces where they were the only member are soft-deleted with it.
    /// What the workspaces hold (flows, runs, connections) stays; the audit log names the
    /// person only by the opaque `user:<id>`.
    ///
    /// The receipt is appended to the audit log in the same transaction as `data.deleted`
    /// entries (the whole receipt with no workspace, and each workspace's part in that
    /// workspace), with `workspace.deleted` for each workspace deleted with the account.
    ///
    /// `NotFound` for an unknown user; `Conflict`, deleting nothing, when the person is the
    /// only owner of a workspace in use that has other members (the message names them).
    async fn delete_user(&self, user: &str, by: &Deleter, now: Timestamp) -> Result<AccountDeletion>;

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

    /// The token with this digest, whatever its state (the caller checks expiry and revocation),
    /// unless its workspace is deleted: those tokens do not work until it is restored.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>>;

    /// The workspace's tokens, newest first; only `user`'s when given.
    async fn tokens(&self, workspace: &str, user: Option<&str>) -> Result<Vec<ApiToken>>;

    /// Marks a token revoked; `NotFound` if it is not the workspace's or already revoked.
    async fn revoke_token(&self, workspace: &str, id: &str, now: Timestamp) -> Result<ApiToken>;

    /// Records that a token was used (at most about once a minute is enough).
    async fn touch_token(&self, id: &str, now: Timestamp) -> Result<()>;
}
