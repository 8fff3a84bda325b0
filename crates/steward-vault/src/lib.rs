//! Envelope encryption of secrets.
//!
//! - The [`MasterKey`] lives outside the database: in a file (created with mode 0600 on first
//!   start) or in an environment variable. It only wraps data keys.
//! - Each workspace has a random [`DataKey`], stored wrapped by the master key
//!   ([`WrappedKey`], bound to its workspace and naming the master key it was wrapped with).
//!   Rotating the master key re-wraps the data keys; no secret is re-encrypted.
//! - A secret value is sealed with its workspace's data key ([`Sealed`]), bound by AES-GCM's
//!   associated data to the workspace and the connection it belongs to: a ciphertext copied
//!   to another row does not open.
//!
//! Plaintext lives in [`Secret`], which is wiped when dropped and never printed by `Debug`.
//! [`Keyring`] puts the pieces together over a [`steward_store::VaultStore`].

mod envelope;
mod forms;
mod keyring;
mod master;
mod redact;
mod secret;

pub use envelope::{Binding, DataKey, Sealed, WrappedKey};
pub use keyring::Keyring;
pub use master::{KeySource, MASTER_KEY_ENV, MasterKey, write_new as write_key_file};
pub use redact::Redactor;
pub use secret::Secret;

/// Why a key or a secret could not be used. Messages never contain key material or secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master key file or variable is missing, unreadable, too open or malformed.
    #[error("{0}")]
    MasterKey(String),
    /// A data key was wrapped with another master key than the one given.
    #[error(
        "the data key of workspace {workspace} was wrapped with master key {wrapped_with}, but the master key in use is {in_use}"
    )]
    WrongMasterKey { workspace: String, wrapped_with: String, in_use: String },
    /// A stored value is not in a format this version reads.
    #[error("{0}")]
    Malformed(String),
    /// Authentication failed: the value was altered, or belongs to another workspace or
    /// connection.
    #[error("{0} does not decrypt: it was altered or belongs elsewhere")]
    Tampered(String),
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `N` random bytes from the operating system.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes)
}
