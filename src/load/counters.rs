use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::alarm::{self, Alarm};
use super::arena::{self, Slot};
use super::rtt::{self, Decay};

/// Load counters of one endpoint.
///
/// Make one `Load` per endpoint and clone it wherever the endpoint's counters are needed: clones
/// share the counters (the balancer keeps a clone in each snapshot, next to the endpoint's
/// client). Requests started through any clone are counted in flight until their [`InFlight`]
/// guard drops.
///
/// A clone is a direct reference to the counters plus a shared owner handle, so reading them
/// is one pointer away from the snapshot.
#[derive(Debug, Clone)]
pub struct Load {
    slot: &'static Slot,
    epoch: Instant,
    /// Returns the slot to the pool when the last clone is dropped.
    _owner: Arc<Owner>,
}

#[derive(Debug)]
struct Owner(&'static Slot);

impl Drop for Owner {
    fn drop(&mut self) {
        // No new request can start on the slot now; it is reused once the last guard drops.
        arena::release(self.0);
    }
}

impl Load {
    /// Counters at zero.
    pub fn new() -> Self {
        Load::with_epoch(Instant::now())
    }

    /// Counters at zero, keeping time from `epoch`. A balancer gives all its endpoints one
    /// epoch, so a pick converts its clock reading to nanoseconds once for every endpoint it
    /// looks at ([`Loads::nanos`](crate::balance::Loads)).
    pub(crate) fn with_epoch(epoch: Instant) -> Self {
        let slot = arena::acquire();
        Load {
            slot,
            epoch,
            _owner: Arc::new(Owner(slot)),
        }
    }

    /// Where this load's clock starts.
    #[inline]
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// `now` in this load's time: nanoseconds since its epoch.
    #[inline]
    pub(crate) fn since_epoch(&self, now: Instant) -> u64 {
        nanos(self.epoch, now)
    }

    /// Requests currently in flight.
    #[inline]
    pub fn in_flight(&self) -> u64 {
        self.slot.in_flight()
    }

    /// Requests started in total.
    pub fn requests(&self) -> u64 {
        self.slot.requests()
    }

    /// Requests that finished with an error.
    pub fn errors(&self) -> u64 {
        self.slot.errors.load(Relaxed)
    }

    /// Failures since this endpoint's last success, as its balancer's
    /// [classifier](crate::health::Classify) judged them.
    pub fn consecutive_failures(&self) -> u64 {
        self.slot.consecutive.load(Relaxed)
    }

    /// Rings `alarm` on every failure from the `threshold`-th consecutive one on (0: never).
    pub(crate) fn arm(&self, alarm: &Alarm, threshold: u32) {
        self.slot.alarm.store(alarm.id(), Relaxed);
        self.slot.threshold.store(u64::from(threshold), Relaxed);
    }

    /// Forgets the run of consecutive failures (an endpoint back from ejection starts afresh).
    pub(crate) fn reset_consecutive(&self) {
        self.slot.consecutive.store(0, Relaxed);
    }

    /// Requests finished in total (started minus in flight).
    pub fn finished(&self) -> u64 {
        self.slot.requests().saturating_sub(self.slot.in_flight())
    }

    /// An identity for this endpoint's counters, stable while any clone of this `Load` lives.
    #[inline]
    pub(crate) fn key(&self) -> usize {
        std::ptr::from_ref::<Slot>(self.slot) as usize
    }

    /// Counts a request started and returns the guard that keeps it in flight until dropped.
    #[inline]
    pub fn start(&self) -> InFlight {
        let _ = self.slot.start();
        InFlight {
            slot: self.slot,
            timer: None,
        }
    }

    /// Like [`Load::start`], and also times the request from `now` (the caller's one clock read)
    /// to feed the RTT estimate, which forgets with time constant `decay`.
    #[inline]
    pub fn start_timed(&self, now: Instant, decay: Decay) -> InFlight {
        self.start_timed_at(nanos(self.epoch, now), decay)
    }

    /// [`Load::start_timed`] at `at`, in [this load's time](Self::since_epoch).
    #[inline]
    pub(crate) fn start_timed_at(&self, at: u64, decay: Decay) -> InFlight {
        if self.slot.start() == 0 {
            self.slot.busy_since.store(at, Relaxed);
        }
        InFlight {
            slot: self.slot,
            timer: Some(Timer {
                epoch: self.epoch,
                at,
                decay,
                completed: false,
            }),
        }
    }

    /// The RTT estimate at `now`, in nanoseconds, decayed since its last update; `None` before
    /// any sample.
    #[inline]
    pub fn rtt_estimate(&self, now: Instant, decay: Decay) -> Option<f64> {
        let s = self.slot;
        let est = f64::from_bits(s.rtt.load(Relaxed));
        if est <= 0.0 {
            return None;
        }
        let since = nanos(self.epoch, now).saturating_sub(s.rtt_at.load(Relaxed));
        Some(est * decay.keep(since as f64))
    }

    /// [`Load::rtt_estimate`] for comparisons: decayed with an `exp` accurate to 1e-9
    /// relative, without the library call.
    ///
    /// `now` is in [this load's time](Self::since_epoch).
    #[inline]
    pub(crate) fn rtt_estimate_approx(&self, now: u64, decay: Decay) -> Option<f64> {
        let s = self.slot;
        let est = f64::from_bits(s.rtt.load(Relaxed));
        if est <= 0.0 {
            return None;
        }
        let since = now.saturating_sub(s.rtt_at.load(Relaxed));
        Some(est * decay.keep_approx(since as f64))
    }

    /// How long, at `now`, the endpoint has had requests in flight without finishing any, in
    /// nanoseconds: the time since a timed request last finished, or since one found the
    /// endpoint idle, whichever is later; 0 when nothing is in flight.
    ///
    /// While the endpoint stays busy this is a lower bound on the age of its oldest request in
    /// flight (exact when none has finished since it became busy), so it grows from the moment
    /// an endpoint stops answering. It is kept by requests started with
    /// [`Load::start_timed`]; a balancer times all of an endpoint's requests or none.
    #[inline]
    pub fn stall(&self, now: Instant) -> f64 {
        self.stall_at(nanos(self.epoch, now))
    }

    /// [`Load::stall`] at `now`, in [this load's time](Self::since_epoch).
    #[inline]
    pub(crate) fn stall_at(&self, now: u64) -> f64 {
        if self.in_flight() == 0 {
            return 0.0;
        }
        let s = self.slot;
        let progress = s.busy_since.load(Relaxed).max(s.done_at.load(Relaxed));
        now.saturating_sub(progress) as f64
    }

    /// The RTT estimate as last updated (not decayed to now); `None` before any sample.
    pub fn last_rtt(&self) -> Option<std::time::Duration> {
        let est = f64::from_bits(self.slot.rtt.load(Relaxed));
        (est > 0.0).then(|| std::time::Duration::from_nanos(est as u64))
    }

    /// Records one RTT sample ending at `now`, as a completed request would. (A guard whose
    /// request is its endpoint's only one in flight updates the estimate with a plain store, so
    /// a sample recorded here at that very moment can be overwritten.)
    pub fn record_rtt(&self, rtt: std::time::Duration, now: Instant, decay: Decay) {
        self.slot.record(
            rtt.as_nanos() as f64,
            nanos(self.epoch, now),
            decay,
            false,
            false,
        );
    }
}

impl Default for Load {
    fn default() -> Self {
        Load::new()
    }
}

/// Nanoseconds from `epoch` to `t`; saturates (a `u64` holds 584 years).
#[inline]
pub(crate) fn nanos(epoch: Instant, t: Instant) -> u64 {
    // In `u64` arithmetic: `Duration::as_nanos` widens to `u128`, a multiply and a check more
    // on both clock reads of every timed request.
    let d = t.saturating_duration_since(epoch);
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

impl Slot {
    /// Folds one sample into the estimate.
    ///
    /// `sole` says the caller is a guard whose request is the only one in flight on the
    /// endpoint. Every guard records before it stops counting in flight (and finishes with
    /// Release, read here with Acquire, so the updates of guards already finished are seen),
    /// so no other guard can be recording then: a plain store replaces the compare-and-swap,
    /// the one read-modify-write a completion would otherwise add to the two that count it.
    /// What remains is a request that starts *and* finishes between this guard's read of the
    /// count and its store, a few nanoseconds (an in-process endpoint on another core could,
    /// or any request while this thread is descheduled there): its sample is overwritten, and
    /// the estimate is still one the formula produced. (One function with a flag rather than
    /// two: with two, the guard's drop cost Peak-EWMA 6–9 ns more per request, measured.)
    fn record(&self, sample: f64, now: u64, decay: Decay, lower_bound: bool, sole: bool) {
        let mut prior_bits = self.rtt.load(Relaxed);
        if sole {
            if let Some(next) = self.next_estimate(prior_bits, sample, now, decay, lower_bound) {
                self.rtt.store(next.to_bits(), Relaxed);
                self.rtt_at.store(now, Relaxed);
            }
            return;
        }
        loop {
            let Some(next) = self.next_estimate(prior_bits, sample, now, decay, lower_bound) else {
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

    /// The estimate after `sample`, from the estimate `prior_bits`; `None` to leave it.
    #[inline]
    fn next_estimate(
        &self,
        prior_bits: u64,
        sample: f64,
        now: u64,
        decay: Decay,
        lower_bound: bool,
    ) -> Option<f64> {
        let prior = f64::from_bits(prior_bits);
        let prior = (prior > 0.0).then_some(prior);
        let since = now.saturating_sub(self.rtt_at.load(Relaxed)) as f64;
        // Zero would read as "no sample": keep estimates at least 1 ns.
        rtt::update(prior, sample, since, decay, lower_bound).map(|e| e.max(1.0))
    }
}

/// Counts one request in flight on a [`Load`] until dropped.
#[derive(Debug)]
#[must_use = "dropping the guard ends the request"]
pub struct InFlight {
    slot: &'static Slot,
    timer: Option<Timer>,
}

#[derive(Debug)]
struct Timer {
    epoch: Instant,
    at: u64,
    decay: Decay,
    completed: bool,
}

impl InFlight {
    /// Counts the request as failed, and as one more consecutive failure of the endpoint. It
    /// stays in flight until the guard drops.
    #[inline]
    pub fn failed(&self) {
        let slot = self.slot;
        slot.errors.fetch_add(1, Relaxed);
        let run = slot.consecutive.fetch_add(1, Relaxed) + 1;
        let threshold = slot.threshold.load(Relaxed);
        if threshold != 0 && run >= threshold {
            alarm::ring(slot.alarm.load(Relaxed));
        }
    }

    /// Counts the request as a success: the endpoint's run of consecutive failures ends. On
    /// the usual path (no run) this is one read of a line the request already wrote.
    #[inline]
    pub fn succeeded(&self) {
        let consecutive = &self.slot.consecutive;
        if consecutive.load(Relaxed) != 0 {
            consecutive.store(0, Relaxed);
        }
    }

    /// Marks the request complete: its time becomes a full RTT sample when the guard drops.
    /// Without it, a timed request's time counts only as a lower bound (it was cancelled).
    #[inline]
    pub fn completed(&mut self) {
        if let Some(timer) = &mut self.timer {
            timer.completed = true;
        }
    }
}

impl Drop for InFlight {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(timer) = &self.timer {
            let now = nanos(timer.epoch, Instant::now());
            let sample = now.saturating_sub(timer.at) as f64;
            let sole = self.slot.in_flight_synced() == 1;
            self.slot
                .record(sample, now, timer.decay, !timer.completed, sole);
            self.slot.done_at.store(now, Relaxed);
        }
        // The last touch of the slot: once every guard has finished, a released slot may be
        // reused for another endpoint.
        self.slot.finish();
    }
}
