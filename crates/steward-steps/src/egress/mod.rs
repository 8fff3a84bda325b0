//! The egress guard: outbound HTTP made by flows must not reach the machine Steward runs on, its
//! private network or the cloud provider's metadata service, unless an administrator allows a range.
//!
//! A flow author controls the URL, so without a guard any flow could read
//! `http://169.254.169.254/` (cloud credentials), `http://localhost:…` (Steward's own admin API,
//! a database) or anything else on the internal network (server-side request forgery).
//!
//! The check happens at two points, because neither alone is enough:
//!
//! * [`EgressPolicy::check_url_host`] checks a URL before it is requested, and on every redirect
//!   hop (the http step follows redirects itself). It catches IP literals, which the HTTP stack
//!   connects to directly without asking the resolver, and the name `localhost`.
//! * [`GuardedResolver`] is the client's DNS resolver: it checks every address a name resolves
//!   to, at connection time. Checking a name's addresses *before* the request and then letting the
//!   client resolve it again would be open to DNS rebinding (the second answer can differ); the
//!   addresses the resolver returns are the ones the client connects to.
//!
//! Classification is by address, after unwrapping the IPv6 forms that carry an IPv4 address
//! (`::ffff:127.0.0.1` is 127.0.0.1 to the kernel or a NAT64 gateway). See [`Category`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How an administrator lifts the guard for a range; named in every refusal.
const ALLOW_HINT: &str = "an administrator can allow a range with --egress-allow";

mod classify;
mod range;
#[cfg(test)]
mod tests;

pub use classify::{Category, classify, embedded_ipv4};
pub use range::{IpRange, RangeError};

// ---------------------------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------------------------

/// Which destinations outbound requests may reach: every public unicast address, plus the ranges
/// an administrator allows. There is deliberately no "allow everything" switch; allowing
/// `0.0.0.0/0` and `::/0` is possible and says plainly what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpRange>,
}

impl EgressPolicy {
    /// Public addresses only.
    pub fn strict() -> Self {
        EgressPolicy { allow: Vec::new() }
    }

    /// Public addresses plus the `allow`ed ranges.
    pub fn new(allow: Vec<IpRange>) -> Self {
        EgressPolicy { allow }
    }

    /// Parses each allowed range (see [`IpRange`]); the error names the first bad one.
    pub fn parse<I, S>(ranges: I) -> Result<Self, RangeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allow = ranges.into_iter().map(|r| r.as_ref().parse()).collect::<Result<_, _>>()?;
        Ok(EgressPolicy { allow })
    }

    pub fn allowed(&self) -> &[IpRange] {
        &self.allow
    }

    /// Whether an administrator allowed `ip`: a range contains the address as written or the
    /// IPv4 address it embeds (allowing 127.0.0.0/8 also allows `::ffff:127.0.0.1`).
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow.iter().any(|range| range.contains(ip) || embedded.is_some_and(|v4| range.contains(v4)))
    }

    /// Checks an address the caller is about to connect to. Allowed ranges win; otherwise any
    /// address with a [`Category`] is refused.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        self.check(ip).map_err(|category| Denied::new(Subject::Literal, ip.to_string(), ip, category))
    }

    /// Like [`check_ip`](Self::check_ip) for an address that `host` resolved to; the refusal
    /// names both.
    pub fn check_resolved(&self, host: &str, ip: IpAddr) -> Result<(), Denied> {
        self.check(ip).map_err(|category| Denied::new(Subject::Resolved, host.to_owned(), ip, category))
    }

    /// Checks a URL's host before the request (and on every redirect hop).
    ///
    /// IP literals are checked here because the HTTP client connects to them without asking the
    /// resolver. The `url` crate has already normalised the WHATWG IPv4 spellings
    /// (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) to a plain address, so they are caught too.
    ///
    /// `localhost` and `*.localhost` are refused here as loopback (RFC 6761 says they always
    /// mean this machine) unless 127.0.0.1 is allowed; other names pass, and their addresses are
    /// checked by [`GuardedResolver`] at connection time. A URL without a host passes: there is
    /// nothing to connect to.
    pub fn check_url_host(&self, url: &url::Url) -> Result<(), Denied> {
        match url.host() {
            Some(url::Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(name)) if is_localhost(name) => {
                let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
                if self.is_allowed(loopback) {
                    Ok(())
                } else {
                    Err(Denied::new(Subject::LocalName, name.to_owned(), loopback, Category::Loopback))
                }
            }
            Some(url::Host::Domain(_)) | None => Ok(()),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), Category> {
        if self.is_allowed(ip) {
            return Ok(());
        }
        classify(ip).map_or(Ok(()), Err)
    }
}

