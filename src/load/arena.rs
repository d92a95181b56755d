//! Where load counters live: fixed slots that are never freed, only reused.
//!
//! A request's guard must reach its endpoint's counters when the response arrives, long after
//! the snapshot it was picked from may have been replaced. Reference counting (an `Arc` per
//! guard) would cost two more atomic read-modify-writes per request — measured here, a third of
//! the whole request path. Instead each endpoint's counters sit in a slot with a `'static`
//! address, taken from a process-wide pool when the endpoint's [`Load`](super::Load) is made.
//! When the `Load` is dropped, no request can start on the slot any more; the slot waits in a
//! draining list until its last in-flight request finishes, and is then reused, zeroed, by the
//! next endpoint. Slots are never returned to the allocator, so the pool is as large as the
//! most endpoints (live plus draining) the process ever had at once, 128 bytes each.

use std::sync::Mutex;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// In-flight requests are the low 32 bits of [`Slot::state`]; finished requests the high 32.
const IN_FLIGHT_MASK: u64 = 0xFFFF_FFFF;
/// Adding this to `state` finishes a request: the low half (in flight, at least 1) wraps down
/// by one and carries one into the high half (finished).
const FINISH: u64 = 0xFFFF_FFFF;

/// One endpoint's counters, on their own two cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Slot {
    /// Finished requests (high 32 bits, modulo 2³²) and requests in flight (low 32 bits), so that
    /// starting and finishing a request are one atomic add each.
    state: AtomicU64,
    /// How many times the finished count wrapped past 2³².
    wraps: AtomicU64,
    pub(super) errors: AtomicU64,
    /// The RTT estimate in nanoseconds as `f64` bits; 0 before the first sample.
    pub(super) rtt: AtomicU64,
    /// When `rtt` was last updated, in nanoseconds since the owning `Load`'s epoch.
    pub(super) rtt_at: AtomicU64,
    /// When a timed request last found the endpoint idle, same unit.
    pub(super) busy_since: AtomicU64,
    /// When a timed request last finished, same unit.
    pub(super) done_at: AtomicU64,
    /// Failures since the last success (see `InFlight::failed`).
    pub(super) consecutive: AtomicU64,
    /// Consecutive failures at which `alarm` rings; 0 for never.
    pub(super) threshold: AtomicU64,
    /// The alarm (see `alarm.rs`) of the balancer watching this endpoint; 0 for none.
    pub(super) alarm: AtomicU64,
}

impl Slot {
    /// Counts a request in flight; returns how many were in flight before it.
    #[inline]
    pub(super) fn start(&self) -> u64 {
        self.state.fetch_add(1, Relaxed) & IN_FLIGHT_MASK
    }

    #[inline]
    pub(super) fn finish(&self) {
        // Release: a guard that later reads this count (Acquire, `in_flight_synced`) and finds
        // itself alone also sees the RTT update this guard made before finishing.
        let prev = self.state.fetch_add(FINISH, Release);
        if prev >> 32 == IN_FLIGHT_MASK {
            // The finished half just wrapped from 2³² - 1 to 0.
            self.wraps.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub(super) fn in_flight(&self) -> u64 {
        self.state.load(Relaxed) & IN_FLIGHT_MASK
    }

    /// [`in_flight`](Self::in_flight), ordered after every finish it counts (so after the RTT
    /// updates those guards made before finishing).
    #[inline]
    pub(super) fn in_flight_synced(&self) -> u64 {
        self.state.load(Acquire) & IN_FLIGHT_MASK
    }

    pub(super) fn requests(&self) -> u64 {
        loop {
            let wraps = self.wraps.load(Relaxed);
            let state = self.state.load(Relaxed);
            if self.wraps.load(Relaxed) == wraps {
                return (wraps << 32) + (state >> 32) + (state & IN_FLIGHT_MASK);
            }
        }
    }

    fn reset(&self) {
        for counter in [
            &self.state,
            &self.wraps,
            &self.errors,
            &self.rtt,
            &self.rtt_at,
            &self.busy_since,
            &self.done_at,
            &self.consecutive,
            &self.threshold,
            &self.alarm,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

struct Pool {
    free: Vec<&'static Slot>,
    draining: Vec<&'static Slot>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    draining: Vec::new(),
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // Every critical section leaves the lists consistent, so a poisoned lock is still usable.
    POOL.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A zeroed slot, reused if one has drained, else newly allocated (and never freed).
pub(super) fn acquire() -> &'static Slot {
    let mut pool = pool();
    let Pool { free, draining } = &mut *pool;
    // Slots whose last request has finished can be reused: nothing can start a new one.
    draining.retain(|slot| {
        let idle = slot.in_flight() == 0;
        if idle {
            free.push(slot);
        }
        !idle
    });
    match free.pop() {
        Some(slot) => {
            slot.reset();
            slot
        }
        None => Box::leak(Box::default()),
    }
}

/// Returns a slot whose owner is gone; it is reused once its requests have finished.
pub(super) fn release(slot: &'static Slot) {
    pool().draining.push(slot);
}
