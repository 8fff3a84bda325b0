//! The spellings a secret travels in: percent-encoded, JSON-escaped and base64 forms.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use zeroize::Zeroizing;

use super::{Pattern, Redactor};

/// Every spelling of a (non-empty) secret, possibly with duplicates.
pub(super) fn spellings(secret: &[u8], out: &mut Vec<Pattern>) {
    out.push(Zeroizing::new(secret.to_vec()));
    percent_spellings(secret, out);
    if let Ok(text) = std::str::from_utf8(secret) {
        json_spellings(text, out);
    }
    if secret.len() >= Redactor::MIN_ENCODED_LEN {
        base64_spellings(secret, out);
    }
}

/// Bytes besides ASCII letters and digits that an encoder leaves as they are.
const URL_SAFE_SETS: &[&[u8]] = &[
    b"",                       // every other byte (the percent-encoding crate's NON_ALPHANUMERIC)
    b"-._~",                   // RFC 3986 unreserved (Go QueryEscape, Python quote(safe=""))
    b"-._~/",                  // Python quote
    b"-._~$&+,/:;=@",          // Go PathEscape
    b"-_.!~*'()",              // JavaScript encodeURIComponent
    b"-_.!~*'();,/?:@&=+$#",   // JavaScript encodeURI
    b"*-._",                   // application/x-www-form-urlencoded (WHATWG, the url crate)
    b"!$&'()*+,-./:;=@[]^_|~", // WHATWG path percent-encode set: only space " # < > ? ` { }
    b"!$&'()*+,-.:;=@[]^_|~",  // WHATWG path segment (the url crate's path_segments_mut)
    b"!$&'()*+,-._~",          // WHATWG userinfo (the url crate's set_password)
];

fn percent_spellings(secret: &[u8], out: &mut Vec<Pattern>) {
    for safe in URL_SAFE_SETS {
        for plus in [false, true] {
            for upper in [true, false] {
                let mut encoded = Zeroizing::new(Vec::with_capacity(secret.len() * 3));
                for &b in secret {
                    if b.is_ascii_alphanumeric() || safe.contains(&b) {
                        encoded.push(b);
                    } else if b == b' ' && plus {
                        encoded.push(b'+');
                    } else {
                        encoded.push(b'%');
                        encoded.extend_from_slice(&hex_byte(b, upper));
                    }
                }
                out.push(encoded);
            }
        }
    }
}

/// How a JSON encoder escapes a string.
struct JsonStyle {
    /// Control characters written `\b`, `\f`, `\n`, `\r`, `\t` (the others as `\u00XX`).
    short: &'static [u8],
    /// Hex digits in uppercase.
    upper: bool,
    /// Non-ASCII characters as `\uXXXX` (UTF-16).
    ascii: bool,
    /// ASCII characters besides `"`, `\` and controls written `\u00XX` (or `\/` for `/`).
    extra: &'static [u8],
}

const JSON_STYLES: &[JsonStyle] = &[
    // serde_json, JavaScript, Python with ensure_ascii=False.
    JsonStyle { short: b"\x08\x0c\n\r\t", upper: false, ascii: false, extra: b"" },
    JsonStyle { short: b"\x08\x0c\n\r\t", upper: true, ascii: false, extra: b"" },
    // Every control character as \u00XX.
    JsonStyle { short: b"", upper: false, ascii: false, extra: b"" },
    JsonStyle { short: b"", upper: true, ascii: false, extra: b"" },
    // Python's json.dumps.
    JsonStyle { short: b"\x08\x0c\n\r\t", upper: false, ascii: true, extra: b"" },
    // Go's encoding/json (HTML-safe by default; also escapes U+2028 and U+2029).
    JsonStyle { short: b"\n\r\t", upper: false, ascii: false, extra: b"<>&" },
    // PHP's json_encode.
    JsonStyle { short: b"\x08\x0c\n\r\t", upper: false, ascii: true, extra: b"/" },
    // .NET's System.Text.Json.
    JsonStyle { short: b"\x08\x0c\n\r\t", upper: true, ascii: true, extra: b"\"<>&'+`" },
];

fn json_spellings(secret: &str, out: &mut Vec<Pattern>) {
    for style in JSON_STYLES {
        let mut escaped = Zeroizing::new(Vec::with_capacity(secret.len() * 2));
        for c in secret.chars() {
            let code = u32::from(c);
            let go_separator = style.extra.contains(&b'<') && (c == '\u{2028}' || c == '\u{2029}');
            if c.is_ascii() {
                let b = code as u8;
                if style.extra.contains(&b) {
                    if b == b'/' {
                        escaped.extend_from_slice(b"\\/");
                    } else {
                        push_unicode_escape(&mut escaped, code as u16, style.upper);
                    }
                } else if b == b'"' || b == b'\\' {
                    escaped.extend_from_slice(&[b'\\', b]);
                } else if b < 0x20 {
                    match (style.short.contains(&b), b) {
                        (true, b'\x08') => escaped.extend_from_slice(b"\\b"),
                        (true, b'\x0c') => escaped.extend_from_slice(b"\\f"),
                        (true, b'\n') => escaped.extend_from_slice(b"\\n"),
                        (true, b'\r') => escaped.extend_from_slice(b"\\r"),
                        (true, b'\t') => escaped.extend_from_slice(b"\\t"),
                        _ => push_unicode_escape(&mut escaped, code as u16, style.upper),
                    }
                } else {
                    escaped.push(b);
                }
            } else if style.ascii || go_separator {
                let mut units = [0u16; 2];
                for &unit in c.encode_utf16(&mut units).iter() {
                    push_unicode_escape(&mut escaped, unit, style.upper);
                }
            } else {
                let mut utf8 = [0u8; 4];
                escaped.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        out.push(escaped);
    }
}

fn push_unicode_escape(out: &mut Vec<u8>, unit: u16, upper: bool) {
    let [high, low] = unit.to_be_bytes();
    out.extend_from_slice(b"\\u");
    out.extend_from_slice(&hex_byte(high, upper));
    out.extend_from_slice(&hex_byte(low, upper));
}

fn hex_byte(b: u8, upper: bool) -> [u8; 2] {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    [digits[usize::from(b >> 4)], digits[usize::from(b & 0xf)]]
}

fn base64_spellings(secret: &[u8], out: &mut Vec<Pattern>) {
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(Zeroizing::new(engine.encode(secret).into_bytes()));
    }
    // Inside a longer payload the secret starts at byte offset 0, 1 or 2 of a 3-byte group.
    let mut shifted = Zeroizing::new(Vec::with_capacity(secret.len() + 2));
    for offset in 0..3usize {
        shifted.clear();
        shifted.resize(offset, 0);
        shifted.extend_from_slice(secret);
        // Characters whose 6 bits all come from the secret.
        let start = (8 * offset).div_ceil(6);
        let end = 8 * (offset + secret.len()) / 6;
        for engine in [&STANDARD, &URL_SAFE] {
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
            let unpadded = encoded.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
            // The core, then the core with the end of a payload that the secret ends.
            for stop in [end, unpadded, encoded.len()] {
                out.push(Zeroizing::new(encoded[start..stop].to_vec()));
            }
        }
    }
}
