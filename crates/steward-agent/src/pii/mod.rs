//! Optional masking of personal data before it reaches a model provider.
//!
//! A [`Masker`] finds e-mail addresses, phone numbers and payment card numbers in text and
//! replaces each distinct value with a placeholder such as `[email_1]`, `[phone_2]` or
//! `[card_1]`. The model only ever sees the placeholders; what it answers (its text and the
//! arguments of the tools it calls) is passed through [`Masker::restore_text`] or
//! [`Masker::restore_value`] so tools and the final answer get the original values back.
//!
//! Detection is deliberately conservative where a false match would hide ordinary data:
//!
//! - **E-mail**: `local@domain.tld`, with the usual local-part characters (letters, digits,
//!   `.`, `_`, `%`, `+`, `-`), any number of subdomains and an alphabetic top-level domain of at
//!   least two letters. Punctuation that ends a sentence (`.`, `-`) is not part of the address.
//! - **Payment cards**: 13 to 19 digits, written together or in groups (the first of four
//!   digits, the others of three to six) separated by single spaces or dashes, and only when
//!   the Luhn checksum holds.
//! - **Phones**: international forms (`+44 20 7946 0958`, `+4915112345678`) and national forms
//!   with spaces, dashes, dots or parentheses (`(555) 123-4567`, `030 1234567`,
//!   `06 12 34 56 78`, `555.123.4567`), with 7 to 15 digits. An unformatted run of digits
//!   counts only with a leading `+` or a national `0` prefix (10 to 12 digits). Years, times,
//!   ISO and dotted dates, year ranges, amounts, thousands groupings and IPv4 addresses are
//!   not phones.
//!
//! The same text always gets the same placeholder within one masker; numbering is per kind.
//! Values are compared exactly as written, so `4111 1111 1111 1111` and `4111111111111111`
//! get different placeholders and each is restored as it was written.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use detect::find_spans;

mod detect;

/// The kinds of personal data a [`Masker`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Card,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Email => 0,
            Kind::Phone => 1,
            Kind::Card => 2,
        }
    }

    fn from_label(label: &str) -> Option<Kind> {
        match label {
            "email" => Some(Kind::Email),
            "phone" => Some(Kind::Phone),
            "card" => Some(Kind::Card),
            _ => None,
        }
    }
}

