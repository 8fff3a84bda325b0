//! The client's address, and the per-address rate limit on the API.
//!
//! The address is the TCP peer, unless the peer is one of the configured trusted proxies: then
//! it is the nearest address in `X-Forwarded-For` that is not a trusted proxy. A client cannot
//! choose its address by sending the header itself to a server with no trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// The client address of a request, set by [`resolve`] for every request that came over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Sets [`ClientAddr`] and refuses API requests over the address's rate with 429.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = client_address(peer, req.headers(), &state.config().trusted_proxies);
        req.extensions_mut().insert(ClientAddr(client));
        if req.uri().path().starts_with("/api/")
            && let Err(refused) = state.limits().address(client)
        {
            tracing::debug!(client = %client, path = %req.uri().path(), "rate limited by address");
            return refused.into_response();
        }
    }
    next.run(req).await
}

/// The peer, or for a trusted proxy the last forwarded address that is not itself trusted.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let trusted_ip = |ip: &IpAddr| trusted.iter().any(|t| same_ip(t, ip));
    if !trusted_ip(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|ip| !trusted_ip(ip)).or(forwarded.first()).copied().unwrap_or(peer)
}

/// Equal addresses, counting an IPv4-mapped IPv6 address as its IPv4 address.
fn same_ip(a: &IpAddr, b: &IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn only_trusted_proxies_may_name_the_client() {
        let proxy = ip("10.0.0.2");
        let h = forwarded("203.0.113.9");
        assert_eq!(client_address(ip("198.51.100.4"), &h, &[proxy]), ip("198.51.100.4"), "not a proxy");
        assert_eq!(client_address(proxy, &h, &[]), proxy, "no trusted proxies");
        assert_eq!(client_address(proxy, &h, &[proxy]), ip("203.0.113.9"));
        assert_eq!(client_address(ip("::ffff:10.0.0.2"), &h, &[proxy]), ip("203.0.113.9"), "mapped IPv6");
    }

    #[test]
    fn a_spoofed_first_entry_does_not_win() {
        let (edge, inner) = (ip("10.0.0.1"), ip("10.0.0.2"));
        // The client sent "X-Forwarded-For: 1.2.3.4"; the edge proxy appended the real address.
        let h = forwarded("1.2.3.4, 203.0.113.9, 10.0.0.1");
        assert_eq!(client_address(inner, &h, &[edge, inner]), ip("203.0.113.9"));
        assert_eq!(client_address(inner, &HeaderMap::new(), &[inner]), inner, "no header");
        let all_trusted = forwarded("10.0.0.1");
        assert_eq!(client_address(inner, &all_trusted, &[edge, inner]), edge);
    }
}
