//! Rate limits: per API token and per client address on the API, per webhook on deliveries,
//! with 429 and Retry-After; trusted proxies naming the client; refusals counted in metrics.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use steward_server::Config;
use steward_server::rate_limit::Rate;
use support::{Db, HELLO_FLOW, TestApp, WS, unlimited};

fn limited(address: &str, token: &str, webhook: &str) -> Config {
    Config {
        rate_limit_address: address.parse().unwrap(),
        rate_limit_token: token.parse().unwrap(),
        rate_limit_webhook: webhook.parse().unwrap(),
        ..unlimited()
    }
}

/// A GET of the workspace's flows as if sent from `peer`, with optional headers.
fn from(peer: &str, token: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::get(format!("/api/v1/workspaces/{WS}/flows"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut req = r.body(Body::empty()).unwrap();
    let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

async fn metrics(app: &TestApp) -> String {
    let (_, _, body) = app.raw(Request::get("/metrics").body(Body::empty()).unwrap()).await;
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_do_not() {
    let app = TestApp::with_config(Db::Sqlite, limited("off", "3/min", "off")).await;
    let owner = app.workspace(WS).await;
    let other = app.member(WS, steward_auth::Role::Viewer).await;
    let path = format!("/api/v1/workspaces/{WS}/flows");
    for _ in 0..3 {
        assert_eq!(app.call(Method::GET, &path, Some(&owner.token), None).await.0, StatusCode::OK);
    }
    let (status, headers, body) = app
        .raw(
            Request::get(&path)
                .header(header::AUTHORIZATION, format!("Bearer {}", owner.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].as_str().unwrap().contains("API token"), "{body}");
    let wait: u64 = headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "one request per 20 s refills: {wait}");
    assert_eq!(app.call(Method::GET, &path, Some(&other.token), None).await.0, StatusCode::OK);
    assert!(metrics(&app).await.contains(r#"steward_rate_limited_total{scope="token"} 1"#));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_rate_is_refused_before_authentication() {
    let app = TestApp::with_config(Db::Sqlite, limited("2/min", "off", "off")).await;
    let owner = app.workspace(WS).await;
    for _ in 0..2 {
        assert_eq!(app.send(from("192.0.2.1", &owner.token, &[])).await.0, StatusCode::OK);
    }
    let (status, body) = app.send(from("192.0.2.1", "not-a-token", &[])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("address"), "{body}");
    assert_eq!(app.send(from("192.0.2.2", &owner.token, &[])).await.0, StatusCode::OK, "another address");
    // A client cannot pick another address with X-Forwarded-For when no proxy is trusted.
    let spoofed = from("192.0.2.1", &owner.token, &[("x-forwarded-for", "198.51.100.7")]);
    assert_eq!(app.send(spoofed).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Health checks are not API requests.
    let mut health = Request::get("/healthz").body(Body::empty()).unwrap();
    health.extensions_mut().insert(ConnectInfo("192.0.2.1:1".parse::<SocketAddr>().unwrap()));
    assert_eq!(app.send(health).await.0, StatusCode::OK);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate() {
    let config =
        Config { trusted_proxies: vec!["127.0.0.1".parse().unwrap()], ..limited("1/min", "off", "off") };
    let app = TestApp::with_config(Db::Sqlite, config).await;
    let owner = app.workspace(WS).await;
    let via_proxy = |client: &str| from("127.0.0.1", &owner.token, &[("x-forwarded-for", client)]);
    assert_eq!(app.send(via_proxy("203.0.113.1")).await.0, StatusCode::OK);
    assert_eq!(app.send(via_proxy("203.0.113.2")).await.0, StatusCode::OK);
    assert_eq!(app.send(via_proxy("203.0.113.1")).await.0, StatusCode::TOO_MANY_REQUESTS);
    // The audit log records the forwarded address as the source.
    let path = format!("/api/v1/workspaces/{WS}/flows");
    let mut apply = Request::post(&path)
        .header(header::AUTHORIZATION, format!("Bearer {}", owner.token))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "203.0.113.3")
        .body(Body::from(json!({ "source": HELLO_FLOW }).to_string()))
        .unwrap();
    apply.extensions_mut().insert(ConnectInfo("127.0.0.1:5000".parse::<SocketAddr>().unwrap()));
    assert_eq!(app.send(apply).await.0, StatusCode::CREATED);
    let entries = app.store.audit_chain(0, 100).await.unwrap();
    let applied = entries.iter().find(|e| e.action == "flow.applied").unwrap();
    assert_eq!(applied.source.as_deref(), Some("203.0.113.3"));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_over_its_rate_is_refused_and_starts_no_run() {
    let app = TestApp::with_config(Db::Sqlite, limited("off", "off", "2/min")).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, HELLO_FLOW).await;
    let path = format!("/api/v1/workspaces/{WS}/flows/hello/webhooks");
    let (_, created) = app.call(Method::POST, &path, Some(&owner.token), Some(json!({}))).await;
    let url = created["url"].as_str().unwrap();
    let hook = &url[url.find("/hooks/").unwrap()..];
    let deliver = || Request::post(hook).body(Body::empty()).unwrap();
    for _ in 0..2 {
        assert_eq!(app.send(deliver()).await.0, StatusCode::ACCEPTED);
    }
    let (status, headers, _) = app.raw(deliver()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let (_, runs) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs"), Some(&owner.token), None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "the refused delivery started nothing");
    assert!(metrics(&app).await.contains(r#"steward_rate_limited_total{scope="webhook"} 1"#));
    assert_eq!(Rate::per_second(0), Rate::Off);
    app.finish().await;
}
