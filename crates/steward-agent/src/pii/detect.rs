//! Finding e-mail addresses, payment card numbers and phone numbers in text: hand-written
//! scanners over characters, conservative where a false match would hide ordinary data.

use super::Kind;

/// A value found in text, as byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: Kind,
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
pub(super) fn find_spans(text: &str) -> Vec<Span> {
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
pub(super) fn luhn_valid(digits: &[u8]) -> bool {
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
