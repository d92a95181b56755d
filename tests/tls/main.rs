//! TLS and workload identity, end to end: real rustls handshakes over loopback TCP with a PKI
//! generated in-process (rcgen). Groups follow shared/SECURITY.md: A (chain, validity, EKU,
//! protocol), B (SPIFFE identity), G (rotation), plus configuration errors and hyper-util.
//! Every rejection asserts that the handler behind the acceptor was never called.

mod chain;
mod config;
mod pki;
mod protocol;
mod rotation;
mod spiffe;
mod support;