/// `localhost`, `foo.localhost`, with or without the trailing root dot, any case.
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

// ---------------------------------------------------------------------------------------------
// The refusal
// ---------------------------------------------------------------------------------------------

/// How the refused address came about, which decides how the message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// The address was written as such (an IP literal in the URL).
    Literal,
    /// A name resolved to it.
    Resolved,
    /// A name that means the address by definition (`localhost`), refused before resolution.
    LocalName,
}

/// An outbound request refused by the egress guard. Its message is user-facing and stable, e.g.
/// "`metadata.internal` resolves to 169.254.169.254, a cloud metadata address; outbound requests
/// to it are refused (an administrator can allow a range with --egress-allow)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    subject: Subject,
    host: String,
    ip: IpAddr,
    category: Category,
}

impl Denied {
    fn new(subject: Subject, host: String, ip: IpAddr, category: Category) -> Self {
        Denied { subject, host, ip, category }
    }

    /// The host as the request named it: a domain name, or the address itself for an IP literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The refused address (127.0.0.1 for a `localhost` name refused before resolution).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn category(&self) -> Category {
        self.category
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Denied { subject, host, ip, category } = self;
        let kind = category.with_article();
        match subject {
            Subject::Literal => write!(f, "`{host}` is {kind} address")?,
            Subject::Resolved => write!(f, "`{host}` resolves to {ip}, {kind} address")?,
            Subject::LocalName => write!(f, "`{host}` is {kind} name")?,
        }
        write!(f, "; outbound requests to it are refused ({ALLOW_HINT})")
    }
}

impl std::error::Error for Denied {}

/// The egress refusal somewhere in `err`'s `source()` chain (including `err` itself), so that a
/// connect error from reqwest can be reported with the guard's own message.
pub fn denied_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Denied> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref::<Denied>())
}

// ---------------------------------------------------------------------------------------------
// The resolver
// ---------------------------------------------------------------------------------------------

/// A DNS resolver for reqwest that refuses names resolving to guarded addresses:
/// `reqwest::Client::builder().dns_resolver(Arc::new(GuardedResolver::new(policy)))`.
///
/// If *any* address of a name is refused, the whole resolution fails with [`Denied`], even when
/// other addresses are public. Dropping the bad ones would be just as safe for this request, but a
/// name answering with both a public and an internal address is the signature of DNS rebinding or
/// of split-horizon DNS, and a clear error beats a request that works or not depending on which
/// address the client happens to try. (A consequence: on machines where `localhost` resolves to
/// both 127.0.0.1 and ::1, allowing it takes both `127.0.0.0/8` and `::1/128`.)
///
/// Only names reach a resolver: reqwest connects to IP-literal hosts directly, which is why
/// [`EgressPolicy::check_url_host`] must also run before each request and redirect hop. Names
/// pinned with `ClientBuilder::resolve` and requests through a proxy also bypass it (the proxy
/// resolves the target), so a guarded client should not use either.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: impl Into<Arc<EgressPolicy>>) -> Self {
        GuardedResolver { policy: policy.into() }
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts in the URL's port (or the scheme's default).
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            check_all(&policy, &host, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Refuses the whole answer if any address in it is refused.
fn check_all(policy: &EgressPolicy, host: &str, addrs: &[SocketAddr]) -> Result<(), Denied> {
    addrs.iter().try_for_each(|addr| policy.check_resolved(host, addr.ip()))
}
