//! Errors.
//!
//! Services in this crate return [`BoxError`] (tower's), as Tower services do; every failure the crate
//! itself creates is one of the concrete public types below, so callers can
//! `downcast_ref::<NoEndpoints>()` and react. Errors from the user's own endpoint clients pass
//! through unchanged.
//!
//! `Display` describes only its own level, in lowercase; the cause, where there is one, is
//! available through [`std::error::Error::source`].

use std::time::Duration;

pub use tower::BoxError;

/// A balancer had no endpoint to send a request to within its ready timeout.
///
/// Returned by `poll_ready` once the balancer has waited its configured deadline for discovery
/// to produce a usable endpoint, and by a call that found the set empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no endpoints available after waiting {waited:?}")]
pub struct NoEndpoints {
    waited: Duration,
}

impl NoEndpoints {
    pub(crate) fn new(waited: Duration) -> Self {
        NoEndpoints { waited }
    }

    /// How long the balancer waited for an endpoint before giving up.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// A weight of zero (or a value that is not a number) where a weight was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid weight {value:?}: must be an integer from 1 to 4294967295")]
pub struct InvalidWeight {
    value: String,
}

impl InvalidWeight {
    pub(crate) fn new(value: String) -> Self {
        InvalidWeight { value }
    }

    /// The value that was refused, as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// A balancer configuration that cannot work, naming the setting and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The ready timeout was zero: every request would fail before discovery could answer.
    #[error("ready timeout must be greater than zero, got {0:?}")]
    ZeroReadyTimeout(Duration),
    /// The reconnect backoff bounds are zero or inverted.
    #[error("reconnect backoff must satisfy 0 < min <= max, got min {min:?} and max {max:?}")]
    InvalidBackoff {
        /// The smallest delay given.
        min: Duration,
        /// The largest delay given.
        max: Duration,
    },
    /// A weighted schedule limit of zero, or above the largest allowed.
    #[error("weighted schedule limit must be from 1 to 16777216 slots, got {0}")]
    InvalidScheduleLimit(usize),
    /// A Peak-EWMA decay that is zero, negative, NaN or infinite.
    #[error("invalid decay {0}: must be a positive, finite duration")]
    InvalidDecay(String),
    /// A round-trip time that is zero, negative, NaN or infinite.
    #[error("invalid round-trip time {0}: must be a positive, finite duration")]
    InvalidRtt(String),
    /// A power-of-d-choices count outside 2 to 10.
    #[error("invalid choice count {0}: must be from 2 to 10")]
    InvalidChoices(usize),
    /// A health setting (outlier detection, health checks, panic threshold) out of range.
    #[error("invalid {setting} {value}: must be {expected}")]
    InvalidHealth {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What the setting accepts.
        expected: &'static str,
    },
    /// A locality setting out of range.
    #[error("invalid locality {setting} {value}")]
    InvalidLocality {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: String,
    },
    /// The balancer was built outside a Tokio runtime, so its driver task cannot be spawned.
    #[error("balancer built outside a tokio runtime; call build from within one")]
    NoRuntime,
}

/// An update was pushed through a [`Watch`](crate::discover::Watch) handle after the balancer
/// reading it was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("watch receiver dropped")]
pub struct WatchClosed(pub(crate) ());
