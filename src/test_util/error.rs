//! Errors of the test doubles.

use std::net::SocketAddr;

use crate::error::BoxError;

/// A [`MockDiscovery`](super::MockDiscovery) operation that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MockDiscoveryError {
    /// The stream half was dropped (the balancer reading it is gone).
    #[error("mock discovery stream dropped")]
    Closed,
    /// No endpoint with this address is in the set the handle sent.
    #[error("no endpoint with address {0} in the mock discovery set")]
    UnknownEndpoint(SocketAddr),
    /// An update changed the endpoint's address; remove it and insert the new one instead.
    #[error("update changed the endpoint address from {from} to {to}")]
    AddressChanged {
        /// The address updated.
        from: SocketAddr,
        /// The address the change returned.
        to: SocketAddr,
    },
}

/// A request to a [`FixedLatency`](super::FixedLatency) endpoint told to fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {addr} failed the request (test double)")]
pub struct EndpointFailed {
    addr: SocketAddr,
}

impl EndpointFailed {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        EndpointFailed { addr }
    }

    /// The endpoint that failed.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Client creation for a [`FixedLatency`](super::FixedLatency) endpoint told to refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {addr} refused the connection (test double)")]
pub struct ConnectRefused {
    addr: SocketAddr,
}

impl ConnectRefused {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        ConnectRefused { addr }
    }

    /// The endpoint that refused.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A certificate the [`TestCa`](super::TestCa) could not issue, naming the bad value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestCaError {
    /// A name (common name, SAN) that is not valid in a certificate, such as a URI or DNS name
    /// with characters outside IA5 (ASCII).
    #[error("invalid {kind} {value:?} for a certificate")]
    InvalidName {
        /// What the value was for: `"URI SAN"`, `"DNS SAN"`, `"common name"`.
        kind: &'static str,
        /// The value given.
        value: String,
    },
    /// An extension's object identifier that is not valid: fewer than two arcs, a first arc
    /// above 2, or a second arc of 40 or more under a first arc of 0 or 1 (X.660).
    #[error("invalid object identifier {0:?}")]
    InvalidOid(Vec<u64>),
    /// A validity period that ends before it starts, or lies outside the years 1970 to 9999.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    /// A trust domain that is not a valid SPIFFE trust domain name.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[error("invalid trust domain")]
    InvalidTrustDomain(#[source] crate::identity::InvalidIdentity),
    /// rcgen failed to build or sign the certificate.
    #[error("certificate generation failed")]
    Generate(#[source] BoxError),
}
