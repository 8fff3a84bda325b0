//! Data keys, wrapped by the master key, and values sealed with a data key.
//!
//! Both use AES-256-GCM with a random 96-bit nonce per encryption and associated data that
//! names where the ciphertext belongs, so a ciphertext moved elsewhere fails to open:
//!
//! - a wrapped data key: its workspace;
//! - a sealed value: its workspace and its connection.
//!
//! Stored text forms: `dk1.<master key id>.<nonce>.<ciphertext>` and `s1.<nonce>.<ciphertext>`
//! (base64, no padding).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use zeroize::Zeroizing;

use crate::{Error, MasterKey, Result, Secret, random};

/// Where a sealed value belongs: its workspace and connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub workspace: &'a str,
    pub connection: &'a str,
}

impl Binding<'_> {
    /// Length-prefixed, so that no two bindings share a byte string.
    fn associated_data(&self) -> Vec<u8> {
        let (w, c) = (self.workspace, self.connection);
        format!("steward/secret/v1|{}:{w}|{}:{c}", w.len(), c.len()).into_bytes()
    }
}

fn wrap_aad(workspace: &str) -> Vec<u8> {
    format!("steward/data-key/v1|{}:{workspace}", workspace.len()).into_bytes()
}

/// A workspace's key for its secrets.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

/// A data key encrypted with a master key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The id of the master key that wrapped it.
    pub master_key_id: String,
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
}

/// A sealed secret value, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    nonce: [u8; 12],
    ciphertext: Vec<u8>,
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn encrypt(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<([u8; 12], Vec<u8>)> {
    let nonce = random::<12>()?;
    let ciphertext = cipher(key)
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| Error::Malformed("the value is too large to encrypt".to_owned()))?;
    Ok((nonce, ciphertext))
}

fn decrypt(key: &[u8; 32], aad: &[u8], nonce: &[u8; 12], ciphertext: &[u8], what: &str) -> Result<Vec<u8>> {
    cipher(key)
        .decrypt(&Nonce::from(*nonce), Payload { msg: ciphertext, aad })
        .map_err(|_| Error::Tampered(what.to_owned()))
}

impl DataKey {
    /// A new random data key.
    pub fn generate() -> Result<DataKey> {
        Ok(DataKey(Zeroizing::new(random::<32>()?)))
    }

    /// Encrypts this key with `master` for `workspace`.
    pub fn wrap(&self, master: &MasterKey, workspace: &str) -> Result<WrappedKey> {
        let (nonce, ciphertext) = encrypt(master.bytes(), &wrap_aad(workspace), &*self.0)?;
        Ok(WrappedKey { master_key_id: master.id().to_owned(), nonce, ciphertext })
    }

    /// Encrypts `value` for its place.
    pub fn seal(&self, binding: &Binding<'_>, value: &Secret) -> Result<Sealed> {
        let (nonce, ciphertext) = encrypt(&self.0, &binding.associated_data(), value.expose())?;
        Ok(Sealed { nonce, ciphertext })
    }

