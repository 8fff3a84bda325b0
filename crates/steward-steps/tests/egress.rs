//! Integration tests for the egress guard: URL spellings of guarded addresses, and a real
//! `reqwest::Client` using `GuardedResolver` against a real server on 127.0.0.1 that counts the
//! connections it accepts.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::dns::Resolve;
use steward_steps::egress::{Category, EgressPolicy, GuardedResolver, denied_in};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::{Host, Url};

fn url(s: &str) -> Url {
    Url::parse(s).expect("a test URL")
}

fn policy(ranges: &[&str]) -> EgressPolicy {
    EgressPolicy::parse(ranges).expect("test ranges")
}

#[test]
fn whatwg_ipv4_spellings_are_normalised_by_url_and_refused() {
    for spelling in [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://127.0.1/",
        "http://0177.0.0.1./",
    ] {
        let parsed = url(spelling);
        assert_eq!(parsed.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{spelling} is 127.0.0.1");
        let denied = EgressPolicy::strict().check_url_host(&parsed).expect_err(spelling);
        assert_eq!(denied.category(), Category::Loopback, "{spelling}");
        assert_eq!(denied.host(), "127.0.0.1");
    }
    // 169.254.169.254 in hex, as one number.
    let denied =
        EgressPolicy::strict().check_url_host(&url("http://0xa9fea9fe/latest/")).expect_err("metadata");
    assert_eq!(denied.category(), Category::CloudMetadata);
}

#[test]
fn ipv6_literals_are_refused() {
    let cases = [
        ("http://[::1]:8080/", Category::Loopback),
        ("http://[::ffff:127.0.0.1]/", Category::Loopback),
        ("http://[::ffff:7f00:2]/", Category::Loopback),
        ("http://[fe80::1]/", Category::LinkLocal),
        ("http://[fd00:ec2::254]/", Category::CloudMetadata),
        ("http://[64:ff9b::a9fe:a9fe]/", Category::CloudMetadata),
        ("http://[2002:a00:1::]/", Category::Private),
        ("http://[::]/", Category::Unspecified),
    ];
    for (spelling, expected) in cases {
        let denied = EgressPolicy::strict().check_url_host(&url(spelling)).expect_err(spelling);
        assert_eq!(denied.category(), expected, "{spelling}");
    }
}

#[test]
fn localhost_names_are_refused_before_resolution_unless_allowed() {
    for spelling in ["http://localhost/", "http://LOCALHOST./", "https://admin.localhost:8443/x"] {
        let denied = EgressPolicy::strict().check_url_host(&url(spelling)).expect_err(spelling);
        assert_eq!(denied.category(), Category::Loopback, "{spelling}");
    }
    let denied = EgressPolicy::strict().check_url_host(&url("http://localhost/")).expect_err("localhost");
    assert_eq!(
        denied.to_string(),
        "`localhost` is a loopback name; outbound requests to it are refused \
         (an administrator can allow a range with --egress-allow)"
    );
    assert_eq!(policy(&["127.0.0.0/8"]).check_url_host(&url("http://localhost/")), Ok(()));
}

#[test]
fn public_and_domain_hosts_pass_the_url_check() {
    for spelling in [
        "https://example.com/",
        "http://localhost.example.com/",
        "http://93.184.216.34/",
        "http://[2606:2800:220:1::1]/",
        "http://[::ffff:93.184.216.34]/",
        "mailto:someone@example.com",
    ] {
        assert_eq!(EgressPolicy::strict().check_url_host(&url(spelling)), Ok(()), "{spelling}");
    }
    assert_eq!(policy(&["::1/128"]).check_url_host(&url("http://[::1]/")), Ok(()));
    assert_eq!(policy(&["127.0.0.0/8"]).check_url_host(&url("http://[::ffff:127.0.0.1]/")), Ok(()));
}

/// A bare HTTP/1.1 server on 127.0.0.1 that counts accepted connections and answers every
/// request with the response `respond(port)` builds.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn spawn(respond: fn(u16) -> String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let port = listener.local_addr().expect("local address").port();
        let response = respond(port);
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Server { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn ok_response(_port: u16) -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned()
}

/// A client with the guarded resolver (redirects are not followed: the http step follows them
/// itself and checks each hop).
fn guarded_client(policy: EgressPolicy) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = Arc::new(policy);
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&policy))))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the client")
}

