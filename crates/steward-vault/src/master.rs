//! The master key: 32 random bytes, from `STEWARD_MASTER_KEY` or a key file that the first
//! start creates with mode 0600.
//!
//! Text form (file and variable alike): `steward-master-key-v1:<base64 of 32 bytes>`. Each key
//! has an id, a digest of it that is safe to show and store, so that a data key wrapped with
//! another master key is reported as such instead of as a failed decryption.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Error, Result, random};

/// The environment variable that may hold the master key instead of a file.
pub const MASTER_KEY_ENV: &str = "STEWARD_MASTER_KEY";

const PREFIX: &str = "steward-master-key-v1:";

/// The key that wraps every workspace's data key.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

/// Where a master key came from, for the startup message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    /// This start created the file.
    Created(PathBuf),
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<MasterKey> {
        Ok(MasterKey::from_bytes(random::<32>()?))
    }

    fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let digest = Sha256::new().chain_update(b"steward master key id\0").chain_update(bytes).finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey { bytes: Zeroizing::new(bytes), id }
    }

    /// Reads the text form.
    pub fn parse(text: &str) -> Result<MasterKey> {
        let bad = || Error::MasterKey(format!("a master key is `{PREFIX}` followed by 32 bytes in base64"));
        let encoded = text.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let decoded = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| bad())?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| bad())?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// The text form, for writing the key file; handle with care.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}\n", STANDARD.encode(*self.bytes)))
    }

    /// A short digest that names the key without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key from `env` (the value of [`MASTER_KEY_ENV`], if set) or else from `file`; with
    /// neither, a new key is written to `file` (mode 0600, never overwriting). A file others
    /// can read is refused.
    pub fn load_or_create(env: Option<&str>, file: &Path) -> Result<(MasterKey, KeySource)> {
        if let Some(text) = env {
            let key =
                MasterKey::parse(text).map_err(|e| Error::MasterKey(format!("{MASTER_KEY_ENV}: {e}")))?;
            return Ok((key, KeySource::Environment));
        }
        match std::fs::metadata(file) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::MasterKey(format!(
                        "the master key file {} can be read by others (mode {mode:o}); run `chmod 600 {}`",
                        file.display(),
                        file.display()
                    )));
                }
                let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                    Error::MasterKey(format!("cannot read the master key file {}: {e}", file.display()))
                })?);
                let key = MasterKey::parse(&text)
                    .map_err(|e| Error::MasterKey(format!("{}: {e}", file.display())))?;
                Ok((key, KeySource::File(file.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate()?;
                write_new(file, &key)?;
                Ok((key, KeySource::Created(file.to_owned())))
            }
            Err(e) => {
                Err(Error::MasterKey(format!("cannot read the master key file {}: {e}", file.display())))
            }
        }
    }
}

/// Creates `file` with mode 0600 and the key; fails if it exists.
pub fn write_new(file: &Path, key: &MasterKey) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::MasterKey(format!("cannot create the master key file {}: {e}", file.display()))
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file).map_err(fail)?;
    f.write_all(key.to_text().as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_first_start_creates_a_private_file_and_later_starts_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys").join("master.key");
        let (made, source) = MasterKey::load_or_create(None, &file).unwrap();
        assert_eq!(source, KeySource::Created(file.clone()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (read, source) = MasterKey::load_or_create(None, &file).unwrap();
        assert_eq!((read.id(), source), (made.id(), KeySource::File(file.clone())));
        assert!(!format!("{read:?}").contains(&STANDARD.encode(*read.bytes())), "Debug hides the key");
    }

    #[test]
    fn the_environment_wins_and_bad_keys_are_named_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        let key = MasterKey::generate().unwrap();
        let (from_env, source) = MasterKey::load_or_create(Some(&key.to_text()), &file).unwrap();
        assert_eq!((from_env.id(), source), (key.id(), KeySource::Environment));
        assert!(!file.exists(), "no file is made when the variable is set");

        let bad = MasterKey::load_or_create(Some("not a key"), &file).unwrap_err().to_string();
        assert!(bad.contains(MASTER_KEY_ENV) && bad.contains(PREFIX), "{bad}");
        let short = format!("{PREFIX}{}", STANDARD.encode([1u8; 16]));
        assert!(MasterKey::parse(&short).is_err(), "16 bytes is not a key");

        std::fs::write(&file, "garbage").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let garbage = MasterKey::load_or_create(None, &file).unwrap_err().to_string();
        assert!(garbage.contains("master.key"), "{garbage}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        write_new(&file, &MasterKey::generate().unwrap()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(None, &file).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
        assert!(write_new(&file, &MasterKey::generate().unwrap()).is_err(), "never overwrites");
    }

    #[test]
    fn ids_tell_keys_apart_and_round_trip() {
        let (a, b) = (MasterKey::generate().unwrap(), MasterKey::generate().unwrap());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert_eq!(MasterKey::parse(&a.to_text()).unwrap().id(), a.id());
    }
}
