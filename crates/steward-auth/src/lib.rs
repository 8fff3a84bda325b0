//! Who may do what in Steward: the permissions every endpoint checks, the built-in roles that
//! group them, and the credentials that prove who a caller is (argon2id passwords, random
//! bearer secrets stored as digests), plus login throttling. Nothing here does I/O.

pub mod password;
mod permission;
mod role;
pub mod throttle;
pub mod token;

pub use permission::{Permission, Permissions, UnknownPermission};
pub use role::{Role, UnknownRole};
