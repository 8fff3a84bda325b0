//! A plain [`Transport`] over a `reqwest::Client`, with one fixed header for the key. It does
//! no egress checks, so it serves tests and tools, not runs that hold secrets.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::{ErrorKind, ProviderError, Transport};

/// Sends provider requests with a plain HTTP client.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    header: Option<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for ReqwestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The header's value is a key: only its name is shown.
        f.debug_struct("ReqwestTransport").field("header", &self.header.as_ref().map(|(n, _)| n)).finish()
    }
}

impl ReqwestTransport {
    /// A transport that adds no header.
    pub fn new() -> Result<Self, ProviderError> {
        // One process-wide TLS provider; a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                ProviderError::new(ErrorKind::Network, format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self { client, header: None })
    }

    /// Adds `name: value` to every request (the value is marked sensitive).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ProviderError> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ProviderError::new(ErrorKind::BadRequest, format!("`{name}` is not a header name"))
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::new(ErrorKind::BadRequest, format!("the value for header `{name}` is not valid"))
        })?;
        value.set_sensitive(true);
        self.header = Some((name, value));
        Ok(self)
    }

    /// `Authorization: Bearer <key>` (OpenAI-compatible providers).
    pub fn bearer(key: &str) -> Result<Self, ProviderError> {
        Self::new()?.with_header("authorization", &format!("Bearer {key}"))
    }

    /// `x-api-key: <key>` (Anthropic).
    pub fn api_key(key: &str) -> Result<Self, ProviderError> {
        Self::new()?.with_header("x-api-key", key)
    }
}

#[async_trait::async_trait]
impl Transport for ReqwestTransport {
    async fn post_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut request = self.client.post(url).timeout(timeout).json(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some((name, value)) = &self.header {
            request = request.header(name.clone(), value.clone());
        }
        request.send().await.map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Network };
            ProviderError::new(kind, format!("cannot reach {url}: {}", describe(&e.without_url())))
        })
    }
}

/// An error with its causes, which reqwest keeps in the source chain.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
