//! The retry back-off: exponential in the attempt, with jitter so that jobs failing together do
//! not come back together.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential back-off with "equal jitter": the n-th retry waits a random time between half
/// and all of `first · 2^(n-1)`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryBackoff {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl RetryBackoff {
    /// The un-jittered wait after failed attempt `attempt` (1-based).
    pub(crate) fn base(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The wait after failed attempt `attempt`, jittered by `rng`.
    pub(crate) fn delay(&self, attempt: u32, rng: &mut Jitter) -> Duration {
        let base = self.base(attempt);
        let half = base / 2;
        let spread = u64::try_from((base - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.below(spread.saturating_add(1)))
    }
}

/// A small non-cryptographic generator (xorshift64*), seeded per consumer from the standard
/// library's random hash keys.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter(hasher.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.next() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: RetryBackoff = RetryBackoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    #[test]
    fn the_base_doubles_per_attempt_up_to_the_max() {
        assert_eq!(BACKOFF.base(1), Duration::from_secs(1));
        assert_eq!(BACKOFF.base(2), Duration::from_secs(2));
        assert_eq!(BACKOFF.base(6), Duration::from_secs(32));
        assert_eq!(BACKOFF.base(7), Duration::from_secs(60));
        assert_eq!(BACKOFF.base(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jittered_delays_stay_between_half_and_all_of_the_base_and_vary() {
        let mut rng = Jitter::new();
        for attempt in 1..10 {
            let base = BACKOFF.base(attempt);
            let delays: Vec<Duration> =
                (0..200).map(|_| BACKOFF.delay(attempt, &mut rng)).collect();
            assert!(
                delays.iter().all(|&d| d >= base / 2 && d <= base),
                "{attempt}"
            );
            let first = delays[0];
            assert!(
                delays.iter().any(|&d| d != first),
                "no jitter at attempt {attempt}"
            );
        }
    }

    #[test]
    fn a_zero_backoff_waits_zero() {
        let none = RetryBackoff {
            first: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(none.delay(3, &mut Jitter::new()), Duration::ZERO);
    }
}
