//! A small lock-free record of recent latencies, for percentile hedge delays.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Recent latencies in a log-linear histogram (eight buckets per power of two, so a reported
/// percentile is at most 12.5% above the true one), kept in two generations of [`GENERATION`]
/// each: recording goes to the current one, the percentile reads both, and the older one is
/// cleared when the current one is a generation old. So the percentile covers the last 5 to
/// 10 seconds.
///
/// Recording is two relaxed atomic increments; the percentile is recomputed (a pass over the
/// buckets) every [`RECOMPUTE_EVERY`] records and at each rotation, and cached, so reading
/// the delay is one atomic load.
pub(crate) struct Latencies {
    percentile: f64,
    min: Duration,
    max: Duration,
    epoch: Instant,
    generations: [Box<[AtomicU64]>; 2],
    current: AtomicUsize,
    /// When the current generation started, in nanoseconds since `epoch`.
    rotated_at: AtomicU64,
    records: AtomicU64,
    /// The last computed delay in nanoseconds, or `NONE` while too few samples are recorded.
    cached: AtomicU64,
}

impl Latencies {
    /// Tracks the `percentile`-th latency (in (0, 100)), reported clamped to `[min, max]`.
    pub(crate) fn new(percentile: f64, min: Duration, max: Duration) -> Self {
        let generation = || (0..BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Latencies {
            percentile,
            min,
            max,
            epoch: Instant::now(),
            generations: [generation(), generation()],
            current: AtomicUsize::new(0),
            rotated_at: AtomicU64::new(0),
            records: AtomicU64::new(0),
            cached: AtomicU64::new(NONE),
        }
    }

    /// The hedge delay: the percentile of recent latencies clamped to `[min, max]`, or `max`
    /// until [`MIN_SAMPLES`] latencies are recorded.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        match self.cached.load(Relaxed) {
            NONE => self.max,
            nanos => Duration::from_nanos(nanos).clamp(self.min, self.max),
        }
    }

    /// Records one latency observed at `now`.
    pub(crate) fn record(&self, latency: Duration, now: Instant) {
        let rotated = self.rotate(now);
        let generation = &self.generations[self.current.load(Relaxed) & 1];
        generation[index(saturating_nanos(latency))].fetch_add(1, Relaxed);
        let n = self.records.fetch_add(1, Relaxed) + 1;
        if rotated || n.is_multiple_of(RECOMPUTE_EVERY) || n == MIN_SAMPLES {
            self.recompute();
        }
    }

    /// Starts a new generation when the current one is a generation old. Returns whether it
    /// did.
    fn rotate(&self, now: Instant) -> bool {
        let now = saturating_nanos(now.saturating_duration_since(self.epoch));
        let started = self.rotated_at.load(Relaxed);
        let age = now.saturating_sub(started);
        let generation = saturating_nanos(GENERATION);
        if age < generation
            || self
                .rotated_at
                .compare_exchange(started, now, Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        let current = self.current.load(Relaxed) & 1;
        let next = current ^ 1;
        let clear = |g: usize| self.generations[g].iter().for_each(|b| b.store(0, Relaxed));
        clear(next);
        if age >= 2 * generation {
            // Idle for two generations: the current one is stale too.
            clear(current);
        }
        self.current.store(next, Relaxed);
        true
    }

    fn recompute(&self) {
        let count =
            |i: usize| self.generations[0][i].load(Relaxed) + self.generations[1][i].load(Relaxed);
        let total: u64 = (0..BUCKETS).map(count).sum();
        if total < MIN_SAMPLES {
            self.cached.store(NONE, Relaxed);
            return;
        }
        // The smallest latency at or above `percentile`% of the samples (nearest rank).
        let rank = ((self.percentile / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += count(i);
            if seen >= rank {
                self.cached.store(upper(i).min(NONE - 1), Relaxed);
                return;
            }
        }
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latencies")
            .field("percentile", &self.percentile)
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}

/// The bucket of a latency in nanoseconds: exact below 16 ns, then eight buckets per power of
/// two up to 2^40 ns (18 minutes), where it saturates.
fn index(nanos: u64) -> usize {
    let v = nanos.min(MAX_NANOS);
    if v < 8 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // 3..=39
    let mantissa = (v >> (exp - 3)) & 7;
    ((exp - 2) * 8) as usize + mantissa as usize
}

/// The exclusive upper edge of bucket `i`, in nanoseconds: the value a percentile landing
/// in it reports (never below the true latency).
fn upper(i: usize) -> u64 {
    if i < 8 {
        return i as u64 + 1;
    }
    let exp = (i / 8) as u32 + 2;
    let mantissa = (i % 8) as u64;
    ((8 + mantissa) << (exp - 3)) + (1 << (exp - 3))
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How long one generation records before the older one is cleared.
pub(crate) const GENERATION: Duration = Duration::from_secs(5);
/// Samples needed before the percentile is used instead of the maximum delay.
pub(crate) const MIN_SAMPLES: u64 = 16;
const RECOMPUTE_EVERY: u64 = 32;
const MAX_NANOS: u64 = (1 << 40) - 1;
const BUCKETS: usize = 38 * 8;
const NONE: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for v in (0..5000u64).chain((10..40).map(|e| (1u64 << e) + 12345)) {
            let i = index(v);
            assert!(i >= last, "index must not decrease at {v}");
            assert!(i < BUCKETS);
            assert!(upper(i) > v, "upper edge {} must exceed {v}", upper(i));
            // At most 12.5% above (plus one for the exact small buckets).
            assert!(
                upper(i) as f64 <= v as f64 * 1.125 + 1.0,
                "{v} -> {}",
                upper(i)
            );
            last = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[tokio::test(start_paused = true)]
    async fn percentile_follows_recent_latencies_and_forgets_old_ones() {
        let lat = Latencies::new(90.0, Duration::from_millis(1), Duration::from_secs(1));
        assert_eq!(
            lat.delay(),
            Duration::from_secs(1),
            "no samples: the maximum"
        );
        for i in 0..100u64 {
            // 90 fast (10 ms) and 10 slow (200 ms) samples.
            let ms = if i % 10 == 9 { 200 } else { 10 };
            lat.record(Duration::from_millis(ms), Instant::now());
        }
        lat.recompute();
        let delay = lat.delay();
        assert!(
            delay >= Duration::from_millis(10) && delay <= Duration::from_micros(11_250),
            "p90 of 90×10ms + 10×200ms must be ~10ms, got {delay:?}"
        );
        // Eleven seconds later the old samples are gone; new ones at 50 ms take over.
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..40 {
            lat.record(Duration::from_millis(50), Instant::now());
        }
        lat.recompute();
        let delay = lat.delay();
        assert!(
            delay >= Duration::from_millis(50) && delay <= Duration::from_micros(56_250),
            "{delay:?}"
        );
    }

    #[test]
    fn delay_is_clamped() {
        let lat = Latencies::new(50.0, Duration::from_millis(20), Duration::from_millis(30));
        for _ in 0..MIN_SAMPLES {
            lat.record(Duration::from_millis(1), lat.epoch);
        }
        assert_eq!(lat.delay(), Duration::from_millis(20));
        for _ in 0..(3 * MIN_SAMPLES) {
            lat.record(Duration::from_secs(5), lat.epoch);
        }
        lat.recompute();
        assert_eq!(lat.delay(), Duration::from_millis(30));
    }
}
