//! Login throttling: after too many failed attempts for one key (an account, an address) in a
//! window, further attempts are refused until the oldest failure leaves the window.
//!
//! The state is in memory, per process. Time is passed in, so tests need no sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most keys remembered; beyond it, the keys with the oldest failures are forgotten first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// Allows `limit` failures per key within `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self { limit: limit.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` when `key` has used up its failures: try again after `wait`.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(times) = map.get_mut(key) else { return Ok(()) };
        self.expire(times, now);
        if times.len() < self.limit {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now).max(Duration::from_secs(1)))
    }

    /// Records a failed attempt for `key`.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, t| {
                t.back().is_some_and(|last| now.saturating_duration_since(*last) < self.window)
            });
            if map.len() >= MAX_KEYS {
                return;
            }
        }
        let times = map.entry(key.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
        if times.len() > self.limit {
            times.pop_front();
        }
    }

    /// Forgets `key`'s failures after a successful login.
    pub fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(key);
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_moves_on() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..3 {
            assert_eq!(t.check("a", start), Ok(()), "attempt {i}");
            t.failed("a", start + Duration::from_secs(i));
        }
        let wait = t.check("a", start + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(50)));
        assert_eq!(t.check("b", start), Ok(()), "other keys are not affected");
        assert_eq!(t.check("a", start + Duration::from_secs(60)), Ok(()), "the first failure expired");
    }

    #[test]
    fn success_forgets_failures() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed("a", now);
        t.failed("a", now);
        assert!(t.check("a", now).is_err());
        t.succeeded("a");
        assert_eq!(t.check("a", now), Ok(()));
    }
}
