//! Test doubles for your own tests (feature `test-util`): a discovery source you drive by
//! hand, endpoint clients with a set latency, and an in-process certificate authority.
//!
//! | double | stands in for | use it to test |
//! |---|---|---|
//! | [`MockDiscovery`] | a registry (DNS, etcd, a file) | how your stack reacts to endpoints appearing, changing, leaving, and to discovery errors |
//! | [`FixedLatency`] | your per-endpoint clients (a `MakeService<Endpoint>`) | which endpoint got each request, latency-aware picking, retries, timeouts and ejection, under paused time |
//! | [`TestCa`] | your PKI (SPIRE, a corporate CA) | mTLS with SPIFFE or DNS identities, expired or wrongly issued certificates, revocation (with `tls`: [`TestCert::tls_config`]) |
//!
//! All three are deterministic: no sleeps, no real network, and with `tokio::time::pause()`
//! no real time. [`MockDiscovery::synced`] waits until a [`Balance`](crate::balance::Balance)
//! has published what it was sent, so a test can assert right after a change.
//!
//! Enable the feature for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! tower-mesh = { version = "0.1", features = ["test-util", "tls"] }
//! ```
//!
//! The CA uses [rcgen](https://docs.rs/rcgen) (ECDSA P-256 keys, X.509 v3 as in RFC 5280) and
//! issues leaves after the SPIFFE
//! [X.509-SVID](https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md) profile by
//! default; [`CertSpec`] departs from it on purpose for negative tests.
//!
//! # Examples
//!
//! A balancer over two endpoints with different latencies, driven by hand under paused time:
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceExt;
//! use tower_mesh::balance::{Balance, PeakEwma};
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::test_util::{FixedLatency, MockDiscovery};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! let (fast, slow) = ("127.0.0.1:9001".parse()?, "127.0.0.1:9002".parse()?);
//! let endpoints = FixedLatency::new(Duration::from_millis(5));
//! endpoints.set_latency(slow, Duration::from_millis(200));
//!
//! let (discovery, updates) = MockDiscovery::new();
//! let balance = Balance::builder(PeakEwma::with_seed(7)).build(updates, endpoints.clone())?;
//! discovery.reset([Endpoint::new(fast), Endpoint::new(slow)])?;
//! discovery.synced().await?;
//!
//! for _ in 0..100 {
//!     balance.clone().oneshot(()).await?;
//! }
//! assert!(endpoints.requests(fast) > 90, "Peak-EWMA prefers the fast endpoint");
//! # Ok(())
//! # }
//! ```

mod ca;
#[cfg(feature = "tls")]
mod ca_tls;
mod discovery;
mod error;
mod latency;
mod spec;

pub use self::ca::{TestCa, TestCert};
pub use self::discovery::{MockDiscovery, MockUpdates};
pub use self::error::{ConnectRefused, EndpointFailed, MockDiscoveryError, TestCaError};
pub use self::latency::{FixedLatency, FixedLatencyClient, LatencyFuture};
pub use self::spec::{CertSpec, KeyUsage, Usage};

#[cfg(test)]
mod tests;
