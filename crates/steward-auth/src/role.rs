//! Built-in roles: named sets of permissions a workspace member holds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::permission::{Permission as P, Permissions};

/// A member's role in a workspace, from most to least powerful (auditor stands apart: it
/// reads the audit log but changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including deleting the workspace and managing owners.
    Owner,
    /// Everything except what only owners do.
    Admin,
    /// Writes flows and works with runs and their payloads.
    Editor,
    /// Starts, cancels and approves runs and sees that they failed, but not their payloads.
    Operator,
    /// Reads flows and run statuses.
    Viewer,
    /// Reads the audit log, flows and run statuses.
    Auditor,
}

impl Role {
    pub const ALL: &[Role] =
        &[Role::Owner, Role::Admin, Role::Editor, Role::Operator, Role::Viewer, Role::Auditor];

    pub fn permissions(self) -> Permissions {
        const OWNER: &[P] = P::ALL;
        const ADMIN: &[P] = &[
            P::FlowsRead,
            P::FlowsWrite,
            P::FlowsDelete,
            P::RunsRead,
            P::RunsReadPayloads,
            P::RunsStart,
            P::RunsCancel,
            P::RunsApprove,
            P::MembersRead,
            P::MembersWrite,
            P::TokensCreate,
            P::AuditRead,
            P::WorkspaceAdmin,
            P::WorkspaceExport,
            P::ConnectionsRead,
            P::ConnectionsWrite,
        ];
        const EDITOR: &[P] = &[
            P::FlowsRead,
            P::FlowsWrite,
            P::FlowsDelete,
            P::RunsRead,
            P::RunsReadPayloads,
            P::RunsStart,
            P::RunsCancel,
            P::RunsApprove,
            P::MembersRead,
            P::TokensCreate,
            P::ConnectionsRead,
            P::ConnectionsWrite,
        ];
        const OPERATOR: &[P] = &[
            P::FlowsRead,
            P::RunsRead,
            P::RunsStart,
            P::RunsCancel,
            P::RunsApprove,
            P::MembersRead,
            P::TokensCreate,
            P::ConnectionsRead,
        ];
        const VIEWER: &[P] = &[P::FlowsRead, P::RunsRead, P::MembersRead, P::ConnectionsRead];
        const AUDITOR: &[P] =
            &[P::FlowsRead, P::RunsRead, P::MembersRead, P::AuditRead, P::TokensCreate, P::ConnectionsRead];
        Permissions::of(match self {
            Role::Owner => OWNER,
            Role::Admin => ADMIN,
            Role::Editor => EDITOR,
            Role::Operator => OPERATOR,
            Role::Viewer => VIEWER,
            Role::Auditor => AUDITOR,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (roles: owner, admin, editor, operator, viewer, auditor)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_own_and_only_payload_roles_read_payloads() {
        for role in Role::ALL {
            let p = role.permissions();
            assert_eq!(p.contains(P::WorkspaceOwn), *role == Role::Owner, "{role}");
            let payloads = matches!(role, Role::Owner | Role::Admin | Role::Editor);
            assert_eq!(p.contains(P::RunsReadPayloads), payloads, "{role}");
            assert_eq!(p.contains(P::AuditRead), matches!(role, Role::Owner | Role::Admin | Role::Auditor));
            assert_eq!(role.as_str().parse::<Role>(), Ok(*role));
        }
        assert!(Role::Owner.permissions().covers(Role::Admin.permissions()));
        assert!(Role::Admin.permissions().covers(Role::Editor.permissions()));
        assert!(Role::Editor.permissions().covers(Role::Operator.permissions()));
        assert!(Role::Operator.permissions().covers(Role::Viewer.permissions()));
        assert!(!Role::Operator.permissions().contains(P::FlowsWrite));
        assert!(!Role::Auditor.permissions().contains(P::RunsStart));
        assert!("root".parse::<Role>().is_err());
    }
}
