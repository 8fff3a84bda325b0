use std::net::Ipv6Addr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a test address")
}

fn category(s: &str) -> Option<Category> {
    EgressPolicy::strict().check_ip(ip(s)).err().map(|d| d.category())
}

#[track_caller]
fn assert_refused(cases: &[&str], expected: Category) {
    for case in cases {
        assert_eq!(category(case), Some(expected), "{case} should be refused as {expected}");
    }
}

#[test]
fn public_addresses_are_allowed() {
    for case in [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:2800:220:1::1",
        "2a00:1450:4001:80b::200e",
        "2001:4860:4860::8888",
    ] {
        assert_eq!(category(case), None, "{case} is public");
    }
}

#[test]
fn loopback() {
    assert_refused(&["127.0.0.1", "127.255.255.254", "::1"], Category::Loopback);
}

#[test]
fn private() {
    assert_refused(
        &[
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "64:ff9b:1::a00:1",
        ],
        Category::Private,
    );
}

#[test]
fn link_local() {
    assert_refused(&["169.254.0.1", "169.254.169.253", "fe80::1", "febf::1"], Category::LinkLocal);
}

#[test]
fn cloud_metadata_is_named_as_such_although_mostly_link_local() {
    assert_refused(
        &[
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "192.0.0.192",
            "168.63.129.16",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ],
        Category::CloudMetadata,
    );
    // The neighbours keep their usual category.
    assert_eq!(category("100.100.100.201"), Some(Category::SharedAddressSpace));
    assert_eq!(category("fd00:ec2::253"), Some(Category::Private));
    assert_eq!(category("168.63.129.17"), None);
}

