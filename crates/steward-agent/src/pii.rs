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

/// A value found in text, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

/// The text as characters, with each character's byte offset (and the text's length last).
struct Chars {
    chars: Vec<char>,
    offsets: Vec<usize>,
}

impl Chars {
    fn new(text: &str) -> Self {
        let (offsets, chars): (Vec<usize>, Vec<char>) = text.char_indices().unzip();
        let mut offsets = offsets;
        offsets.push(text.len());
        Self { chars, offsets }
    }

    fn len(&self) -> usize {
        self.chars.len()
    }

    fn at(&self, index: usize) -> Option<char> {
        self.chars.get(index).copied()
    }

    /// The character `back` places before `index`, if any.
    fn before(&self, index: usize, back: usize) -> Option<char> {
        index.checked_sub(back).and_then(|i| self.at(i))
    }

    fn is_digit(&self, index: usize) -> bool {
        self.at(index).is_some_and(|c| c.is_ascii_digit())
    }
}

/// Every value to mask in `text`, in order and without overlaps.
fn find_spans(text: &str) -> Vec<Span> {
    let chars = Chars::new(text);
    let mut spans = Vec::new();
    let mut gap_start = 0;
    for (start, end) in find_emails(&chars) {
        find_numbers(&chars, gap_start, start, &mut spans);
        spans.push(Span { start: chars.offsets[start], end: chars.offsets[end], kind: Kind::Email });
        gap_start = end;
    }
    find_numbers(&chars, gap_start, chars.len(), &mut spans);
    spans
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// E-mail addresses as character ranges, found by growing outwards from each `@`.
fn find_emails(chars: &Chars) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut floor = 0;
    for at in 0..chars.len() {
        if chars.chars[at] != '@' || at < floor {
            continue;
        }
        // The local part: back to the first character that cannot be in one, then forward
        // past a `..` (not allowed in an address) and leading dots.
        let mut start = at;
        while start > floor && is_local_char(chars.chars[start - 1]) {
            start -= 1;
        }
        if let Some(pair) =
            (start + 1..at).rev().find(|&i| chars.chars[i - 1] == '.' && chars.chars[i] == '.')
        {
            start = pair + 1;
        }
        while start < at && chars.chars[start] == '.' {
            start += 1;
        }
        if start == at || chars.chars[at - 1] == '.' {
            continue;
        }
        let Some(end) = domain_end(chars, at + 1) else { continue };
        found.push((start, end));
        floor = end;
    }
    found
}

/// Where the domain starting at `start` ends, when it is a valid one.
fn domain_end(chars: &Chars, start: usize) -> Option<usize> {
    let mut end = start;
    while chars.at(end).is_some_and(is_domain_char) {
        end += 1;
    }
    // Dots and dashes at the end belong to the sentence, not the address.
    while end > start && matches!(chars.chars[end - 1], '.' | '-') {
        end -= 1;
    }
    // `..` cannot be in a domain: keep what comes before it.
    if let Some(pair) = (start + 1..end).find(|&i| chars.chars[i - 1] == '.' && chars.chars[i] == '.') {
        end = pair - 1;
        while end > start && matches!(chars.chars[end - 1], '.' | '-') {
            end -= 1;
        }
    }
    let domain: String = chars.chars[start..end].iter().collect();
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_labels = labels.iter().all(|label| {
        !label.is_empty() && label.chars().count() <= 63 && !label.starts_with('-') && !label.ends_with('-')
    });
    let tld = labels.last()?;
    let valid_tld = tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic);
    (labels.len() >= 2 && valid_labels && valid_tld).then_some(end)
}

/// Card and phone numbers in the characters `from..to`, which hold no e-mail address.
fn find_numbers(chars: &Chars, from: usize, to: usize, spans: &mut Vec<Span>) {
    let mut at = from;
    while at < to {
        let found = card_at(chars, at, to)
            .map(|end| (end, Kind::Card))
            .or_else(|| phone_at(chars, at, to).map(|end| (end, Kind::Phone)));
        match found {
            Some((end, kind)) => {
                spans.push(Span { start: chars.offsets[at], end: chars.offsets[end], kind });
                at = end;
            }
            None => at += 1,
        }
    }
}

