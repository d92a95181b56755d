//! The common client stack in one expression: discovery → balance (with health) → retry →
//! outbound policy, with TLS inside the endpoint clients.
//!
//! ```text
//!  call ──▶ Egress (outbound policy) ──▶ Retry (budget, hedging) ──▶ Balance ──▶ endpoint client
//!            optional, feature authz       optional                    │           (TLS inside,
//!                                                                       │            e.g. client::HttpClient)
//!                                        discovery ─▶ driver: health, outlier ejection, checks
//! ```
//!
//! [`Mesh::builder`] starts from a picker and takes the settings of every layer; [`build`]
//! spawns the balancer's driver and returns the stacked service. Its type is spelled out
//! (`Egress<Retry<Balance<P, S, C>, Pol>>` with every layer on): no boxing, no allocation per
//! request, and each layer stays reachable (`get_ref`) for [`Balance::endpoints`] and the retry
//! [`Budget`](crate::retry::Budget).
//!
//! # Defaults
//!
//! What differs from the layers' own defaults is marked *(mesh)*: a one-call stack is the
//! production path, so it turns on what a production client wants.
//!
//! | setting | default | source |
//! |---|---|---|
//! | picker | given to [`Mesh::builder`]; `Mesh::http` uses [`PeakEwma`] | linkerd, Finagle |
//! | failure classifier | [`TransportErrors`]; `Mesh::http`: `HttpStatus` (`5xx`, gRPC `UNAVAILABLE`) | Envoy `consecutive_5xx` |
//! | outlier detection | *(mesh)* **on**, [`OutlierDetection::new`]: eject at 5 consecutive failures for 30 s × ejections (≤ 300 s), at most 10 % of endpoints | Envoy, gRFC A50 |
//! | active health checks | off (needs your probe: [`MeshBuilder::health_check`]) | Envoy |
//! | panic threshold | 50 % | Envoy |
//! | ready timeout | 10 s | |
//! | reconnect backoff | 100 ms doubling to 10 s, jittered | |
//! | retries | off; `Mesh::http`: *(mesh)* **on** with `retry::Http` (idempotent methods only, never a `501`) | linkerd, Envoy |
//! | retry budget | 20 % of requests over 10 s plus 10 per second | linkerd, tower |
//! | attempts | 3 in all (2 retries), backoff 25 ms to 250 ms, fully jittered | Envoy |
//! | hedging, per-try timeout | off ([`RetryLayer::hedge`], [`RetryLayer::per_try_timeout`]) | "The Tail at Scale" |
//! | outbound policy | off (`MeshBuilder::egress`, feature `authz`) | |
//! | TLS | in the endpoint clients you pass to [`build`] (e.g. `client::HttpClient` with a `TlsConfig`) | |
//!
//! # The same stack, layer by layer
//!
//! Every piece is an ordinary Tower layer, so the builder is a shorthand, not a requirement:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_mesh::balance::{Balance, RoundRobin};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::health::OutlierDetection;
//! use tower_mesh::mesh::Mesh;
//! use tower_mesh::retry::{AssumeIdempotent, RetryLayer};
//!
//! let make = tower::service_fn(|ep: Endpoint| async move {
//!     let port = ep.addr().port();
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: ()| async move {
//!         Ok::<_, std::convert::Infallible>(port)
//!     }))
//! });
//! let endpoints = || Static::from_addrs(["127.0.0.1:7001".parse().unwrap()]);
//!
//! // One expression...
//! let stack = Mesh::builder(RoundRobin::new())
//!     .retry(RetryLayer::new(AssumeIdempotent::new()))
//!     .build(endpoints(), make.clone())?;
//! assert_eq!(stack.oneshot(()).await?, 7001);
//!
//! // ...or the same layers by hand.
//! let balance = Balance::builder(RoundRobin::new())
//!     .outlier_detection(OutlierDetection::new())
//!     .build(endpoints(), make)?;
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::new(AssumeIdempotent::new()))
//!     .service(balance);
//! assert_eq!(stack.oneshot(()).await?, 7001);
//! # Ok(())
//! # }
//! ```
//!
//! [`build`]: MeshBuilder::build
//! [`Balance::endpoints`]: crate::balance::Balance::endpoints
//! [`PeakEwma`]: crate::balance::PeakEwma
//! [`TransportErrors`]: crate::health::TransportErrors
//! [`OutlierDetection::new`]: crate::health::OutlierDetection::new
//! [`RetryLayer::hedge`]: crate::retry::RetryLayer::hedge
//! [`RetryLayer::per_try_timeout`]: crate::retry::RetryLayer::per_try_timeout

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tower::layer::util::Identity;
use tower::{Layer, Service};

