use std::fmt;

use crate::endpoint::Endpoint;
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
}

impl EndpointStats {
    pub(crate) fn new(endpoint: Endpoint, state: EndpointState, load: &Load) -> Self {
        EndpointStats {
            endpoint,
            state,
            in_flight: load.in_flight(),
            requests: load.requests(),
            errors: load.errors(),
        }
    }

    pub(crate) fn pending(endpoint: Endpoint, state: EndpointState) -> Self {
        EndpointStats {
            endpoint,
            state,
            in_flight: 0,
            requests: 0,
            errors: 0,
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

    /// Whether it takes requests.
    pub fn is_ready(&self) -> bool {
        self.state == EndpointState::Ready
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
        }
    }
}
