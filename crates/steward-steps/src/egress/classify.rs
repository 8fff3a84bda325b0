//! Which addresses the guard refuses, and why: the classification tables.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused. Every variant is a kind of address that is not a public host on
/// the internet, or that a flow has no business reaching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// 127.0.0.0/8, `::1`, and the name `localhost`: this machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, IPv6 unique-local fc00::/7 and site-local fec0::/10, and the
    /// local-use NAT64 prefix 64:ff9b:1::/48.
    Private,
    /// 169.254/16 and fe80::/10.
    LinkLocal,
    /// The instance metadata services of the big clouds (credentials live there). Most are
    /// link-local too, but they get their own name because they are the prize of an SSRF attack.
    CloudMetadata,
    /// 0.0.0.0/8 ("this network"; 0.0.0.0 reaches the local host on Linux) and `::`.
    Unspecified,
    /// 100.64.0.0/10, the shared address space of carrier-grade NAT (RFC 6598); often used
    /// inside cloud and Kubernetes networks.
    SharedAddressSpace,
    /// 224.0.0.0/4 and ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 240.0.0.0/4, IPv6 discard-only 100::/64, and all IPv6 outside the global unicast 2000::/3
    /// that no other category covers.
    Reserved,
    /// 198.18.0.0/15 and 2001:2::/48 (RFC 2544 / RFC 5180 benchmarking).
    Benchmarking,
    /// 192.0.0.0/24 and the rest of 2001::/23 (IETF protocol assignments).
    ProtocolAssignment,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32 and 3fff::/20. Never used by real
    /// hosts, so refusing them costs nothing and keeps the rule "public unicast only".
    Documentation,
    /// 2001::/32. Teredo hides the IPv4 client address (XOR-obfuscated) and the server address in
    /// the IPv6 address; rather than decode it, it is refused outright.
    Teredo,
}

impl Category {
    /// A short name, e.g. `"cloud metadata"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Loopback => "loopback",
            Category::Private => "private",
            Category::LinkLocal => "link-local",
            Category::CloudMetadata => "cloud metadata",
            Category::Unspecified => "unspecified",
            Category::SharedAddressSpace => "shared (carrier-grade NAT)",
            Category::Multicast => "multicast",
            Category::Broadcast => "broadcast",
            Category::Reserved => "reserved",
            Category::Benchmarking => "benchmarking",
            Category::ProtocolAssignment => "IETF protocol assignment",
            Category::Documentation => "documentation",
            Category::Teredo => "Teredo tunnel",
        }
    }

    /// The name with its article, e.g. `"a cloud metadata"`, for messages.
    pub(super) fn with_article(self) -> String {
        let article = if self.as_str().starts_with(['a', 'e', 'i', 'o', 'u', 'I']) { "an" } else { "a" };
        format!("{article} {}", self.as_str())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv4 ranges that are refused, first match wins (so the specific metadata addresses come before
/// the link-local range that contains most of them).
const V4_REFUSED: &[(Ipv4Addr, u8, Category)] = &[
    // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle…
    (Ipv4Addr::new(169, 254, 169, 254), 32, Category::CloudMetadata),
    // AWS ECS task metadata and credentials.
    (Ipv4Addr::new(169, 254, 170, 2), 32, Category::CloudMetadata),
    // Alibaba Cloud.
    (Ipv4Addr::new(100, 100, 100, 200), 32, Category::CloudMetadata),
    // Oracle Cloud (legacy).
    (Ipv4Addr::new(192, 0, 0, 192), 32, Category::CloudMetadata),
    // Azure WireServer: a public-looking address that only the Azure host answers.
    (Ipv4Addr::new(168, 63, 129, 16), 32, Category::CloudMetadata),
    (Ipv4Addr::new(0, 0, 0, 0), 8, Category::Unspecified),
    (Ipv4Addr::new(127, 0, 0, 0), 8, Category::Loopback),
    (Ipv4Addr::new(10, 0, 0, 0), 8, Category::Private),
    (Ipv4Addr::new(172, 16, 0, 0), 12, Category::Private),
    (Ipv4Addr::new(192, 168, 0, 0), 16, Category::Private),
    (Ipv4Addr::new(169, 254, 0, 0), 16, Category::LinkLocal),
    (Ipv4Addr::new(100, 64, 0, 0), 10, Category::SharedAddressSpace),
    (Ipv4Addr::new(192, 0, 0, 0), 24, Category::ProtocolAssignment),
    (Ipv4Addr::new(192, 0, 2, 0), 24, Category::Documentation),
    (Ipv4Addr::new(198, 51, 100, 0), 24, Category::Documentation),
    (Ipv4Addr::new(203, 0, 113, 0), 24, Category::Documentation),
    (Ipv4Addr::new(198, 18, 0, 0), 15, Category::Benchmarking),
    (Ipv4Addr::new(224, 0, 0, 0), 4, Category::Multicast),
    (Ipv4Addr::new(255, 255, 255, 255), 32, Category::Broadcast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, Category::Reserved),
];

/// IPv6 ranges that are refused, first match wins. Consulted only for addresses that do not
/// embed an IPv4 address (those are classified by the embedded address, see [`embedded_ipv4`]).
const V6_REFUSED: &[(Ipv6Addr, u8, Category)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, Category::Unspecified),
    (Ipv6Addr::LOCALHOST, 128, Category::Loopback),
    // AWS instance metadata over IPv6 (inside the unique-local range).
    (Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), 128, Category::CloudMetadata),
    // Local-use NAT64 (RFC 8215): the embedded IPv4 position varies, so refuse it as private.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Category::Private),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, Category::Reserved),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, Category::Teredo),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, Category::Benchmarking),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, Category::Documentation),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, Category::ProtocolAssignment),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Category::Documentation),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Category::Private),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Category::Private),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Category::LinkLocal),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Category::Multicast),
];

