//! SQL and row mapping for accounts and the audit log, shared by both backends (the trait
//! implementations are in [`crate::shared`]).

use std::str::FromStr;

use steward_auth::{Permissions, Role};
use steward_engine::Timestamp;
use steward_store::{ApiToken, AuditEvent, Error, Invitation, Member, Result, Session, User, Workspace};

use crate::error::from_json;
use crate::rows::RowExt;

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $5)";
pub(crate) const USER: &str = "SELECT id, email, name, created_at FROM users WHERE id = $1";
pub(crate) const USER_FOR_LOGIN: &str =
    "SELECT id, email, name, created_at, password_hash FROM users WHERE email = $1";
pub(crate) const COUNT_USERS: &str = "SELECT COUNT(*) AS n FROM users";

pub(crate) const INSERT_WORKSPACE: &str = "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const WORKSPACE: &str =
    "SELECT id, name, created_at, deleted_at FROM workspaces WHERE id = $1 AND deleted_at IS NULL";
pub(crate) const WORKSPACES_OF: &str = "SELECT w.id, w.name, w.created_at, w.deleted_at, m.role \
     FROM workspaces w JOIN memberships m ON m.workspace_id = w.id \
     WHERE m.user_id = $1 AND w.deleted_at IS NULL ORDER BY w.id";
pub(crate) const DELETED_WORKSPACES_OF: &str = "SELECT w.id, w.name, w.created_at, w.deleted_at, m.role \
     FROM workspaces w JOIN memberships m ON m.workspace_id = w.id \
     WHERE m.user_id = $1 AND w.deleted_at IS NOT NULL ORDER BY w.deleted_at DESC, w.id";
/// A workspace, deleted or not; on PostgreSQL locked against a concurrent delete or restore.
pub(crate) const ANY_WORKSPACE: &str =
    "SELECT id, name, created_at, deleted_at FROM workspaces WHERE id = $1";
pub(crate) const ANY_WORKSPACE_LOCKED: &str =
    "SELECT id, name, created_at, deleted_at FROM workspaces WHERE id = $1 FOR UPDATE";
/// Up to two workspaces in use: enough to tell whether one is the last. Locked on
/// PostgreSQL (always in id order) so two deletions cannot each leave the other's as last.
pub(crate) const LIVE_WORKSPACES: &str =
    "SELECT id FROM workspaces WHERE deleted_at IS NULL ORDER BY id LIMIT 2";
pub(crate) const LIVE_WORKSPACES_LOCKED: &str =
    "SELECT id FROM workspaces WHERE deleted_at IS NULL ORDER BY id LIMIT 2 FOR UPDATE";
pub(crate) const SET_WORKSPACE_DELETED: &str = "UPDATE workspaces SET deleted_at = $2 WHERE id = $1";
pub(crate) const ROLE: &str = "SELECT m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
     WHERE m.workspace_id = $1 AND m.user_id = $2 AND w.deleted_at IS NULL";
pub(crate) const MEMBERS: &str = "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at \
     FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email";
pub(crate) const UPSERT_MEMBER: &str = "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role";
pub(crate) const DELETE_MEMBER: &str = "DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2";
/// The owners of a workspace; on PostgreSQL locked, so two demotions cannot both see a
/// second owner.
pub(crate) const OWNERS: &str = "SELECT user_id FROM memberships WHERE workspace_id = $1 AND role = 'owner'";
pub(crate) const OWNERS_LOCKED: &str =
    "SELECT user_id FROM memberships WHERE workspace_id = $1 AND role = 'owner' FOR UPDATE";
pub(crate) const REVOKE_MEMBER_TOKENS: &str = "UPDATE api_tokens SET revoked_at = $3 \
     WHERE workspace_id = $1 AND user_id = $2 AND revoked_at IS NULL";

