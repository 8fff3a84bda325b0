//! [`Redactor`]: removes secret values from text before it is stored or logged.
//!
//! Defence in depth: a step should never see a secret, but an API may echo one back (an
//! `Authorization` header reflected in an error body, a URL with a token in a redirect). Every
//! payload that is kept — step outputs, error messages, run outputs, log lines — goes through a
//! [`Redactor`] built from the workspace's secret values, and each occurrence is replaced by
//! `[redacted:<label>]`, the label being the connection's name.
//!
//! # What is searched for
//!
//! For each secret, every spelling in which it commonly travels:
//!
//! - the raw bytes;
//! - percent-encoded, as the usual encoders do it (everything but alphanumerics; RFC 3986's
//!   unreserved set; JavaScript's `encodeURIComponent` and `encodeURI`; Python's `quote`; Go's
//!   `PathEscape`; HTML forms; the WHATWG path, path segment and userinfo sets), each with a
//!   space written `%20` or `+`,
//!   with upper- or lowercase hex;
//! - JSON-escaped, without the quotes: as `serde_json` and JavaScript write it, with every
//!   control character as `\u00XX` (either hex case), as Python (`ensure_ascii`), Go (HTML-safe
//!   `\u003c`…), PHP (`\/`, `\uXXXX`) and .NET (`\u0022`, uppercase hex) do; UTF-8 values only;
//! - base64, standard and URL-safe, padded and not, of the value alone; and, since a secret
//!   embedded in a longer payload (`base64("user:" + secret)`) starts at one of three byte
//!   offsets in its 3-byte group, the three offset-shifted "cores": the characters of
//!   `base64(filler + secret)` (0, 1 or 2 filler bytes) that depend on the secret's bits
//!   only, each alone and followed by its final characters (with and without padding) for a
//!   secret that ends the payload. The one or two characters that mix a secret's bits with
//!   its neighbours' stay: they cannot be told apart from other data.
//!
//! Patterns are deduplicated (the first label given for a spelling keeps it). Line-wrapped
//! base64, hex, double encodings and other transformations are not searched for.
//!
//! # Short secrets
//!
//! A secret shorter than [`Redactor::MIN_ENCODED_LEN`] (4) bytes is matched raw and in its
//! percent- and JSON-escaped spellings (which are at least as long as the value itself), but
//! not in base64: the offset cores of a 1-3 byte value are 0-3 characters long and would match
//! inside any base64 data (an image, a signature), corrupting it for no protection. From 4
//! bytes on every core is at least 4 characters long (a 1 in 16 million chance per position in
//! random base64). An empty secret is ignored: it would match everywhere.
//!
//! # Matching
//!
//! One [`aho_corasick`] automaton over all spellings, built once per [`Redactor`]. All matches,
//! overlapping ones included, are found, and overlapping matches are merged into one redacted
//! region labelled after the longest of them: with secrets `abcdef` and `defghi`, the text
//! `abcdefghi` becomes one marker, leaving neither tail behind (a leftmost-longest search would
//! keep `ghi`). In text, a region is widened to whole characters (a non-UTF-8 secret can match
//! inside a multi-byte character). The scan of text without any secret does not allocate.
//!
//! Replacing never leaves a secret behind: a marker whose label (or whose fixed text) would
//! contain a secret falls back to `[redacted]`, then `***`, then nothing; and the result is
//! scanned again, since text on both sides of a marker could join into a secret: after a few
//! rounds regions are removed without a marker, which shortens the text each round, so it
//! ends.
//!
//! The automaton keeps its own copies of the patterns, which are not wiped when it is dropped;
//! the [`Redactor`]'s own list of patterns is.

use std::borrow::{Borrow, Cow};
use std::cmp::Reverse;
use std::io::Write as _;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::Secret;

/// One spelling of a secret.
type Pattern = Zeroizing<Vec<u8>>;

/// Rounds of re-scanning that replace with a marker before regions are simply removed.
const MARKER_ROUNDS: usize = 3;

/// Suffixes tried for an object key that collides with another after redaction.
const MAX_KEY_SUFFIX: usize = 1000;

/// Finds the workspace's secrets, in their usual encodings, in text and JSON, and replaces
/// them with `[redacted:<label>]`. See the [module documentation](self) for the rules.
///
/// Cheap to clone (shared). `Debug` shows the number of patterns only.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    labels: Vec<String>,
    /// What replaces a match, per label.
    markers: Vec<String>,
    patterns: Vec<Pattern>,
    /// The label of each pattern.
    label_of: Vec<usize>,
    automaton: AhoCorasick,
}

impl Redactor {
    /// Secrets shorter than this (in bytes) are not searched for in base64.
    pub const MIN_ENCODED_LEN: usize = 4;

    /// A redactor for these secrets, each with its label (the connection's name). Several
    /// secrets may share a label; empty secrets are ignored.
    pub fn new<L, S>(secrets: impl IntoIterator<Item = (L, S)>) -> Redactor
    where
        L: Into<String>,
        S: Borrow<Secret>,
    {
        Redactor::empty().with(secrets)
    }

