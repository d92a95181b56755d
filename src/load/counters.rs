use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::time::Instant;

use super::rtt::{self, Decay};

/// Load counters of one endpoint.
///
/// Keep one `Load` per endpoint and share it by reference (the balancer shares it through an
/// `Arc<Load>` in each snapshot); the in-flight count is the number of live [`InFlight`] guards.
#[derive(Debug)]
pub struct Load {
    counters: Arc<Counters>,
}

#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    /// The RTT estimate in nanoseconds as `f64` bits; 0 before the first sample.
    rtt: AtomicU64,
    /// When `rtt` was last updated, in nanoseconds since `epoch`.
    rtt_at: AtomicU64,
    /// The sum of the start times of timed requests in flight, in nanoseconds since `epoch`.
    started: AtomicU64,
    epoch: Instant,
}

impl Load {
    /// Counters at zero.
    pub fn new() -> Self {
        Load {
            counters: Arc::new(Counters {
                requests: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                rtt: AtomicU64::new(0),
                rtt_at: AtomicU64::new(0),
                started: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// Requests currently in flight: live guards from [`Load::start`] and [`Load::start_timed`].
    pub fn in_flight(&self) -> u64 {
        // The `Load` itself holds one reference; every other one is an `InFlight` guard.
        (Arc::strong_count(&self.counters) as u64).saturating_sub(1)
    }

    /// Requests started in total.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Relaxed)
    }

    /// Requests that finished with an error.
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Relaxed)
    }

    /// Counts a request started and returns the guard that keeps it in flight until dropped.
    #[inline]
    pub fn start(&self) -> InFlight {
        self.counters.requests.fetch_add(1, Relaxed);
        InFlight {
            counters: Arc::clone(&self.counters),
            timer: None,
        }
    }

    /// Like [`Load::start`], and also times the request from `now` (the caller's one clock read)
    /// to feed the RTT estimate, which forgets with time constant `decay`.
    #[inline]
    pub fn start_timed(&self, now: Instant, decay: Decay) -> InFlight {
        let c = &self.counters;
        c.requests.fetch_add(1, Relaxed);
        let at = c.nanos(now);
        c.started.fetch_add(at, Relaxed);
        InFlight {
            counters: Arc::clone(c),
            timer: Some(Timer {
                at,
                decay,
                completed: false,
            }),
        }
    }

    /// The RTT estimate at `now`, in nanoseconds, decayed since its last update; `None` before
    /// any sample.
    pub fn rtt_estimate(&self, now: Instant, decay: Decay) -> Option<f64> {
        let c = &self.counters;
        let est = f64::from_bits(c.rtt.load(Relaxed));
        if est <= 0.0 {
            return None;
        }
        let since = c.nanos(now).saturating_sub(c.rtt_at.load(Relaxed));
        Some(est * decay.keep(since as f64))
    }

    /// The mean age at `now` of the requests in flight, in nanoseconds; 0 when none is.
    ///
    /// Counts only requests started with [`Load::start_timed`] in the sum of ages but divides
    /// by every request in flight, so it is exact when an endpoint's requests are all timed or
    /// all untimed, as they are in a balancer (its picker decides for every request).
    pub fn pending_age(&self, now: Instant) -> f64 {
        let c = &self.counters;
        let n = self.in_flight();
        if n == 0 {
            return 0.0;
        }
        let mean_start = c.started.load(Relaxed) as f64 / n as f64;
        (c.nanos(now) as f64 - mean_start).max(0.0)
    }

    /// Records one RTT sample ending at `now`, as a completed request would.
    pub fn record_rtt(&self, rtt: std::time::Duration, now: Instant, decay: Decay) {
        let c = &self.counters;
        c.record(rtt.as_nanos() as f64, c.nanos(now), decay, false);
    }
}

impl Default for Load {
    fn default() -> Self {
        Load::new()
    }
}

impl Counters {
    /// Nanoseconds from the epoch to `t`; saturates (a `u64` holds 584 years).
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn record(&self, sample: f64, now: u64, decay: Decay, lower_bound: bool) {
        let mut prior_bits = self.rtt.load(Relaxed);
        loop {
            let prior = f64::from_bits(prior_bits);
            let prior = (prior > 0.0).then_some(prior);
            let since = now.saturating_sub(self.rtt_at.load(Relaxed)) as f64;
            // Zero would read as "no sample": keep estimates at least 1 ns.
            let Some(next) =
                rtt::update(prior, sample, since, decay, lower_bound).map(|e| e.max(1.0))
            else {
                return;
            };
            match self
                .rtt
                .compare_exchange_weak(prior_bits, next.to_bits(), Relaxed, Relaxed)
            {
                Ok(_) => {
                    // A plain store: a racing update may set an instant a few nanoseconds
                    // older, which only makes the next decay step slightly larger.
                    self.rtt_at.store(now, Relaxed);
                    return;
                }
                Err(current) => prior_bits = current,
            }
        }
    }
}

/// Counts one request in flight on a [`Load`] until dropped.
#[derive(Debug)]
#[must_use = "dropping the guard ends the request"]
pub struct InFlight {
    counters: Arc<Counters>,
    timer: Option<Timer>,
}

#[derive(Debug)]
struct Timer {
    at: u64,
    decay: Decay,
    completed: bool,
}

impl InFlight {
    /// Counts the request as failed. It stays in flight until the guard drops.
    pub fn failed(&self) {
        self.counters.errors.fetch_add(1, Relaxed);
    }

    /// Marks the request complete: its time becomes a full RTT sample when the guard drops.
    /// Without it, a timed request's time counts only as a lower bound (it was cancelled).
    pub fn completed(&mut self) {
        if let Some(timer) = &mut self.timer {
            timer.completed = true;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(timer) = &self.timer {
            let c = &self.counters;
            let now = c.nanos(Instant::now());
            c.record(
                now.saturating_sub(timer.at) as f64,
                now,
                timer.decay,
                !timer.completed,
            );
            c.started.fetch_sub(timer.at, Relaxed);
        }
    }
}
