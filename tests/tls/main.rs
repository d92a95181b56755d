//! TLS and workload identity, end to end: real rustls handshakes over loopback TCP with a PKI
//! generated in-process (rcgen). Groups follow shared/SECURITY.md: A (chain, validity, EKU,
//! protocol versions, timeouts), B (SPIFFE identity), G (rotation, bundle parsing), plus
//! configuration errors and hyper-util. Every rejection asserts that the handler behind the
//! acceptor was never called.

#![cfg(feature = "tls")]

mod bundle;
mod chain;
mod config;
mod hostile;
mod malformed;
mod pki;
mod protocol;
mod revocation;
mod rotation;
mod spiffe;
mod spiffe_bundle;
mod support;
mod timeouts;
mod versions;
mod wire;
