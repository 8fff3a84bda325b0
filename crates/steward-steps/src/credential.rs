//! Credentials on outgoing requests: where a connection's secret may go, how it is attached,
//! and the replacement of `secret()` handles by values.
//!
//! The executor opens the secrets a request needs and hands them here; this module decides,
//! for the request's host and for every redirect, whether they may be sent. A request to a
//! host outside a connection's hosts fails before anything is sent, naming the connection
//! and the host.

use serde_json::Value;
use steward_flow::secret;
use zeroize::Zeroizing;

use crate::http::HttpError;

/// A connection's name and the hosts its secret may be sent to (`api.example.com`, or
/// `*.example.com` for any subdomain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub connection: String,
    pub hosts: Vec<String>,
}

impl Grant {
    /// Whether the secret may go to `host`.
    pub fn allows(&self, host: &str) -> bool {
        host_matches(&self.hosts, host)
    }

    /// Refuses `host` when it is not one of the connection's hosts.
    pub(crate) fn check(&self, host: &str, redirected: bool) -> Result<(), HttpError> {
        if self.allows(host) {
            return Ok(());
        }
        let how = if redirected { "the request was redirected to" } else { "the request goes to" };
        Err(HttpError::Refused(format!(
            "connection `{}` may only be sent to {}, but {how} `{host}`",
            self.connection,
            self.hosts.join(", ")
        )))
    }
}

/// Whether `host` is in `hosts`, where `*.example.com` matches subdomains of example.com
/// (not example.com itself). Comparison ignores ASCII case.
pub fn host_matches(hosts: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    hosts.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(parent) => host.len() > parent.len() + 1 && host.ends_with(&format!(".{parent}")),
            None => host == pattern,
        }
    })
}

/// How a connection's secret is attached to a request.
#[derive(Clone)]
pub enum Apply {
    /// One header (`Authorization: Bearer …`, `X-Api-Key: …`, `Authorization: Basic …`).
    Header { name: String, value: Zeroizing<String> },
    /// One query parameter (an API key in the URL).
    Query { name: String, value: Zeroizing<String> },
    /// Several headers.
    Headers(Vec<(String, Zeroizing<String>)>),
}

impl std::fmt::Debug for Apply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Apply::Header { name, .. } => write!(f, "Header({name}: [redacted])"),
            Apply::Query { name, .. } => write!(f, "Query({name}=[redacted])"),
            Apply::Headers(h) => write!(f, "Headers({} [redacted])", h.len()),
        }
    }
}

/// A connection's credential, ready to attach (`connection:` on an http step).
#[derive(Debug, Clone)]
pub struct Credential {
    pub grant: Grant,
    pub apply: Apply,
}

/// The value behind a `secret("name")` handle, and where it may go.
#[derive(Clone)]
pub struct HandleValue {
    pub grant: Grant,
    pub value: Zeroizing<String>,
}

impl std::fmt::Debug for HandleValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleValue").field("grant", &self.grant).finish_non_exhaustive()
    }
}

/// The connection names of the handles anywhere in `v` (strings and object keys).
pub fn handles_in_value(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(secret::handles_in(s).map(str::to_owned)),
        Value::Array(items) => items.iter().for_each(|i| handles_in_value(i, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.extend(secret::handles_in(k).map(str::to_owned));
            handles_in_value(v, out);
        }),
        _ => {}
    }
}

/// Replaces handles in text by their values; `used` collects the grants of those replaced.
pub(crate) fn fill_text<'a>(
    text: &str,
    values: &'a [HandleValue],
    used: &mut Vec<&'a Grant>,
) -> Result<String, HttpError> {
    secret::replace_handles(text, |name| {
        let found = values.iter().find(|h| h.grant.connection == name).ok_or_else(|| {
            HttpError::Input(format!("secret(\"{name}\") has no value: the connection was not resolved"))
        })?;
        if !used.iter().any(|g| g.connection == name) {
            used.push(&found.grant);
        }
        Ok(found.value.to_string())
    })
}

/// [`fill_text`] over every string and key of a JSON value.
pub(crate) fn fill_value<'a>(
    v: &Value,
    values: &'a [HandleValue],
    used: &mut Vec<&'a Grant>,
) -> Result<Value, HttpError> {
    Ok(match v {
        Value::String(s) => Value::String(fill_text(s, values, used)?),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| fill_value(i, values, used)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((fill_text(k, values, used)?, fill_value(v, values, used)?)))
                .collect::<Result<_, HttpError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn grant(name: &str, hosts: &[&str]) -> Grant {
        Grant { connection: name.into(), hosts: hosts.iter().map(|h| (*h).to_owned()).collect() }
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard_subdomain() {
        let hosts = vec!["api.example.com".to_owned(), "*.svc.example.net".to_owned()];
        assert!(host_matches(&hosts, "API.example.com"));
        assert!(host_matches(&hosts, "api.example.com."));
        assert!(host_matches(&hosts, "a.svc.example.net"));
        assert!(host_matches(&hosts, "a.b.svc.example.net"));
        assert!(!host_matches(&hosts, "svc.example.net"), "a wildcard does not match its parent");
        assert!(!host_matches(&hosts, "evilsvc.example.net"));
        assert!(!host_matches(&hosts, "api.example.com.evil.org"));
        assert!(!host_matches(&hosts, "example.com"));
    }

    #[test]
    fn a_refusal_names_the_connection_its_hosts_and_the_host() {
        let err = grant("github", &["api.github.com"]).check("evil.example", true).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "connection `github` may only be sent to api.github.com, but the request was redirected to `evil.example`"
        );
    }

    #[test]
    fn handles_are_filled_in_strings_and_keys_and_their_grants_collected() {
        let values =
            vec![HandleValue { grant: grant("k", &["x.test"]), value: Zeroizing::new("VALUE".to_owned()) }];
        let mut used = Vec::new();
        let body = json!({"a": [format!("Bearer {}", secret::handle("k"))], secret::handle("k"): 1, "n": 2});
        let filled = fill_value(&body, &values, &mut used).expect("filled");
        assert_eq!(filled, json!({"a": ["Bearer VALUE"], "VALUE": 1, "n": 2}));
        assert_eq!(used.len(), 1, "one grant, however often it is used");
        let mut unused = Vec::new();
        let err = fill_text(&secret::handle("other"), &values, &mut unused).expect_err("unknown handle");
        assert!(err.to_string().contains("secret(\"other\")"), "{err}");
        let mut names = Vec::new();
        handles_in_value(&body, &mut names);
        assert_eq!(names, ["k", "k"]);
    }
}
