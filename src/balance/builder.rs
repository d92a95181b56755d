use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_core::Stream;
use tokio::time::Instant;
use tower::Service;

use super::BalanceLayer;
use super::chunked::Chunked;
use super::driver::{Backoff, Driver, Published, Settings};
use super::pick::Pick;
use super::service::{Balance, Shared};
use super::snapshot::Snapshot;
use crate::discover::Update;
use crate::endpoint::Endpoint;
use crate::error::{BoxError, ConfigError};
use crate::health::{HealthCheck, HealthConfig, OutlierDetection, Probe, TransportErrors};

/// Configures and builds a [`Balance`].
///
/// # Defaults
///
/// - ready timeout: 10 s. Long enough for a first DNS or etcd answer and a connection to be
///   made; short enough that a caller with no endpoints learns it while its own deadline still
///   means something. Once the set has been empty this long, requests fail at once.
/// - reconnect backoff: 100 ms doubling to 10 s, with jitter, for endpoints whose client
///   could not be created.
/// - seed for the backoff jitter: from the operating system.
/// - name: `"default"`. It labels the balancer's metrics (feature `metrics`); name each
///   balancer of a process differently.
/// - metrics interval (feature `metrics`): `metrics::DEFAULT_INTERVAL`,
///   1 s, finer than usual scrape intervals.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower_mesh::balance::{Balance, RoundRobin};
/// use tower_mesh::discover::Static;
/// use tower_mesh::endpoint::Endpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// // A "client" per endpoint: here just a function answering with the endpoint's port.
/// let make = tower::service_fn(|ep: Endpoint| async move {
///     let port = ep.addr().port();
///     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: ()| async move {
///         Ok::<_, std::convert::Infallible>(port)
///     }))
/// });
/// let balance = Balance::builder(RoundRobin::new())
///     .ready_timeout(Duration::from_secs(2))
///     .build(Static::from_addrs(["127.0.0.1:1".parse()?]), make)?;
///
/// use tower::ServiceExt;
/// assert_eq!(balance.oneshot(()).await?, 1);
/// # Ok(())
/// # }
/// ```
pub struct Builder<P, C = TransportErrors> {
    picker: Arc<P>,
    classify: C,
    health: HealthConfig,
    ready_timeout: Duration,
    backoff: Backoff,
    seed: Option<u64>,
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    metrics_interval: Duration,
}

impl<P: Pick> Builder<P> {
    /// A builder with the given picker and the defaults.
    pub fn new(picker: P) -> Self {
        Builder {
            picker: Arc::new(picker),
            classify: TransportErrors,
            health: HealthConfig::default(),
            ready_timeout: Self::DEFAULT_READY_TIMEOUT,
            backoff: Backoff {
                min: Self::DEFAULT_BACKOFF_MIN,
                max: Self::DEFAULT_BACKOFF_MAX,
            },
            seed: None,
            name: Arc::from(DEFAULT_NAME),
            #[cfg(feature = "metrics")]
            metrics_interval: crate::metrics::DEFAULT_INTERVAL,
        }
    }
}

impl<P: Pick, C> Builder<P, C> {
    /// The default ready timeout.
    pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default first reconnect delay.
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
    /// The default longest reconnect delay.
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

    /// Sets the classifier that decides which results count as an endpoint's failures (in
    /// its error count and for [outlier detection](crate::health)). The default,
    /// [`TransportErrors`], counts every error and no response;
    /// `HttpStatus` (feature `http`) also counts `5xx` and gRPC
    /// `UNAVAILABLE`.
    pub fn classify<C2>(self, classify: C2) -> Builder<P, C2> {
        Builder {
            picker: self.picker,
            classify,
            health: self.health,
            ready_timeout: self.ready_timeout,
            backoff: self.backoff,
            seed: self.seed,
            name: self.name,
            #[cfg(feature = "metrics")]
            metrics_interval: self.metrics_interval,
        }
    }

    /// Names the balancer: the `balancer` label of its metrics (feature
    /// `metrics`), shown in its `Debug` output too. Default `"default"`. Give each balancer of
    /// a process its own name (the service it calls, say): balancers sharing a name and an
    /// endpoint add up in that endpoint's series.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The balancer's name (see [`name`](Self::name)).
    pub(crate) fn name_ref(&self) -> &Arc<str> {
        &self.name
    }