/// Whether a number may start at `at` as far as the character before it goes: not inside a
/// word, and not in the middle of a number such as `1,234` or `10.5`.
fn starts_token(chars: &Chars, at: usize) -> bool {
    match chars.before(at, 1) {
        None => true,
        Some(prev) if prev.is_alphanumeric() || prev == '_' => false,
        Some('.' | ',' | ':' | '/') => !chars.before(at, 2).is_some_and(|c| c.is_ascii_digit()),
        Some(_) => true,
    }
}

/// Whether a number ending at `end` really ends there.
fn ends_token(chars: &Chars, end: usize) -> bool {
    match chars.at(end) {
        None => true,
        Some(next) if next.is_alphanumeric() || matches!(next, '_' | '@') => false,
        Some('.' | ',' | ':' | '/' | '-') => !chars.is_digit(end + 1),
        Some(_) => true,
    }
}

/// A Luhn-valid card number starting at `at`: the end of the longest one.
fn card_at(chars: &Chars, at: usize, limit: usize) -> Option<usize> {
    if !chars.is_digit(at) || !starts_token(chars, at) {
        return None;
    }
    let run_end = |from: usize| {
        let mut end = from;
        while end < limit && chars.is_digit(end) {
            end += 1;
        }
        end
    };
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    let push_digits = |digits: &mut Vec<u8>, from: usize, to: usize| {
        digits.extend(
            chars.chars[from..to].iter().filter_map(|c| c.to_digit(10)).filter_map(|d| u8::try_from(d).ok()),
        );
    };
    let first_end = run_end(at);
    push_digits(&mut digits, at, first_end);
    if (13..=19).contains(&digits.len()) {
        return (ends_token(chars, first_end) && luhn_valid(&digits)).then_some(first_end);
    }
    if digits.len() != 4 {
        return None;
    }
    let separator = chars.at(first_end).filter(|c| matches!(c, ' ' | '-'))?;
    let mut best = None;
    let mut end = first_end;
    while end + 1 < limit && chars.at(end) == Some(separator) && chars.is_digit(end + 1) {
        let group_end = run_end(end + 1);
        let group_len = group_end - (end + 1);
        if !(3..=6).contains(&group_len) || digits.len() + group_len > 19 {
            break;
        }
        push_digits(&mut digits, end + 1, group_end);
        end = group_end;
        if digits.len() >= 13 && ends_token(chars, end) && luhn_valid(&digits) {
            best = Some(end);
        }
    }
    best
}

/// The Luhn checksum used by payment card numbers.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// One group of a phone number's digits.
#[derive(Debug)]
struct Group {
    digits: String,
    /// Written in parentheses, as in `(555)` or `(0)`.
    parenthesised: bool,
    /// The separator written before it, if any.
    separator: Option<char>,
}

/// The most groups of digits a phone number is written in.
const MAX_PHONE_GROUPS: usize = 8;

/// A phone number starting at `at`: its end.
fn phone_at(chars: &Chars, at: usize, limit: usize) -> Option<usize> {
    let first = chars.at(at)?;
    if !(first.is_ascii_digit() || matches!(first, '+' | '(')) || !starts_token(chars, at) {
        return None;
    }
    let prev = chars.before(at, 1);
    if matches!(prev, Some('+' | '@' | '$' | '€' | '£' | '¥' | '₹')) {
        return None;
    }
    if first.is_ascii_digit() {
        // Not from inside `(555)`, nor the rest of a number such as `1111 1111` or `12-34`.
        let after_digit = chars.before(at, 2).is_some_and(|c| c.is_ascii_digit());
        if prev == Some('(') || (matches!(prev, Some(' ' | '-')) && after_digit) {
            return None;
        }
    }

    let plus = first == '+';
    let mut end = at;
    if plus {
        end += 1;
        if !chars.is_digit(end) {
            return None;
        }
    }
    let (group, group_end) = phone_group(chars, end, limit, None)?;
    let mut groups = vec![group];
    end = group_end;
    loop {
        let next = chars.at(end).filter(|_| end < limit);
        let previous_parenthesised = groups.last().is_some_and(|g| g.parenthesised);
        let attempt = match next {
            Some(separator @ (' ' | '-' | '.')) => phone_group(chars, end + 1, limit, Some(separator)),
            Some('(') => phone_group(chars, end, limit, None),
            Some(c) if c.is_ascii_digit() && previous_parenthesised => phone_group(chars, end, limit, None),
            _ => None,
        };
        let Some((group, group_end)) = attempt else { break };
        if groups.len() == MAX_PHONE_GROUPS {
            return None;
        }
        groups.push(group);
        end = group_end;
    }
    (ends_token(chars, end) && plausible_phone(plus, &groups)).then_some(end)
}

