//! Allowed ranges: what an administrator lets through the guard (`--egress-allow`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::classify::{prefix_matches_v4, prefix_matches_v6};

/// A range of addresses an administrator allows: `10.0.0.0/8`, `fd00::/8`, or a single address
/// (`10.1.2.3`, which means `10.1.2.3/32`).
///
/// Address bits beyond the prefix must be zero: `10.1.2.3/8` is refused rather than silently read
/// as `10.0.0.0/8`, since it usually means a mistyped prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range `network/prefix`, checked like a parsed one.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, RangeError> {
        let shown = format!("{network}/{prefix}");
        let max = max_prefix(network);
        if prefix > max {
            let family = if network.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(RangeError::new(
                &shown,
                format!("the prefix length {prefix} is larger than {max}, the most an {family} range has"),
            ));
        }
        let range = IpRange { network, prefix };
        if range.truncated() != network {
            let hint = IpRange { network: range.truncated(), prefix };
            return Err(RangeError::new(
                &shown,
                format!("address bits are set beyond the /{prefix} prefix (did you mean {hint}?)"),
            ));
        }
        Ok(range)
    }

    /// The range holding exactly `ip`.
    pub fn single(ip: IpAddr) -> Self {
        IpRange { network: ip, prefix: max_prefix(ip) }
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range, as written (no IPv4/IPv6 translation here).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches_v4(net.into(), self.prefix, ip.into()),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_matches_v6(net.into(), self.prefix, ip.into()),
            _ => false,
        }
    }

    /// The network address with the bits beyond the prefix cleared.
    fn truncated(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(net) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(net) & mask))
            }
            IpAddr::V6(net) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(net) & mask))
            }
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

impl FromStr for IpRange {
    type Err = RangeError;

    fn from_str(input: &str) -> Result<Self, RangeError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(RangeError::new(input, "it is empty".to_owned()));
        }
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let Ok(network) = addr_text.parse::<IpAddr>() else {
            return Err(RangeError::new(
                input,
                format!(
                    "`{addr_text}` is not an IPv4 or IPv6 address (expected a range like 10.0.0.0/8 \
                     or fd00::/8, or a single address like 10.1.2.3)"
                ),
            ));
        };
        let Some(prefix_text) = prefix_text else {
            return Ok(IpRange::single(network));
        };
        let Ok(prefix) = prefix_text.parse::<u8>() else {
            return Err(RangeError::new(
                input,
                format!(
                    "the prefix length `{prefix_text}` is not a number from 0 to {}",
                    max_prefix(network)
                ),
            ));
        };
        IpRange::new(network, prefix).map_err(|e| RangeError::new(input, e.reason))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A string that is not an IP range, e.g. "`10.0.0.0/33` is not an IP range: the prefix length 33
/// is larger than 32, the most an IPv4 range has".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    input: String,
    reason: String,
}

impl RangeError {
    fn new(input: &str, reason: String) -> Self {
        RangeError { input: input.to_owned(), reason }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an IP range: {}", self.input, self.reason)
    }
}

impl std::error::Error for RangeError {}
