use std::time::Duration;

/// A retry or hedging configuration that cannot work, naming the setting and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryConfigError {
    /// A budget window outside 1 s to 60 s (the bounds Finagle and tower use).
    #[error("retry budget ttl must be from 1s to 60s, got {0:?}")]
    InvalidTtl(Duration),
    /// A retry ratio that is negative, above 1000, or not a number.
    #[error("retry ratio must be a number from 0 to 1000, got {0}")]
    InvalidRetryRatio(f64),
    /// A total attempt count outside 1 to 10.
    #[error("max attempts must be from 1 to 10, got {0}")]
    InvalidMaxAttempts(u32),
    /// Backoff bounds with the base above the cap.
    #[error("retry backoff must satisfy base <= max, got base {base:?} and max {max:?}")]
    InvalidBackoff {
        /// The base interval given.
        base: Duration,
        /// The largest delay given.
        max: Duration,
    },
    /// A per-try timeout of zero: every attempt would time out before it is sent.
    #[error("per-try timeout must be greater than zero, got {0:?}")]
    ZeroPerTryTimeout(Duration),
    /// A hedging percentile outside the open interval 0 to 100, or not a number.
    #[error("hedge percentile must be greater than 0 and less than 100, got {0}")]
    InvalidPercentile(f64),
    /// Hedge delay bounds with the minimum above the maximum.
    #[error("hedge delay must satisfy min <= max, got min {min:?} and max {max:?}")]
    InvalidHedgeDelay {
        /// The smallest delay given.
        min: Duration,
        /// The largest delay given.
        max: Duration,
    },
    /// A hedge count outside 1 to 9 (each hedge is an attempt, and attempts stop at 10).
    #[error("max hedges must be from 1 to 9, got {0}")]
    InvalidMaxHedges(u32),
}

/// One attempt of a retried request took longer than the per-try timeout and was cancelled.
///
/// Returned by a [`Retry`](super::Retry) when the last attempt it was allowed to make timed out.
/// A timed-out attempt is always retryable (another endpoint may be faster), so this is what a
/// caller sees only once attempts or the budget have run out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attempt timed out after {timeout:?}")]
pub struct AttemptTimedOut {
    timeout: Duration,
}

impl AttemptTimedOut {
    pub(crate) fn new(timeout: Duration) -> Self {
        AttemptTimedOut { timeout }
    }

    /// The per-try timeout that expired.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
