//! Fine-grained permissions and sets of them.
//!
//! Every API endpoint names the one permission it needs; a caller holds a [`Permissions`] set
//! made from its role (and, for an API token, narrowed to the token's scope). Anything not in
//! the set is denied.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! permissions {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// One thing a caller may do in a workspace.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Permission {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Permission {
            /// Every permission, in a stable order.
            pub const ALL: &[Permission] = &[$(Permission::$variant,)*];

            /// The name used in the API, in tokens' scopes and in the database: `flows:write`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }

        impl FromStr for Permission {
            type Err = UnknownPermission;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Permission::$variant),)*
                    _ => Err(UnknownPermission(s.to_owned())),
                }
            }
        }
    };
}

permissions! {
    /// See the workspace's flows, their versions and sources.
    FlowsRead = "flows:read",
    /// Apply, disable and enable flows, and manage their triggers.
    FlowsWrite = "flows:write",
    /// Delete and restore flows.
    FlowsDelete = "flows:delete",
    /// See runs: status, timing, step timeline, error kinds.
    RunsRead = "runs:read",
    /// See what runs carried: inputs, outputs, step payloads and error messages.
    RunsReadPayloads = "runs:read_payloads",
    /// Start runs.
    RunsStart = "runs:start",
    /// Cancel runs.
    RunsCancel = "runs:cancel",
    /// Approve or reject approval steps.
    RunsApprove = "runs:approve",
    /// See the members of the workspace and their roles.
    MembersRead = "members:read",
    /// Invite and remove members and change their roles.
    MembersWrite = "members:write",
    /// Create API tokens for oneself in this workspace (never beyond one's own permissions).
    TokensCreate = "tokens:create",
    /// Read the audit log and verify its chain.
    AuditRead = "audit:read",
    /// See the workspace's connections: names, kinds, allowed hosts, dates (never secrets).
    ConnectionsRead = "connections:read",
    /// Create, rotate, revoke, delete and restore connections.
    ConnectionsWrite = "connections:write",
    /// Export the whole workspace: flows, runs with their payloads, members' e-mail
    /// addresses and the audit log (never secret values).
    WorkspaceExport = "workspace:export",
    /// Change the workspace's name and settings.
    WorkspaceAdmin = "workspace:admin",
    /// Delete the workspace and make or remove owners.
    WorkspaceOwn = "workspace:own",
}

/// A permission name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}`")]
pub struct UnknownPermission(pub String);

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions; the empty set denies everything.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    pub fn all() -> Self {
        Self::of(Permission::ALL)
    }

    pub const fn of(list: &[Permission]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < list.len() {
            bits |= 1 << list[i] as u8;
            i += 1;
        }
        Permissions(bits)
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & (1 << p as u8) != 0
    }

    /// Whether every permission of `other` is also in `self`.
    pub fn covers(self, other: Permissions) -> bool {
        other.0 & !self.0 == 0
    }

    /// The permissions in both sets: what a token may do is its scope within its owner's role.
    pub fn intersect(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.iter().copied().filter(move |p| self.contains(*p))
    }

    /// Parses permission names, refusing unknown ones.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownPermission> {
        let list = names.into_iter().map(str::parse).collect::<Result<Vec<Permission>, _>>()?;
        Ok(Self::of(&list))
    }

    /// The names, in [`Permission::ALL`] order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Permission::as_str)).finish()
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Permission>::deserialize(d)?;
        Ok(Self::of(&list))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(*p));
        }
        assert_eq!("flows:admin".parse::<Permission>(), Err(UnknownPermission("flows:admin".into())));
        assert!(Permissions::parse(["runs:read", "nope"]).is_err());
    }

    #[test]
    fn sets_cover_and_intersect() {
        let read = Permissions::of(&[Permission::RunsRead]);
        let both = Permissions::of(&[Permission::RunsRead, Permission::RunsReadPayloads]);
        assert!(both.covers(read));
        assert!(!read.covers(both));
        assert_eq!(both.intersect(read), read);
        assert!(!Permissions::NONE.contains(Permission::RunsRead));
        assert_eq!(Permissions::all().iter().count(), Permission::ALL.len());
        assert_eq!(both.names(), ["runs:read", "runs:read_payloads"]);
    }

    #[test]
    fn sets_serialize_as_name_lists() {
        let set = Permissions::of(&[Permission::AuditRead, Permission::FlowsRead]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["flows:read","audit:read"]"#);
        let back: Permissions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
    }
}
