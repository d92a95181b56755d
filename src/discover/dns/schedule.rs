//! When to look up again, and whether an answer changed the set: pure functions of their
//! inputs, so they are tested without a server or a clock.

use std::time::Duration;

use crate::endpoint::Endpoint;

/// Refresh and retry timing, validated by the builder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Timing {
    pub(super) ttl_min: Duration,
    pub(super) ttl_max: Duration,
    pub(super) jitter: f64,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
}

impl Timing {
    /// The delay before the next lookup after an answer whose smallest record TTL is
    /// `ttl_secs` (`None`: the answer carried no TTL, as a negative answer without SOA).
    /// `u` is a uniform random number in `[0, 1)`.
    pub(super) fn refresh_after(&self, ttl_secs: Option<u32>, u: f64) -> Duration {
        let ttl = ttl_secs.map_or(self.ttl_min, |s| Duration::from_secs(u64::from(s)));
        jittered(clamp_ttl(ttl, self.ttl_min, self.ttl_max), self.jitter, u)
    }

    /// The delay before retrying after the `failures`-th failure in a row (counted from 1).
    pub(super) fn retry_after(&self, failures: u32, u: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let delay = self
            .backoff_min
            .checked_mul(1 << doublings)
            .map_or(self.backoff_max, |d| d.min(self.backoff_max));
        jittered(delay, self.jitter, u)
    }
}

/// A record TTL clamped to the configured bounds.
pub(super) fn clamp_ttl(ttl: Duration, min: Duration, max: Duration) -> Duration {
    ttl.clamp(min, max)
}

/// `delay` shortened by up to `fraction` of itself: `u` in `[0, 1)` picks how much. Shortening
/// (never lengthening) keeps every refresh within the TTL bound while spreading the lookups of
/// many clients that started together.
pub(super) fn jittered(delay: Duration, fraction: f64, u: f64) -> Duration {
    delay.mul_f64(1.0 - fraction * u.clamp(0.0, 1.0))
}

/// The last set a source emitted, to emit only changes.
#[derive(Debug, Default)]
pub(super) struct LastSet(Option<Vec<Endpoint>>);

impl LastSet {
    /// Records `set` as the current one and returns it, sorted by address, if it differs from
    /// the last set in any endpoint or weight (the order of the answer does not matter); `None`
    /// when it is the same set. The first set is always a change, even an empty one.
    pub(super) fn replace(&mut self, mut set: Vec<Endpoint>) -> Option<Vec<Endpoint>> {
        set.sort_by_key(Endpoint::addr);
        set.dedup_by_key(|e| e.addr());
        if self.0.as_ref() == Some(&set) {
            return None;
        }
        self.0 = Some(set.clone());
        Some(set)
    }
}