macro_rules! invitation_cols {
    () => {
        "id, digest, workspace_id, email, role, invited_by, created_at, expires_at"
    };
}
pub(crate) const INSERT_INVITATION: &str =
    concat!("INSERT INTO invitations (", invitation_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
pub(crate) const OPEN_INVITATIONS: &str = concat!(
    "SELECT ",
    invitation_cols!(),
    " FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL \
     AND expires_at > $2 ORDER BY created_at DESC"
);
pub(crate) const OPEN_INVITATION: &str = concat!(
    "SELECT ",
    invitation_cols!(),
    " FROM invitations WHERE digest = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"
);
/// Marks an open invitation used and returns it: one statement, so it is used once.
pub(crate) const TAKE_INVITATION: &str = concat!(
    "UPDATE invitations SET accepted_at = $2, accepted_by = $3 \
     WHERE digest = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
     RETURNING ",
    invitation_cols!()
);
pub(crate) const REVOKE_INVITATION: &str = "UPDATE invitations SET revoked_at = $3 \
     WHERE workspace_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL";

pub(crate) const INSERT_SESSION: &str =
    "INSERT INTO sessions (digest, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SESSION: &str = "SELECT digest, user_id, csrf, created_at, expires_at FROM sessions \
     WHERE digest = $1 AND expires_at > $2";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE digest = $1";
pub(crate) const DELETE_SESSIONS_OF: &str = "DELETE FROM sessions WHERE user_id = $1";

macro_rules! token_cols {
    () => {
        "id, digest, workspace_id, user_id, name, permissions, created_at, expires_at, last_used_at, revoked_at"
    };
}
pub(crate) const INSERT_TOKEN: &str = concat!(
    "INSERT INTO api_tokens (",
    token_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)"
);
/// Tokens of deleted workspaces are not found (and work again when it is restored).
pub(crate) const TOKEN_BY_DIGEST: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_tokens WHERE digest = $1 AND NOT EXISTS (SELECT 1 FROM workspaces w \
     WHERE w.id = api_tokens.workspace_id AND w.deleted_at IS NOT NULL)"
);
pub(crate) const TOKENS: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_tokens WHERE workspace_id = $1 AND ($2 IS NULL OR user_id = $2) ORDER BY created_at DESC, id"
);
pub(crate) const REVOKE_TOKEN: &str = concat!(
    "UPDATE api_tokens SET revoked_at = $3 WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL \
     RETURNING ",
    token_cols!()
);
pub(crate) const TOUCH_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1";

