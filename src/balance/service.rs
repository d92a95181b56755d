use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};
use pin_project_lite::pin_project;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};
use tower::Service;
use tower::util::Oneshot;

use super::driver::{Published, lock};
use super::pick::{Loads, Pick, PickRequest};
use super::reroute::{Attempted, Reroute};
use super::respond::Respond;
use super::snapshot::Snapshot;
use super::stats::EndpointStats;
use crate::error::{BoxError, NoEndpoints};
use crate::health::TransportErrors;
use crate::load::InFlight;
use crate::load::nanos_since;

/// A load balancer over a discovered endpoint set: a [`tower::Service`] that sends each request
/// to one endpoint's client, chosen by the picker `P`.
///
/// `Balance` is `Clone + Send + Sync` and needs no `Buffer` to be shared: clone it into every
/// task. A background driver task (spawned when the balancer is built, aborted when the last
/// clone is dropped) applies discovery updates, creates one client per endpoint through the
/// user's `MakeService<Endpoint>`, and publishes an immutable snapshot of the ready endpoints.
/// The request path only reads that snapshot:
///
/// 1. `poll_ready` is `Ready` as soon as the snapshot has an endpoint. With none, it waits for
///    discovery until the ready timeout has passed since the set became empty, then fails
///    with [`NoEndpoints`], and keeps failing at once (fail fast) until an endpoint appears.
/// 2. `call` picks an endpoint, clones its client, counts the request in flight on that
///    endpoint, and returns a future that drives the client's own `poll_ready` and `call`.
///
/// A removed endpoint takes no new requests from the next pick on; requests already sent to it
/// hold their own client clone and finish normally.
///
/// Each clone has its own picker cursor and its own cached reference to the snapshot, so clones
/// on different cores share no written memory except the per-endpoint load counters. One
/// consequence: a clone that sits idle keeps the snapshot it last used (and so the clients of
/// endpoints removed since) alive until its next request or until it is dropped.
///
/// Endpoint clients must be `Clone` (hyper-util's pooled `Client`, tonic's `Channel` and
/// reqwest's `Client` are; hyper's low-level `SendRequest` is not); wrap a client that is not in
/// `tower::buffer::Buffer`.
///
/// `C` is the [classifier](crate::health::Classify) that decides which results count as an
/// endpoint's failures (in [`EndpointStats::errors`] and for
/// [outlier detection](crate::health)); the default counts every error and no response.
pub struct Balance<P: Pick, S, C = TransportErrors> {
    picker: Arc<P>,
    classify: C,
    cache: SnapshotCache<P::Table, S>,
    cursor: P::Cursor,
    shared: Arc<Shared<P::Table, S>>,
    /// Where every endpoint's load counts time from (the driver gives them one epoch).
    epoch: Instant,
    id: u64,
    wait: Option<Wait>,
}

/// A clone's cached pointer to the published snapshot: one atomic load per check.
type SnapshotCache<T, S> = Cache<Arc<ArcSwap<Snapshot<T, S>>>, Arc<Snapshot<T, S>>>;

pub(crate) struct Shared<T, S> {
    pub(crate) published: Arc<Published<T, S>>,
    pub(crate) ready_timeout: Duration,
    pub(crate) clones: AtomicU64,
    pub(crate) driver: AbortHandle,
}

impl<T, S> Drop for Shared<T, S> {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A clone waiting for a non-empty set; while it exists, the clone's waker is registered.
struct Wait {
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<P: Pick, S, C> Balance<P, S, C> {
    pub(crate) fn from_parts(
        picker: Arc<P>,
        classify: C,
        shared: Arc<Shared<P::Table, S>>,
    ) -> Self {
        let id = shared.clones.fetch_add(1, Relaxed);
        Balance {
            cursor: picker.cursor(id),
            picker,
            classify,
            cache: Cache::new(Arc::clone(&shared.published.snapshot)),
            epoch: shared.published.epoch,
            shared,
            id,
            wait: None,
        }
    }

    /// Every endpoint discovery currently names, sorted by address, with its state and request
    /// counters: ready endpoints with their load, and endpoints whose client is still being
    /// created or is backing off after a failure.
    pub fn endpoints(&self) -> Vec<EndpointStats> {
        let published = &self.shared.published;
        let pending = lock(&published.pending).clone();
        published.snapshot.load().stats(&pending)
    }

    /// The number of endpoints ready to take requests now.
    pub fn ready_len(&self) -> usize {
        self.shared.published.snapshot.load().clients.len()
    }

    /// The picker.
    pub fn picker(&self) -> &P {
        &self.picker
    }

    /// Stops waiting: drops the deadline timer and the registered waker.
    fn unregister(&mut self) {
        self.wait = None;
        lock(&self.shared.published.waiters).remove(&self.id);
    }
}

impl<P: Pick, S, C: Clone> Clone for Balance<P, S, C> {
    fn clone(&self) -> Self {
        Balance::from_parts(
            Arc::clone(&self.picker),
            self.classify.clone(),
            Arc::clone(&self.shared),
        )
    }
}

impl<P: Pick, S, C> Drop for Balance<P, S, C> {
    fn drop(&mut self) {
        if self.wait.is_some() {
            self.unregister();
        }
    }
}

impl<P: Pick + fmt::Debug, S, C> fmt::Debug for Balance<P, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("picker", &self.picker)
            .field("ready", &self.ready_len())
            .field("clone", &self.id)
            .finish()
    }
}

