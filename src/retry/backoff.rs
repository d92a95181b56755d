//! Jittered exponential backoff between retries.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::error::RetryConfigError;

/// Envoy's retry backoff: before retry `n` (1 for the first), wait a uniformly random time in
/// `[0, min((2^n − 1) × base, max)]` ("full jitter": retries from many clients do not line
/// up, and the average wait still grows exponentially).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Result<Self, RetryConfigError> {
        if base > max {
            return Err(RetryConfigError::InvalidBackoff { base, max });
        }
        Ok(Backoff { base, max })
    }

    /// The largest wait before retry `n` (1-based).
    pub(crate) fn cap(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).map_or(u32::MAX, |f| f - 1);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `n`, drawn with `rng`.
    pub(crate) fn delay(&self, n: u32, rng: &Jitter) -> Duration {
        let cap = u64::try_from(self.cap(n).as_nanos()).unwrap_or(u64::MAX);
        if cap == 0 {
            return Duration::ZERO;
        }
        // A uniform value in 0..=cap (multiply-shift; the bias is below 2^-64 × cap).
        let nanos = (u128::from(rng.next()) * (u128::from(cap) + 1)) >> 64;
        Duration::from_nanos(nanos as u64)
    }
}

impl Default for Backoff {
    /// Envoy's defaults: base 25 ms, max 250 ms (ten times the base).
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

/// A lock-free random source for backoff jitter (SplitMix64: Steele, Lea and Flood, 2014). Used
/// only on the retry path, so one relaxed increment per draw is cheap enough, and a seed makes
/// tests exact.
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter(AtomicU64::new(seed))
    }

    pub(crate) fn next(&self) -> u64 {
        mix(self.0.fetch_add(GOLDEN, Relaxed).wrapping_add(GOLDEN))
    }
}

/// SplitMix64's finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_envoy_bounds_and_use_the_range() {
        let backoff = Backoff::default();
        let rng = Jitter::new(7);
        for (n, cap_ms) in [(1, 25), (2, 75), (3, 175), (4, 250), (9, 250), (40, 250)] {
            assert_eq!(backoff.cap(n), Duration::from_millis(cap_ms), "retry {n}");
            let draws: Vec<_> = (0..2000).map(|_| backoff.delay(n, &rng)).collect();
            let cap = Duration::from_millis(cap_ms);
            assert!(draws.iter().all(|d| *d <= cap), "retry {n} over its cap");
            // Full jitter: draws reach both ends of the range.
            assert!(
                draws.iter().any(|d| *d < cap / 10),
                "retry {n}: no short wait"
            );
            assert!(
                draws.iter().any(|d| *d > cap * 9 / 10),
                "retry {n}: no long wait"
            );
        }
    }

    #[test]
    fn zero_backoff_and_bad_bounds() {
        let none = Backoff::new(Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(none.delay(3, &Jitter::new(1)), Duration::ZERO);
        let err = Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            err,
            RetryConfigError::InvalidBackoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(1)
            }
        );
        assert!(err.to_string().contains("2s"), "{err}");
    }

    #[test]
    fn seeded_jitter_is_deterministic() {
        let a: Vec<_> = (0..5)
            .map({
                let r = Jitter::new(42);
                move |_| r.next()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let r = Jitter::new(42);
                move |_| r.next()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
