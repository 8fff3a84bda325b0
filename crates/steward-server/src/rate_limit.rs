//! Request rate limits: per client address and per API token on the API, and per webhook on
//! webhook deliveries. A refused request gets 429 with `Retry-After`.
//!
//! Each limit is a generic cell rate (GCRA) bucket per key from `governor`: `100/s` allows a
//! burst of 100 and refills one request every 10 ms. State lives in this process, so N server
//! processes behind one address allow up to N times the rate. Idle keys are forgotten by
//! [`Limits::forget_idle`], which the server calls once a minute.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// A rate such as `100/s`, `600/min` or `10000/h`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Off,
    Per { count: NonZeroU32, period: Duration },
}

impl Rate {
    pub const fn per_second(count: u32) -> Rate {
        match NonZeroU32::new(count) {
            Some(count) => Rate::Per { count, period: Duration::from_secs(1) },
            None => Rate::Off,
        }
    }

    fn quota(self) -> Option<Quota> {
        match self {
            Rate::Off => None,
            Rate::Per { count, period } => {
                let every = period / count.get();
                Quota::with_period(every.max(Duration::from_nanos(1))).map(|q| q.allow_burst(count))
            }
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Rate::Off);
        }
        let bad = || format!("`{s}` is not a rate like 100/s, 600/min, 10000/h or off");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate::Per { count, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Off => f.write_str("off"),
            Rate::Per { count, period } => match period.as_secs() {
                3600 => write!(f, "{count}/h"),
                60 => write!(f, "{count}/min"),
                _ => write!(f, "{count}/s"),
            },
        }
    }
}

/// What a limit is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Address,
    Token,
    Webhook,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::Token => "token",
            Scope::Webhook => "webhook",
        }
    }
}

/// One keyed bucket set, or nothing when the rate is `off`.
struct Keyed<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate) -> Self {
        Keyed(rate.quota().map(DefaultKeyedRateLimiter::keyed))
    }

    /// `Err(wait)` when the key has used up its rate.
    fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The server's rate limits.
pub struct Limits {
    address: Keyed<IpAddr>,
    token: Keyed<String>,
    webhook: Keyed<String>,
    metrics: Arc<Metrics>,
}

impl Limits {
    pub fn new(address: Rate, token: Rate, webhook: Rate, metrics: Arc<Metrics>) -> Limits {
        Limits {
            address: Keyed::new(address),
            token: Keyed::new(token),
            webhook: Keyed::new(webhook),
            metrics,
        }
    }

    pub fn address(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.address.check(&ip).map_err(|wait| self.refused(Scope::Address, wait))
    }

    pub fn token(&self, token_id: &str) -> Result<(), ApiError> {
        self.token.check(&token_id.to_owned()).map_err(|wait| self.refused(Scope::Token, wait))
    }

    pub fn webhook(&self, webhook_id: &str) -> Result<(), ApiError> {
        self.webhook.check(&webhook_id.to_owned()).map_err(|wait| self.refused(Scope::Webhook, wait))
    }

    /// 429 naming what was limited, with the whole seconds to wait (at least 1).
    fn refused(&self, scope: Scope, wait: Duration) -> ApiError {
        self.metrics.rate_limited(scope.as_str());
        let what = match scope {
            Scope::Address => "requests from this address",
            Scope::Token => "requests with this API token",
            Scope::Webhook => "deliveries to this webhook",
        };
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many {what}; retry after the time in Retry-After"),
        );
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }

    /// Drops the buckets of keys that are back to a full burst.
    pub fn forget_idle(&self) {
        self.address.forget_idle();
        self.token.forget_idle();
        self.webhook.forget_idle();
    }
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn rates_parse_and_print() {
        for (text, shown) in [("100/s", "100/s"), ("600/min", "600/min"), (" 5 / h ", "5/h"), ("OFF", "off")]
        {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), shown);
        }
        for bad in ["", "0/s", "-1/s", "10", "10/day", "x/s"] {
            assert!(bad.parse::<Rate>().unwrap_err().contains("is not a rate"), "{bad}");
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_and_others_are_untouched() {
        let metrics = Arc::new(Metrics::default());
        let limits = Limits::new(Rate::per_second(3), "2/min".parse().unwrap(), Rate::Off, metrics.clone());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..3 {
            limits.address(a).unwrap();
        }
        let refused = limits.address(a).unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(1))
        );
        limits.address(b).unwrap();
        limits.token("t1").unwrap();
        limits.token("t1").unwrap();
        let wait = limits.token("t1").unwrap_err().retry_after.unwrap();
        assert!((25..=30).contains(&wait), "one request per 30 s refills: {wait}");
        for _ in 0..1000 {
            limits.webhook("w").unwrap();
        }
        let text = metrics.render(steward_store::QueueDepth::default());
        assert!(text.contains("steward_rate_limited_total{scope=\"address\"} 1"), "{text}");
        assert!(text.contains("steward_rate_limited_total{scope=\"token\"} 1"), "{text}");
    }

    #[test]
    fn a_key_refills_at_the_rate() {
        let limits = Limits::new(Rate::per_second(20), Rate::Off, Rate::Off, Arc::default());
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        while limits.address(a).is_ok() {}
        std::thread::sleep(Duration::from_millis(120));
        assert!(limits.address(a).is_ok(), "one request per 50 ms comes back");
    }
}
