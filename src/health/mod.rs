//! Endpoint health: passive outlier detection from request outcomes, active health checks
//! through a probe of your own, and a panic threshold.
//!
//! Health is part of the balancer's writer side: its driver task decides, and publishes an
//! endpoint set without the endpoints health takes out of service. The request path is
//! unchanged (it never checks a health flag): a success costs one read of a counter on a cache
//! line the request has just written, a failure one more atomic add, and the failure that
//! completes a run of consecutive failures wakes the driver.
//!
//! ```text
//!  response ──classify──▶ Failure ──▶ errors += 1, run += 1 ──(run ≥ n)──▶ driver: eject
//!                         Success ──▶ run = 0                              (≤ max %, timed)
//!  driver, every interval ──▶ failure rate per endpoint ──▶ eject
//!  probe task per endpoint ──▶ unhealthy / healthy / early return
//!  publish: endpoints in service, or all of them while fewer than the panic threshold are
//! ```
//!
//! Configure it on the [`Builder`](crate::balance::Builder):
//! [`classify`](crate::balance::Builder::classify) (what a failure is),
//! [`outlier_detection`](crate::balance::Builder::outlier_detection),
//! [`health_check`](crate::balance::Builder::health_check) and
//! [`panic_threshold`](crate::balance::Builder::panic_threshold). Without outlier detection or
//! health checks (the default) no endpoint is ever taken out of service for its failures, as in
//! Envoy and gRPC, where both are opt-in.
//!
//! # Panic threshold
//!
//! When fewer than the panic threshold (default 50 %) of the endpoints with a client are in
//! service, the balancer ignores health and uses them all (Envoy's panic mode): with most of
//! a fleet failing its checks, the checks are more likely wrong than the fleet, and sending
//! everything to the few left would overload them.
//!
//! # Observing
//!
//! [`Balance::endpoints`](crate::balance::Balance::endpoints) shows each endpoint's
//! [`EndpointState`](crate::balance::EndpointState) (`Ejected`, `Unhealthy`), its ejection
//! count and whether it is in service; ejections, returns and panic mode are `tracing` events
//! (warn when an endpoint leaves service or panic mode begins, info when it returns).
//!
//! # Sources
//!
//! - Outlier detection: Envoy's
//!   [outlier detection](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier)
//!   (`consecutive_5xx`, growing ejection times, `max_ejection_percent`) and gRPC's
//!   [gRFC A50](https://github.com/grpc/proposal/blob/master/A50-xds-outlier-detection.md)
//!   (failure-percentage ejection and its defaults); linkerd's failure accrual for consecutive
//!   failures.
//! - Active health checks: Envoy's
//!   [health checking](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/health_checking)
//!   (healthy and unhealthy thresholds, interval jitter, active checks ending a passive
//!   ejection).
//! - Panic threshold: Envoy's
//!   [panic threshold](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/panic_threshold)
//!   (50 %).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tower_mesh::balance::{Balance, LeastRequest};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::health::{HealthCheck, OutlierDetection};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! let make = tower::service_fn(|_: Endpoint| async {
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(|req: u32| async move {
//!         Ok::<_, std::convert::Infallible>(req)
//!     }))
//! });
//! // A probe: any Service<Endpoint>; Ok means healthy. A real one would send GET /healthz.
//! let probe = tower::service_fn(|_: Endpoint| async { Ok::<_, std::convert::Infallible>(()) });
//! let balance = Balance::builder(LeastRequest::new())
//!     .outlier_detection(OutlierDetection::new().consecutive_failures(3)?)
//!     .health_check(HealthCheck::new(Duration::from_secs(5))?, probe)
//!     .build(Static::from_addrs(["127.0.0.1:8080".parse()?]), make)?;
//! # drop(balance);
//! # Ok(())
//! # }
//! ```

mod classify;
mod config;
mod record;

pub use self::classify::{Classify, Outcome, TransportErrors, is_caller_error};
#[cfg(feature = "http")]
pub use self::classify::{HttpStatus, is_http_failure};
pub use self::config::{FailureRate, HealthCheck, OutlierDetection};
pub use self::record::EjectReason;

pub(crate) use self::config::{HealthConfig, Probe};
pub(crate) use self::record::Record;

#[cfg(test)]
mod tests;
