//! The values of a connection's secret that may appear on the wire, so that redaction looks
//! for each: a `headers` connection's secret is a JSON object whose values are sent one by
//! one, and a `basic` connection sends `username:password` (base64-encoded, which redaction
//! covers) besides the password itself.

use steward_store::Connection;

use crate::Secret;

/// The secret values of `connection` to scan payloads for.
pub(crate) fn secret_forms(connection: &Connection, secret: Secret) -> Vec<Secret> {
    let mut out = Vec::new();
    match connection.kind.as_str() {
        "headers" => {
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(secret.expose()) {
                out.extend(map.values().filter_map(|v| v.as_str()).map(Secret::from));
            }
        }
        "basic" => {
            if let Some(user) = connection.settings.get("username").and_then(|u| u.as_str()) {
                let mut pair = format!("{user}:").into_bytes();
                pair.extend_from_slice(secret.expose());
                out.push(Secret::new(pair));
            }
        }
        _ => {}
    }
    out.push(secret);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn headers_and_basic_connections_yield_every_value_sent() {
        let mut c = steward_testkit::connection("w", "c", "sealed".into(), steward_engine::Timestamp(0));
        c.kind = "headers".into();
        let forms = secret_forms(&c, Secret::from(r#"{"x-a": "one-value", "x-b": "two-value"}"#));
        let texts: Vec<&[u8]> = forms.iter().map(Secret::expose).collect();
        assert!(texts.contains(&b"one-value".as_slice()) && texts.contains(&b"two-value".as_slice()));
        c.kind = "basic".into();
        c.settings = json!({"username": "ann"});
        let forms = secret_forms(&c, Secret::from("pw-123"));
        let texts: Vec<&[u8]> = forms.iter().map(Secret::expose).collect();
        assert_eq!(texts, [b"ann:pw-123".as_slice(), b"pw-123".as_slice()]);
    }
}