#[test]
fn other_special_purpose_ranges() {
    assert_refused(&["0.0.0.0", "0.1.2.3", "::"], Category::Unspecified);
    assert_refused(&["100.64.0.1", "100.127.255.255"], Category::SharedAddressSpace);
    assert_refused(&["224.0.0.1", "239.255.255.255", "ff02::1", "ff0e::1"], Category::Multicast);
    assert_refused(&["255.255.255.255"], Category::Broadcast);
    assert_refused(&["240.0.0.1", "255.255.255.254", "100::1", "4000::1", "::2:0:0:1"], Category::Reserved);
    assert_refused(&["198.18.0.1", "198.19.255.255", "2001:2::1"], Category::Benchmarking);
    assert_refused(&["192.0.0.1", "192.0.0.255", "2001:3::1", "2001:1ff::1"], Category::ProtocolAssignment);
    assert_refused(
        &["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "3fff::1"],
        Category::Documentation,
    );
    assert_refused(&["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"], Category::Teredo);
    // Just past 2001::/23 is ordinary global unicast.
    assert_eq!(category("2001:200::1"), None);
}

#[test]
fn ipv6_forms_embedding_ipv4_are_classified_by_the_ipv4_address() {
    let cases = [
        // IPv4-mapped
        ("::ffff:127.0.0.1", Some(Category::Loopback)),
        ("::ffff:10.1.2.3", Some(Category::Private)),
        ("::ffff:93.184.216.34", None),
        // IPv4-compatible
        ("::127.0.0.1", Some(Category::Loopback)),
        ("::192.168.0.1", Some(Category::Private)),
        ("::93.184.216.34", None),
        // NAT64
        ("64:ff9b::169.254.169.254", Some(Category::CloudMetadata)),
        ("64:ff9b::7f00:1", Some(Category::Loopback)),
        ("64:ff9b::93.184.216.34", None),
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD
        ("2002:7f00:1::1", Some(Category::Loopback)),
        ("2002:a9fe:a9fe::", Some(Category::CloudMetadata)),
        ("2002:c0a8:101:1::1", Some(Category::Private)),
        ("2002:5db8:d822::1", None),
    ];
    for (case, expected) in cases {
        assert_eq!(category(case), expected, "{case}");
    }
}

#[test]
fn embedded_ipv4_extraction() {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("a test address");
    let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().expect("a test address"));
    assert_eq!(embedded_ipv4(v6("::ffff:1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_ipv4(v6("::1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_ipv4(v6("64:ff9b::1.2.3.4")), v4("1.2.3.4"));
    assert_eq!(embedded_ipv4(v6("2002:102:304:5::6")), v4("1.2.3.4"));
    assert_eq!(embedded_ipv4(v6("::")), None);
    assert_eq!(embedded_ipv4(v6("::1")), None);
    assert_eq!(embedded_ipv4(v6("64:ff9b:1::1.2.3.4")), None);
    assert_eq!(embedded_ipv4(v6("2606:2800:220:1::1")), None);
}

#[test]
fn allowed_ranges_win_as_written_and_through_embedded_ipv4() {
    let policy = EgressPolicy::parse(["127.0.0.0/8", "fd00::/8", "169.254.169.254"]).expect("ranges");
    for case in [
        "127.0.0.1",
        "127.1.2.3",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::1",
        "fd12::1",
        "fd00:ec2::254",
        "169.254.169.254",
    ] {
        assert_eq!(policy.check_ip(ip(case)), Ok(()), "{case} is allowed");
    }
    // Allowing 127.0.0.0/8 does not allow ::1, nor anything beside the allowed ranges.
    for case in ["::1", "fc00::1", "169.254.169.253", "10.0.0.1", "::ffff:10.0.0.1"] {
        assert!(policy.check_ip(ip(case)).is_err(), "{case} stays refused");
    }
    // An IPv6 range does not reach into the IPv4 space.
    let v6_only = EgressPolicy::parse(["::/0"]).expect("range");
    assert!(v6_only.check_ip(ip("127.0.0.1")).is_err());
    assert_eq!(v6_only.check_ip(ip("::1")), Ok(()));
}

#[test]
fn ranges_parse() {
    let parse = |s: &str| s.parse::<IpRange>().map(|r| r.to_string());
    assert_eq!(parse("127.0.0.0/8").as_deref(), Ok("127.0.0.0/8"));
    assert_eq!(parse(" 10.1.2.3 ").as_deref(), Ok("10.1.2.3/32"));
    assert_eq!(parse("::1/128").as_deref(), Ok("::1/128"));
    assert_eq!(parse("::1").as_deref(), Ok("::1/128"));
    assert_eq!(parse("0.0.0.0/0").as_deref(), Ok("0.0.0.0/0"));
    assert_eq!(parse("fd00::/8").as_deref(), Ok("fd00::/8"));
}

#[test]
fn bad_ranges_say_what_is_wrong() {
    let error = |s: &str| s.parse::<IpRange>().expect_err("a bad range").to_string();
    assert_eq!(
        error("10.0.0.0/33"),
        "`10.0.0.0/33` is not an IP range: the prefix length 33 is larger than 32, the most an IPv4 range has"
    );
    assert_eq!(
        error("::/129"),
        "`::/129` is not an IP range: the prefix length 129 is larger than 128, the most an IPv6 range has"
    );
    assert_eq!(
        error("10.1.2.3/8"),
        "`10.1.2.3/8` is not an IP range: address bits are set beyond the /8 prefix (did you mean 10.0.0.0/8?)"
    );
    assert_eq!(
        error("10.0.0.0/x"),
        "`10.0.0.0/x` is not an IP range: the prefix length `x` is not a number from 0 to 32"
    );
    assert_eq!(
        error("example.com"),
        "`example.com` is not an IP range: `example.com` is not an IPv4 or IPv6 address \
         (expected a range like 10.0.0.0/8 or fd00::/8, or a single address like 10.1.2.3)"
    );
    assert!(error("10.0.0.256").contains("`10.0.0.256` is not an IPv4 or IPv6 address"));
    assert_eq!(error(""), "`` is not an IP range: it is empty");
    assert_eq!(
        error("1.2.3.4/8/8"),
        "`1.2.3.4/8/8` is not an IP range: the prefix length `8/8` is not a number from 0 to 32"
    );

    let policy = EgressPolicy::parse(["10.0.0.0/8", "fd00::/300"]).expect_err("second is bad");
    assert!(policy.to_string().starts_with("`fd00::/300` is not an IP range"), "{policy}");
    assert_eq!(
        IpRange::new(ip("10.1.0.0"), 8).expect_err("host bits").to_string(),
        "`10.1.0.0/8` is not an IP range: address bits are set beyond the /8 prefix (did you mean 10.0.0.0/8?)"
    );
}

#[test]
fn messages_read_well() {
    let policy = EgressPolicy::strict();
    let resolved = policy.check_resolved("metadata.internal", ip("169.254.169.254")).expect_err("refused");
    assert_eq!(
        resolved.to_string(),
        "`metadata.internal` resolves to 169.254.169.254, a cloud metadata address; outbound requests \
         to it are refused (an administrator can allow a range with --egress-allow)"
    );
    assert_eq!((resolved.host(), resolved.ip()), ("metadata.internal", ip("169.254.169.254")));

    let literal = policy.check_ip(ip("::")).expect_err("refused");
    assert_eq!(
        literal.to_string(),
        "`::` is an unspecified address; outbound requests to it are refused \
         (an administrator can allow a range with --egress-allow)"
    );
    let ietf = policy.check_ip(ip("192.0.0.8")).expect_err("refused");
    assert!(ietf.to_string().starts_with("`192.0.0.8` is an IETF protocol assignment address;"), "{ietf}");
}

#[test]
fn localhost_names() {
    assert!(is_localhost("localhost"));
    assert!(is_localhost("LocalHost."));
    assert!(is_localhost("api.localhost"));
    assert!(!is_localhost("localhost.example.com"));
    assert!(!is_localhost("notlocalhost"));
}

#[test]
fn a_resolution_with_any_refused_address_fails_whole() {
    let policy = EgressPolicy::strict();
    let public: SocketAddr = "93.184.216.34:0".parse().expect("addr");
    let metadata: SocketAddr = "169.254.169.254:0".parse().expect("addr");
    assert_eq!(check_all(&policy, "ok.example", &[public]), Ok(()));
    let denied = check_all(&policy, "rebind.example", &[public, metadata]).expect_err("refused");
    assert_eq!((denied.host(), denied.category()), ("rebind.example", Category::CloudMetadata));
}

#[test]
fn denied_in_walks_the_source_chain() {
    #[derive(Debug)]
    struct Wrapper(Box<dyn std::error::Error + Send + Sync>);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connect failed")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }
    let denied = EgressPolicy::strict().check_ip(ip("10.0.0.1")).expect_err("refused");
    let outer = Wrapper(Box::new(Wrapper(Box::new(denied.clone()))));
    assert_eq!(denied_in(&outer), Some(&denied));
    assert_eq!(denied_in(&denied), Some(&denied));
    let unrelated = Wrapper(Box::new(std::io::Error::other("refused")));
    assert_eq!(denied_in(&unrelated), None);
}
