//! Turning a provider's error answers into [`ProviderError`]s, and reading `Retry-After`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{ErrorKind, Protocol, ProviderError};

/// Statuses worth another attempt (529 is Anthropic's "overloaded").
pub(crate) const RETRYABLE: [u16; 6] = [429, 500, 502, 503, 504, 529];

/// How a provider is named in messages.
pub(crate) fn provider_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Openai => "the OpenAI-compatible provider",
        Protocol::Anthropic => "Anthropic",
    }
}

/// What the provider said about an error, from either protocol's error body
/// (`{"error":{"message","type","code"}}`, `{"type":"error","error":{"type","message"}}`),
/// or a few shapes local servers use (`{"error": "..."}`, `{"message": ...}`, `{"detail": ...}`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Detail {
    pub message: Option<String>,
    pub code: Option<String>,
    pub kind: Option<String>,
}

impl Detail {
    pub fn from_json(body: &Value) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        match body.get("error") {
            Some(Value::String(s)) => Self { message: Some(s.clone()), ..Self::default() },
            Some(e @ Value::Object(_)) => {
                Self { message: text(e.get("message")), code: text(e.get("code")), kind: text(e.get("type")) }
            }
            _ => Self {
                message: text(body.get("message")).or_else(|| text(body.get("detail"))),
                ..Self::default()
            },
        }
    }

    /// From a raw body: its JSON error, or a short excerpt of the text when it is not JSON.
    pub fn from_bytes(body: &[u8]) -> Self {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            return Self::from_json(&v);
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return Self::default();
        }
        let mut excerpt: String = text.chars().take(200).collect();
        if excerpt.len() < text.len() {
            excerpt.push_str("...");
        }
        Self { message: Some(excerpt), ..Self::default() }
    }

    fn is(&self, name: &str) -> bool {
        self.code.as_deref() == Some(name) || self.kind.as_deref() == Some(name)
    }

    /// The provider says the model does not exist (or the key cannot use it).
    pub fn model_not_found(&self) -> bool {
        self.is("model_not_found") || self.is("not_found_error")
    }

    fn said(&self) -> String {
        match &self.message {
            Some(m) => format!(": {m}"),
            None => String::new(),
        }
    }
}

/// The error for a non-success answer.
pub(crate) fn from_status(
    protocol: Protocol,
    base_url: &str,
    model: &str,
    status: u16,
    retry_after: Option<Duration>,
    detail: &Detail,
) -> ProviderError {
    let who = provider_name(protocol);
    let said = detail.said();
    let (kind, message) = match status {
        401 | 403 => (
            ErrorKind::Auth,
            format!("{who} at {base_url} refused the API key ({status}; check the connection's key){said}"),
        ),
        404 => (
            ErrorKind::UnknownModel,
            format!(
                "model `{model}` was not found at {base_url} (404; check the model name and base URL){said}"
            ),
        ),
        400..=499 if detail.model_not_found() => (
            ErrorKind::UnknownModel,
            format!("model `{model}` is not available at {base_url} ({status}){said}"),
        ),
        429 => (ErrorKind::RateLimited, format!("{who} at {base_url} is rate-limiting requests (429){said}")),
        400..=499 => {
            (ErrorKind::BadRequest, format!("{who} at {base_url} rejected the request ({status}){said}"))
        }
        500..=599 => (ErrorKind::Server, format!("{who} at {base_url} failed ({status}){said}")),
        _ => (ErrorKind::BadResponse, format!("{who} at {base_url} answered with status {status}{said}")),
    };
    ProviderError { kind, message, status: Some(status), retry_after }
}

/// Whether an answer with this status may succeed on another attempt. A 429 for an exhausted
/// quota (OpenAI's `insufficient_quota`) will not.
pub(crate) fn retryable(status: u16, detail: &Detail) -> bool {
    RETRYABLE.contains(&status) && !detail.is("insufficient_quota")
}

/// The error an `error` event (Anthropic) or an `error` chunk (OpenAI-compatible) carries in
/// the middle of a stream.
pub(crate) fn in_stream(body: &Value) -> ProviderError {
    let detail = Detail::from_json(body);
    let name = detail.kind.clone().or_else(|| detail.code.clone()).unwrap_or_default();
    let kind = match name.as_str() {
        "authentication_error" | "permission_error" | "invalid_api_key" => ErrorKind::Auth,
        "not_found_error" | "model_not_found" => ErrorKind::UnknownModel,
        "invalid_request_error" | "request_too_large" => ErrorKind::BadRequest,
        "rate_limit_error" | "rate_limit_exceeded" => ErrorKind::RateLimited,
        _ => ErrorKind::Server,
    };
    let label = if name.is_empty() { String::new() } else { format!(" ({name})") };
    ProviderError::new(kind, format!("the stream reported an error{label}{}", detail.said()))
}

/// How long the provider asks to wait: `retry-after-ms` (OpenAI), then `Retry-After` in
/// seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = http_date(value)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(s: &str) -> Option<u64> {
    let mut parts = s.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u64 + 1;
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (March-based year).
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951_825_600));
        assert_eq!(http_date("yesterday"), None);
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date means now");
        h.insert("retry-after-ms", "250".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn error_bodies_of_both_protocols() {
        let openai = Detail::from_bytes(
            br#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
        );
        assert!(openai.model_not_found());
        assert_eq!(openai.message.as_deref(), Some("The model `x` does not exist"));
        let anthropic = Detail::from_bytes(
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        );
        let e = from_status(Protocol::Anthropic, "https://a.test", "m", 401, None, &anthropic);
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(
            e.message.contains("https://a.test") && e.message.contains("invalid x-api-key"),
            "{}",
            e.message
        );
        let e = from_status(Protocol::Openai, "https://o.test/v1", "gpt-x", 400, None, &openai);
        assert_eq!(e.kind, ErrorKind::UnknownModel);
        assert!(e.message.contains("gpt-x"));
        let html = Detail::from_bytes(b"<html>bad gateway</html>");
        assert_eq!(from_status(Protocol::Openai, "b", "m", 502, None, &html).kind, ErrorKind::Server);
        assert!(!retryable(429, &Detail { code: Some("insufficient_quota".into()), ..Detail::default() }));
        assert!(retryable(529, &Detail::default()));
    }
}