use crate::balance::{Balance, Builder, Pick};
use crate::discover::Update;
use crate::endpoint::Endpoint;
use crate::error::{BoxError, ConfigError};
use crate::health::{HealthCheck, OutlierDetection, TransportErrors};
use crate::retry::RetryLayer;

/// Entry points of the one-call stack builder; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Mesh(());

impl Mesh {
    /// A stack balancing with `picker`, with outlier detection on and no retries or policy
    /// until you add them. See the [defaults](self#defaults).
    pub fn builder<P: Pick>(picker: P) -> MeshBuilder<P> {
        MeshBuilder {
            balance: Balance::builder(picker).outlier_detection(OutlierDetection::new()),
            retry: Identity::new(),
            egress: Identity::new(),
        }
    }

    /// The HTTP stack: [`PeakEwma`](crate::balance::PeakEwma), `5xx` and gRPC `UNAVAILABLE`
    /// counted as failures ([`HttpStatus`](crate::health::HttpStatus)), outlier detection on,
    /// and retries of idempotent requests ([`retry::Http`](crate::retry::Http)) under the
    /// default budget. Requests must be replayable: `http::Request<B>` with a `B: Clone` body,
    /// or one wrapped in [`ReplayBody`](crate::retry::ReplayBody).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_mesh::BoxError> {
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower_mesh::client::HttpClient;
    /// use tower_mesh::discover::Static;
    /// use tower_mesh::mesh::Mesh;
    ///
    /// let endpoints = Static::from_addrs(["127.0.0.1:8080".parse()?]);
    /// let stack = Mesh::http()
    ///     .name("payments")
    ///     .build(endpoints, HttpClient::<Full<Bytes>>::new())?;
    /// // `stack` is a `Service<http::Request<Full<Bytes>>>`; with `HttpClient::builder().tls(..)`
    /// // every endpoint connection is mutual TLS verifying the endpoint's identity.
    /// # drop(stack);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http() -> MeshBuilder<
        crate::balance::PeakEwma,
        crate::health::HttpStatus,
        RetryLayer<crate::retry::Http>,
    > {
        MeshBuilder {
            balance: Balance::builder(crate::balance::PeakEwma::new())
                .classify(crate::health::HttpStatus)
                .outlier_detection(OutlierDetection::new()),
            retry: RetryLayer::new(crate::retry::Http::new()),
            egress: Identity::new(),
        }
    }
}

/// Configures the stack [`Mesh::builder`] starts; [`build`](Self::build) makes it.
///
/// `R` is the retry layer ([`Identity`] while there is none), `A` the outbound policy layer.
pub struct MeshBuilder<P, C = TransportErrors, R = Identity, A = Identity> {
    balance: Builder<P, C>,
    retry: R,
    egress: A,
}

