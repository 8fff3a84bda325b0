//! Integration tests for the `http` step adapter: a real axum server on 127.0.0.1:0 per test,
//! driven by the real `HttpClient`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body as AxumBody, Bytes};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use serde_json::{Map, Value, json};
use steward_flow::StatusMatch;
use steward_steps::egress::EgressPolicy;
use steward_steps::http::{Body, HttpClient, HttpError, MAX_RESPONSE_BYTES, Request, display_url};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on an ephemeral local port and returns its base URL (no trailing slash).
async fn spawn_server(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

fn request(method: &str, url: &str) -> Request {
    Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: vec![],
        query: vec![],
        body: Body::None,
        expect: vec![],
        idempotency_key: "key-1".to_owned(),
    }
}

/// A client that may reach the loopback servers these tests start.
fn client() -> HttpClient {
    let loopback = EgressPolicy::parse(["127.0.0.0/8"]).expect("a range");
    HttpClient::new(loopback).expect("build the client")
}

/// Echoes what the server received; repeated headers are joined with ", ".
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let mut seen = Map::new();
    for name in headers.keys() {
        let values: Vec<&str> =
            headers.get_all(name).iter().map(|v| v.to_str().expect("ASCII header")).collect();
        seen.insert(name.as_str().to_owned(), json!(values.join(", ")));
    }
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": seen,
        "body": String::from_utf8_lossy(&body),
    }))
}

fn echo_router() -> Router {
    Router::new().fallback(echo)
}

#[tokio::test]
async fn get_sends_query_pairs_and_headers_and_returns_status_headers_and_parsed_body() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("GET", &format!("{base}/items"));
    req.query =
        vec![("q".into(), json!("hello world&more")), ("n".into(), json!(5)), ("flag".into(), json!(true))];
    req.headers = vec![("X-Custom".into(), json!("abc")), ("X-Number".into(), json!(42))];

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    let keys: Vec<&str> = out.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["status", "headers", "body"]);
    assert_eq!(out["status"], 200);
    assert_eq!(out["headers"]["content-type"], "application/json");
    assert!(out["headers"]["content-length"].is_string(), "{out}");

    let got = &out["body"];
    assert_eq!(got["method"], "GET");
    assert_eq!(got["path"], "/items");
    assert_eq!(got["query"], "q=hello+world%26more&n=5&flag=true");
    assert_eq!(got["headers"]["x-custom"], "abc");
    assert_eq!(got["headers"]["x-number"], "42");
    let agent = got["headers"]["user-agent"].as_str().expect("user-agent sent");
    assert!(agent.starts_with("steward/"), "{agent}");
    assert_eq!(got["body"], "");
}

#[tokio::test]
async fn query_pairs_are_appended_to_a_query_already_in_the_url() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("GET", &format!("{base}/items?a=1"));
    req.query = vec![("b".into(), json!("2")), ("empty".into(), Value::Null)];

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["body"]["query"], "a=1&b=2&empty=");
}

#[tokio::test]
async fn json_body_is_sent_as_application_json() {
    let base = spawn_server(echo_router()).await;
    let payload = json!({"name": "Ada", "tags": ["a", "b"], "n": 1.5, "nothing": null});
    let mut req = request("POST", &format!("{base}/json"));
    req.body = Body::Json(payload.clone());

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    let got = &out["body"];
    assert_eq!(got["method"], "POST");
    assert_eq!(got["headers"]["content-type"], "application/json");
    let sent: Value = serde_json::from_str(got["body"].as_str().expect("body text")).expect("body is JSON");
    assert_eq!(sent, payload);
}

#[tokio::test]
async fn form_body_is_sent_urlencoded() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("POST", &format!("{base}/form"));
    req.body = Body::Form(vec![
        ("name".into(), json!("Ada Lovelace")),
        ("n".into(), json!(3)),
        ("ok".into(), json!(true)),
        ("sym".into(), json!("a&b=c")),
    ]);

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    let got = &out["body"];
    assert_eq!(got["headers"]["content-type"], "application/x-www-form-urlencoded");
    let raw = got["body"].as_str().expect("body text");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    let expected = [("name", "Ada Lovelace"), ("n", "3"), ("ok", "true"), ("sym", "a&b=c")];
    assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
}

#[tokio::test]
async fn raw_body_is_text_plain_by_default() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("PUT", &format!("{base}/raw"));
    req.body = Body::Raw(json!("hello, raw"));

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["body"]["method"], "PUT");
    assert_eq!(out["body"]["headers"]["content-type"], "text/plain; charset=utf-8");
    assert_eq!(out["body"]["body"], "hello, raw");
}