impl<P, S, C, Req> Service<Req> for Balance<P, S, C>
where
    P: PickRequest<Req>,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Respond<S::Response>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if !self.cache.load().is_empty() {
            if self.wait.is_some() {
                self.unregister();
            }
            return Poll::Ready(Ok(()));
        }
        self.poll_empty(cx)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        self.dispatch(req, None)
    }
}

impl<P, S, C, Req> Reroute<Req> for Balance<P, S, C>
where
    P: PickRequest<Req>,
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Respond<S::Response>,
{
    #[inline(always)]
    fn call_avoiding(&mut self, req: Req, attempted: &mut Attempted) -> Self::Future {
        self.dispatch(req, Some(attempted))
    }

    fn abandon(future: Pin<&mut Self::Future>) {
        if let StateProj::Call { guard, .. } = future.project().state.project()
            && let Some(guard) = guard.take()
        {
            // Counted once; the guard drops here, so the request stops counting in flight.
            guard.failed();
        }
    }
}

impl<P: Pick, S, C: Clone> Balance<P, S, C> {
    /// Picks an endpoint and sends `req` to it. With `attempted`, an endpoint not yet tried
    /// is preferred and the one chosen is recorded.
    ///
    /// Always inlined, like `call`, `call_avoiding`, the response future's `poll` and the
    /// guard's drop: in a large crate (the benchmark binary, measured) the compiler otherwise
    /// keeps them out of line, and the response future, built in pieces in one function and
    /// copied whole by the next, stalls on store forwarding. Round robin went from 36 to 15 ns
    /// per request with it, Peak-EWMA from 121 to 105 (10 endpoints).
    #[inline(always)]
    fn dispatch<Req>(
        &mut self,
        req: Req,
        attempted: Option<&mut Attempted>,
    ) -> ResponseFuture<S, Req, C>
    where
        P: PickRequest<Req>,
        S: Service<Req> + Clone,
    {
        let snapshot = self.cache.load();
        // The one clock read at request start, only for pickers that time requests.
        let epoch = self.epoch;
        let timing = self.picker.rtt_decay().map(|decay| {
            let now = Instant::now();
            (decay, now, nanos_since(epoch, now))
        });
        let loads = Loads::chunked(&snapshot.loads, timing.map(|(_, now, nanos)| (now, nanos)));
        let mut picked = self
            .picker
            .pick(&snapshot.table, &mut self.cursor, &loads, &req);
        if let Some(attempted) = attempted {
            // A first attempt has nothing to avoid: record where it goes and move on.
            if attempted.is_empty()
                && let Some(i) = picked
                && i < loads.len()
            {
                attempted.record(loads.get(i).key());
            } else {
                reroute(
                    &*self.picker,
                    &mut self.cursor,
                    &mut picked,
                    attempted,
                    &snapshot.table,
                    &loads,
                    &req,
                );
            }
        }
        match picked.and_then(|i| Some((i, snapshot.clients.get(i)?, snapshot.loads.get(i)?))) {
            Some((index, client, load)) => {
                tracing::trace!(
                    endpoint = ?snapshot.endpoints.get(index).map(|e| e.addr()),
                    in_flight = load.in_flight(),
                    "picked"
                );
                ResponseFuture {
                    state: State::Call {
                        guard: Some(match timing {
                            Some((decay, _, nanos)) => {
                                // The driver gives every load the balancer's epoch.
                                debug_assert!(load.epoch() == epoch, "a load outside the epoch");
                                load.start_timed_at(nanos, decay)
                            }
                            None => load.start(),
                        }),
                        fut: Oneshot::new(client.clone(), req),
                        classify: self.classify.clone(),
                    },
                }
            }
            None => ResponseFuture {
                state: State::Failed {
                    error: Some(self.picker.refusal(&snapshot.table, &req)),
                },
            },
        }
    }
}

