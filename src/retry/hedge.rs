use std::time::Duration;

use super::error::RetryConfigError;
use super::latency::Latencies;

/// When a [`Retry`](super::Retry) sends a second copy of a slow request to another endpoint
/// ("hedged requests", Dean and Barroso, "The Tail at Scale", 2013; gRPC's gRFC A6).
///
/// After the delay with no response, a copy goes to an endpoint not tried yet (if the policy
/// [replays](super::Policy::replay) the request, finds it
/// [hedgeable](super::Policy::hedgeable), and the [`Budget`](super::Budget) allows it); the
/// first successful response wins and the other attempt is dropped, which cancels it. If the
/// first attempt to finish fails retryably, the other is awaited before any retry. Hedges
/// count against the retry budget and against
/// [`max_attempts`](super::RetryLayer::max_attempts).
///
/// Hedging is for the first attempt's tail: once a retry has started, no further hedges are
/// sent for that request.
///
/// # Defaults
///
/// One hedge per request ([`Hedge::max_hedges`]), as Dean and Barroso describe: a single
/// extra copy cuts the tail most of the way at a few percent more load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hedge {
    delay: Delay,
    max_hedges: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Delay {
    Fixed(Duration),
    Percentile {
        p: f64,
        min: Duration,
        max: Duration,
    },
}

impl Hedge {
    /// Hedge after a fixed `delay`. Zero sends both copies at once.
    pub fn after(delay: Duration) -> Hedge {
        Hedge {
            delay: Delay::Fixed(delay),
            max_hedges: 1,
        }
    }

    /// Hedge after the `p`-th percentile of recent latencies (a request slower than
    /// `100 − p`% of recent ones gets a copy), clamped to `[min, max]`. Until enough
    /// latencies are recorded, the delay is `max`.
    ///
    /// The latencies are those of this route (one `Retry` and its clones) over the last 5 to
    /// 10 seconds: every attempt that gets a response, and every attempt cancelled by a winner
    /// (recorded as the time it had run, a lower bound). Recording costs two clock reads and
    /// two relaxed atomic increments per request; only a percentile hedge pays it.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::InvalidPercentile`] unless `0 < p < 100`;
    /// [`RetryConfigError::InvalidHedgeDelay`] if `min > max`.
    pub fn percentile(p: f64, min: Duration, max: Duration) -> Result<Hedge, RetryConfigError> {
        if !(p > 0.0 && p < 100.0) {
            return Err(RetryConfigError::InvalidPercentile(p));
        }
        if min > max {
            return Err(RetryConfigError::InvalidHedgeDelay { min, max });
        }
        Ok(Hedge {
            delay: Delay::Percentile { p, min, max },
            max_hedges: 1,
        })
    }

    /// Sends up to `n` hedges per request, each a delay after the previous one.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::InvalidMaxHedges`] unless `n` is from 1 to 9.
    pub fn max_hedges(mut self, n: u32) -> Result<Hedge, RetryConfigError> {
        if !(1..=MAX_HEDGES).contains(&n) {
            return Err(RetryConfigError::InvalidMaxHedges(n));
        }
        self.max_hedges = n;
        Ok(self)
    }

    pub(crate) fn hedges(&self) -> u32 {
        self.max_hedges
    }

    /// The state one route needs for this configuration.
    pub(crate) fn state(&self) -> HedgeState {
        match self.delay {
            Delay::Fixed(d) => HedgeState::Fixed(d),
            Delay::Percentile { p, min, max } => {
                HedgeState::Percentile(Latencies::new(p, min, max))
            }
        }
    }
}

/// A route's hedging delay source.
#[derive(Debug)]
pub(crate) enum HedgeState {
    Fixed(Duration),
    Percentile(Latencies),
}

impl HedgeState {
    /// The delay before a hedge is sent.
    #[inline]
    pub(crate) fn delay(&self) -> Duration {
        match self {
            HedgeState::Fixed(d) => *d,
            HedgeState::Percentile(latencies) => latencies.delay(),
        }
    }

    /// The latency record, if this delay needs one.
    #[inline]
    pub(crate) fn latencies(&self) -> Option<&Latencies> {
        match self {
            HedgeState::Fixed(_) => None,
            HedgeState::Percentile(latencies) => Some(latencies),
        }
    }
}

const MAX_HEDGES: u32 = 9;