    /// A redactor that finds nothing.
    pub fn empty() -> Redactor {
        Redactor { inner: None }
    }

    /// Whether there is nothing to search for.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// The number of distinct patterns searched for (every spelling of every secret).
    pub fn pattern_count(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.patterns.len())
    }

    /// A redactor for these secrets and the extra ones (for example the workspace's and those
    /// an attempt resolved). `self` is unchanged; when a spelling is in both, `self`'s label
    /// keeps it. The automaton is rebuilt: do this once per attempt, not per payload.
    pub fn with<L, S>(&self, extra: impl IntoIterator<Item = (L, S)>) -> Redactor
    where
        L: Into<String>,
        S: Borrow<Secret>,
    {
        let mut labels: Vec<String> = Vec::new();
        let mut entries: Vec<(Pattern, usize)> = Vec::new();
        if let Some(inner) = &self.inner {
            labels.clone_from(&inner.labels);
            entries.extend(inner.patterns.iter().cloned().zip(inner.label_of.iter().copied()));
        }
        let before = entries.len();
        let mut forms = Vec::new();
        for (label, secret) in extra {
            let secret = secret.borrow().expose();
            if secret.is_empty() {
                continue;
            }
            let label = label.into();
            let index = match labels.iter().position(|l| *l == label) {
                Some(index) => index,
                None => {
                    labels.push(label);
                    labels.len() - 1
                }
            };
            spellings::spellings(secret, &mut forms);
            entries.extend(forms.drain(..).map(|p| (p, index)));
        }
        if entries.len() == before {
            return self.clone();
        }
        Redactor { inner: Some(Arc::new(Inner::build(labels, entries))) }
    }

    /// The text with every secret replaced; borrowed (no allocation) when there is none.
    pub fn redact_str<'a>(&self, s: &'a str) -> Cow<'a, str> {
        match self.inner.as_ref().and_then(|inner| inner.redact(s.as_bytes(), true)) {
            None => Cow::Borrowed(s),
            Some((bytes, _)) => Cow::Owned(into_string(bytes)),
        }
    }

    /// The bytes with every secret replaced; borrowed (no allocation) when there is none.
    /// Regions are not widened to characters: use [`Redactor::redact_str`] for text.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match self.inner.as_ref().and_then(|inner| inner.redact(bytes, false)) {
            None => Cow::Borrowed(bytes),
            Some((out, _)) => Cow::Owned(out),
        }
    }

    /// Redacts a JSON value in place: strings, object keys, and numbers (a number whose text
    /// contains a secret becomes a string). Returns the number of regions replaced.
    ///
    /// Object keys keep their order. When a key becomes equal to another one, the later key (in
    /// the object's order) gets a suffix `#2`, `#3`…, so both values are kept: `{"a-SECRET": 1,
    /// "a-SECRET": 2}` written with two secrets of one label becomes `{"a-[redacted:x]": 1,
    /// "a-[redacted:x]#2": 2}`. (Were no suffix free, which would take secrets covering the
    /// digits, the later value would be dropped and counted.)
    pub fn redact_value(&self, value: &mut Value) -> usize {
        match &self.inner {
            None => 0,
            Some(inner) => inner.walk(value),
        }
    }

    /// The label of the first secret found in these bytes (the match that ends first), in any
    /// spelling: for tests that scan files and logs for canaries.
    pub fn find_in(&self, bytes: &[u8]) -> Option<&str> {
        let inner = self.inner.as_ref()?;
        let found = inner.automaton.find(bytes)?;
        Some(&inner.labels[inner.label_of[found.pattern().as_usize()]])
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("patterns", &self.pattern_count()).finish()
    }
}

