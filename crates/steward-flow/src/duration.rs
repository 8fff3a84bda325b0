//! Durations written the human way (`500ms`, `30s`, `1h 30m`), parsed once into a newtype.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn from_secs(s: u64) -> Self {
        Self(s * 1000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_std(self) -> StdDuration {
        StdDuration::from_millis(self.0)
    }

    /// Parses `500ms`, `30s`, `5m`, `1h30m`, `2d`; a bare number is rejected because its unit
    /// would be a guess.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
            return Err(format!("`{t}` has no unit; write for example `{t}s` or `{t}ms`"));
        }
        let d = humantime::parse_duration(t).map_err(|e| {
            format!("`{t}` is not a duration ({e}); write for example `500ms`, `30s`, `5m` or `1h30m`")
        })?;
        u64::try_from(d.as_millis()).map(Self).map_err(|_| format!("`{t}` is too long a duration"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = StdDuration::from_millis(self.0);
        write!(f, "{}", humantime::format_duration(d))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(text) => Duration::parse(&text),
            serde_json::Value::Number(n) => Duration::parse(&n.to_string()),
            other => Err(format!("expected a duration such as `30s`, found {other}")),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `500ms`, `30s`, `5m`, `1h30m` or `2d`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]+"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Duration::parse("500ms"), Ok(Duration(500)));
        assert_eq!(Duration::parse("30s"), Ok(Duration(30_000)));
        assert_eq!(Duration::parse("1h30m"), Ok(Duration(5_400_000)));
        assert_eq!(Duration::parse("2d").map(|d| d.as_millis()), Ok(172_800_000));
    }

    #[test]
    fn rejects_bare_numbers_and_garbage() {
        assert!(Duration::parse("30").expect_err("no unit").contains("no unit"));
        assert!(Duration::parse("soon").expect_err("garbage").contains("not a duration"));
        assert!(Duration::parse("-1s").is_err());
    }
}