macro_rules! audit_cols {
    () => {
        "seq, at, workspace_id, actor, action, object_type, object_id, source, details, prev_hash, hash"
    };
}
/// PostgreSQL: appenders wait for each other; readers do not wait.
pub(crate) const LOCK_AUDIT: &str = "LOCK TABLE audit_log IN EXCLUSIVE MODE";
pub(crate) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
pub(crate) const INSERT_AUDIT: &str = concat!(
    "INSERT INTO audit_log (",
    audit_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const AUDIT: &str = concat!(
    "SELECT ",
    audit_cols!(),
    " FROM audit_log WHERE workspace_id = $1 AND ($2 IS NULL OR action = $2) \
     AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4"
);
pub(crate) const AUDIT_CHAIN: &str =
    concat!("SELECT ", audit_cols!(), " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");

pub(crate) fn user(row: &impl RowExt) -> Result<User> {
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        name: row.opt_text("name")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

pub(crate) fn workspace(row: &impl RowExt) -> Result<Workspace> {
    Ok(Workspace {
        id: row.text("id")?,
        name: row.text("name")?,
        created_at: Timestamp(row.int("created_at")?),
        deleted_at: row.opt_int("deleted_at")?.map(Timestamp),
    })
}

pub(crate) fn role(text: &str) -> Result<Role> {
    Role::from_str(text).map_err(|e| Error::Backend(format!("stored role: {e}")))
}

pub(crate) fn member(row: &impl RowExt) -> Result<Member> {
    Ok(Member {
        user_id: row.text("user_id")?,
        email: row.text("email")?,
        name: row.opt_text("name")?,
        role: role(&row.text("role")?)?,
        joined_at: Timestamp(row.int("created_at")?),
    })
}

pub(crate) fn invitation(row: &impl RowExt) -> Result<Invitation> {
    Ok(Invitation {
        id: row.text("id")?,
        digest: row.text("digest")?,
        workspace_id: row.text("workspace_id")?,
        email: row.text("email")?,
        role: role(&row.text("role")?)?,
        invited_by: row.text("invited_by")?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
    })
}

pub(crate) fn session(row: &impl RowExt) -> Result<Session> {
    Ok(Session {
        digest: row.text("digest")?,
        user_id: row.text("user_id")?,
        csrf: row.text("csrf")?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
    })
}

pub(crate) fn token(row: &impl RowExt) -> Result<ApiToken> {
    let permissions: Vec<String> = from_json(&row.text("permissions")?, "token permissions")?;
    let permissions = Permissions::parse(permissions.iter().map(String::as_str))
        .map_err(|e| Error::Backend(format!("stored token permissions: {e}")))?;
    Ok(ApiToken {
        id: row.text("id")?,
        digest: row.text("digest")?,
        workspace_id: row.text("workspace_id")?,
        user_id: row.text("user_id")?,
        name: row.text("name")?,
        permissions,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: row.opt_int("expires_at")?.map(Timestamp),
        last_used_at: row.opt_int("last_used_at")?.map(Timestamp),
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp),
    })
}

pub(crate) fn audit_event(row: &impl RowExt) -> Result<AuditEvent> {
    let details_text = row.text("details")?;
    Ok(AuditEvent {
        seq: row.int("seq")?,
        at: Timestamp(row.int("at")?),
        workspace: row.opt_text("workspace_id")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        object_type: row.text("object_type")?,
        object_id: row.opt_text("object_id")?,
        source: row.opt_text("source")?,
        // An entry whose details were damaged still reads back; verification reports it.
        details: serde_json::from_str(&details_text).unwrap_or(serde_json::Value::Null),
        details_text,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

// Deleting an account.

pub(crate) const USER_EMAIL: &str = "SELECT email FROM users WHERE id = $1";
/// PostgreSQL: the memberships of every workspace the person belongs to, locked, so that no
/// other owner leaves or is demoted while the sole-owner rule is checked.
pub(crate) const LOCK_MEMBERSHIPS_OF: &str = "SELECT workspace_id, user_id FROM memberships \
     WHERE workspace_id IN (SELECT workspace_id FROM memberships WHERE user_id = $1) \
     ORDER BY workspace_id, user_id FOR UPDATE";
/// Each workspace the person belongs to: their role, whether it is deleted, and how many
/// other members and other owners it has.
pub(crate) const MEMBERSHIPS_OF: &str = "SELECT m.workspace_id, m.role, w.deleted_at, \
     (SELECT COUNT(*) FROM memberships o \
         WHERE o.workspace_id = m.workspace_id AND o.user_id <> m.user_id) AS others, \
     (SELECT COUNT(*) FROM memberships o \
         WHERE o.workspace_id = m.workspace_id AND o.user_id <> m.user_id AND o.role = 'owner') AS other_owners \
     FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
     WHERE m.user_id = $1 ORDER BY m.workspace_id";
pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";
pub(crate) const DELETE_USER_TOKENS: &str =
    "DELETE FROM api_tokens WHERE user_id = $1 RETURNING workspace_id";
pub(crate) const DELETE_USER_MEMBERSHIPS: &str =
    "DELETE FROM memberships WHERE user_id = $1 RETURNING workspace_id";
/// Invitations addressed to the person (in any state: each holds the address) and the ones
/// they sent that were never accepted (accepted ones are the invitee's history; they name
/// the person only by id).
pub(crate) const DELETE_USER_INVITATIONS: &str = "DELETE FROM invitations \
     WHERE email = $2 OR (invited_by = $1 AND accepted_at IS NULL) RETURNING workspace_id";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
/// SQLite: copies the log into the database file and empties the log, so the page images
/// that still hold deleted rows leave the disk now rather than at some later checkpoint.
pub(crate) const TRUNCATE_LOG: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// The name a receipt gives a backend.
pub(crate) fn store_kind<DB: sqlx::Database>() -> &'static str {
    if DB::NAME == "SQLite" { "sqlite" } else { "postgres" }
}

/// A page size as a bound SQL integer.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// E-mail addresses are compared in lowercase, without surrounding spaces.
pub(crate) fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Unfinished runs by what they are doing at `$1`: held under a live lease, due, or parked.
pub(crate) const QUEUE_DEPTH: &str = "SELECT \
     COALESCE(SUM(CASE WHEN lease_expires_at > $1 THEN 1 ELSE 0 END), 0) AS running, \
     COALESCE(SUM(CASE WHEN (lease_expires_at IS NULL OR lease_expires_at <= $1) AND wake_at <= $1 THEN 1 ELSE 0 END), 0) AS due, \
     COALESCE(SUM(CASE WHEN (lease_expires_at IS NULL OR lease_expires_at <= $1) \
         AND (wake_at IS NULL OR wake_at > $1) THEN 1 ELSE 0 END), 0) AS waiting \
     FROM runs WHERE status IN ('queued', 'running', 'waiting')";