    /// Decrypts a value sealed for `binding`; [`Error::Tampered`] if it was altered or sealed
    /// for another place or with another key.
    pub fn open(&self, binding: &Binding<'_>, sealed: &Sealed) -> Result<Secret> {
        let what =
            format!("the secret of connection {} in workspace {}", binding.connection, binding.workspace);
        let plain = decrypt(&self.0, &binding.associated_data(), &sealed.nonce, &sealed.ciphertext, &what)?;
        Ok(Secret::new(plain))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl WrappedKey {
    /// The data key, if `master` is the key that wrapped it for `workspace`.
    pub fn unwrap_with(&self, master: &MasterKey, workspace: &str) -> Result<DataKey> {
        if self.master_key_id != master.id() {
            return Err(Error::WrongMasterKey {
                workspace: workspace.to_owned(),
                wrapped_with: self.master_key_id.clone(),
                in_use: master.id().to_owned(),
            });
        }
        let what = format!("the data key of workspace {workspace}");
        let plain = Zeroizing::new(decrypt(
            master.bytes(),
            &wrap_aad(workspace),
            &self.nonce,
            &self.ciphertext,
            &what,
        )?);
        let bytes: [u8; 32] =
            plain.as_slice().try_into().map_err(|_| Error::Malformed(format!("{what} is not 32 bytes")))?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }

    /// The same data key wrapped with `new` instead of `old`: rotating the master key touches
    /// one row per workspace, not every secret.
    pub fn rewrap(&self, old: &MasterKey, new: &MasterKey, workspace: &str) -> Result<WrappedKey> {
        self.unwrap_with(old, workspace)?.wrap(new, workspace)
    }

    pub fn to_text(&self) -> String {
        format!("dk1.{}.{}.{}", self.master_key_id, B64.encode(self.nonce), B64.encode(&self.ciphertext))
    }

    pub fn parse(text: &str) -> Result<WrappedKey> {
        let bad = || Error::Malformed("a stored data key is not in the dk1 format".to_owned());
        let mut parts = text.split('.');
        let (Some("dk1"), Some(id), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (nonce, ciphertext) = nonce_and_ciphertext(nonce, ct).ok_or_else(bad)?;
        Ok(WrappedKey { master_key_id: id.to_owned(), nonce, ciphertext })
    }
}

impl Sealed {
    pub fn to_text(&self) -> String {
        format!("s1.{}.{}", B64.encode(self.nonce), B64.encode(&self.ciphertext))
    }

    pub fn parse(text: &str) -> Result<Sealed> {
        let bad = || Error::Malformed("a stored secret is not in the s1 format".to_owned());
        let mut parts = text.split('.');
        let (Some("s1"), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (nonce, ciphertext) = nonce_and_ciphertext(nonce, ct).ok_or_else(bad)?;
        Ok(Sealed { nonce, ciphertext })
    }
}

fn nonce_and_ciphertext(nonce: &str, ciphertext: &str) -> Option<([u8; 12], Vec<u8>)> {
    let nonce: [u8; 12] = B64.decode(nonce).ok()?.try_into().ok()?;
    Some((nonce, B64.decode(ciphertext).ok()?))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const HERE: Binding<'static> = Binding { workspace: "acme", connection: "github" };

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_with_its_key() {
        let key = DataKey::generate().unwrap();
        let secret = Secret::from("ghp_canary_123");
        let sealed = key.seal(&HERE, &secret).unwrap();
        assert_eq!(key.open(&HERE, &Sealed::parse(&sealed.to_text()).unwrap()).unwrap(), secret);
        assert!(!sealed.to_text().contains("canary"));

        for elsewhere in [
            Binding { workspace: "other", connection: "github" },
            Binding { workspace: "acme", connection: "stripe" },
            // The length prefixes keep these apart from ("acme", "github").
            Binding { workspace: "acme|6:github", connection: "" },
        ] {
            let err = key.open(&elsewhere, &sealed).unwrap_err();
            assert!(matches!(err, Error::Tampered(_)), "{elsewhere:?}: {err}");
        }
        let other_key = DataKey::generate().unwrap();
        assert!(matches!(other_key.open(&HERE, &sealed), Err(Error::Tampered(_))));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(key.open(&HERE, &flipped), Err(Error::Tampered(_))));
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let key = DataKey::generate().unwrap();
        let a = key.seal(&HERE, &Secret::from("same")).unwrap();
        let b = key.seal(&HERE, &Secret::from("same")).unwrap();
        assert_ne!(a.to_text(), b.to_text(), "a fresh nonce per encryption");
    }

    #[test]
    fn data_keys_unwrap_with_their_master_key_and_workspace_only() {
        let (master, other) = (MasterKey::generate().unwrap(), MasterKey::generate().unwrap());
        let key = DataKey::generate().unwrap();
        let sealed = key.seal(&HERE, &Secret::from("value")).unwrap();
        let wrapped = WrappedKey::parse(&key.wrap(&master, "acme").unwrap().to_text()).unwrap();
        let again = wrapped.unwrap_with(&master, "acme").unwrap();
        assert_eq!(again.open(&HERE, &sealed).unwrap(), Secret::from("value"));

        let wrong = wrapped.unwrap_with(&other, "acme").unwrap_err().to_string();
        assert!(wrong.contains(master.id()) && wrong.contains(other.id()), "names both keys: {wrong}");
        let moved = wrapped.unwrap_with(&master, "other").unwrap_err();
        assert!(matches!(moved, Error::Tampered(_)), "{moved}");
    }

    #[test]
    fn rotating_the_master_key_keeps_every_secret_readable() {
        let (old, new) = (MasterKey::generate().unwrap(), MasterKey::generate().unwrap());
        let key = DataKey::generate().unwrap();
        let sealed = key.seal(&HERE, &Secret::from("kept")).unwrap();
        let wrapped = key.wrap(&old, "acme").unwrap();
        let rotated = wrapped.rewrap(&old, &new, "acme").unwrap();
        assert_eq!(rotated.master_key_id, new.id());
        let after = rotated.unwrap_with(&new, "acme").unwrap();
        assert_eq!(after.open(&HERE, &sealed).unwrap(), Secret::from("kept"));
        assert!(matches!(rotated.unwrap_with(&old, "acme"), Err(Error::WrongMasterKey { .. })));
    }

    #[test]
    fn stored_forms_are_checked() {
        for bad in ["", "s1", "s1.x.y", "s2.AAAAAAAAAAAAAAAA.AA", "s1.AAAA.AA.extra"] {
            assert!(matches!(Sealed::parse(bad), Err(Error::Malformed(_))), "{bad}");
        }
        for bad in ["dk1.id.AAAA", "dk2.id.AAAAAAAAAAAAAAAA.AA"] {
            assert!(matches!(WrappedKey::parse(bad), Err(Error::Malformed(_))), "{bad}");
        }
        assert!(format!("{:?}", DataKey::generate().unwrap()).contains("redacted"));
    }
}
