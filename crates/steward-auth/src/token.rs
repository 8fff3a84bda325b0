//! Bearer secrets: API tokens, session ids, invitation codes and webhook paths.
//!
//! Each is 32 random bytes from the operating system, written as URL-safe base64 behind a
//! short prefix that says what it is (`stw_` for an API token), so a leaked string is easy to
//! recognise and to search for. Only a SHA-256 digest is stored: the secrets carry 256 bits of
//! entropy, so a fast digest is enough and lets the server find a token by its digest.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a generated secret is for; its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ApiToken,
    Session,
    Invitation,
    Webhook,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::ApiToken => "stw_",
            Kind::Session => "sts_",
            Kind::Invitation => "sti_",
            Kind::Webhook => "sth_",
        }
    }
}

/// A freshly generated secret. It is shown to its owner once; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random secret of `kind`. Fails only when the operating system has no randomness.
    pub fn generate(kind: Kind) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Token(format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The secret itself, to hand to its owner.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The digest stored in place of the secret.
    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.0[..4])
    }
}

/// The stored digest of a presented secret: lowercase hex SHA-256.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in hash {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Whether `presented` looks like a secret of `kind`, to refuse garbage before a lookup.
pub fn looks_like(kind: Kind, presented: &str) -> bool {
    presented.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_stored_as_digests() {
        let a = Token::generate(Kind::ApiToken).unwrap();
        let b = Token::generate(Kind::ApiToken).unwrap();
        assert_ne!(a, b);
        assert!(a.reveal().starts_with("stw_"));
        assert!(looks_like(Kind::ApiToken, a.reveal()));
        assert!(!looks_like(Kind::Session, a.reveal()));
        assert!(!looks_like(Kind::ApiToken, "stw_short"));
        assert_eq!(a.digest().len(), 64);
        assert_eq!(a.digest(), digest(a.reveal()));
        assert!(!format!("{a:?}").contains(&a.reveal()[4..]));
        // The digest of a known string, so the encoding cannot drift.
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