#[tokio::test]
async fn raw_body_keeps_a_user_supplied_content_type() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("POST", &format!("{base}/raw"));
    req.headers = vec![("Content-Type".into(), json!("application/xml"))];
    req.body = Body::Raw(json!("<a>1</a>"));

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["body"]["headers"]["content-type"], "application/xml");
    assert_eq!(out["body"]["body"], "<a>1</a>");
}

#[tokio::test]
async fn raw_non_string_body_is_sent_as_its_json_text() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("POST", &format!("{base}/raw"));
    req.body = Body::Raw(json!({"a": 1}));

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["body"]["headers"]["content-type"], "text/plain; charset=utf-8");
    assert_eq!(out["body"]["body"], r#"{"a":1}"#);
}

#[tokio::test]
async fn response_bodies_are_parsed_only_when_they_are_json() {
    let router = Router::new()
        .route("/text", get(|| async { ([(CONTENT_TYPE, "text/plain")], r#"{"not":"parsed"}"#) }))
        .route("/empty", get(|| async {}))
        .route("/empty-json", get(|| async { ([(CONTENT_TYPE, "application/json")], "") }))
        .route("/bad-json", get(|| async { ([(CONTENT_TYPE, "application/json")], "{not json") }))
        .route(
            "/problem",
            get(|| async { ([(CONTENT_TYPE, "application/problem+json")], r#"{"title":"x"}"#) }),
        );
    let base = spawn_server(router).await;
    let client = client();
    let body = async |path: &str| {
        let out =
            client.send(&request("GET", &format!("{base}{path}")), TIMEOUT).await.expect("request succeeds");
        out["body"].clone()
    };

    assert_eq!(body("/text").await, json!(r#"{"not":"parsed"}"#));
    assert_eq!(body("/empty").await, Value::Null);
    assert_eq!(body("/empty-json").await, Value::Null);
    assert_eq!(body("/bad-json").await, json!("{not json"));
    assert_eq!(body("/problem").await, json!({"title": "x"}));
}

#[tokio::test]
async fn repeated_response_headers_are_joined() {
    let router = Router::new().route(
        "/cookies",
        get(|| async {
            let mut headers = HeaderMap::new();
            headers.append("set-cookie", "a=1".parse().expect("header value"));
            headers.append("set-cookie", "b=2".parse().expect("header value"));
            headers
        }),
    );
    let base = spawn_server(router).await;

    let out =
        client().send(&request("GET", &format!("{base}/cookies")), TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["headers"]["set-cookie"], "a=1, b=2");
}

#[tokio::test]
async fn idempotency_key_is_sent() {
    let base = spawn_server(echo_router()).await;
    let mut req = request("POST", &format!("{base}/pay"));
    req.idempotency_key = "run-7/step-charge".into();

    let out = client().send(&req, TIMEOUT).await.expect("request succeeds");

    assert_eq!(out["body"]["headers"]["idempotency-key"], "run-7/step-charge");
}

#[tokio::test]
async fn user_supplied_idempotency_key_wins() {
    let base = spawn_server(echo_router()).await;
    let client = client();
    for name in ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"] {
        let mut req = request("POST", &format!("{base}/pay"));
        req.idempotency_key = "generated".into();
        req.headers = vec![(name.into(), json!("mine"))];

        let out = client.send(&req, TIMEOUT).await.expect("request succeeds");

        // Exactly one value: the generated key is not sent alongside the user's.
        assert_eq!(out["body"]["headers"]["idempotency-key"], "mine", "header spelled {name}");
    }
}

#[tokio::test]
async fn non_2xx_is_a_status_error_without_the_query_string() {
    let router = Router::new().route(
        "/down",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "down"}))) }),
    );
    let base = spawn_server(router).await;
    let mut req = request("GET", &format!("{base}/down?token=secret"));
    req.query = vec![("api_key".into(), json!("hunter2"))];

    let err = client().send(&req, TIMEOUT).await.expect_err("503 is a failure");

    let HttpError::Status { status, message, output } = err else {
        panic!("expected a status error, got {err:?}")
    };
    assert_eq!(status, 503);
    assert_eq!(message, format!("GET {base}/down returned 503 Service Unavailable"));
    assert!(
        !message.contains("secret") && !message.contains("hunter2") && !message.contains('?'),
        "{message}"
    );
    assert_eq!(output["status"], 503);
    assert_eq!(output["body"], json!({"error": "down"}));
    assert_eq!(output["headers"]["content-type"], "application/json");
}

#[tokio::test]
async fn status_without_a_canonical_reason_has_no_trailing_space() {
    let router =
        Router::new().route("/odd", any(|| async { StatusCode::from_u16(599).expect("valid status") }));
    let base = spawn_server(router).await;

    let err = client()
        .send(&request("DELETE", &format!("{base}/odd")), TIMEOUT)
        .await
        .expect_err("599 is a failure");

    assert_eq!(err.to_string(), format!("DELETE {base}/odd returned 599"));
}

#[tokio::test]
async fn expect_overrides_the_default_2xx_rule() {
    let router = Router::new()
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "nope") }))
        .route("/ok", get(|| async { "fine" }));
    let base = spawn_server(router).await;
    let client = client();
    let with_expect = |path: &str, expect: Vec<StatusMatch>| {
        let mut req = request("GET", &format!("{base}{path}"));
        req.expect = expect;
        req
    };

    let out = client
        .send(&with_expect("/missing", vec![StatusMatch::Code(404)]), TIMEOUT)
        .await
        .expect("404 is expected");
    assert_eq!(out["status"], 404);
    assert_eq!(out["body"], "nope");

    let out = client
        .send(&with_expect("/missing", vec![StatusMatch::Class("4xx".into())]), TIMEOUT)
        .await
        .expect("4xx is expected");
    assert_eq!(out["status"], 404);

    let err = client
        .send(
            &with_expect("/missing", vec![StatusMatch::Class("5xx".into()), StatusMatch::Code(410)]),
            TIMEOUT,
        )
        .await
        .expect_err("404 is neither 5xx nor 410");
    assert!(matches!(err, HttpError::Status { status: 404, .. }), "{err:?}");

    // With `expect` set, a plain 200 is no longer automatically a success.
    let err = client
        .send(&with_expect("/ok", vec![StatusMatch::Code(201)]), TIMEOUT)
        .await
        .expect_err("200 is not 201");
    assert!(matches!(err, HttpError::Status { status: 200, .. }), "{err:?}");
}