/// Replaces personal data with placeholders and puts it back.
///
/// The mapping from placeholders to the original values lives in the masker. A run that is
/// resumed must restore the placeholders the model has already seen, so the executor saves
/// the mapping with [`Masker::to_entries`] and rebuilds it with [`Masker::from_entries`].
/// **The mapping is personal data**: store it with the run's payloads (which retention
/// prunes), never in logs, metrics or anything kept longer than the run itself.
///
/// `Debug` shows only how many values of each kind are held, never the values.
#[derive(Clone, Default)]
pub struct Masker {
    /// `(placeholder, original)` in the order the placeholders were given out.
    entries: Vec<(String, String)>,
    /// Original value → index into `entries`.
    by_original: HashMap<String, usize>,
    /// Placeholder → index into `entries`.
    by_placeholder: HashMap<String, usize>,
    /// The highest number given out per kind.
    last_number: [u64; 3],
    /// How many values of each kind are held.
    counts: [usize; 3],
    /// Placeholder-shaped text found literally in masked input; never given out, so such
    /// text is left alone when restoring.
    reserved: HashSet<String>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("emails", &self.counts[Kind::Email.index()])
            .field("phones", &self.counts[Kind::Phone.index()])
            .field("cards", &self.counts[Kind::Card.index()])
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// An empty masker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a masker from a mapping saved with [`Masker::to_entries`]: `(placeholder,
    /// original)` pairs. New placeholders continue the numbering after the highest one given.
    /// Pairs whose placeholder is not one a masker makes (such as `[email_3]`), or whose
    /// placeholder was already given, are ignored.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut masker = Self::new();
        for (placeholder, original) in entries {
            let Some((end, kind, number)) = placeholder_at(&placeholder, 0) else { continue };
            if end != placeholder.len() || masker.by_placeholder.contains_key(&placeholder) {
                continue;
            }
            let slot = kind.index();
            masker.last_number[slot] = masker.last_number[slot].max(number);
            masker.insert(kind, placeholder, original);
        }
        masker
    }

    /// The mapping as `(placeholder, original)` pairs, in the order the placeholders were
    /// given out, for [`Masker::from_entries`]. It holds personal data: see [`Masker`].
    pub fn to_entries(&self) -> Vec<(String, String)> {
        self.entries.clone()
    }

    /// Whether no value has been masked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many distinct values have been masked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Replaces every e-mail address, phone number and card number in `text` with its
    /// placeholder, giving new values the next number of their kind.
    pub fn mask_text(&mut self, text: &str) -> String {
        self.reserve_literals(text);
        self.mask_reserved(text)
    }

    /// Masks every string inside a JSON value (object keys and non-string scalars are left
    /// as they are).
    pub fn mask_value(&mut self, value: &Value) -> Value {
        self.reserve_in_value(value);
        self.mask_value_reserved(value)
    }

    /// Puts the original values back in place of the placeholders this masker gave out.
    /// Anything else, including placeholder-like text it never gave out, is left alone.
    pub fn restore_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = 0;
        while let Some(found) = text[rest..].find('[') {
            let open = rest + found;
            out.push_str(&text[rest..open]);
            match placeholder_at(text, open)
                .and_then(|(end, _, _)| self.by_placeholder.get(&text[open..end]).map(|&index| (end, index)))
            {
                Some((end, index)) => {
                    out.push_str(&self.entries[index].1);
                    rest = end;
                }
                None => {
                    out.push('[');
                    rest = open + 1;
                }
            }
        }
        out.push_str(&text[rest..]);
        out
    }

    /// [`Masker::restore_text`] for every string inside a JSON value (object keys are left
    /// as they are, as masking never changes them).
    pub fn restore_value(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.restore_text(text)),
            Value::Array(items) => Value::Array(items.iter().map(|item| self.restore_value(item)).collect()),
            Value::Object(fields) => Value::Object(
                fields.iter().map(|(key, item)| (key.clone(), self.restore_value(item))).collect(),
            ),
            other => other.clone(),
        }
    }

    fn mask_reserved(&mut self, text: &str) -> String {
        let spans = find_spans(text);
        if spans.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = 0;
        for span in spans {
            out.push_str(&text[rest..span.start]);
            out.push_str(self.placeholder_for(span.kind, &text[span.start..span.end]));
            rest = span.end;
        }
        out.push_str(&text[rest..]);
        out
    }

    fn mask_value_reserved(&mut self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.mask_reserved(text)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| self.mask_value_reserved(item)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields.iter().map(|(key, item)| (key.clone(), self.mask_value_reserved(item))).collect(),
            ),
            other => other.clone(),
        }
    }

    /// Remembers placeholder-shaped text that is already in the input so that it is never
    /// given out: restoring then leaves that text exactly as it was.
    fn reserve_literals(&mut self, text: &str) {
        let mut rest = 0;
        while let Some(found) = text[rest..].find('[') {
            let open = rest + found;
            match placeholder_at(text, open) {
                Some((end, _, _)) => {
                    let literal = &text[open..end];
                    if !self.by_placeholder.contains_key(literal) {
                        self.reserved.insert(literal.to_owned());
                    }
                    rest = end;
                }
                None => rest = open + 1,
            }
        }
    }

    fn reserve_in_value(&mut self, value: &Value) {
        match value {
            Value::String(text) => self.reserve_literals(text),
            Value::Array(items) => items.iter().for_each(|item| self.reserve_in_value(item)),
            Value::Object(fields) => fields.values().for_each(|item| self.reserve_in_value(item)),
            _ => {}
        }
    }

    fn placeholder_for(&mut self, kind: Kind, original: &str) -> &str {
        let index = match self.by_original.get(original) {
            Some(&index) => index,
            None => {
                let slot = kind.index();
                let placeholder = loop {
                    self.last_number[slot] = self.last_number[slot].saturating_add(1);
                    let candidate = format!("[{}_{}]", kind.label(), self.last_number[slot]);
                    if !self.reserved.contains(&candidate) && !self.by_placeholder.contains_key(&candidate) {
                        break candidate;
                    }
                };
                self.insert(kind, placeholder, original.to_owned())
            }
        };
        &self.entries[index].0
    }

    fn insert(&mut self, kind: Kind, placeholder: String, original: String) -> usize {
        let index = self.entries.len();
        self.by_original.entry(original.clone()).or_insert(index);
        self.by_placeholder.insert(placeholder.clone(), index);
        self.entries.push((placeholder, original));
        self.counts[kind.index()] += 1;
        index
    }
}

/// Parses a placeholder (`[email_12]`) starting at byte `open`: its end, kind and number.
fn placeholder_at(text: &str, open: usize) -> Option<(usize, Kind, u64)> {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'[') {
        return None;
    }
    let label_start = open + 1;
    let mut at = label_start;
    while bytes.get(at).is_some_and(u8::is_ascii_lowercase) {
        at += 1;
    }
    let kind = Kind::from_label(&text[label_start..at])?;
    if bytes.get(at) != Some(&b'_') {
        return None;
    }
    let digits_start = at + 1;
    at = digits_start;
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    if at == digits_start || bytes.get(at) != Some(&b']') {
        return None;
    }
    let number = text[digits_start..at].parse().ok()?;
    Some((at + 1, kind, number))
}

#[cfg(test)]
mod tests;
