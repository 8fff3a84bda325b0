//! Credentials and secret handles on real requests: attached only for the connection's hosts,
//! checked again on every redirect, recorded in what was sent, and OAuth2 client credentials
//! against a loopback token endpoint that speaks the real protocol.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Form;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};
use steward_flow::secret::handle;
use steward_steps::credential::{Apply, Credential, Grant, HandleValue};
use steward_steps::egress::EgressPolicy;
use steward_steps::http::{Body, HttpClient, HttpError, Request, Secrets};
use steward_steps::oauth::{ClientAuth, TokenRequest};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(router: Router) -> (String, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    (format!("http://127.0.0.1:{port}"), port)
}

fn client(range: &str) -> HttpClient {
    HttpClient::new(EgressPolicy::parse([range]).expect("range")).expect("client")
}

fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.into(),
        url: url.into(),
        headers: vec![],
        query: vec![],
        body: Body::None,
        expect: vec![],
        idempotency_key: "k".into(),
    }
}

fn grant(name: &str, host: &str) -> Grant {
    Grant { connection: name.into(), hosts: vec![host.into()] }
}

fn bearer(name: &str, host: &str, token: &str) -> Secrets {
    Secrets {
        credential: Some(Credential {
            grant: grant(name, host),
            apply: Apply::Header {
                name: "authorization".into(),
                value: Zeroizing::new(format!("Bearer {token}")),
            },
        }),
        ..Secrets::default()
    }
}

/// Echoes headers, query and body, and counts requests.
fn echo(hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(any(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        hits.fetch_add(1, Ordering::SeqCst);
        async move {
            let seen: Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
                .collect();
            axum::Json(json!({"query": uri.query(), "headers": seen, "body": String::from_utf8_lossy(&body)}))
        }
    }))
}

#[tokio::test]
async fn a_bearer_credential_goes_to_its_host_and_the_exchange_records_it() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, _) = serve(echo(hits.clone())).await;
    let secrets = bearer("api", "127.0.0.1", "tok-123");
    let ex = client("127.0.0.0/8").exchange(&request("POST", &format!("{base}/x")), &secrets, TIMEOUT).await;
    let out = ex.result.expect("sent");
    assert_eq!(out["body"]["headers"]["authorization"], "Bearer tok-123");
    assert_eq!(ex.sent.len(), 1);
    assert_eq!(ex.sent[0].host, "127.0.0.1");
    assert_eq!(ex.sent[0].connections, ["api"]);
    assert!(ex.sent[0].bytes > 20, "{:?}", ex.sent);
}

#[tokio::test]
async fn a_credential_for_another_host_is_refused_before_anything_is_sent() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, _) = serve(echo(hits.clone())).await;
    let secrets = bearer("github", "api.github.com", "tok");
    let ex = client("127.0.0.0/8").exchange(&request("GET", &format!("{base}/x")), &secrets, TIMEOUT).await;
    let err = ex.result.expect_err("refused");
    assert_eq!(
        err,
        HttpError::Refused(
            "connection `github` may only be sent to api.github.com, but the request goes to `127.0.0.1`"
                .into()
        )
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the server");
    assert!(ex.sent.is_empty());
}

