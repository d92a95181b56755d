//! Per-endpoint load, kept in atomics beside the balancer's snapshot.
//!
//! Every endpoint in a balancer has one [`Load`]: counters of requests started, finished and
//! failed. In-flight is `started - finished`. Counting starts and finishes separately costs one
//! atomic increment at each end of a request and gives the total request count for free.
//!
//! The counters of different endpoints live on different cache lines (`Load` is aligned to 128
//! bytes, two lines, because adjacent-line prefetching pairs lines on x86), so traffic on one
//! busy endpoint does not slow its neighbours. All updates are `Relaxed`: each counter is
//! independently monotonic, and readers need no ordering between them beyond the one noted on
//! [`Load::in_flight`].
//!
//! The balancer hands an [`InFlight`] guard to every request's response future; dropping the
//! guard (the response arrived, failed, or the caller gave up) counts the request finished, so a
//! cancelled request can never leak in-flight load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Load counters of one endpoint.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Load {
    started: AtomicU64,
    finished: AtomicU64,
    errors: AtomicU64,
}

impl Load {
    /// Counters at zero.
    pub fn new() -> Self {
        Load::default()
    }

    /// Requests currently in flight.
    ///
    /// `finished` is read before `started`; since `finished` never exceeds `started` at any
    /// instant and `started` only grows, the difference never underflows.
    pub fn in_flight(&self) -> u64 {
        let finished = self.finished.load(Relaxed);
        let started = self.started.load(Relaxed);
        started.saturating_sub(finished)
    }

    /// Requests started in total.
    pub fn requests(&self) -> u64 {
        self.started.load(Relaxed)
    }

    /// Requests that finished with an error.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Counts a request started and returns the guard that counts it finished when dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Relaxed);
        InFlight {
            load: Arc::clone(self),
        }
    }
}

/// Counts one request in flight on a [`Load`] until dropped.
#[derive(Debug)]
#[must_use = "dropping the guard counts the request finished"]
pub struct InFlight {
    load: Arc<Load>,
}

impl InFlight {
    /// Counts the request as failed. It still counts finished when the guard drops.
    pub fn failed(&self) {
        self.load.errors.fetch_add(1, Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.finished.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_start_finish_and_errors() {
        let load = Arc::new(Load::new());
        let a = load.start();
        let b = load.start();
        assert_eq!((load.in_flight(), load.requests()), (2, 2));
        b.failed();
        drop(b);
        assert_eq!(
            (load.in_flight(), load.requests(), load.errors()),
            (1, 2, 1)
        );
        drop(a);
        assert_eq!(
            (load.in_flight(), load.requests(), load.errors()),
            (0, 2, 1)
        );
    }

    #[test]
    fn loads_do_not_share_cache_lines() {
        assert!(std::mem::align_of::<Load>() >= 128);
    }
}
