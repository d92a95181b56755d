use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::backoff::Backoff;
use super::budget::Budget;
use super::error::RetryConfigError;
use super::hedge::Hedge;
use super::service::Retry;

/// Wraps a balancer (any [`Reroute`](crate::balance::Reroute) service) in a [`Retry`].
///
/// Holds configuration only; every setting is checked when it is set.
///
/// # Defaults
///
/// - [`max_attempts`](Self::max_attempts): 3 in total, the first included (gRPC's and
///   linkerd's default; Envoy's is 2).
/// - [`budget`](Self::budget): a new [`Budget::default`] per `Retry` the layer builds (10 s,
///   10 a second, 20% of requests: tower's and linkerd's).
/// - [`per_try_timeout`](Self::per_try_timeout): none (Envoy's default); put an overall
///   timeout outside the retry layer.
/// - [`backoff`](Self::backoff): Envoy's, full jitter over `[0, (2^n − 1) × 25 ms]` capped at
///   250 ms before retry `n`.
/// - [`hedge`](Self::hedge): off.
/// - [`seed`](Self::seed): drawn from the OS once per layer.
/// - [`name`](Self::name): none; the metrics' `balancer` label is then `"default"` (the
///   [`Mesh`](crate::mesh::Mesh) builder gives it the balancer's name).
pub struct RetryLayer<Pol> {
    pub(crate) policy: Arc<Pol>,
    pub(crate) budget: Option<Arc<Budget>>,
    pub(crate) config: Config,
    pub(crate) seed: u64,
    pub(crate) name: Option<Arc<str>>,
}

/// A `Retry`'s settings, copied into every clone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) per_try_timeout: Option<Duration>,
    pub(crate) backoff: Backoff,
    pub(crate) hedge: Option<Hedge>,
}

impl<Pol> RetryLayer<Pol> {
    /// Retries requests as `policy` allows, with the defaults above.
    pub fn new(policy: Pol) -> Self {
        use rand::RngExt;
        RetryLayer {
            policy: Arc::new(policy),
            budget: None,
            config: Config {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                per_try_timeout: None,
                backoff: Backoff::default(),
                hedge: None,
            },
            seed: rand::rng().random(),
            name: None,
        }
    }

    /// Draws retries and hedges from `budget`, which may be shared with other layers (one
    /// budget for every route to a service, say) and read with [`Budget::stats`].
    pub fn budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// At most `n` attempts per request in total, the first and any hedges included; 1
    /// disables retries and hedges.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::InvalidMaxAttempts`] unless `n` is from 1 to 10.
    pub fn max_attempts(mut self, n: u32) -> Result<Self, RetryConfigError> {
        if !(1..=MAX_ATTEMPTS).contains(&n) {
            return Err(RetryConfigError::InvalidMaxAttempts(n));
        }
        self.config.max_attempts = n;
        Ok(self)
    }

    /// Cancels an attempt that has not answered within `timeout` (by dropping its future) and
    /// counts it as retryable. When no attempt remains, the request fails with
    /// [`AttemptTimedOut`](super::AttemptTimedOut). Costs one timer per attempt.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::ZeroPerTryTimeout`] for a zero timeout.
    pub fn per_try_timeout(mut self, timeout: Duration) -> Result<Self, RetryConfigError> {
        if timeout.is_zero() {
            return Err(RetryConfigError::ZeroPerTryTimeout(timeout));
        }
        self.config.per_try_timeout = Some(timeout);
        Ok(self)
    }

    /// Waits a random time in `[0, min((2^n − 1) × base, max)]` before retry `n` (Envoy's full
    /// jitter). `backoff(Duration::ZERO, Duration::ZERO)` retries at once.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::InvalidBackoff`] if `base > max`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Result<Self, RetryConfigError> {
        self.config.backoff = Backoff::new(base, max)?;
        Ok(self)
    }

    /// Sends hedged copies of slow requests, as `hedge` describes.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.config.hedge = Some(hedge);
        self
    }

    /// Seeds the backoff jitter, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Names the balancer these retries go through: the `balancer` label of the retry
    /// metrics (feature `metrics`), so they join that balancer's series.
    /// Give it the name given to [`Builder::name`](crate::balance::Builder::name).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<S: Clone, Pol> Layer<S> for RetryLayer<Pol> {
    type Service = Retry<S, Pol>;

    fn layer(&self, inner: S) -> Retry<S, Pol> {
        Retry::new(inner, self)
    }
}

impl<Pol> Clone for RetryLayer<Pol> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: Arc::clone(&self.policy),
            budget: self.budget.clone(),
            config: self.config,
            seed: self.seed,
            name: self.name.clone(),
        }
    }
}

impl<Pol> fmt::Debug for RetryLayer<Pol> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &std::any::type_name::<Pol>())
            .field("budget", &self.budget)
            .field("config", &self.config)
            .field("name", &self.name)
            .finish()
    }
}

const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const MAX_ATTEMPTS: u32 = 10;