    /// How often the balancer's driver publishes its endpoints' counters and gauges (see
    /// [`metrics`](crate::metrics#when-values-are-published)); events are published at once
    /// regardless. Default `metrics::DEFAULT_INTERVAL`, 1 s.
    ///
    /// # Errors
    ///
    /// [`InvalidInterval`](crate::metrics::InvalidInterval) for zero.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_interval(
        mut self,
        interval: Duration,
    ) -> Result<Self, crate::metrics::InvalidInterval> {
        if interval.is_zero() {
            return Err(crate::metrics::InvalidInterval(interval));
        }
        self.metrics_interval = interval;
        Ok(self)
    }

    /// Turns on passive outlier detection: endpoints whose requests keep failing (as the
    /// [classifier](Self::classify) judges) are ejected for a while. Off by default.
    pub fn outlier_detection(mut self, detection: OutlierDetection) -> Self {
        self.health.outlier = Some(detection);
        self
    }

    /// Turns passive outlier detection off again (it is off unless
    /// [`outlier_detection`](Self::outlier_detection) turned it on).
    pub fn without_outlier_detection(mut self) -> Self {
        self.health.outlier = None;
        self
    }

    /// Turns on active health checks through `probe`, any `Service<Endpoint>` whose `Ok` means
    /// healthy (for example a `GET /healthz` on the endpoint). Off by default. See
    /// [`HealthCheck`].
    pub fn health_check<T>(mut self, check: HealthCheck, probe: T) -> Self
    where
        T: Service<Endpoint> + Clone + Send + Sync + 'static,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        self.health.check = Some((check, Probe::new(probe)));
        self
    }

    /// Below this share of endpoints in service, in percent, health is ignored and every
    /// connected endpoint is used (Envoy's panic threshold). Default 50; 0 turns panic mode
    /// off; above 100 is refused at build time.
    pub fn panic_threshold(mut self, percent: u32) -> Self {
        self.health.panic_threshold = percent;
        self
    }

    /// How long `poll_ready` waits for an endpoint after the set becomes empty (or the balancer
    /// is built) before failing with [`NoEndpoints`](crate::NoEndpoints). Zero is refused at
    /// build time.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The delay before retrying an endpoint whose client could not be created: `min` after the
    /// first failure, doubling up to `max`, each delay jittered down by up to half. Requires
    /// `0 < min <= max`, checked at build time.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Backoff { min, max };
        self
    }

    /// A fixed seed for the reconnect jitter, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration, naming the first bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ready_timeout.is_zero() {
            return Err(ConfigError::ZeroReadyTimeout(self.ready_timeout));
        }
        let Backoff { min, max } = self.backoff;
        if min.is_zero() || min > max {
            return Err(ConfigError::InvalidBackoff { min, max });
        }
        if self.health.panic_threshold > 100 {
            return Err(ConfigError::InvalidHealth {
                setting: "panic_threshold",
                value: self.health.panic_threshold.to_string(),
                expected: "a percentage from 0 to 100",
            });
        }
        if let Some(outlier) = &self.health.outlier {
            outlier.validate()?;
        }
        Ok(())
    }

    /// Builds the balancer and spawns its driver on the current Tokio runtime.
    ///
    /// `discover` is the endpoint source; `make` builds the client for one endpoint (a
    /// `MakeService<Endpoint>`: any `Service<Endpoint>` whose response is the client). Client
    /// creation failures are retried with backoff and never fail the balancer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming a bad setting, or [`ConfigError::NoRuntime`] outside a runtime.
    pub fn build<D, E, M, S>(self, discover: D, make: M) -> Result<Balance<P, S, C>, ConfigError>
    where
        D: Stream<Item = Result<Update, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
        M: Service<Endpoint, Response = S> + Send + 'static,
        M::Error: Into<BoxError>,
        M::Future: Send + 'static,
        S: Clone + Send + Sync + 'static,
    {
        self.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let _enter = runtime.enter();
        let now = Instant::now();
        let published = Arc::new(Published {
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot {
                table: self.picker.build(&[]),
                clients: Chunked::default(),
                loads: Chunked::default(),
                endpoints: Chunked::default(),
                empty_since: Some(now),
            })),
            pending: Mutex::new(Vec::new()),
            waiters: Mutex::new(Default::default()),
            epoch: now,
        });
        let seed = self.seed.unwrap_or_else(|| {
            use rand::RngExt;
            rand::rng().random()
        });
        let driver = Driver::new(
            Arc::clone(&self.picker),
            discover,
            make,
            Arc::clone(&published),
            Settings {
                backoff: self.backoff,
                seed,
                health: self.health,
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::BalancerMetrics::new(&self.name, self.metrics_interval),
            },
            now,
        );
        let handle = runtime.spawn(driver.run());
        let shared = Arc::new(Shared {
            published,
            ready_timeout: self.ready_timeout,
            clones: AtomicU64::new(0),
            driver: handle.abort_handle(),
        });
        Ok(Balance::from_parts(self.picker, self.classify, shared))
    }

    /// A [`tower::Layer`] that builds a balancer around a `MakeService<Endpoint>`, fed by a
    /// clone of `discover` each time it is applied.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming a bad setting.
    pub fn into_layer<D>(self, discover: D) -> Result<BalanceLayer<P, D, C>, ConfigError> {
        self.validate()?;
        Ok(BalanceLayer::from_builder(self, discover))
    }
}

impl<P, C: Clone> Clone for Builder<P, C> {
    fn clone(&self) -> Self {
        Builder {
            picker: Arc::clone(&self.picker),
            classify: self.classify.clone(),
            health: self.health.clone(),
            ready_timeout: self.ready_timeout,
            backoff: self.backoff,
            seed: self.seed,
            name: Arc::clone(&self.name),
            #[cfg(feature = "metrics")]
            metrics_interval: self.metrics_interval,
        }
    }
}

impl<P: fmt::Debug, C> fmt::Debug for Builder<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("picker", &self.picker)
            .field("ready_timeout", &self.ready_timeout)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// The name of a balancer that was not given one.
const DEFAULT_NAME: &str = "default";