/// A group of digits (or `(digits)`) starting at `at`.
fn phone_group(chars: &Chars, at: usize, limit: usize, separator: Option<char>) -> Option<(Group, usize)> {
    let parenthesised = chars.at(at) == Some('(');
    let digits_start = if parenthesised { at + 1 } else { at };
    let mut end = digits_start;
    while end < limit && chars.is_digit(end) {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    let digits: String = chars.chars[digits_start..end].iter().collect();
    if parenthesised {
        if end >= limit || chars.at(end) != Some(')') || digits.len() > 5 {
            return None;
        }
        end += 1;
    }
    Some((Group { digits, parenthesised, separator }, end))
}

/// Whether groups of digits read as a phone number rather than some other number.
fn plausible_phone(plus: bool, groups: &[Group]) -> bool {
    let total: usize = groups.iter().map(|g| g.digits.len()).sum();
    if !(7..=15).contains(&total) || groups.len() > MAX_PHONE_GROUPS {
        return false;
    }
    let Some(first) = groups.first() else { return false };
    if groups.len() == 1 && !first.parenthesised {
        // Unformatted digits: only `+...` or a national number with its `0` prefix.
        return plus || (first.digits.starts_with('0') && (10..=12).contains(&total));
    }
    // Groups after the first have at least two digits (unless written as `(0)`).
    if groups.iter().skip(1).any(|g| !g.parenthesised && g.digits.len() < 2) {
        return false;
    }
    // The separators between plain groups agree; the one after a country code or around
    // parentheses may differ (`+1 555-123-4567`, `(555) 123-4567`).
    let mut separators = groups.iter().enumerate().skip(1).filter_map(|(i, g)| {
        let after_prefix = i == 1 && (plus || first.parenthesised);
        let around_parentheses = g.parenthesised || groups[i - 1].parenthesised;
        if after_prefix || around_parentheses { None } else { g.separator }
    });
    let common = separators.next();
    if separators.any(|s| Some(s) != common) {
        return false;
    }
    if plus || groups.iter().any(|g| g.parenthesised) {
        return true;
    }
    let lengths: Vec<usize> = groups.iter().map(|g| g.digits.len()).collect();
    let dashes_or_dots = matches!(common, Some('-' | '.'));
    // `2026-11-22`, `22.11.2026`.
    let date = dashes_or_dots && (lengths == [4, 2, 2] || lengths == [2, 2, 4]);
    // `1999-2005`.
    let years = common == Some('-')
        && lengths == [4, 4]
        && groups.iter().all(|g| g.digits.starts_with("19") || g.digits.starts_with("20"));
    // `1234567.89`, `192.168.100.200`.
    let decimal = common == Some('.') && groups.len() < 3;
    let ipv4 = common == Some('.') && groups.len() == 4 && lengths.iter().all(|&l| l <= 3);
    // `1.234.567`, `1 234 567` (a national number starts with `0`, an amount does not).
    let thousands = (1..=3).contains(&lengths[0])
        && lengths[1..].iter().all(|&l| l == 3)
        && (common == Some('.') || (common == Some(' ') && !first.digits.starts_with('0')));
    !(date || years || decimal || ipv4 || thousands)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn masked(text: &str) -> String {
        Masker::new().mask_text(text)
    }

    fn round_trip(text: &str) -> String {
        let mut masker = Masker::new();
        let out = masker.mask_text(text);
        assert_eq!(masker.restore_text(&out), text, "round trip of {text:?} via {out:?}");
        out
    }

    #[test]
    fn masks_and_restores_several_values() {
        let text = "Write to ann@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111.";
        let out = round_trip(text);
        assert_eq!(out, "Write to [email_1] or call [phone_1]; card [card_1].");
    }

    #[test]
    fn repeated_values_share_a_placeholder_and_numbering_is_per_kind() {
        let mut masker = Masker::new();
        let out = masker.mask_text("a@x.org, b@x.org, a@x.org, 555-123-4567, b@x.org");
        assert_eq!(out, "[email_1], [email_2], [email_1], [phone_1], [email_2]");
        // Stable across calls on the same masker.
        assert_eq!(masker.mask_text("b@x.org then c@x.org"), "[email_2] then [email_3]");
        assert_eq!(masker.len(), 4);
        assert_eq!(masker.restore_text("[email_3] [email_1] [phone_1]"), "c@x.org a@x.org 555-123-4567");
    }

    #[test]
    fn values_at_edges_and_next_to_punctuation() {
        for text in [
            "ann@example.com",
            "ann@example.com.",
            "(ann@example.com)",
            "<ann@example.com>,",
            "\"ann@example.com\"",
            "4111111111111111",
            "[4111111111111111]",
            "+14155552671",
            "(+1 415 555 2671)",
            "ann@example.com,4111111111111111",
            "x:ann@example.com;+14155552671!",
            "ünïcödé ann@example.com ✓",
        ] {
            let out = round_trip(text);
            assert!(
                !out.contains("ann@example.com") && !out.contains("4111") && !out.contains("2671"),
                "{out}"
            );
        }
        assert_eq!(masked("(ann@example.com)"), "([email_1])");
        assert_eq!(masked("[4111111111111111]"), "[[card_1]]");
        assert_eq!(masked("x:ann@example.com;+14155552671!"), "x:[email_1];[phone_1]!");
    }

    #[test]
    fn email_edge_cases() {
        assert_eq!(masked("mail first.last+news@mail.sub.example.co.uk now"), "mail [email_1] now");
        assert_eq!(masked("It is ann@example.com."), "It is [email_1].");
        assert_eq!(masked("ann@example.com... or"), "[email_1]... or");
        assert_eq!(masked("ANN_99%x@Example-Mail.COM"), "[email_1]");
        assert_eq!(masked("mailto:ann@example.com"), "mailto:[email_1]");
        assert_eq!(masked("jürgen@müller.de"), "[email_1]");
        // Leading dots and `..` are not part of the local part.
        assert_eq!(masked("...ann@example.com"), "...[email_1]");
        assert_eq!(masked("a..ann@example.com"), "a..[email_1]");
        // Not addresses.
        for text in ["user@localhost", "a@b.c", "@example.com", "ann.@example.com", "a@b..com", "x@1.23", "@"]
        {
            assert_eq!(masked(text), text);
        }
        // Two addresses sharing characters do not overlap.
        let mut masker = Masker::new();
        let out = masker.mask_text("a@b.com@c.org");
        assert_eq!(masker.restore_text(&out), "a@b.com@c.org");
    }

    #[test]
    fn cards_must_pass_luhn() {
        assert_eq!(masked("card 4111 1111 1111 1111 ok"), "card [card_1] ok");
        assert_eq!(masked("card 5500-0000-0000-0004 ok"), "card [card_1] ok");
        assert_eq!(masked("amex 378282246310005"), "amex [card_1]");
        assert_eq!(masked("amex 3782 822463 10005"), "amex [card_1]");
        assert_eq!(masked("4242424242424242"), "[card_1]");
        assert_eq!(masked("19 digits 4111 1111 1111 1111 003"), "19 digits [card_1]");
        // Luhn-invalid: left alone, and not taken for a phone either.
        for text in ["4111 1111 1111 1112", "4111111111111112", "5500-0000-0000-0005", "1234 5678 9012 3456"]
        {
            assert_eq!(masked(text), text);
        }
        // Mixed separators are not a card.
        assert_eq!(masked("4111 1111-1111 1111"), "4111 1111-1111 1111");
        // Inside a word or a longer number.
        assert_eq!(masked("id4111111111111111"), "id4111111111111111");
        assert_eq!(masked("0.4111111111111111"), "0.4111111111111111");
        // A trailing group that would break the checksum is left out.
        assert_eq!(masked("4111 1111 1111 1111 2026"), "[card_1] 2026");
    }

    #[test]
    fn luhn() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn_valid(&digits("4111111111111111")));
        assert!(luhn_valid(&digits("79927398713")));
        assert!(!luhn_valid(&digits("79927398710")));
        assert!(!luhn_valid(&digits("4111111111111112")));
    }

    #[test]
    fn phones() {
        for text in [
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
            "+1-415-555-2671",
            "+4915112345678",
            "+49 (0)30 1234567",
            "0044 20 7946 0958",
            "(555) 123-4567",
            "(555)123-4567",
            "555-123-4567",
            "555.123.4567",
            "555-1234",
            "1-800-555-0199",
            "030 1234567",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "(030) 123 456 78",
            "07911123456",
        ] {
            assert_eq!(masked(&format!("Tel: {text}.")), "Tel: [phone_1].", "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_phones() {
        for text in [
            "2026-11-22",
            "on 2026-11-22 at 12:30",
            "2026-11-22T12:30:00Z",
            "22.11.2026",
            "11/22/2026",
            "12:30",
            "12:30:45",
            "1999",
            "from 1999-2005",
            "€1,234.56",
            "$1234567.89",
            "1,234,567.89",
            "1.234.567",
            "1 234 567",
            "100 200 300",
            "order #12345",
            "order 12345",
            "1234567890",
            "192.168.100.200",
            "10.0.0.1",
            "172.16.254.100",
            "1 2 3 4 5 6 7 8",
            "version 1.2.3",
            "12-34-56",
            "+12345",
            "call555-123-4567",
        ] {
            assert_eq!(masked(text), text, "{text}");
        }
    }

    #[test]
    fn json_values_mask_strings_only() {
        let mut masker = Masker::new();
        let value = json!({
            "ann@example.com": "ann@example.com",
            "contacts": [{"email": "bob@example.org", "phone": "+1 415 555 2671"}, "ann@example.com"],
            "number": 4111111111111111_u64,
            "nothing": null,
            "ok": true,
        });
        let out = masker.mask_value(&value);
        assert_eq!(
            out,
            json!({
                "ann@example.com": "[email_1]",
                "contacts": [{"email": "[email_2]", "phone": "[phone_1]"}, "[email_1]"],
                "number": 4111111111111111_u64,
                "nothing": null,
                "ok": true,
            })
        );
        assert_eq!(masker.restore_value(&out), value);
        // Tool arguments the model writes with placeholders get the originals.
        let arguments = json!({"to": "[email_2]", "cc": ["[email_1]", "[email_9]"], "n": 1});
        assert_eq!(
            masker.restore_value(&arguments),
            json!({"to": "bob@example.org", "cc": ["ann@example.com", "[email_9]"], "n": 1})
        );
    }

    #[test]
    fn restore_leaves_unknown_and_malformed_placeholders() {
        let mut masker = Masker::new();
        masker.mask_text("ann@example.com");
        for text in ["[email_2]", "[email_]", "[email_1", "[EMAIL_1]", "[phone_1]", "[[email_x]]", "[", "]"] {
            assert_eq!(masker.restore_text(text), text);
        }
        assert_eq!(masker.restore_text("[[email_1]]"), "[ann@example.com]");
        assert_eq!(masker.restore_text("x[email_1]y[email_1]"), "xann@example.comyann@example.com");
    }

    #[test]
    fn literal_placeholders_in_the_input_survive_a_round_trip() {
        let mut masker = Masker::new();
        let text = "literally [email_1] and [card_2], then ann@example.com";
        let out = masker.mask_text(text);
        assert_eq!(out, "literally [email_1] and [card_2], then [email_2]");
        assert_eq!(masker.restore_text(&out), text);
        // In a JSON value, a literal anywhere in it is kept out of the numbering.
        let value = json!(["bob@example.org", "see [email_3]"]);
        let out = masker.mask_value(&value);
        assert_eq!(out, json!(["[email_4]", "see [email_3]"]));
        assert_eq!(masker.restore_value(&out), value);
    }

    #[test]
    fn entries_persist_the_mapping() {
        let mut masker = Masker::new();
        let out = masker.mask_text("ann@example.com, +1 415 555 2671, bob@example.org, 4111111111111111");
        let entries = masker.to_entries();
        assert_eq!(
            entries,
            vec![
                ("[email_1]".to_owned(), "ann@example.com".to_owned()),
                ("[phone_1]".to_owned(), "+1 415 555 2671".to_owned()),
                ("[email_2]".to_owned(), "bob@example.org".to_owned()),
                ("[card_1]".to_owned(), "4111111111111111".to_owned()),
            ]
        );
        let mut resumed = Masker::from_entries(entries);
        assert_eq!(resumed.restore_text(&out), masker.restore_text(&out));
        // Known values keep their placeholders; new ones continue the numbering.
        assert_eq!(resumed.mask_text("bob@example.org cy@example.net"), "[email_2] [email_3]");
        assert_eq!(resumed.mask_text("5500 0000 0000 0004"), "[card_2]");
        // Entries that are not placeholders, and repeats, are ignored.
        let odd = Masker::from_entries(vec![
            ("[email_7]".to_owned(), "a@b.org".to_owned()),
            ("[email_7]".to_owned(), "other@b.org".to_owned()),
            ("email_1".to_owned(), "c@d.org".to_owned()),
            ("[email_2] ".to_owned(), "c@d.org".to_owned()),
            ("[fax_1]".to_owned(), "c@d.org".to_owned()),
        ]);
        assert_eq!(odd.len(), 1);
        assert_eq!(odd.restore_text("[email_7]"), "a@b.org");
        let mut odd = odd;
        assert_eq!(odd.mask_text("new@b.org"), "[email_8]");
    }

    #[test]
    fn debug_hides_values() {
        let mut masker = Masker::new();
        assert!(masker.is_empty());
        masker.mask_text("ann@example.com 4111111111111111 ann@example.com");
        assert!(!masker.is_empty());
        let debug = format!("{masker:?}");
        assert_eq!(debug, "Masker { emails: 1, phones: 0, cards: 1, .. }");
        assert!(!debug.contains("ann") && !debug.contains("4111"));
    }

    #[test]
    fn text_without_personal_data_is_unchanged() {
        let mut masker = Masker::new();
        let text = "Nothing here: 42 apples, 3.14, 2026, [1, 2, 3], a @ b, ok.";
        assert_eq!(masker.mask_text(text), text);
        assert!(masker.is_empty());
        assert_eq!(masker.mask_text(""), "");
    }

    #[test]
    fn long_and_repetitive_inputs() {
        for unit in ["(1)", "1 ", "1-", "a@", "@a.", "4111 ", "+1 ", ".", "[email_1]"] {
            let text = unit.repeat(20_000);
            let mut masker = Masker::new();
            let out = masker.mask_text(&text);
            assert_eq!(masker.restore_text(&out), text);
        }
    }

    /// A random Luhn-valid 16-digit number starting with 4, written together or in groups.
    fn card() -> impl Strategy<Value = String> {
        (proptest::collection::vec(0u8..10, 14), prop_oneof![Just(""), Just(" "), Just("-")]).prop_map(
            |(body, separator)| {
                let mut digits = vec![4u8];
                digits.extend(body);
                let check = (0u8..10)
                    .find(|&d| {
                        let mut all = digits.clone();
                        all.push(d);
                        luhn_valid(&all)
                    })
                    .unwrap();
                digits.push(check);
                let groups: Vec<String> = digits
                    .chunks(4)
                    .map(|chunk| chunk.iter().map(|d| char::from(b'0' + d)).collect())
                    .collect();
                groups.join(separator)
            },
        )
    }

    fn email() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}(\\.[a-zA-Z0-9_]{1,6})?(\\+[a-z0-9]{1,5})?@[a-z0-9]{1,10}(\\.[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?)?\\.[a-z]{2,6}"
    }

    fn filler() -> impl Strategy<Value = String> {
        prop_oneof!["[ -~]{0,30}", "[0-9 .,:+()#@-]{0,20}", any::<String>()]
    }

    proptest! {
        #[test]
        fn mask_then_restore_gives_the_original(
            parts in proptest::collection::vec((filler(), prop_oneof![email(), card()]), 0..6),
            tail in filler(),
        ) {
            let mut text = String::new();
            for (filler, value) in &parts {
                text.push_str(filler);
                text.push(' ');
                text.push_str(value);
                text.push(' ');
            }
            text.push_str(&tail);
            let mut masker = Masker::new();
            let out = masker.mask_text(&text);
            prop_assert_eq!(masker.restore_text(&out), text.clone());
            for (_, value) in &parts {
                prop_assert!(!out.contains(value.as_str()), "{:?} left in {:?}", value, out);
            }
        }

        #[test]
        fn arbitrary_text_round_trips(text in any::<String>()) {
            let mut masker = Masker::new();
            let out = masker.mask_text(&text);
            prop_assert_eq!(masker.restore_text(&out), text);
        }
    }
}