/// The IPv6 global unicast space; everything outside it that the table above does not name is
/// reserved by IANA.
const V6_GLOBAL_UNICAST: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The category an address is refused for, or `None` for a public unicast address. Ignores the
/// policy's allowed ranges.
pub fn classify(ip: IpAddr) -> Option<Category> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Category> {
    let bits = u32::from(ip);
    V4_REFUSED
        .iter()
        .find(|(net, prefix, _)| prefix_matches_v4(u32::from(*net), *prefix, bits))
        .map(|(_, _, category)| *category)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Category> {
    let bits = u128::from(ip);
    let listed = V6_REFUSED
        .iter()
        .find(|(net, prefix, _)| prefix_matches_v6(u128::from(*net), *prefix, bits))
        .map(|(_, _, category)| *category);
    let (unicast, unicast_prefix) = V6_GLOBAL_UNICAST;
    listed.or_else(|| {
        (!prefix_matches_v6(u128::from(unicast), unicast_prefix, bits)).then_some(Category::Reserved)
    })
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one:
///
/// * IPv4-mapped `::ffff:a.b.c.d` — how dual-stack sockets spell IPv4 peers;
/// * IPv4-compatible `::a.b.c.d` (deprecated, but still parsed and routed by some stacks);
///   `::` and `::1` are not treated as such, they are the IPv6 unspecified and loopback addresses;
/// * NAT64 `64:ff9b::a.b.c.d` — a NAT64 gateway connects to the embedded address;
/// * 6to4 `2002:AABB:CCDD::/48` — the 6to4 relay connects to `AA.BB.CC.DD` (bits 16..48).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let low32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low32),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32),
        [0x2002, _, _, _, _, _, _, _] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

pub(super) fn prefix_matches_v4(net: u32, prefix: u8, addr: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    net & mask == addr & mask
}

pub(super) fn prefix_matches_v6(net: u128, prefix: u8, addr: u128) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    net & mask == addr & mask
}
