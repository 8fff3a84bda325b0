//! The `http` step: builds the request from rendered values, sends it, and turns the response
//! into the step's output (`status`, `headers`, `body` parsed as JSON when it is JSON).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::credential::{
    Apply, Credential, Grant, HandleValue, fill_text, fill_value, handles_in_value, host_matches,
};
use crate::egress::{EgressPolicy, GuardedResolver, denied_in};

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
    /// A policy refused the request: the egress guard, or a secret's hosts.
    #[error("{0}")]
    Refused(String),
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

impl Request {
    /// The connection names of the `secret()` handles anywhere in the request.
    pub fn handle_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        handles_in_value(&Value::String(self.url.clone()), &mut out);
        for (k, v) in self.headers.iter().chain(&self.query) {
            handles_in_value(&Value::String(k.clone()), &mut out);
            handles_in_value(v, &mut out);
        }
        match &self.body {
            Body::None => {}
            Body::Json(v) | Body::Raw(v) => handles_in_value(v, &mut out),
            Body::Form(pairs) => pairs.iter().for_each(|(k, v)| {
                handles_in_value(&Value::String(k.clone()), &mut out);
                handles_in_value(v, &mut out);
            }),
        }
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    Form(Vec<(String, Value)>),
    Raw(Value),
}

/// What may be attached to a request and where it may go: the connection's credential
/// (`connection:`), the values of `secret()` handles, and the workspace's egress allowlist.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub credential: Option<Credential>,
    pub handles: Vec<HandleValue>,
    /// When set, the only hosts any request of the workspace may reach.
    pub allowed_hosts: Option<Vec<String>>,
}

/// What one request sent to one host (one entry per redirect hop), for data-flow receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub host: String,
    /// The request line, headers and body, in bytes.
    pub bytes: u64,
    /// The connections whose secrets went with it.
    pub connections: Vec<String>,
}

/// The result of [`HttpClient::exchange`]: the step output or error, and what was sent.
#[derive(Debug)]
pub struct Exchange {
    pub result: Result<Value, HttpError>,
    pub sent: Vec<Sent>,
}

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// A shared HTTP client (connection pools are reused across steps). Every connection it opens
/// goes through the egress guard; redirects are followed here, hop by hop, so that each is
/// checked like the first request.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
}