impl Inner {
    fn build(labels: Vec<String>, entries: Vec<(Pattern, usize)>) -> Inner {
        // Deduplicate without copying: sort indices, keep the first of each equal run, and
        // keep the original order (so the first label given keeps a shared spelling).
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| entries[a].0.as_slice().cmp(entries[b].0.as_slice()).then(a.cmp(&b)));
        let mut keep = vec![false; entries.len()];
        for (i, &index) in order.iter().enumerate() {
            keep[index] = i == 0 || entries[order[i - 1]].0 != entries[index].0;
        }
        let mut patterns = Vec::with_capacity(entries.len());
        let mut label_of = Vec::with_capacity(entries.len());
        for ((pattern, label), keep) in entries.into_iter().zip(keep) {
            if keep {
                patterns.push(pattern);
                label_of.push(label);
            }
        }
        // Standard semantics: every match, overlapping ones included (merged in `pass`). A
        // contiguous NFA builds 5-10 times faster than a DFA (this runs for every attempt) and
        // scans about as fast. Construction only fails past billions of states.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns.iter().map(|p| p.as_slice()))
            .expect("the secret patterns exceed the automaton's limits");
        let markers = labels
            .iter()
            .map(|label| {
                [format!("[redacted:{label}]"), "[redacted]".to_owned(), "***".to_owned()]
                    .into_iter()
                    .find(|marker| !automaton.is_match(marker.as_bytes()))
                    .unwrap_or_default()
            })
            .collect();
        Inner { labels, markers, patterns, label_of, automaton }
    }

    /// Replaces every secret, re-scanning until none is left. `None` when there was none.
    fn redact(&self, input: &[u8], text: bool) -> Option<(Vec<u8>, usize)> {
        let (mut out, mut count) = self.pass(input, text, false)?;
        let mut rounds = 0;
        // Text on both sides of a marker can join into a secret: scan again. After a few rounds,
        // remove regions without a marker: each round then shortens the text, so this ends.
        while let Some((next, n)) = self.pass(&out, text, rounds >= MARKER_ROUNDS) {
            out = next;
            count += n;
            rounds += 1;
        }
        Some((out, count))
    }

    /// One round: every region covered by (overlapping) matches is replaced by the marker of
    /// its longest match, or removed when `blank`. `None` when nothing matches.
    fn pass(&self, input: &[u8], text: bool, blank: bool) -> Option<(Vec<u8>, usize)> {
        // (start, end, length of the match, label); no allocation until a match.
        // The fastest search first: almost every payload holds no secret.
        if !self.automaton.is_match(input) {
            return None;
        }
        let mut spans: Vec<(usize, usize, usize, usize)> = Vec::new();
        for found in self.automaton.find_overlapping_iter(input) {
            let (mut start, mut end) = (found.start(), found.end());
            if text {
                while !is_char_start(input, start) {
                    start -= 1;
                }
                while !is_char_start(input, end) {
                    end += 1;
                }
            }
            spans.push((start, end, found.len(), self.label_of[found.pattern().as_usize()]));
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable_by_key(|&(start, end, len, _)| (start, Reverse(end), Reverse(len)));
        let mut out = Vec::with_capacity(input.len());
        let mut copied = 0;
        let mut count = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end, mut longest, mut label)) = spans.next() {
            while let Some(&(next_start, next_end, len, next_label)) = spans.peek() {
                if next_start >= end {
                    break;
                }
                end = end.max(next_end);
                if len > longest {
                    longest = len;
                    label = next_label;
                }
                spans.next();
            }
            out.extend_from_slice(&input[copied..start]);
            if !blank {
                out.extend_from_slice(self.markers[label].as_bytes());
            }
            copied = end;
            count += 1;
        }
        out.extend_from_slice(&input[copied..]);
        Some((out, count))
    }

    fn walk(&self, value: &mut Value) -> usize {
        match value {
            Value::Null | Value::Bool(_) => 0,
            Value::String(s) => match self.redact(s.as_bytes(), true) {
                None => 0,
                Some((bytes, n)) => {
                    *s = into_string(bytes);
                    n
                }
            },
            Value::Number(number) => {
                // Formatted on the stack: numbers are common and almost never match.
                let mut buffer = [0u8; 64];
                let redacted = {
                    let mut cursor = &mut buffer[..];
                    if write!(cursor, "{number}").is_ok() {
                        let len = 64 - cursor.len();
                        self.redact(&buffer[..len], true)
                    } else {
                        self.redact(number.to_string().as_bytes(), true)
                    }
                };
                match redacted {
                    None => 0,
                    Some((bytes, n)) => {
                        *value = Value::String(into_string(bytes));
                        n
                    }
                }
            }
            Value::Array(items) => items.iter_mut().map(|item| self.walk(item)).sum(),
            Value::Object(map) => {
                let mut count: usize = map.values_mut().map(|item| self.walk(item)).sum();
                if map.keys().any(|key| self.automaton.is_match(key.as_bytes())) {
                    count += self.redact_keys(map);
                }
                count
            }
        }
    }

    /// Rebuilds the object with redacted keys, in the same order; see
    /// [`Redactor::redact_value`] for keys that collide.
    fn redact_keys(&self, map: &mut Map<String, Value>) -> usize {
        let old = std::mem::take(map);
        let mut count = 0;
        for (key, value) in old {
            let key = match self.redact(key.as_bytes(), true) {
                None => key,
                Some((bytes, n)) => {
                    count += n;
                    into_string(bytes)
                }
            };
            if !map.contains_key(&key) {
                map.insert(key, value);
                continue;
            }
            let mut value = Some(value);
            for suffix in 2..=MAX_KEY_SUFFIX {
                // The suffix could complete a secret: the candidate is redacted too.
                let candidate = format!("{key}#{suffix}");
                let candidate = match self.redact(candidate.as_bytes(), true) {
                    None => candidate,
                    Some((bytes, _)) => into_string(bytes),
                };
                if !map.contains_key(&candidate) {
                    if let Some(value) = value.take() {
                        map.insert(candidate, value);
                    }
                    break;
                }
            }
            if value.is_some() {
                count += 1;
            }
        }
        count
    }
}

/// Whether `index` is at a character boundary of (valid UTF-8) `bytes`.
fn is_char_start(bytes: &[u8], index: usize) -> bool {
    // Not a continuation byte 0b10xx_xxxx.
    bytes.get(index).is_none_or(|&b| (b as i8) >= -0x40)
}

/// Text that was valid UTF-8 with regions (widened to characters) replaced by markers is still
/// valid; the lossy branch is never taken.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

mod spellings;
#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests;
