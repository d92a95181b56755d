//! Health settings: passive outlier detection, active health checks, the panic threshold.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tower::{Service, ServiceExt};

use crate::endpoint::Endpoint;
use crate::error::{BoxError, ConfigError};

/// Passive outlier detection: ejects an endpoint whose requests keep failing, for a time that
/// grows with each repeat ejection.
///
/// Failures are what the balancer's [classifier](super::Classify) says they are. Two detectors,
/// each optional:
///
/// - **consecutive failures** (on, default 5): the failure that completes a run of this many
///   ejects the endpoint at once (Envoy's `consecutive_5xx`, linkerd's failure accrual);
/// - **failure rate** (off unless [`failure_rate`](Self::failure_rate) is set): every
///   [`interval`](Self::interval), an endpoint that finished at least `min_requests` requests in
///   the interval, of which at least `percent` failed, is ejected (gRFC A50's
///   failure-percentage ejection, Envoy's `failure_percentage_threshold`).
///
/// # Ejection
///
/// The `k`-th ejection of an endpoint lasts `base_ejection_time × k`, capped at
/// `max_ejection_time`; `k` falls by one for every interval the endpoint spends in service, so
/// an endpoint that failed once long ago starts again from the base time (gRFC A50, Envoy). At
/// most `max_ejection_percent` of the endpoints are ejected at once, and always at least one
/// may be: a failure of most of the fleet is the fleet's problem, and ejecting it would only
/// concentrate load on the rest. The share is checked when an endpoint would be ejected, of
/// the endpoints connected then; if the set later shrinks, ejections already made run their
/// course (as in Envoy), so for a moment more than the share may be out. An endpoint back from
/// ejection starts with a clean failure run.
///
/// # Defaults
///
/// | setting | default | from |
/// |---|---|---|
/// | consecutive failures | 5 | Envoy `consecutive_5xx` |
/// | failure rate | off; `FailureRate::new(85, 50)` when set | gRFC A50 / Envoy |
/// | interval | 10 s | gRFC A50 / Envoy |
/// | base ejection time | 30 s | gRFC A50 / Envoy |
/// | max ejection time | 300 s | gRFC A50 / Envoy |
/// | max ejection percent | 10 % | gRFC A50 / Envoy |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower_mesh::health::{FailureRate, OutlierDetection};
///
/// let detection = OutlierDetection::new()
///     .consecutive_failures(3)?
///     .failure_rate(FailureRate::new(50, 20)?)
///     .base_ejection_time(Duration::from_secs(5))?
///     .max_ejection_percent(30)?;
/// # Ok::<(), tower_mesh::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    pub(crate) consecutive: Option<u32>,
    pub(crate) failure_rate: Option<FailureRate>,
    pub(crate) interval: Duration,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejection_percent: u32,
}

impl OutlierDetection {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        OutlierDetection {
            consecutive: Some(5),
            failure_rate: None,
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }

    /// Ejects an endpoint at its `n`-th failure in a row; `n` from 1 to 1,000,000.
    pub fn consecutive_failures(mut self, n: u32) -> Result<Self, ConfigError> {
        if !(1..=1_000_000).contains(&n) {
            return Err(invalid("consecutive_failures", n, "from 1 to 1000000"));
        }
        self.consecutive = Some(n);
        Ok(self)
    }

    /// Turns the consecutive-failures detector off.
    pub fn without_consecutive_failures(mut self) -> Self {
        self.consecutive = None;
        self
    }

    /// Turns on failure-rate ejection, evaluated every [`interval`](Self::interval).
    pub fn failure_rate(mut self, rate: FailureRate) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// How often failure rates are evaluated (each over the interval just ended) and ejection
    /// multipliers of endpoints in service decay. From 10 ms to 1 hour.
    pub fn interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&interval) {
            return Err(invalid(
                "interval",
                format!("{interval:?}"),
                "from 10ms to 1h",
            ));
        }
        self.interval = interval;
        Ok(self)
    }

    /// The first ejection's length; later ones are multiples of it. Must be greater than zero;
    /// it must also be at most the max ejection time, which is checked when the balancer is
    /// built (so the two may be set in either order).
    pub fn base_ejection_time(mut self, base: Duration) -> Result<Self, ConfigError> {
        if base.is_zero() {
            return Err(invalid(
                "base_ejection_time",
                format!("{base:?}"),
                "greater than zero",
            ));
        }
        self.base_ejection = base;
        Ok(self)
    }

    /// The longest an ejection lasts. Must be greater than zero, and at least the base
    /// ejection time when the balancer is built.
    pub fn max_ejection_time(mut self, max: Duration) -> Result<Self, ConfigError> {
        if max.is_zero() {
            return Err(invalid(
                "max_ejection_time",
                format!("{max:?}"),
                "greater than zero",
            ));
        }
        self.max_ejection = max;
        Ok(self)
    }

    /// The largest share of endpoints ejected at once, in percent (0 to 100). At least one
    /// endpoint may always be ejected, whatever the share.
    pub fn max_ejection_percent(mut self, percent: u32) -> Result<Self, ConfigError> {
        if percent > 100 {
            return Err(invalid("max_ejection_percent", percent, "from 0 to 100"));
        }
        self.max_ejection_percent = percent;
        Ok(self)
    }

    /// Checks what the setters cannot check alone.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.base_ejection > self.max_ejection {
            return Err(invalid(
                "base_ejection_time",
                format!("{:?}", self.base_ejection),
                "at most max_ejection_time",
            ));
        }
        Ok(())
    }

    /// How many of `total` endpoints may be ejected at once.
    pub(crate) fn max_ejected(&self, total: usize) -> usize {
        (total * self.max_ejection_percent as usize / 100).max(1)
    }

    /// How long the ejection with multiplier `k` (1 for a first ejection) lasts.
    pub(crate) fn ejection_time(&self, k: u32) -> Duration {
        self.base_ejection
            .saturating_mul(k.max(1))
            .min(self.max_ejection)
    }
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection::new()
    }
}