impl HttpClient {
    pub fn new(egress: EgressPolicy) -> Result<Self, String> {
        // One process-wide TLS provider; a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let egress = Arc::new(egress);
        let client = reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(egress.clone())))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, egress })
    }

    /// A client builder for other protocols over HTTP (MCP servers) whose connections pass the
    /// same egress guard; check each URL with [`HttpClient::check_url`] first, since an
    /// address written in the URL is not resolved.
    pub fn guarded_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(self.egress.clone())))
            .no_proxy()
    }

    /// Refuses a URL whose host is an address (or `localhost`) the egress guard does not allow.
    pub fn check_url(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|e| format!("invalid URL {}: {e}", display_url(raw)))?;
        self.egress.check_url_host(&url).map_err(|d| d.to_string())
    }

    /// Sends the request within `timeout` and returns the step output.
    pub async fn send(&self, req: &Request, timeout: Duration) -> Result<Value, HttpError> {
        self.exchange(req, &Secrets::default(), timeout).await.result
    }

    /// Sends the request with `secrets` attached where they may go, within `timeout`.
    pub async fn exchange(&self, req: &Request, secrets: &Secrets, timeout: Duration) -> Exchange {
        let mut sent = Vec::new();
        let shown = display_url(&req.url);
        let result = match tokio::time::timeout(timeout, self.follow(req, secrets, &mut sent)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(format!(
                "{} {shown} timed out after {}",
                req.method,
                humanize(timeout)
            ))),
        };
        Exchange { result, sent }
    }

    /// Sends the request and follows redirects, checking every hop.
    async fn follow(
        &self,
        req: &Request,
        secrets: &Secrets,
        sent: &mut Vec<Sent>,
    ) -> Result<Value, HttpError> {
        let mut used = Vec::new();
        let filled = Filled::new(req, &secrets.handles, &mut used)?;
        let mut method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HttpError::Input(format!("`{}` is not an HTTP method", req.method)))?;
        let mut url = filled.url()?;
        let mut with_body = true;
        for hop in 0..=MAX_REDIRECTS {
            let hop_to = Hop { filled: &filled, method: method.clone(), with_body, redirected: hop > 0 };
            let resp = self.send_hop(hop_to, url.clone(), secrets, &used, sent).await?;
            let shown = display_url(url.as_str());
            let Some(next) = redirect_target(&resp, &url) else {
                return self.finish(resp, req, &shown).await;
            };
            if hop == MAX_REDIRECTS {
                break;
            }
            // 303, and 301/302 after anything but GET or HEAD, continue as a GET without body.
            let status = resp.status().as_u16();
            if status == 303 || (matches!(status, 301 | 302) && method != reqwest::Method::HEAD) {
                if method != reqwest::Method::HEAD {
                    method = reqwest::Method::GET;
                }
                with_body = false;
            }
            url = next?;
        }
        Err(HttpError::Network(format!(
            "{} {}: followed too many redirects",
            req.method,
            display_url(&req.url)
        )))
    }

    /// Sends one `POST` with a JSON body and the credential of `secrets`, checked like any
    /// request (egress guard, the workspace's allowlist, the credential's hosts), and answers
    /// with the response as it arrives, whatever its status, so that a caller can read a
    /// streamed body. Redirects are not followed: an API endpoint that redirects is an error.
    /// What was sent is added to `sent`.
    pub async fn post_raw(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        secrets: &Secrets,
        timeout: Duration,
        sent: &mut Vec<Sent>,
    ) -> Result<reqwest::Response, HttpError> {
        let req = Request {
            method: "POST".into(),
            url: url.to_owned(),
            headers: headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
            query: Vec::new(),
            body: Body::Json(body.clone()),
            expect: Vec::new(),
            idempotency_key: String::new(),
        };
        let mut used = Vec::new();
        let filled = Filled::new(&req, &secrets.handles, &mut used)?;
        let hop = Hop { filled: &filled, method: reqwest::Method::POST, with_body: true, redirected: false };
        let send = self.send_hop(hop, filled.url()?, secrets, &used, sent);
        tokio::time::timeout(timeout, send).await.unwrap_or_else(|_| {
            Err(HttpError::Timeout(format!(
                "POST {} timed out after {}",
                display_url(url),
                humanize(timeout)
            )))
        })
    }

    /// Checks a hop's destination, builds the request with its credential, sends it and notes
    /// what went where.
    async fn send_hop(
        &self,
        hop: Hop<'_>,
        url: url::Url,
        secrets: &Secrets,
        used: &[&Grant],
        sent: &mut Vec<Sent>,
    ) -> Result<reqwest::Response, HttpError> {
        let host = self.check_hop(&url, secrets, used, hop.redirected)?;
        let shown = display_url(url.as_str());
        let method = hop.method.to_string();
        let built = self.build(hop.filled, hop.method, url, hop.with_body, secrets.credential.as_ref())?;
        let mut connections: Vec<String> = used.iter().map(|g| g.connection.clone()).collect();
        connections.extend(secrets.credential.as_ref().map(|c| c.grant.connection.clone()));
        let bytes = request_size(&built);
        let resp = self.client.execute(built).await.map_err(|e| network_error(&method, &shown, &e))?;
        sent.push(Sent { host, bytes, connections });
        Ok(resp)
    }

    /// The underlying client, for requests this crate builds itself (token requests).
    pub(crate) fn raw(&self) -> &reqwest::Client {
        &self.client
    }

    /// The scheme and address-literal checks of a request this crate builds itself.
    pub(crate) fn check_destination(&self, url: &url::Url) -> Result<(), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Input(format!(
                "only http and https URLs can be requested, not `{}:`",
                url.scheme()
            )));
        }
        self.egress.check_url_host(url).map_err(|d| HttpError::Refused(d.to_string()))
    }

    pub(crate) fn failed(&self, method: &str, shown: &str, e: &reqwest::Error) -> HttpError {
        network_error(method, shown, e)
    }

    /// Checks a hop's destination: scheme, address literal, the workspace's allowlist and the
    /// hosts of every secret going with it. Returns the host.
    fn check_hop(
        &self,
        url: &url::Url,
        secrets: &Secrets,
        used: &[&Grant],
        redirected: bool,
    ) -> Result<String, HttpError> {
        self.check_destination(url)?;
        let host =
            url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        if let Some(allowed) = &secrets.allowed_hosts
            && !host_matches(allowed, &host)
        {
            return Err(HttpError::Refused(format!(
                "`{host}` is not in this workspace's egress allowlist ({})",
                allowed.join(", ")
            )));
        }
        if let Some(c) = &secrets.credential {
            c.grant.check(&host, redirected)?;
        }
        for grant in used {
            grant.check(&host, redirected)?;
        }
        Ok(host)
    }

    fn build(
        &self,
        filled: &Filled,
        method: reqwest::Method,
        mut url: url::Url,
        with_body: bool,
        credential: Option<&Credential>,
    ) -> Result<reqwest::Request, HttpError> {
        let query: Vec<(&str, String)> = filled.query.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
        let cred_query = match credential.map(|c| &c.apply) {
            Some(Apply::Query { name, value }) => Some((name.as_str(), value.as_str())),
            _ => None,
        };
        if !query.is_empty() || cred_query.is_some() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &query {
                pairs.append_pair(k, v);
            }
            if let Some((k, v)) = cred_query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &filled.headers {
            insert_header(&mut headers, k, &text(v))?;
        }
        match credential.map(|c| &c.apply) {
            Some(Apply::Header { name, value }) => insert_header(&mut headers, name, value)?,
            Some(Apply::Headers(list)) => {
                for (name, value) in list {
                    insert_header(&mut headers, name, value)?;
                }
            }
            _ => {}
        }
        if !filled.idempotency_key.is_empty()
            && !headers.contains_key("idempotency-key")
            && let Ok(v) = HeaderValue::from_str(&filled.idempotency_key)
        {
            headers.insert("idempotency-key", v);
        }
        let mut builder = self.client.request(method, url).headers(headers.clone());
        builder = match (&filled.body, with_body) {
            (Body::None, _) | (_, false) => builder,
            (Body::Json(v), true) => builder.json(v),
            (Body::Form(pairs), true) => {
                let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.clone(), text(v))).collect();
                builder.form(&pairs)
            }
            (Body::Raw(v), true) => {
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

    async fn finish(&self, resp: reqwest::Response, req: &Request, shown: &str) -> Result<Value, HttpError> {
        let output = read_response(resp, &req.method, shown).await?;
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
}

/// One request of a possibly redirected exchange.
struct Hop<'f> {
    filled: &'f Filled,
    method: reqwest::Method,
    with_body: bool,
    redirected: bool,
}

