//! The authorization layers end to end: hyper HTTP/1 servers on loopback behind the library's
//! `TlsAcceptor` (real mTLS, rcgen PKI generated in-process), with `ConnectionInfoLayer` and
//! `AuthzLayer` in front of an echo application that records the request-target, headers and
//! extensions it receives; mesh clients through `TlsConnectLayer`, and raw HTTP/1 bytes for the
//! requests hyper's client refuses to send. Egress runs `EgressLayer` around a `Balance`.
//!
//! Modules follow shared/SECURITY.md: `policy` (C1, C3, C4, C9, C11–C12, C17, A17), `paths`
//! (D1–D9, D11, D14–D16, D18), `headers` (E2, E8–E10, E12; E6 below), `jwt` (F18), `grpc`
//! (status mapping), `egress`. Every rejection asserts that the application was never called;
//! every accepted attack asserts the exact path the application received.
//!
//! E6 (HTTP/2 connection coalescing: SNI for one name, `:authority` for another) is not run:
//! the dev-dependencies build hyper with `http1` only, so these servers speak HTTP/1, where a
//! connection has no second authority to coalesce. The unit tests check that an HTTP/2
//! request whose `:authority` conflicts with its `Host` is refused; comparing `:authority`
//! with the TLS server identity is not implemented (see `AuthzLayer`'s docs, "HTTP/2").
#![cfg(all(feature = "authz", feature = "tls"))]

mod egress;
mod grpc;
mod headers;
mod jwt;
mod paths;
// The TLS suite's in-process PKI (rcgen), shared rather than copied.
#[allow(dead_code)]
#[path = "../tls/pki.rs"]
mod pki;
mod policy;
mod support;
