//! A service mesh as a library: service discovery, load balancing, health, TLS with workload
//! identity and authorization policy, as [Tower](tower) layers stacked around your own RPC
//! client.
//!
//! No sidecar, no control plane of our own: endpoints come from the registries you already run,
//! and every piece is an ordinary `tower::Service` or `tower::Layer`.
//!
//! ```text
//!  your code ──▶ [outer layers: timeout, retry, policy] ──▶ Balance<P, S> ──▶ endpoint client S
//!                                                               ▲
//!                        discovery (Static, Watch, any tower Discover) ── endpoints
//! ```
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
//! # Modules
//!
//! - [`endpoint`]: the [`Endpoint`](endpoint::Endpoint) model.
//! - [`discover`]: discovery sources and tower adapters.
//! - [`balance`]: the [`Balance`](balance::Balance) service and its pickers.
//! - [`load`]: per-endpoint load counters.
//! - [`health`]: what counts as a failure, outlier ejection, active health checks, panic
//!   threshold.
//! - [`retry`]: retries to another endpoint under a budget, and hedged requests.
//! - `identity`, `tls` (feature `tls`): workload identities and mutual TLS.
//! - `authz` (feature `authz`): authentication and authorization policy.
//!
//! # Feature flags
//!
//! No feature is on by default; each adds API and never changes a default behaviour.
//!
//! | feature | adds |
//! |---|---|
//! | `http` | request-key extractors (`Header`, `Path`, `Cookie`, `QueryParam`) for hashing pickers; the `5xx`/gRPC classifier (`health::HttpStatus`); body-length request tracking (`load::TrackBody`); the HTTP retry policy and replayable bodies (`retry::Http`, `retry::ReplayBody`) |
//! | `dns` | DNS discovery (`discover::dns::Dns`): A/AAAA or SRV records at their TTL |
//! | `etcd` | etcd v3 discovery (`discover::etcd::Etcd`) and self-registration (`Registration`) |
//! | `file` | file discovery (`discover::file::File`): a JSON or TOML endpoint list, reloaded on change |
//! | `tls` | rustls mTLS with workload identity (`identity`, `tls`); `tls-ring` and `tls-aws-lc-rs` add provider constructors |
//! | `authz` | authentication and authorization policy (`authz`): path normalizer, JWT, policy files, inbound and outbound layers |
//! | `full` | all of the above |
//!
//! # Stability
//!
//! Pre-1.0: minor versions may break the API, noted in the changelog. The minimum supported
//! Rust version is 1.88 (edition 2024) and is raised only in a minor version.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
pub mod authz;
pub mod balance;
pub mod discover;
pub mod endpoint;
pub mod error;
pub mod health;
#[cfg(any(feature = "tls", feature = "authz"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tls", feature = "authz"))))]
pub mod identity;
pub mod load;
pub mod retry;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use crate::balance::hash::HashConfigError;
pub use crate::error::{ConfigError, InvalidWeight, NoEndpoints, WatchClosed};
pub use crate::retry::RetryConfigError;
pub use tower::BoxError;