impl<P: Pick, C, R, A> MeshBuilder<P, C, R, A> {
    /// Names the balancer (its metrics' `balancer` label, and its `Debug` output). See
    /// [`Builder::name`].
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        self.map_balance(|b| b.name(name))
    }

    /// What counts as an endpoint's failure. See [`Builder::classify`].
    pub fn classify<C2>(self, classify: C2) -> MeshBuilder<P, C2, R, A> {
        MeshBuilder {
            balance: self.balance.classify(classify),
            retry: self.retry,
            egress: self.egress,
        }
    }

    /// Replaces the default outlier detection. See [`Builder::outlier_detection`].
    pub fn outlier_detection(self, detection: OutlierDetection) -> Self {
        self.map_balance(|b| b.outlier_detection(detection))
    }

    /// Turns passive outlier detection off: no endpoint is ejected for its failures (retries
    /// still go elsewhere).
    pub fn without_outlier_detection(self) -> Self {
        self.map_balance(Builder::without_outlier_detection)
    }

    /// Turns on active health checks through `probe`. See [`Builder::health_check`].
    pub fn health_check<T>(self, check: HealthCheck, probe: T) -> Self
    where
        T: Service<Endpoint> + Clone + Send + Sync + 'static,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        self.map_balance(|b| b.health_check(check, probe))
    }

    /// The panic threshold, in percent. See [`Builder::panic_threshold`].
    pub fn panic_threshold(self, percent: u32) -> Self {
        self.map_balance(|b| b.panic_threshold(percent))
    }

    /// How long readiness waits for a first endpoint. See [`Builder::ready_timeout`].
    pub fn ready_timeout(self, timeout: Duration) -> Self {
        self.map_balance(|b| b.ready_timeout(timeout))
    }

    /// The reconnect backoff for endpoint clients. See [`Builder::reconnect_backoff`].
    pub fn reconnect_backoff(self, min: Duration, max: Duration) -> Self {
        self.map_balance(|b| b.reconnect_backoff(min, max))
    }

    /// A fixed seed for the balancer's jitter, for reproducible tests. (The retry layer has
    /// its own: [`RetryLayer::seed`].)
    pub fn seed(self, seed: u64) -> Self {
        self.map_balance(|b| b.seed(seed))
    }

    /// Any other balancer setting, on the underlying [`Builder`].
    pub fn map_balance(self, f: impl FnOnce(Builder<P, C>) -> Builder<P, C>) -> Self {
        MeshBuilder {
            balance: f(self.balance),
            retry: self.retry,
            egress: self.egress,
        }
    }

    /// Retries (and, if configured, hedges) failed requests on other endpoints through
    /// `layer`, replacing any retry layer set before.
    pub fn retry<Pol>(self, layer: RetryLayer<Pol>) -> MeshBuilder<P, C, RetryLayer<Pol>, A> {
        MeshBuilder {
            balance: self.balance,
            retry: layer,
            egress: self.egress,
        }
    }

    /// No retries (for `Mesh::http`, which turns them on).
    pub fn without_retry(self) -> MeshBuilder<P, C, Identity, A> {
        MeshBuilder {
            balance: self.balance,
            retry: Identity::new(),
            egress: self.egress,
        }
    }

    /// Checks every request against an outbound policy before it is balanced: a denied
    /// request never reaches an endpoint (and is never retried).
    #[cfg(feature = "authz")]
    #[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
    pub fn egress(
        self,
        layer: crate::authz::EgressLayer,
    ) -> MeshBuilder<P, C, R, crate::authz::EgressLayer> {
        MeshBuilder {
            balance: self.balance,
            retry: self.retry,
            egress: layer,
        }
    }

    /// Checks the configuration, naming the first bad value.
    ///
    /// # Errors
    ///
    /// As [`Builder::validate`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.balance.validate()
    }

    /// Builds the stack and spawns the balancer's driver on the current Tokio runtime.
    ///
    /// `discover` is the endpoint source, `make` builds each endpoint's client (TLS goes
    /// there, e.g. `client::HttpClient` with a `TlsConfig`). See [`Builder::build`].
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming a bad setting, or [`ConfigError::NoRuntime`] outside a runtime.
    #[allow(clippy::type_complexity)]
    pub fn build<D, E, M, S>(
        self,
        discover: D,
        make: M,
    ) -> Result<<A as Layer<<R as Layer<Balance<P, S, C>>>::Service>>::Service, ConfigError>
    where
        D: Stream<Item = Result<Update, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
        M: Service<Endpoint, Response = S> + Send + 'static,
        M::Future: Send + 'static,
        M::Error: Into<BoxError>,
        S: Clone + Send + Sync + 'static,
        R: Layer<Balance<P, S, C>> + Stage,
        A: Layer<R::Service> + Stage,
    {
        let name = Arc::clone(self.balance.name_ref());
        let (retry, egress) = (self.retry.named(&name), self.egress.named(&name));
        let balance = self.balance.build(discover, make)?;
        Ok(egress.layer(retry.layer(balance)))
    }
}

/// A layer [`MeshBuilder`] stacks around the balancer: at [`build`](MeshBuilder::build) it
/// takes the balancer's [name](MeshBuilder::name) for its metrics, unless it was named
/// already. Implemented for no layer ([`Identity`]), [`RetryLayer`] and, with `authz`,
/// `EgressLayer` (whose `layer` label it sets, with `metrics`).
pub trait Stage: Sized {
    /// This layer, named `name` unless named already.
    #[doc(hidden)]
    fn named(self, name: &Arc<str>) -> Self;
}

impl Stage for Identity {
    fn named(self, _: &Arc<str>) -> Self {
        self
    }
}

impl<Pol> Stage for RetryLayer<Pol> {
    fn named(self, name: &Arc<str>) -> Self {
        if self.name.is_some() {
            self
        } else {
            self.name(Arc::clone(name))
        }
    }
}

#[cfg(feature = "authz")]
impl Stage for crate::authz::EgressLayer {
    fn named(self, name: &Arc<str>) -> Self {
        #[cfg(feature = "metrics")]
        if !self.is_named() {
            return self.name(Arc::clone(name));
        }
        let _ = name;
        self
    }
}

impl<P: fmt::Debug, C, R: fmt::Debug, A: fmt::Debug> fmt::Debug for MeshBuilder<P, C, R, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshBuilder")
            .field("balance", &self.balance)
            .field("retry", &self.retry)
            .field("egress", &self.egress)
            .finish()
    }
}
