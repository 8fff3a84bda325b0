//! Webhook signatures: HMAC-SHA256 in the header conventions of GitHub, Stripe and Slack, and
//! a generic one, with a timestamp tolerance against replays where the convention signs a
//! timestamp.
//!
//! | scheme | header(s) | signed text |
//! |---|---|---|
//! | `github` | `X-Hub-Signature-256: sha256=<hex>` | body |
//! | `stripe` | `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>]` | `<t>.<body>` |
//! | `slack` | `X-Slack-Request-Timestamp: <unix>`, `X-Slack-Signature: v0=<hex>` | `v0:<t>:<body>` |
//! | `generic` | `X-Steward-Timestamp: <unix>`, `X-Steward-Signature: v1=<hex>` | `<t>.<body>` |
//!
//! GitHub signs no timestamp; its deliveries are de-duplicated by `X-GitHub-Delivery` instead.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signed timestamp may be from the server's clock.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    None,
    Github,
    Stripe,
    Slack,
    Generic,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::Generic => "generic",
        }
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Scheme::None, Scheme::Github, Scheme::Stripe, Scheme::Slack, Scheme::Generic]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown signature scheme `{s}` (none, github, stripe, slack, generic)"))
    }
}

/// Why a delivery was refused. The message names what was wrong, never the expected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing(&'static str),
    Malformed(&'static str),
    Stale { age_secs: i64 },
    Mismatch,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing(h) => write!(f, "the {h} header is missing"),
            Refusal::Malformed(h) => write!(f, "the {h} header is malformed"),
            Refusal::Stale { age_secs } => {
                write!(f, "the signed timestamp is {age_secs}s away from now (more than {TOLERANCE_SECS}s)")
            }
            Refusal::Mismatch => f.write_str("the signature does not match"),
        }
    }
}

/// Checks a delivery's signature; `now` is the server's time in Unix seconds.
pub fn verify(
    scheme: Scheme,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    match scheme {
        Scheme::None => Ok(()),
        Scheme::Github => {
            let sig = header(headers, "x-hub-signature-256")?;
            let hex = sig.strip_prefix("sha256=").ok_or(Refusal::Malformed("X-Hub-Signature-256"))?;
            check(secret, &[body], &[hex])
        }
        Scheme::Stripe => {
            let value = header(headers, "stripe-signature")?;
            let mut t = None;
            let mut sigs = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v),
                    Some(("v1", v)) => sigs.push(v),
                    _ => {}
                }
            }
            let t = t.ok_or(Refusal::Malformed("Stripe-Signature"))?;
            fresh(t, now, "Stripe-Signature")?;
            check(secret, &[t.as_bytes(), b".", body], &sigs)
        }
        Scheme::Slack => {
            let t = header(headers, "x-slack-request-timestamp")?;
            fresh(t, now, "X-Slack-Request-Timestamp")?;
            let sig = header(headers, "x-slack-signature")?;
            let hex = sig.strip_prefix("v0=").ok_or(Refusal::Malformed("X-Slack-Signature"))?;
            check(secret, &[b"v0:", t.as_bytes(), b":", body], &[hex])
        }
        Scheme::Generic => {
            let t = header(headers, "x-steward-timestamp")?;
            fresh(t, now, "X-Steward-Timestamp")?;
            let sig = header(headers, "x-steward-signature")?;
            let hex = sig.strip_prefix("v1=").ok_or(Refusal::Malformed("X-Steward-Signature"))?;
            check(secret, &[t.as_bytes(), b".", body], &[hex])
        }
    }
}

/// The signature header value a sender computes, for clients and tests.
pub fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = mac(secret);
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Refusal> {
    let value = headers.get(name).ok_or(Refusal::Missing(display_name(name)))?;
    value.to_str().map_err(|_| Refusal::Malformed(display_name(name)))
}