#[tokio::test]
async fn a_redirect_to_a_host_outside_the_connection_is_refused() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (_, other_port) = serve(echo(hits.clone())).await;
    let away = format!("http://localhost:{other_port}/stolen");
    let (base, _) = serve(Router::new().route(
        "/go",
        get(move || {
            let away = away.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, away)]) }
        }),
    ))
    .await;
    let secrets = bearer("api", "127.0.0.1", "tok");
    let ex = client("127.0.0.0/8").exchange(&request("GET", &format!("{base}/go")), &secrets, TIMEOUT).await;
    let err = ex.result.expect_err("refused");
    assert!(err.to_string().contains("redirected to `localhost`"), "{err}");
    assert!(err.to_string().contains("connection `api`"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the credential never reached the other host");
    assert_eq!(ex.sent.len(), 1, "the first hop was sent");
}

#[tokio::test]
async fn a_redirect_to_a_guarded_address_is_refused() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (_, port) = serve(echo(hits.clone())).await;
    for target in [
        format!("http://127.0.0.2:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://2130706434:{port}/"),
        format!("http://[::ffff:127.0.0.2]:{port}/"),
    ] {
        let (base, _) = serve(Router::new().route(
            "/go",
            get(move || {
                let target = target.clone();
                async move { (StatusCode::FOUND, [(LOCATION, target)]) }
            }),
        ))
        .await;
        let only_first = client("127.0.0.1/32");
        let err =
            only_first.send(&request("GET", &format!("{base}/go")), TIMEOUT).await.expect_err("refused");
        assert!(
            matches!(&err, HttpError::Refused(m) if m.contains("outbound requests to it are refused")),
            "{err}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn api_keys_go_in_a_query_parameter_and_headers_connections_add_each_header() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, _) = serve(echo(hits)).await;
    let http = client("127.0.0.0/8");
    let query = Secrets {
        credential: Some(Credential {
            grant: grant("maps", "127.0.0.1"),
            apply: Apply::Query { name: "key".into(), value: Zeroizing::new("k&v=1".into()) },
        }),
        ..Secrets::default()
    };
    let mut req = request("GET", &format!("{base}/q?a=1"));
    req.query = vec![("b".into(), json!(2))];
    let out = http.exchange(&req, &query, TIMEOUT).await.result.expect("sent");
    assert_eq!(out["body"]["query"], "a=1&b=2&key=k%26v%3D1");

    let headers = Secrets {
        credential: Some(Credential {
            grant: grant("h", "127.0.0.1"),
            apply: Apply::Headers(vec![
                ("x-one".into(), Zeroizing::new("1".into())),
                ("x-two".into(), Zeroizing::new("2".into())),
            ]),
        }),
        ..Secrets::default()
    };
    let out = http.exchange(&request("GET", &base), &headers, TIMEOUT).await.result.expect("sent");
    assert_eq!(
        (&out["body"]["headers"]["x-one"], &out["body"]["headers"]["x-two"]),
        (&json!("1"), &json!("2"))
    );
}

#[tokio::test]
async fn handles_are_filled_only_where_their_connection_may_go() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, _) = serve(echo(hits.clone())).await;
    let http = client("127.0.0.0/8");
    let value = |host: &str| Secrets {
        handles: vec![HandleValue { grant: grant("svc", host), value: Zeroizing::new("s3cr3t".into()) }],
        ..Secrets::default()
    };
    let mut req = request("POST", &format!("{base}/h"));
    req.headers = vec![("x-key".into(), json!(format!("Key {}", handle("svc"))))];
    req.body = Body::Json(json!({"nested": [handle("svc")]}));
    let out = http.exchange(&req, &value("127.0.0.1"), TIMEOUT).await.result.expect("sent");
    assert_eq!(out["body"]["headers"]["x-key"], "Key s3cr3t");
    assert_eq!(out["body"]["body"], r#"{"nested":["s3cr3t"]}"#);

    let before = hits.load(Ordering::SeqCst);
    let err = http.exchange(&req, &value("svc.example.com"), TIMEOUT).await.result.expect_err("refused");
    assert!(err.to_string().starts_with("connection `svc` may only be sent to svc.example.com"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), before);

    // Without a handle in the request, the connection's hosts do not matter.
    let plain = http.exchange(&request("GET", &base), &value("svc.example.com"), TIMEOUT).await;
    assert!(plain.result.is_ok());
}

#[tokio::test]
async fn redirects_keep_or_drop_the_body_as_browsers_do() {
    let hits = Arc::new(AtomicUsize::new(0));
    let router = echo(hits)
        .route("/see-other", post(|| async { (StatusCode::SEE_OTHER, [(LOCATION, "/landed")]) }))
        .route("/temporary", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, "/landed")]) }));
    let (base, _) = serve(router).await;
    let http = client("127.0.0.0/8");
    let mut req = request("POST", &format!("{base}/see-other"));
    req.body = Body::Raw(json!("payload"));
    let out = http.send(&req, TIMEOUT).await.expect("followed");
    assert_eq!(out["body"]["body"], "", "303 continues as a GET without body");
    req.url = format!("{base}/temporary");
    let out = http.send(&req, TIMEOUT).await.expect("followed");
    assert_eq!(out["body"]["body"], "payload", "307 repeats the request with its body");
}

#[tokio::test]
async fn the_egress_allowlist_of_a_workspace_narrows_where_requests_go() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (base, _) = serve(echo(hits.clone())).await;
    let secrets = Secrets { allowed_hosts: Some(vec!["*.example.com".into()]), ..Secrets::default() };
    let err = client("127.0.0.0/8").exchange(&request("GET", &base), &secrets, TIMEOUT).await.result;
    assert!(
        matches!(&err, Err(HttpError::Refused(m)) if m.contains("not in this workspace's egress allowlist")),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: String,
    scope: Option<String>,
}

/// A token endpoint that accepts `client:secret` over HTTP Basic.
fn token_endpoint() -> Router {
    Router::new().route(
        "/token",
        post(|headers: HeaderMap, Form(form): Form<TokenForm>| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            // base64("client:s%3Acret") — the secret `s:cret` is form-encoded first.
            if auth != "Basic Y2xpZW50OnMlM0FjcmV0" || form.grant_type != "client_credentials" {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})));
            }
            let scope = form.scope.unwrap_or_default();
            (
                StatusCode::OK,
                axum::Json(
                    json!({"access_token": format!("at-{scope}"), "token_type": "Bearer", "expires_in": 60}),
                ),
            )
        }),
    )
}

#[tokio::test]
async fn client_credentials_trade_a_secret_for_a_token_and_name_the_connection_when_refused() {
    let (base, _) = serve(token_endpoint()).await;
    let http = client("127.0.0.0/8");
    let mut req = TokenRequest {
        connection: "crm".into(),
        token_url: format!("{base}/token"),
        client_id: "client".into(),
        client_secret: Zeroizing::new("s:cret".into()),
        scopes: vec!["read".into(), "write".into()],
        auth: ClientAuth::Basic,
    };
    let mut sent = Vec::new();
    let token = http.client_credentials(&req, TIMEOUT, &mut sent).await.expect("token");
    assert_eq!(token.access_token.as_str(), "at-read write");
    assert_eq!(sent.len(), 1, "the token request is one to record");
    assert_eq!((sent[0].host.as_str(), &sent[0].connections), ("127.0.0.1", &vec!["crm".to_owned()]));
    assert!(sent[0].bytes > 40, "{:?}", sent[0]);
    assert_eq!(token.expires_in, Some(Duration::from_secs(60)));
    assert!(!format!("{token:?} {req:?}").contains("s:cret"));

    req.client_secret = Zeroizing::new("wrong".into());
    let err = http.client_credentials(&req, TIMEOUT, &mut sent).await.expect_err("refused");
    assert_eq!(sent.len(), 2, "a refused request was sent all the same");
    assert_eq!(
        err.to_string(),
        format!("connection `crm`: the token endpoint {base}/token answered 401 (invalid_client)")
    );
}