/// A later attempt: moves `picked` off the endpoints already tried.
#[cold]
#[inline(never)]
fn reroute<P: PickRequest<Req>, Req>(
    picker: &P,
    cursor: &mut P::Cursor,
    picked: &mut Option<usize>,
    attempted: &mut Attempted,
    table: &P::Table,
    loads: &Loads<'_>,
    req: &Req,
) {
    *picked = picked.map(|i| {
        avoid(
            i,
            attempted,
            loads,
            || picker.pick(table, cursor, loads, req),
            |i| picker.eligible(table, req, i),
        )
    });
}

/// The endpoint to use instead of `picked` when it was already attempted: a fresh pick (twice
/// at most, so load-aware pickers still choose among the rest), then the next untried endpoint
/// in slot order that the picker deems eligible. Records the result in `attempted`.
fn avoid(
    picked: usize,
    attempted: &mut Attempted,
    loads: &Loads<'_>,
    mut repick: impl FnMut() -> Option<usize>,
    eligible: impl Fn(usize) -> bool,
) -> usize {
    let tried = |i: usize| attempted.contains(loads.get(i).key());
    let mut chosen = picked;
    if tried(chosen) {
        for _ in 0..2 {
            match repick() {
                Some(i) if i < loads.len() && !tried(i) => {
                    chosen = i;
                    break;
                }
                _ => {}
            }
        }
    }
    if tried(chosen) {
        let n = loads.len();
        if let Some(i) = (1..n)
            .map(|k| (picked + k) % n)
            .find(|&i| !tried(i) && eligible(i))
        {
            chosen = i;
        }
    }
    attempted.record(loads.get(chosen).key());
    chosen
}

impl<P: Pick, S, C> Balance<P, S, C> {
    #[cold]
    fn poll_empty(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let timeout = self.shared.ready_timeout;
        let since = self.cache.load().empty_since.unwrap_or_else(Instant::now);
        let deadline = since + timeout;
        if Instant::now() >= deadline {
            self.unregister();
            return Poll::Ready(Err(NoEndpoints::new(timeout).into()));
        }
        lock(&self.shared.published.waiters).insert(self.id, cx.waker().clone());
        // Re-check after registering: the driver may have published between the two loads.
        if !self.cache.load().is_empty() {
            self.unregister();
            return Poll::Ready(Ok(()));
        }
        let wait = match &mut self.wait {
            Some(wait) if wait.deadline == deadline => wait,
            _ => self.wait.insert(Wait {
                deadline,
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
            }),
        };
        if wait.sleep.as_mut().poll(cx).is_ready() {
            self.unregister();
            return Poll::Ready(Err(NoEndpoints::new(timeout).into()));
        }
        Poll::Pending
    }
}

#[cold]
fn polled_after_completion() -> BoxError {
    "balance response future polled after completion".into()
}

pin_project! {
    /// The response future of a [`Balance`]: the chosen endpoint client's response, with the
    /// request counted in flight on that endpoint until this future completes or is dropped.
    pub struct ResponseFuture<S: Service<Req>, Req, C = TransportErrors> {
        #[pin]
        state: State<S, Req, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S: Service<Req>, Req, C> {
        Call {
            #[pin]
            fut: Oneshot<S, Req>,
            guard: Option<InFlight>,
            classify: C,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Respond<S::Response>,
{
    type Output = Result<C::Response, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Call {
                fut,
                guard,
                classify,
            } => {
                let result = ready!(fut.poll(cx)).map_err(Into::into);
                match guard.take() {
                    Some(guard) => Poll::Ready(classify.respond(result, guard)),
                    None => Poll::Ready(Err(polled_after_completion())),
                }
            }
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| NoEndpoints::new(Duration::ZERO).into()))),
        }
    }
}

impl<S: Service<Req>, Req, C> fmt::Debug for ResponseFuture<S, Req, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