fn display_name(name: &'static str) -> &'static str {
    match name {
        "x-hub-signature-256" => "X-Hub-Signature-256",
        "stripe-signature" => "Stripe-Signature",
        "x-slack-request-timestamp" => "X-Slack-Request-Timestamp",
        "x-slack-signature" => "X-Slack-Signature",
        "x-steward-timestamp" => "X-Steward-Timestamp",
        "x-steward-signature" => "X-Steward-Signature",
        other => other,
    }
}

fn fresh(t: &str, now: i64, header: &'static str) -> Result<(), Refusal> {
    let t: i64 = t.trim().parse().map_err(|_| Refusal::Malformed(header))?;
    let age_secs = (now - t).abs();
    if age_secs > TOLERANCE_SECS { Err(Refusal::Stale { age_secs }) } else { Ok(()) }
}

/// Whether any of `candidates` (hex) is the MAC of `parts`, compared in constant time.
fn check(secret: &[u8], parts: &[&[u8]], candidates: &[&str]) -> Result<(), Refusal> {
    for hex in candidates {
        let Some(bytes) = decode_hex(hex.trim()) else { continue };
        let mut mac = mac(secret);
        parts.iter().for_each(|p| mac.update(p));
        if mac.verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err(Refusal::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const NOW: i64 = 1_800_000_000;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn known_vector_matches_rfc_4231_case_2() {
        let mac = sign(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn each_scheme_accepts_its_own_signature_and_refuses_tampering() {
        let t = NOW.to_string();
        let cases = [
            (
                Scheme::Github,
                headers(&[("x-hub-signature-256", format!("sha256={}", sign(SECRET, &[BODY])))]),
            ),
            (
                Scheme::Stripe,
                headers(&[(
                    "stripe-signature",
                    format!("t={t},v1=00ff,v1={}", sign(SECRET, &[t.as_bytes(), b".", BODY])),
                )]),
            ),
            (
                Scheme::Slack,
                headers(&[
                    ("x-slack-request-timestamp", t.clone()),
                    (
                        "x-slack-signature",
                        format!("v0={}", sign(SECRET, &[b"v0:", t.as_bytes(), b":", BODY])),
                    ),
                ]),
            ),
            (
                Scheme::Generic,
                headers(&[
                    ("x-steward-timestamp", t.clone()),
                    ("x-steward-signature", format!("v1={}", sign(SECRET, &[t.as_bytes(), b".", BODY]))),
                ]),
            ),
        ];
        for (scheme, h) in &cases {
            assert_eq!(verify(*scheme, SECRET, h, BODY, NOW), Ok(()), "{scheme:?}");
            assert_eq!(
                verify(*scheme, SECRET, h, br#"{"id":"evt_2"}"#, NOW),
                Err(Refusal::Mismatch),
                "{scheme:?} body"
            );
            assert_eq!(verify(*scheme, b"other", h, BODY, NOW), Err(Refusal::Mismatch), "{scheme:?} secret");
            assert!(verify(*scheme, SECRET, &HeaderMap::new(), BODY, NOW).is_err(), "{scheme:?} unsigned");
        }
        // Timestamped schemes refuse replays outside the tolerance.
        for (scheme, h) in &cases[1..] {
            let late = NOW + TOLERANCE_SECS + 1;
            assert_eq!(
                verify(*scheme, SECRET, h, BODY, late),
                Err(Refusal::Stale { age_secs: TOLERANCE_SECS + 1 })
            );
        }
        assert_eq!(verify(Scheme::None, SECRET, &HeaderMap::new(), BODY, NOW), Ok(()));
    }

    #[test]
    fn refusals_name_the_header() {
        let err = verify(Scheme::Github, SECRET, &HeaderMap::new(), BODY, NOW).unwrap_err();
        assert_eq!(err.to_string(), "the X-Hub-Signature-256 header is missing");
        let h = headers(&[("x-hub-signature-256", "md5=abc".into())]);
        assert_eq!(
            verify(Scheme::Github, SECRET, &h, BODY, NOW),
            Err(Refusal::Malformed("X-Hub-Signature-256"))
        );
        assert_eq!(
            "gitlab".parse::<Scheme>().unwrap_err(),
            "unknown signature scheme `gitlab` (none, github, stripe, slack, generic)"
        );
    }
}
