//! One endpoint's health, as its balancer's driver keeps it.

use std::fmt;

use tokio::time::Instant;

use super::config::OutlierDetection;

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EjectReason {
    /// This many failures in a row.
    ConsecutiveFailures {
        /// The run of failures when the endpoint was ejected.
        failures: u64,
    },
    /// Too many of the requests in one interval failed.
    FailureRate {
        /// Requests that failed in the interval.
        failures: u64,
        /// Requests finished in the interval.
        requests: u64,
    },
}

impl fmt::Display for EjectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EjectReason::ConsecutiveFailures { failures } => {
                write!(f, "{failures} consecutive failures")
            }
            EjectReason::FailureRate { failures, requests } => {
                write!(
                    f,
                    "{failures} of {requests} requests failed in one interval"
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ejection {
    pub(crate) until: Instant,
    pub(crate) reason: EjectReason,
}

/// The driver's health bookkeeping for one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// The current ejection multiplier: `k` for the `k`-th ejection in a recent run.
    pub(crate) multiplier: u32,
    /// Ejections since the endpoint was discovered.
    pub(crate) ejections: u64,
    pub(crate) ejected: Option<Ejection>,
    /// Out of service because of active checks.
    pub(crate) unhealthy: bool,
    /// Passing probes in a row (since the last failure or ejection).
    pub(crate) passes: u32,
    /// Failed probes in a row.
    pub(crate) check_failures: u32,
    pub(crate) last_check_error: Option<String>,
    /// Counter values at the start of the current failure-rate interval.
    pub(crate) base_finished: u64,
    pub(crate) base_errors: u64,
}

impl Record {
    /// Whether health takes the endpoint out of service (unless the balancer panics).
    pub(crate) fn out_of_service(&self) -> bool {
        self.ejected.is_some() || self.unhealthy
    }

    /// Whether `Balance::endpoints` has anything to say beyond "ready".
    pub(crate) fn is_notable(&self) -> bool {
        self.out_of_service() || self.ejections > 0
    }

    /// Ejects the endpoint at `now`; returns how long for.
    pub(crate) fn eject(
        &mut self,
        now: Instant,
        reason: EjectReason,
        config: &OutlierDetection,
    ) -> std::time::Duration {
        self.multiplier = self.multiplier.saturating_add(1);
        self.ejections += 1;
        self.passes = 0;
        let time = config.ejection_time(self.multiplier);
        self.ejected = Some(Ejection {
            until: now + time,
            reason,
        });
        time
    }
}