#[tokio::test]
async fn the_resolver_refuses_localhost_and_nothing_connects() {
    let server = Server::spawn(ok_response).await;
    let err = guarded_client(EgressPolicy::strict())
        .get(format!("http://localhost:{}/", server.port))
        .send()
        .await
        .expect_err("localhost is refused");
    assert!(err.is_connect(), "a refusal surfaces as a connect error: {err:?}");
    let denied = denied_in(&err).expect("the refusal is in the source chain");
    assert_eq!(denied.host(), "localhost");
    assert_eq!(denied.category(), Category::Loopback);
    assert!(denied.ip().is_loopback());
    assert!(
        denied.to_string().starts_with("`localhost` resolves to "),
        "the message names the host and the address: {denied}"
    );
    assert_eq!(server.connections(), 0, "the server saw no connection");
}

#[tokio::test]
async fn an_allowed_range_lets_the_request_through() {
    let server = Server::spawn(ok_response).await;
    // localhost resolves to 127.0.0.1 and, on many machines, ::1 as well; a resolution with any
    // refused address fails whole, so allowing localhost takes both.
    let response = guarded_client(policy(&["127.0.0.0/8", "::1/128"]))
        .get(format!("http://localhost:{}/", server.port))
        .send()
        .await
        .expect("127.0.0.0/8 is allowed");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "ok");
    assert!(server.connections() >= 1);
}

/// IP-literal URLs never reach the resolver (hyper-util's connector parses them and connects
/// directly), which is why `check_url_host` must run before each request and redirect hop. If
/// this test starts failing, the resolver has started seeing literals: good news, update the docs.
#[tokio::test]
async fn ip_literal_urls_bypass_the_resolver() {
    let server = Server::spawn(ok_response).await;
    let response = guarded_client(EgressPolicy::strict())
        .get(format!("http://127.0.0.1:{}/", server.port))
        .send()
        .await
        .expect("the resolver is not asked about 127.0.0.1");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_redirect_to_a_guarded_literal_is_refused() {
    // 0.0.0.0 reaches the local host on Linux: a classic way around loopback-only blocklists.
    let server = Server::spawn(|port| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: http://0.0.0.0:{port}/next\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
        )
    })
    .await;
    // The http step follows redirects itself and checks every hop.
    let http = steward_steps::http::HttpClient::new(policy(&["127.0.0.1"])).expect("client");
    let req = steward_steps::http::Request {
        method: "GET".into(),
        url: format!("http://127.0.0.1:{}/", server.port),
        headers: vec![],
        query: vec![],
        body: steward_steps::http::Body::None,
        expect: vec![],
        idempotency_key: "k".into(),
    };
    let err = http.send(&req, Duration::from_secs(10)).await.expect_err("the hop to 0.0.0.0 is refused");
    let steward_steps::http::HttpError::Refused(message) = &err else { panic!("refused, not {err:?}") };
    assert!(message.starts_with("`0.0.0.0` is an unspecified address"), "{message}");
    assert_eq!(server.connections(), 1, "only the first hop connected");
}

#[tokio::test]
async fn the_resolver_fails_the_resolution_with_denied() {
    let resolver = GuardedResolver::new(EgressPolicy::strict());
    let name = "localhost".parse().expect("a DNS name");
    let Err(err) = resolver.resolve(name).await else { panic!("localhost resolved through the guard") };
    let denied = err.downcast_ref::<steward_steps::egress::Denied>().expect("the error is a Denied");
    assert_eq!((denied.host(), denied.category()), ("localhost", Category::Loopback));

    let allowing = GuardedResolver::new(policy(&["127.0.0.0/8", "::1/128"]));
    let addrs: Vec<_> =
        allowing.resolve("localhost".parse().expect("a DNS name")).await.expect("allowed").collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0), "{addrs:?}");
}