#[tokio::test]
async fn slow_response_times_out_quickly() {
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        }),
    );
    let base = spawn_server(router).await;
    let req = request("GET", &format!("{base}/slow?token=secret"));

    let started = Instant::now();
    let err = client().send(&req, Duration::from_millis(200)).await.expect_err("times out");
    let elapsed = started.elapsed();

    let HttpError::Timeout(message) = &err else { panic!("expected a timeout, got {err:?}") };
    assert_eq!(message, &format!("GET {base}/slow timed out after 200ms"));
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener.local_addr().expect("local address").port()
    };
    let req = request("GET", &format!("http://127.0.0.1:{port}/x?token=secret"));

    let err = client().send(&req, TIMEOUT).await.expect_err("nothing listens");

    let HttpError::Network(message) = &err else { panic!("expected a network error, got {err:?}") };
    assert_eq!(message, &format!("GET http://127.0.0.1:{port}/x: could not connect"));
}

#[tokio::test]
async fn invalid_inputs_are_input_errors() {
    let client = client();
    let input_error = async |req: Request| match client.send(&req, TIMEOUT).await {
        Err(HttpError::Input(message)) => message,
        other => panic!("expected an input error, got {other:?}"),
    };

    let message = input_error(request("GET", "not a url")).await;
    assert!(message.contains("`not a url` is not a valid URL"), "{message}");

    let message = input_error(request("GET", "/relative/path")).await;
    assert!(message.contains("is not a valid URL"), "{message}");

    let message = input_error(request("GET", "ftp://example.com/file.txt")).await;
    assert_eq!(message, "only http and https URLs can be requested, not `ftp:`");

    let message = input_error(request("GE T", "http://127.0.0.1:1/")).await;
    assert_eq!(message, "`GE T` is not an HTTP method");

    let mut req = request("GET", "http://127.0.0.1:1/");
    req.headers = vec![("bad header".into(), json!("x"))];
    let message = input_error(req).await;
    assert_eq!(message, "`bad header` is not a valid header name");

    let mut req = request("GET", "http://127.0.0.1:1/");
    req.headers = vec![("X-Injected".into(), json!("a\r\nEvil: 1"))];
    let message = input_error(req).await;
    assert_eq!(message, "the value of header `X-Injected` is not valid in a header");
}

