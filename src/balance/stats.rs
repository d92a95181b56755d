use std::fmt;

use std::time::Duration;

use tokio::time::Instant;

use crate::endpoint::Endpoint;
use crate::health::EjectReason;
use crate::load::Load;

/// A point-in-time view of one endpoint of a balancer, from
/// [`Balance::endpoints`](super::Balance::endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    endpoint: Endpoint,
    state: EndpointState,
    in_flight: u64,
    requests: u64,
    errors: u64,
    ejections: u64,
    in_service: bool,
    rtt: Option<Duration>,
}

/// Where an endpoint stands in its balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Its client exists and it takes requests.
    Ready,
    /// Its client is being created (the first attempt, or a retry after a failure).
    Connecting {
        /// Failed attempts so far.
        failures: u32,
    },
    /// Client creation failed; the next attempt waits out a backoff.
    Backoff {
        /// Failed attempts so far.
        failures: u32,
        /// The most recent failure, as text.
        last_error: String,
    },
    /// Its client exists, but [outlier detection](crate::health::OutlierDetection) ejected it
    /// for repeated failures; it takes requests again at `until` (or earlier, when active
    /// health checks pass). It still takes requests while the balancer panics.
    Ejected {
        /// When the ejection ends.
        until: Instant,
        /// The ejection multiplier: `k` for the `k`-th ejection in a recent run.
        multiplier: u32,
        /// Why.
        reason: EjectReason,
    },
    /// Its client exists, but [active health checks](crate::health::HealthCheck) failed; it
    /// returns when they pass again. It still takes requests while the balancer panics.
    Unhealthy {
        /// Failed probes in a row.
        failed_checks: u32,
        /// The most recent probe failure, as text.
        last_error: String,
    },
}

impl EndpointStats {
    pub(crate) fn new(
        endpoint: Endpoint,
        state: EndpointState,
        load: Option<&Load>,
        ejections: u64,
        in_service: bool,
    ) -> Self {
        EndpointStats {
            endpoint,
            state,
            in_flight: load.map_or(0, Load::in_flight),
            requests: load.map_or(0, Load::requests),
            errors: load.map_or(0, Load::errors),
            ejections,
            in_service,
            rtt: load.and_then(Load::last_rtt),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Its state.
    pub fn state(&self) -> &EndpointState {
        &self.state
    }

    /// Whether it is connected and healthy: [`EndpointState::Ready`].
    pub fn is_ready(&self) -> bool {
        self.state == EndpointState::Ready
    }

    /// Whether new requests may be sent to it now: it is ready, or it is ejected or unhealthy
    /// while the balancer panics (see [`health`](crate::health)).
    pub fn in_service(&self) -> bool {
        self.in_service
    }

    /// Its round-trip-time estimate as last updated, for balancers whose picker times requests
    /// ([`PeakEwma`](super::PeakEwma)); `None` otherwise or before the first sample.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// How many times outlier detection has ejected it since it was discovered.
    pub fn ejections(&self) -> u64 {
        self.ejections
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Requests sent to it since its client was created.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Of those, requests that failed.
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointState::Ready => f.write_str("ready"),
            EndpointState::Connecting { failures } => {
                write!(f, "connecting (failures: {failures})")
            }
            EndpointState::Backoff {
                failures,
                last_error,
            } => write!(f, "backing off after {failures} failures: {last_error}"),
            EndpointState::Ejected {
                multiplier, reason, ..
            } => write!(f, "ejected (ejection {multiplier}): {reason}"),
            EndpointState::Unhealthy {
                failed_checks,
                last_error,
            } => write!(
                f,
                "unhealthy after {failed_checks} failed checks: {last_error}"
            ),
        }
    }
}
