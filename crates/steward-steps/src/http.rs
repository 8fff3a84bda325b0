//! The `http` step: builds the request from rendered values, sends it, and turns the response
//! into the step's output (`status`, `headers`, `body` parsed as JSON when it is JSON).

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

/// Largest response body kept as a step output.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// Why a request failed, in terms a retry policy can select on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{message}")]
    Status { status: u16, message: String, output: Value },
}

/// A request with every template already rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, Value)>,
    pub query: Vec<(String, Value)>,
    pub body: Body,
    /// Statuses that count as success; empty means any 2xx.
    pub expect: Vec<steward_flow::StatusMatch>,
    /// Sent as `Idempotency-Key` unless the step sets that header itself.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    Form(Vec<(String, Value)>),
    Raw(Value),
}

/// A shared HTTP client (connection pools are reused across steps).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, String> {
        // One process-wide TLS provider; a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(10))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// Sends the request within `timeout` and returns the step output.
    pub async fn send(&self, req: &Request, timeout: Duration) -> Result<Value, HttpError> {
        let built = self.build(req)?;
        let shown = display_url(&req.url);
        let fut = async {
            let resp =
                self.client.execute(built).await.map_err(|e| network_error(&req.method, &shown, &e))?;
            read_response(resp, &req.method, &shown).await
        };
        let output = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(HttpError::Timeout(format!(
                    "{} {shown} timed out after {}",
                    req.method,
                    humanize(timeout)
                )));
            }
        };
        let status = output["status"].as_u64().unwrap_or(0) as u16;
        if status_ok(status, &req.expect) {
            Ok(output)
        } else {
            let reason =
                reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
            let message = format!("{} {shown} returned {status} {reason}", req.method).trim_end().to_owned();
            Err(HttpError::Status { status, message, output })
        }
    }

    fn build(&self, req: &Request) -> Result<reqwest::Request, HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HttpError::Input(format!("`{}` is not an HTTP method", req.method)))?;
        let mut url = url::Url::parse(&req.url)
            .map_err(|e| HttpError::Input(format!("`{}` is not a valid URL: {e}", display_url(&req.url))))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Input(format!(
                "only http and https URLs can be requested, not `{}:`",
                url.scheme()
            )));
        }
        if !req.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &req.query {
                pairs.append_pair(k, &text(v));
            }
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HttpError::Input(format!("`{k}` is not a valid header name")))?;
            let value = HeaderValue::from_str(&text(v)).map_err(|_| {
                HttpError::Input(format!("the value of header `{k}` is not valid in a header"))
            })?;
            headers.insert(name, value);
        }
        if !headers.contains_key("idempotency-key")
            && let Ok(v) = HeaderValue::from_str(&req.idempotency_key)
        {
            headers.insert("idempotency-key", v);
        }
        let mut builder = self.client.request(method, url).headers(headers.clone());
        builder = match &req.body {
            Body::None => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(pairs) => {
                let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                builder.form(&pairs)
            }
            Body::Raw(v) => {
                let b = builder.body(text(v));
                if headers.contains_key(CONTENT_TYPE) {
                    b
                } else {
                    b.header(CONTENT_TYPE, "text/plain; charset=utf-8")
                }
            }
        };
        builder.build().map_err(|e| HttpError::Input(format!("cannot build the request: {e}")))
    }
}

async fn read_response(resp: reqwest::Response, method: &str, shown: &str) -> Result<Value, HttpError> {
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let is_json = headers.get("content-type").and_then(Value::as_str).is_some_and(|ct| ct.contains("json"));
    if resp.content_length().is_some_and(|n| n as usize > MAX_RESPONSE_BYTES) {
        return Err(HttpError::Input(format!(
            "{method} {shown}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let bytes = read_limited(resp, method, shown).await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(json!({ "status": status, "headers": headers, "body": body }))
}

async fn read_limited(mut resp: reqwest::Response, method: &str, shown: &str) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| network_error(method, shown, &e))? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::Input(format!(
                "{method} {shown}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn status_ok(status: u16, expect: &[steward_flow::StatusMatch]) -> bool {
    if expect.is_empty() { (200..300).contains(&status) } else { expect.iter().any(|m| m.matches(status)) }
}

fn network_error(method: &str, shown: &str, e: &reqwest::Error) -> HttpError {
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        return HttpError::Timeout(format!("{method} {shown} timed out"));
    } else if e.is_redirect() {
        "followed too many redirects"
    } else if e.is_body() || e.is_decode() {
        "the response body could not be read"
    } else {
        "the request failed"
    };
    HttpError::Network(format!("{method} {shown}: {what}"))
}

/// The URL without its query string or credentials, which may hold secrets.
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => {
            let cut = raw.split(['?', '#']).next().unwrap_or_default();
            // Drop anything that looks like `user:password@` in front of the host.
            let (scheme, rest) = cut.split_once("://").unwrap_or(("", cut));
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let sep = if scheme.is_empty() { "" } else { "://" };
            let slash = if path.is_empty() && !rest.contains('/') { "" } else { "/" };
            format!("{scheme}{sep}{host}{slash}{path}").chars().take(200).collect()
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
