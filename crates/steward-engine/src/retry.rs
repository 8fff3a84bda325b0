//! Backoff delays. Jitter comes from a hash of the run, step and attempt, so the delay is
//! random-looking across runs but the same on every replay.

use steward_flow::{Backoff, RetryPolicy};

/// The delay before attempt `failed_attempt + 1`, in milliseconds.
pub fn delay_ms(policy: &RetryPolicy, failed_attempt: u32, seed: &str) -> u64 {
    let initial = policy.initial.as_millis();
    let max = policy.max.as_millis();
    let base = match policy.backoff {
        Backoff::Fixed => initial,
        Backoff::Exponential => {
            let shift = failed_attempt.saturating_sub(1).min(40);
            initial.saturating_mul(1u64 << shift)
        }
    }
    .min(max);
    if !policy.jitter {
        return base;
    }
    let unit = fnv1a(format!("{seed}#{failed_attempt}").as_bytes()) as f64 / u64::MAX as f64;
    // Between half and all of the delay.
    (base as f64 * (0.5 + 0.5 * unit)) as u64
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_flow::Duration;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            attempts: 10,
            backoff,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exponential_doubles_up_to_max() {
        let p = policy(Backoff::Exponential, false);
        let delays: Vec<u64> = (1..=8).map(|a| delay_ms(&p, a, "r/s")).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn fixed_stays_fixed() {
        let p = policy(Backoff::Fixed, false);
        assert!((1..=5).all(|a| delay_ms(&p, a, "x") == 500));
    }

    #[test]
    fn jitter_is_bounded_deterministic_and_varies() {
        let p = policy(Backoff::Exponential, true);
        let a = delay_ms(&p, 3, "run-1/step");
        assert_eq!(a, delay_ms(&p, 3, "run-1/step"));
        assert!((1000..=2000).contains(&a), "{a}");
        let spread: std::collections::BTreeSet<u64> =
            (0..20).map(|i| delay_ms(&p, 3, &format!("run-{i}/step"))).collect();
        assert!(spread.len() > 10, "jitter should differ across runs: {spread:?}");
    }
}