/// Failure-rate ejection: at least `percent` of at least `min_requests` requests failed in one
/// [`interval`](OutlierDetection::interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRate {
    pub(crate) percent: u32,
    pub(crate) min_requests: u64,
}

impl FailureRate {
    /// `percent` from 1 to 100; `min_requests` at least 1 (gRFC A50's defaults are 85 and 50).
    pub fn new(percent: u32, min_requests: u64) -> Result<Self, ConfigError> {
        if !(1..=100).contains(&percent) {
            return Err(invalid("failure_rate.percent", percent, "from 1 to 100"));
        }
        if min_requests == 0 {
            return Err(invalid(
                "failure_rate.min_requests",
                min_requests,
                "at least 1",
            ));
        }
        Ok(FailureRate {
            percent,
            min_requests,
        })
    }

    /// Whether `failures` of `requests` trips the detector.
    pub(crate) fn trips(&self, requests: u64, failures: u64) -> bool {
        requests >= self.min_requests
            && u128::from(failures) * 100 >= u128::from(self.percent) * u128::from(requests)
    }
}

/// Active health checks: every endpoint is probed through your own probe service at an
/// interval, and taken out of service after `unhealthy_threshold` failed probes in a row until
/// `healthy_threshold` probes in a row succeed.
///
/// The probe is any `Service<Endpoint>` (an HTTP `GET /healthz`, a gRPC health check, a TCP
/// connect): `Ok` is healthy, an error or a probe slower than `timeout` is not. Probes of one
/// endpoint are `interval` apart, each shortened by a random amount of up to a tenth so that
/// the endpoints' probes spread out instead of arriving together; the first probe of a new
/// endpoint runs within a tenth of an interval of its client becoming ready. A new endpoint is
/// in service until its probes say otherwise.
///
/// Active checks also end a passive ejection early: an ejected endpoint whose probes pass
/// `healthy_threshold` times in a row returns to service (Envoy's
/// `successful_active_health_check_uneject_host`).
///
/// Endpoints out of service because of probes are not limited by the max ejection percent; the
/// [panic threshold](crate::balance::Builder::panic_threshold) keeps a failing fleet serving.
///
/// # Defaults
///
/// interval as given; timeout 1 s (at most the interval); unhealthy after 3 failed probes,
/// healthy after 2 passing ones. Every setter refuses a bad value naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
}

impl HealthCheck {
    /// Checks every `interval` (from 10 ms to 1 hour) with the defaults.
    pub fn new(interval: Duration) -> Result<Self, ConfigError> {
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&interval) {
            return Err(invalid(
                "health_check.interval",
                format!("{interval:?}"),
                "from 10ms to 1h",
            ));
        }
        Ok(HealthCheck {
            interval,
            timeout: Duration::from_secs(1).min(interval),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        })
    }

    /// How long one probe may take before it counts as failed: greater than zero and at most
    /// the interval.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() || timeout > self.interval {
            return Err(invalid(
                "health_check.timeout",
                format!("{timeout:?}"),
                "greater than zero and at most the interval",
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// Passing probes in a row that return an endpoint to service (at least 1).
    pub fn healthy_threshold(mut self, n: u32) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(invalid("health_check.healthy_threshold", n, "at least 1"));
        }
        self.healthy_threshold = n;
        Ok(self)
    }

    /// Failed probes in a row that take an endpoint out of service (at least 1).
    pub fn unhealthy_threshold(mut self, n: u32) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(invalid("health_check.unhealthy_threshold", n, "at least 1"));
        }
        self.unhealthy_threshold = n;
        Ok(self)
    }
}

fn invalid(setting: &'static str, value: impl fmt::Display, expected: &'static str) -> ConfigError {
    ConfigError::InvalidHealth {
        setting,
        value: value.to_string(),
        expected,
    }
}

/// A probe future, boxed: probes are cold (one per endpoint per interval).
pub(crate) type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A user's probe service, type-erased so the balancer's type does not name it.
#[derive(Clone)]
pub(crate) struct Probe {
    run: Arc<dyn Fn(Endpoint) -> ProbeFuture + Send + Sync>,
}

impl Probe {
    pub(crate) fn new<T>(probe: T) -> Self
    where
        T: Service<Endpoint> + Clone + Send + Sync + 'static,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        Probe {
            run: Arc::new(move |endpoint| {
                let probe = probe.clone();
                Box::pin(async move { probe.oneshot(endpoint).await.map(drop).map_err(Into::into) })
            }),
        }
    }

    pub(crate) fn check(&self, endpoint: Endpoint) -> ProbeFuture {
        (self.run)(endpoint)
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

/// Everything health-related a balancer was built with.
#[derive(Debug, Clone)]
pub(crate) struct HealthConfig {
    pub(crate) outlier: Option<OutlierDetection>,
    pub(crate) check: Option<(HealthCheck, Probe)>,
    /// Percent; 0 turns the panic mode off.
    pub(crate) panic_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            outlier: None,
            check: None,
            panic_threshold: 50,
        }
    }
}

impl HealthConfig {
    pub(crate) fn is_enabled(&self) -> bool {
        self.outlier.is_some() || self.check.is_some()
    }

    /// Whether `healthy` of `total` endpoints in service is below the panic threshold.
    pub(crate) fn panics(&self, healthy: usize, total: usize) -> bool {
        total > 0 && healthy * 100 < self.panic_threshold as usize * total
    }
}