#[tokio::test]
async fn invalid_url_message_hides_query_strings() {
    let client = client();

    let err = client
        .send(&request("GET", "http://exa mple.com/?token=secret"), TIMEOUT)
        .await
        .expect_err("invalid URL");

    let HttpError::Input(message) = &err else { panic!("expected an input error, got {err:?}") };
    assert!(message.contains("is not a valid URL"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn invalid_url_message_hides_credentials() {
    let client = client();

    let err = client
        .send(&request("GET", "http://user:hunter2@exa mple.com/path"), TIMEOUT)
        .await
        .expect_err("invalid URL");

    let HttpError::Input(message) = &err else { panic!("expected an input error, got {err:?}") };
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn redirects_are_followed() {
    let router = Router::new()
        .route("/old", get(|| async { (StatusCode::FOUND, [(LOCATION, "/new")]) }))
        .route("/new", get(|| async { axum::Json(json!({"at": "new"})) }));
    let base = spawn_server(router).await;

    let out =
        client().send(&request("GET", &format!("{base}/old")), TIMEOUT).await.expect("redirect is followed");

    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"at": "new"}));
}

#[tokio::test]
async fn redirect_loops_are_network_errors() {
    let router = Router::new().route("/loop", get(|| async { (StatusCode::FOUND, [(LOCATION, "/loop")]) }));
    let base = spawn_server(router).await;

    let err = client().send(&request("GET", &format!("{base}/loop")), TIMEOUT).await.expect_err("loop fails");

    assert_eq!(err, HttpError::Network(format!("GET {base}/loop: followed too many redirects")));
}

/// A chunked body (no Content-Length) of `len` bytes, in 64 KiB pieces.
fn streamed(len: usize) -> impl IntoResponse {
    const PIECE: usize = 64 * 1024;
    let chunks = (0..len.div_ceil(PIECE)).map(move |i| {
        let size = PIECE.min(len - i * PIECE);
        Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; size]))
    });
    ([(CONTENT_TYPE, "text/plain")], AxumBody::from_stream(futures::stream::iter(chunks)))
}

#[tokio::test]
async fn oversized_streamed_response_is_rejected() {
    let len = MAX_RESPONSE_BYTES + MAX_RESPONSE_BYTES / 20; // ~10.5 MiB
    let router = Router::new()
        .route("/big", get(move || async move { streamed(len) }))
        .route("/exact", get(|| async { streamed(MAX_RESPONSE_BYTES) }));
    let base = spawn_server(router).await;
    let client = client();

    let started = Instant::now();
    let err = client.send(&request("GET", &format!("{base}/big")), TIMEOUT).await.expect_err("too large");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let HttpError::Input(message) = &err else { panic!("expected an input error, got {err:?}") };
    assert_eq!(message, &format!("GET {base}/big: the response is larger than {MAX_RESPONSE_BYTES} bytes"));

    // Exactly at the limit is still accepted.
    let out = client.send(&request("GET", &format!("{base}/exact")), TIMEOUT).await.expect("at the limit");
    assert!(out["headers"].get("content-length").is_none(), "the body must be chunked: {}", out["headers"]);
    assert_eq!(out["body"].as_str().expect("text body").len(), MAX_RESPONSE_BYTES);
}

#[tokio::test]
async fn oversized_response_with_content_length_is_rejected() {
    let router = Router::new().route("/big", get(|| async { vec![0u8; MAX_RESPONSE_BYTES + 1] }));
    let base = spawn_server(router).await;

    let err = client().send(&request("GET", &format!("{base}/big")), TIMEOUT).await.expect_err("too large");

    let HttpError::Input(message) = &err else { panic!("expected an input error, got {err:?}") };
    assert!(message.contains("the response is larger than"), "{message}");
}

#[test]
fn display_url_strips_query_strings_and_userinfo() {
    assert_eq!(
        display_url("https://user:pass@example.com:8443/a/b?token=secret"),
        "https://example.com:8443/a/b"
    );
    assert_eq!(display_url("https://user@example.com/x"), "https://example.com/x");
    assert_eq!(display_url("http://example.com/path?a=1&b=2"), "http://example.com/path");
    assert_eq!(display_url("http://example.com"), "http://example.com/");
    assert_eq!(display_url("http://127.0.0.1:8080/p"), "http://127.0.0.1:8080/p");
}

#[test]
fn display_url_of_unparseable_text_drops_the_query_and_is_bounded() {
    assert_eq!(display_url("not a url?token=secret"), "not a url");
    let long = "x".repeat(500);
    assert_eq!(display_url(&long).len(), 200);
}

#[test]
fn display_url_of_unparseable_text_drops_userinfo() {
    let shown = display_url("http://user:hunter2@exa mple.com/path?token=secret");
    assert!(!shown.contains("hunter2"), "{shown}");
}
