//! A service mesh as a library: service discovery, load balancing, health, retries, mutual TLS
//! with workload identity and authorization policy, as [Tower](tower) layers stacked around
//! the RPC client you already use (hyper, tonic, reqwest, a raw TCP codec).
//!
//! There is no sidecar and no control plane of our own: endpoints come from the registries you
//! already run (static lists, DNS, etcd, files), identities from your PKI, and every piece is an
//! ordinary `tower::Service` or `tower::Layer` that can be used alone.
//!
//! # The layers
//!
//! A request goes down the stack from your call to one endpoint's connection; discovery and
//! health work on the side, on the balancer's own background task, and never block a request.
//!
//! ```text
//!  your code: client.call(request)
//!      │
//!      ▼
//!  EgressLayer        outbound policy: may this service call that host, method and path?
//!      │              (authz; a denied call fails with EgressDenied and nothing is sent)
//!      ▼
//!  Retry              retries on another endpoint, per-try timeouts, hedges, under a budget
//!      │              (retry)
//!      ▼
//!  Balance<P, S>      loads the published snapshot (no lock), picks with the picker P,
//!      │              counts the endpoint's load (balance, load)
//!      │                   ▲
//!      │                   │ Arc<Snapshot>: the endpoints in service, one client each
//!      │              ┌────┴─────────────────────────────────────────────────────────
//!      │              │ driver task, one per balancer: applies discovery updates, makes
//!      │              │ endpoint clients (retried with backoff), outlier detection,
//!      │              │ active health checks, panic threshold (balance, health)
//!      │              └────▲─────────────────────────────────────────────────────────
//!      │                   │ Update::{Insert, Remove, Reset}
//!      │              discovery: Static, Watch, Dns, Etcd, File, Subset, any tower
//!      │              Discover (discover)
//!      ▼
//!  endpoint client S  one per endpoint, made by your MakeService<Endpoint> or by
//!      │              client::HttpClient (pooled hyper, HTTP/1 and HTTP/2)
//!      ▼
//!  TlsConnectLayer    TLS 1.3; the server proves the endpoint's expected identity inside
//!      │              the handshake, before a request byte is sent (tls)
//!      ▼
//!  TCP to the endpoint
//! ```
//!
//! Inbound, the same `tls` and `authz` modules protect your server: `TlsAcceptor` (mTLS, the
//! verified peer identity), then `AuthzLayer` (path normalization, JWT, policy) in front of
//! your service.
//!
//! # Quick start
//!
//! ```
//! use tower::{Service, ServiceExt};
//! use tower_mesh::balance::{Balance, Weighted};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::{Endpoint, Weight};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! // Your client, built once per endpoint. Here: a function that names the endpoint's port.
//! let make_client = tower::service_fn(|ep: Endpoint| async move {
//!     let port = ep.addr().port();
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: &'static str| async move {
//!         Ok::<_, std::convert::Infallible>(port)
//!     }))
//! });
//! let endpoints = Static::new([
//!     Endpoint::new("127.0.0.1:9001".parse()?),
//!     Endpoint::new("127.0.0.1:9002".parse()?).with_weight(Weight::new(3)?),
//! ]);
//! let mut balance = Balance::builder(Weighted::new()).build(endpoints, make_client)?;
//!
//! let mut served = [0; 2];
//! for _ in 0..8 {
//!     let port = balance.ready().await?.call("hello").await?;
//!     served[usize::from(port - 9001)] += 1;
//! }
//! assert_eq!(served, [2, 6]); // exact weight shares
//! # Ok(())
//! # }
//! ```
//!
//! `Balance` is `Clone + Send + Sync`: clone it into every task, no `Buffer` needed. Real
//! clients: `cargo run --example quickstart` balances real HTTP/1 requests over three local
//! servers; with feature `http`, `client::HttpClient` is a ready pooled hyper client per
//! endpoint (HTTP/1 and HTTP/2, over mTLS with `tls`); tonic clients run over `Balance` as they
//! are (see the [`manual`]).
//!
//! The common client stack (discovery, balancing with outlier detection, retries, outbound
//! policy, with TLS in the endpoint clients) is one expression with [`mesh::Mesh`], every
//! default listed in its docs; with feature `http`, `Mesh::http()` preconfigures it for HTTP
//! (Peak-EWMA, `5xx` as failures, retries of idempotent requests):
//!
//! ```
//! use tower::ServiceExt;
//! use tower_mesh::balance::PeakEwma;
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::mesh::Mesh;
//! use tower_mesh::retry::{AssumeIdempotent, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! # let make_client = tower::service_fn(|ep: Endpoint| async move {
//! #     let port = ep.addr().port();
//! #     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: &'static str| async move {
//! #         Ok::<_, std::convert::Infallible>(port)
//! #     }))
//! # });
//! let endpoints = Static::from_addrs(["127.0.0.1:9001".parse()?, "127.0.0.1:9002".parse()?]);
//! let client = Mesh::builder(PeakEwma::new())            // outlier detection is on
//!     .name("payments")
//!     .retry(RetryLayer::new(AssumeIdempotent::new()))    // under the default budget
//!     .build(endpoints, make_client)?;
//! let port = client.oneshot("hello").await?;
//! assert!(port == 9001 || port == 9002);
//! # Ok(())
//! # }
//! ```
//!
//! The layers stay usable one by one, the usual Tower way. Health is configured on the
//! balancer's [`Builder`](balance::Builder), retries wrap it:
//!
//! ```
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_mesh::balance::{Balance, PeakEwma};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::health::OutlierDetection;
//! use tower_mesh::retry::{AssumeIdempotent, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! # let make_client = tower::service_fn(|ep: Endpoint| async move {
//! #     let port = ep.addr().port();
//! #     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: &'static str| async move {
//! #         Ok::<_, std::convert::Infallible>(port)
//! #     }))
//! # });
//! let endpoints = Static::from_addrs(["127.0.0.1:9001".parse()?, "127.0.0.1:9002".parse()?]);
//! let balance = Balance::builder(PeakEwma::new())
//!     .outlier_detection(OutlierDetection::new()) // eject at 5 failures in a row
//!     .build(endpoints, make_client)?;
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new(AssumeIdempotent::new()).per_try_timeout(Duration::from_secs(1))?)
//!     .service(balance);
//! let port = client.oneshot("hello").await?;
//! assert!(port == 9001 || port == 9002);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! The mesh, from the outside in:
//!
#![cfg_attr(
    feature = "authz",
    doc = "- [`authz`] (feature `authz`): authentication and authorization policy: the path normalizer, JWT bearer tokens, the policy engine with TOML files and hot reload, the inbound [`AuthzLayer`](authz::AuthzLayer) and the outbound [`EgressLayer`](authz::EgressLayer)."
)]
#![cfg_attr(
    not(feature = "authz"),
    doc = "- `authz` (feature `authz`): authentication and authorization policy, inbound and outbound layers."
)]
//! - [`retry`]: retries to another endpoint under a budget, per-try timeouts, hedged requests.
//! - [`balance`]: the [`Balance`](balance::Balance) service, its [`Builder`](balance::Builder),
//!   and the pickers (round-robin, random, weighted, least-request, Peak-EWMA, consistent
//!   hashing, locality, label subsets).
//! - [`health`]: what counts as a failure, outlier ejection, active health checks, the panic
//!   threshold.
//! - [`load`]: per-endpoint load counters and the Peak-EWMA latency estimate.
//! - [`discover`]: discovery sources (static, pushed, DNS, etcd, files), deterministic
//!   subsetting, adapters to and from `tower::discover`.
//! - [`endpoint`]: the [`Endpoint`](endpoint::Endpoint) model (address, weight, zone, region,
//!   labels, expected identity).
#![cfg_attr(
    feature = "http",
    doc = "- [`client`] (feature `http`): [`HttpClient`](client::HttpClient), a `MakeService<Endpoint>` building one pooled hyper-util client (HTTP/1 and HTTP/2) per endpoint, over mTLS with `tls`."
)]
#![cfg_attr(
    not(feature = "http"),
    doc = "- `client` (feature `http`): a `MakeService<Endpoint>` building one pooled hyper client per endpoint."
)]
#![cfg_attr(
    feature = "tls",
    doc = "- [`tls`] (feature `tls`): rustls mutual TLS with workload identity: [`TlsConnectLayer`](tls::TlsConnectLayer), [`TlsAcceptor`](tls::TlsAcceptor), certificate rotation, CRLs."
)]
#![cfg_attr(
    not(feature = "tls"),
    doc = "- `tls` (feature `tls`): rustls mutual TLS with workload identity."
)]
#![cfg_attr(
    any(feature = "tls", feature = "authz"),
    doc = "- [`identity`] (features `tls` or `authz`): SPIFFE IDs and DNS names as workload identities, and the verified [`PeerIdentity`](identity::PeerIdentity)."
)]
#![cfg_attr(
    not(any(feature = "tls", feature = "authz")),
    doc = "- `identity` (features `tls` or `authz`): workload identities and the verified peer identity."
)]
//! - [`mesh`]: the common client stack in one expression ([`Mesh`](mesh::Mesh)), every default
//!   listed.
#![cfg_attr(
    feature = "metrics",
    doc = "- [`metrics`] (feature `metrics`): the counters and gauges recorded through the `metrics` facade, and their names."
)]
#![cfg_attr(
    not(feature = "metrics"),
    doc = "- `metrics` (feature `metrics`): counters and gauges through the `metrics` facade."
)]
#![cfg_attr(
    feature = "test-util",
    doc = "- [`test_util`] (feature `test-util`): test doubles for your own tests."
)]
#![cfg_attr(
    not(feature = "test-util"),
    doc = "- `test_util` (feature `test-util`): test doubles for your own tests."
)]
//! - [`error`]: the crate's error types; services return [`BoxError`] holding them, to
//!   downcast.
//! - [`manual`]: choosing a balancer, the defaults and why, the security model, how-tos.
//!
//! # Feature flags
//!
//! No feature is on by default; each adds API and never changes a default behaviour. On
//! docs.rs every feature is on, and items that need one are marked.
//!
//! | feature | adds |
//! |---|---|
//! | `http` | the hyper client (`client::HttpClient`: pooled hyper-util HTTP/1 and HTTP/2 per endpoint); request-key extractors (`Header`, `Path`, `Cookie`, `QueryParam`) for hashing pickers; the `5xx`/gRPC classifier (`health::HttpStatus`); body-length request tracking (`load::TrackBody`); the HTTP retry policy and replayable bodies (`retry::Http`, `retry::ReplayBody`) |
//! | `dns` | DNS discovery (`discover::dns::Dns`): A/AAAA or SRV records at their TTL |
//! | `etcd` | etcd v3 discovery (`discover::etcd::Etcd`) and self-registration (`Registration`) |
//! | `file` | file discovery (`discover::file::File`): a JSON or TOML endpoint list, reloaded on change |
//! | `tls` | rustls mTLS with workload identity (`identity`, `tls`); with `http`, the hyper client over mTLS. Pass your crypto provider in |
//! | `tls-ring`, `tls-aws-lc-rs` | `tls` plus rustls's provider of that name |
//! | `authz` | authentication and authorization policy (`authz`): path normalizer, JWT, policy files, inbound and outbound layers; implies `http` |
//! | `metrics` | counters and gauges per endpoint, balancer, retry layer, policy layer and TLS handshake through the `metrics` 0.24 facade (`metrics`) |
//! | `test-util` | test doubles (`test_util`): a controllable discovery source, a fixed-latency endpoint, an in-process test CA (with `tls`) |
//! | `full` | every feature above except `test-util` |
//!
//! # Sources
//!
//! Each module's docs teach its algorithm and cite where it comes from: power of two choices
//! (Mitzenmacher), Peak-EWMA (Finagle, linkerd), consistent hashing (Karger et al.), bounded
//! loads (Mirrokni, Thorup and Zadimoghaddam), Maglev (Eisenbud et al.), outlier detection
//! (Envoy, gRFC A50), retry budgets (Finagle, linkerd), hedging (Dean and Barroso),
//! deterministic subsetting (Finagle's aperture; Google's SRE book), locality (Envoy's
//! zone-aware routing), and the security model (Linkerd, Istio, SPIFFE). The
//! [`manual::defaults`] page lists every default value with its source.
//!
//! # Stability
//!
//! Pre-1.0: minor versions may break the API, noted in the changelog. Where a consistent-hash
//! key lands is stable across versions and platforms (see [`balance::hash`]). The minimum
//! supported Rust version is **1.88** (edition 2024); it is raised only in a minor version.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
pub mod authz;
pub mod balance;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod client;
pub mod discover;
pub mod endpoint;
pub mod error;
pub mod health;
#[cfg(any(feature = "tls", feature = "authz"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tls", feature = "authz"))))]
pub mod identity;
pub mod load;
pub mod manual;
pub mod mesh;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod retry;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use crate::balance::hash::HashConfigError;
pub use crate::error::{ConfigError, InvalidWeight, NoEndpoints, WatchClosed};
pub use crate::retry::RetryConfigError;
pub use tower::BoxError;
