use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::Service;

use super::backoff::Jitter;
use super::budget::Budget;
use super::future::ResponseFuture;
use super::hedge::HedgeState;
use super::layer::{Config, RetryLayer};
use super::policy::Policy;
use crate::balance::{Attempted, Reroute};
use crate::error::BoxError;

/// Retries failed requests on other endpoints, under a [`Budget`], and optionally hedges slow
/// ones. Made by [`RetryLayer`]; see the [module docs](super) for the algorithm.
///
/// `S` is a balancer that can avoid the endpoints a request has been sent to
/// ([`Reroute`], which [`Balance`](crate::balance::Balance) implements), so every retry and
/// hedge of a request goes to an endpoint it has not tried while there is one.
///
/// # Cost
///
/// A request that succeeds first time pays: one policy [`replay`](Policy::replay) (the copy
/// that makes a retry possible), one uncontended reference count on this clone's own state,
/// and a plain counter increment; the first request of every batch of 32 also reads the
/// clock, and the last adds the 32 to the shared budget. The inner service is cloned only
/// when a retry or hedge is sent. Timers exist only with a per-try timeout or hedging.
///
/// Deposits are batched: a clone deposits its requests every 32 requests, at its next request
/// after one of its requests drew on the budget, and when it is dropped. So a clone's last few
/// requests are missing from the budget for a while, and a batch is counted as if made at its
/// first request, so it leaves the window no later than its requests would have: both only
/// ever make the budget stricter. (A withdrawal runs on the response future, which cannot
/// reach the clone's plain counter, hence "at the next request" rather than before it.)
pub struct Retry<S, Pol> {
    inner: S,
    local: Arc<Local<S, Pol>>,
    config: Config,
    deposits: Deposits,
}

/// One clone's state, shared by the response futures of that clone only (so its reference
/// count stays in one core's cache).
pub(crate) struct Local<S, Pol> {
    pub(crate) shared: Arc<Shared<Pol>>,
    /// Cloned for each retry and hedge: the template that keeps `inner` free for new requests.
    pub(crate) spare: S,
    pub(crate) jitter: Jitter,
    /// Set by a response future that drew on the budget: the clone deposits its pending
    /// requests at its next request instead of waiting for a full batch.
    pub(crate) flush_soon: AtomicBool,
}

/// State shared by every clone of one `Retry`.
pub(crate) struct Shared<Pol> {
    pub(crate) policy: Arc<Pol>,
    pub(crate) budget: Arc<Budget>,
    pub(crate) config: Config,
    pub(crate) hedge: Option<HedgeState>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::RetryMetrics,
}

/// Requests of this clone not yet deposited in the budget.
struct Deposits {
    budget: Arc<Budget>,
    pending: u64,
    /// When the first pending request was made: no pending request is older.
    since: Instant,
}

impl<S: Clone, Pol> Retry<S, Pol> {
    pub(crate) fn new(inner: S, layer: &RetryLayer<Pol>) -> Self {
        let budget = layer
            .budget
            .clone()
            .unwrap_or_else(|| Arc::new(Budget::default()));
        let shared = Arc::new(Shared {
            policy: Arc::clone(&layer.policy),
            budget: Arc::clone(&budget),
            config: layer.config,
            hedge: layer.config.hedge.map(|h| h.state()),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::RetryMetrics::new(
                layer.name.as_ref().unwrap_or(&Arc::from("default")),
            ),
        });
        Retry {
            local: Arc::new(Local {
                shared,
                spare: inner.clone(),
                jitter: Jitter::new(layer.seed),
                flush_soon: AtomicBool::new(false),
            }),
            inner,
            config: layer.config,
            deposits: Deposits {
                budget,
                pending: 0,
                since: Instant::now(),
            },
        }
    }
}

impl<S, Pol> Retry<S, Pol> {
    /// The budget retries and hedges are drawn from.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.deposits.budget
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. (Retries and hedges use a clone made when this `Retry` was
    /// made or cloned, which changes here do not reach.)
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service. Requests not yet deposited in the budget are deposited now.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Pol, Req> Service<Req> for Retry<S, Pol>
where
    S: Reroute<Req> + Clone,
    S::Error: Into<BoxError>,
    Pol: Policy<Req, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, Pol>;

    #[inline(always)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // A relaxed load from the line the reference count below touches anyway.
        let soon = self.local.flush_soon.load(Relaxed);
        if self.deposits.add(soon) {
            self.local.flush_soon.store(false, Relaxed);
        }
        let backup = if self.config.max_attempts > 1 {
            self.local.shared.policy.replay(&req)
        } else {
            None
        };
        let mut attempted = Attempted::new();
        let first = if backup.is_some() {
            self.inner.call_avoiding(req, &mut attempted)
        } else {
            self.inner.call(req)
        };
        // Cloned after the balancer's own atomic add, which has just drained the store buffer
        // this locked instruction would otherwise wait for.
        let local = Arc::clone(&self.local);
        ResponseFuture::new(first, local, backup, attempted, &self.config)
    }
}

impl<S: Clone, Pol> Clone for Retry<S, Pol> {
    fn clone(&self) -> Self {
        let inner = self.inner.clone();
        Retry {
            local: Arc::new(Local {
                shared: Arc::clone(&self.local.shared),
                spare: inner.clone(),
                jitter: Jitter::new(self.local.jitter.next()),
                flush_soon: AtomicBool::new(false),
            }),
            inner,
            config: self.config,
            deposits: Deposits {
                budget: Arc::clone(&self.deposits.budget),
                pending: 0,
                // Set again at the clone's first request.
                since: self.deposits.since,
            },
        }
    }
}

impl<S: fmt::Debug, Pol> fmt::Debug for Retry<S, Pol> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("budget", &self.deposits.budget)
            .finish()
    }
}

impl<S, Pol> fmt::Debug for Local<S, Pol> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

impl Deposits {
    /// Counts one request; deposits the batch when it is full or `soon`. Returns whether it
    /// deposited.
    #[inline(always)]
    fn add(&mut self, soon: bool) -> bool {
        if self.pending == 0 {
            self.start_batch();
        }
        self.pending += 1;
        if self.pending >= FLUSH_EVERY || soon {
            self.flush();
            return true;
        }
        false
    }

    /// Dates the batch that starts with this request: the one clock read per batch. (Dating
    /// it at the previous deposit instead would lose every batch of a clone made or left idle
    /// longer than the budget's window ago.)
    #[cold]
    fn start_batch(&mut self) {
        self.since = Instant::now();
    }

    #[cold]
    fn flush(&mut self) {
        self.budget.deposit(self.pending, self.since);
        self.pending = 0;
    }
}

impl Drop for Deposits {
    fn drop(&mut self) {
        if self.pending > 0 {
            self.flush();
        }
    }
}

/// Requests a clone counts before adding them to the shared budget (and reading the clock).
const FLUSH_EVERY: u64 = 32;