/// A request with its `secret()` handles replaced by values. It lives only while the request
/// is sent and is never shown: its `Debug` leaves the values out.
struct Filled {
    url: String,
    headers: Vec<(String, Value)>,
    query: Vec<(String, Value)>,
    body: Body,
    idempotency_key: String,
}

impl Filled {
    fn new<'a>(
        req: &Request,
        values: &'a [HandleValue],
        used: &mut Vec<&'a Grant>,
    ) -> Result<Self, HttpError> {
        let pairs = |list: &[(String, Value)],
                     used: &mut Vec<&'a Grant>|
         -> Result<Vec<(String, Value)>, HttpError> {
            list.iter()
                .map(|(k, v)| Ok((fill_text(k, values, used)?, fill_value(v, values, used)?)))
                .collect()
        };
        let body = match &req.body {
            Body::None => Body::None,
            Body::Json(v) => Body::Json(fill_value(v, values, used)?),
            Body::Form(list) => Body::Form(pairs(list, used)?),
            Body::Raw(v) => Body::Raw(fill_value(v, values, used)?),
        };
        Ok(Filled {
            url: fill_text(&req.url, values, used)?,
            headers: pairs(&req.headers, used)?,
            query: pairs(&req.query, used)?,
            body,
            idempotency_key: req.idempotency_key.clone(),
        })
    }

    fn url(&self) -> Result<url::Url, HttpError> {
        url::Url::parse(&self.url)
            .map_err(|e| HttpError::Input(format!("`{}` is not a valid URL: {e}", display_url(&self.url))))
    }
}

fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), HttpError> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| HttpError::Input(format!("`{name}` is not a valid header name")))?;
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| HttpError::Input(format!("the value of header `{name}` is not valid in a header")))?;
    if matches!(header.as_str(), "authorization" | "proxy-authorization" | "cookie") {
        value.set_sensitive(true);
    }
    headers.insert(header, value);
    Ok(())
}

/// The next URL when `resp` is a redirect with a usable `Location`.
fn redirect_target(resp: &reqwest::Response, from: &url::Url) -> Option<Result<url::Url, HttpError>> {
    if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = resp.headers().get(reqwest::header::LOCATION)?;
    Some(location.to_str().ok().and_then(|l| from.join(l).ok()).ok_or_else(|| {
        HttpError::Network(format!("{} redirected to an invalid location", display_url(from.as_str())))
    }))
}

/// The size of a request as sent: request line, headers and body.
pub(crate) fn request_size(req: &reqwest::Request) -> u64 {
    let line = req.method().as_str().len() + req.url().as_str().len() + 12;
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    let body = req.body().and_then(reqwest::Body::as_bytes).map_or(0, <[u8]>::len);
    (line + headers + body) as u64
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
    if let Some(denied) = denied_in(e) {
        return HttpError::Refused(denied.to_string());
    }
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
