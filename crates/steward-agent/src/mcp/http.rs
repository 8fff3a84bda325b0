//! Streamable-HTTP servers.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::McpError;

/// The client an HTTP MCP connection uses when its caller gives none (the executor gives one
/// whose connections pass the egress guard).
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // One process-wide TLS provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        // A redirect would carry the session and the spec's headers elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        // Idle pooled connections stall on delayed ACKs when a response was not read to its end.
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
}

/// A transport to `url` sending `headers` with every request, through `client` when given.
pub(super) fn transport(
    server: &str,
    url: &str,
    headers: &[(String, String)],
    client: Option<reqwest::Client>,
) -> Result<StreamableHttpClientTransport<reqwest::Client>, McpError> {
    let invalid = |message: String| McpError::InvalidSpec { server: server.to_owned(), message };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("invalid URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!("the URL {url:?} is not http or https")));
    }
    let mut custom = HashMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        // The value is left out of the message: it is often a credential.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("invalid value for the header {name}")))?;
        value.set_sensitive(true);
        custom.insert(header, value);
    }
    let client = match client {
        Some(c) => c,
        None => http_client().map_err(|e| McpError::Transport {
            server: server.to_owned(),
            message: format!("cannot build the HTTP client: {e}"),
        })?,
    };
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom);
    Ok(StreamableHttpClientTransport::with_client(client, config))
}
