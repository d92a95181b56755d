//! [`FixedLatency`]: endpoint clients that answer after a set latency, for balancer tests.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::error::{ConnectRefused, EndpointFailed};
use crate::endpoint::Endpoint;
use crate::error::BoxError;

/// A `MakeService<Endpoint>` for tests: the client it makes for an endpoint answers every
/// request with that endpoint's address after a fixed latency, counts the requests it gets,
/// and fails when told to.
///
/// Everything can be changed while the balancer runs, through any clone (they share their
/// settings and counters), per endpoint address, before or after its client exists:
///
/// - [`set_latency`](FixedLatency::set_latency) and
///   [`set_default_latency`](FixedLatency::set_default_latency): how long a request takes
///   (read when the request is sent);
/// - [`set_failing`](FixedLatency::set_failing): requests fail with [`EndpointFailed`] after
///   the latency, as a server answering errors would;
/// - [`set_refusing`](FixedLatency::set_refusing): creating the client fails with
///   [`ConnectRefused`], as a connection refused would;
/// - [`requests`](FixedLatency::requests), [`in_flight`](FixedLatency::in_flight),
///   [`clients_made`](FixedLatency::clients_made): what each endpoint saw.
///
/// The latency is a [`tokio::time::sleep`], so under paused time
/// (`#[tokio::test(start_paused = true)]` or `tokio::time::pause()`) a request takes exactly
/// its latency of virtual time, and a test runs in no real time at all.
///
/// The client accepts any request type and answers with the endpoint's [`SocketAddr`], so a
/// test sees which endpoint served each request.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceExt;
/// use tower_mesh::endpoint::Endpoint;
/// use tower_mesh::test_util::{EndpointFailed, FixedLatency};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// let addr = "127.0.0.1:9001".parse()?;
/// let endpoints = FixedLatency::new(Duration::from_millis(10));
/// let client = endpoints.clone().oneshot(Endpoint::new(addr)).await?;
///
/// let start = tokio::time::Instant::now();
/// assert_eq!(client.clone().oneshot("ping").await?, addr);
/// assert_eq!(start.elapsed(), Duration::from_millis(10)); // exact, under paused time
///
/// endpoints.set_failing(addr, true);
/// let err = client.oneshot("ping").await.unwrap_err();
/// assert_eq!(err.downcast_ref::<EndpointFailed>().unwrap().addr(), addr);
/// assert_eq!(endpoints.requests(addr), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FixedLatency {
    shared: Arc<Shared>,
}

/// The client [`FixedLatency`] makes for one endpoint. Cheap to clone; clones share the
/// endpoint's settings and counters.
#[derive(Clone)]
pub struct FixedLatencyClient {
    addr: SocketAddr,
    knobs: Arc<Knobs>,
    shared: Arc<Shared>,
}

pin_project! {
    /// The response future of a [`FixedLatencyClient`].
    pub struct LatencyFuture {
        #[pin]
        sleep: Sleep,
        result: Option<Result<SocketAddr, EndpointFailed>>,
        _in_flight: InFlight,
    }
}

impl FixedLatency {
    /// Every endpoint answers after `latency` unless set otherwise.
    pub fn new(latency: Duration) -> Self {
        FixedLatency {
            shared: Arc::new(Shared {
                default_latency: Mutex::new(latency),
                endpoints: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets the latency of every endpoint that has none of its own.
    pub fn set_default_latency(&self, latency: Duration) {
        *lock(&self.shared.default_latency) = latency;
    }

    /// Sets the latency of the endpoint at `addr`, for requests sent from now on.
    pub fn set_latency(&self, addr: SocketAddr, latency: Duration) {
        lock(&self.shared.knobs(addr).settings).latency = Some(latency);
    }

    /// Makes the endpoint at `addr` fail its requests (`true`) or answer them again (`false`),
    /// from the next request on.
    pub fn set_failing(&self, addr: SocketAddr, failing: bool) {
        lock(&self.shared.knobs(addr).settings).failing = failing;
    }

    /// Makes creating a client for `addr` fail (`true`) or succeed again (`false`). Clients
    /// that already exist keep working.
    pub fn set_refusing(&self, addr: SocketAddr, refusing: bool) {
        lock(&self.shared.knobs(addr).settings).refusing = refusing;
    }

    /// The latency a request sent to `addr` now would take.
    pub fn latency(&self, addr: SocketAddr) -> Duration {
        self.shared.latency(&self.shared.knobs(addr))
    }

    /// Requests the endpoint at `addr` has received (answered, failed or still in flight).
    pub fn requests(&self, addr: SocketAddr) -> u64 {
        self.counter(addr, |k| &k.requests)
    }

    /// Requests the endpoint at `addr` is working on now.
    pub fn in_flight(&self, addr: SocketAddr) -> u64 {
        self.counter(addr, |k| &k.in_flight)
    }

    /// Clients made for `addr` (a balancer makes one per endpoint, and another after the
    /// endpoint is removed and added again).
    pub fn clients_made(&self, addr: SocketAddr) -> u64 {
        self.counter(addr, |k| &k.made)
    }

    /// Requests received by all endpoints.
    pub fn total_requests(&self) -> u64 {
        lock(&self.shared.endpoints)
            .values()
            .map(|k| k.requests.load(Ordering::SeqCst))
            .sum()
    }

    fn counter(&self, addr: SocketAddr, which: impl Fn(&Knobs) -> &AtomicU64) -> u64 {
        lock(&self.shared.endpoints)
            .get(&addr)
            .map_or(0, |k| which(k).load(Ordering::SeqCst))
    }
}

impl FixedLatencyClient {
    /// The address of the endpoint this client answers for.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Service<Endpoint> for FixedLatency {
    type Response = FixedLatencyClient;
    type Error = BoxError;
    type Future = std::future::Ready<Result<FixedLatencyClient, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let addr = endpoint.addr();
        let knobs = self.shared.knobs(addr);
        if lock(&knobs.settings).refusing {
            return std::future::ready(Err(ConnectRefused::new(addr).into()));
        }
        knobs.made.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(FixedLatencyClient {
            addr,
            knobs,
            shared: Arc::clone(&self.shared),
        }))
    }
}

impl<Req> Service<Req> for FixedLatencyClient {
    type Response = SocketAddr;
    type Error = BoxError;
    type Future = LatencyFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> LatencyFuture {
        self.knobs.requests.fetch_add(1, Ordering::SeqCst);
        self.knobs.in_flight.fetch_add(1, Ordering::SeqCst);
        let latency = self.shared.latency(&self.knobs);
        let result = if lock(&self.knobs.settings).failing {
            Err(EndpointFailed::new(self.addr))
        } else {
            Ok(self.addr)
        };
        LatencyFuture {
            sleep: tokio::time::sleep(latency),
            result: Some(result),
            _in_flight: InFlight(Arc::clone(&self.knobs)),
        }
    }
}

impl Future for LatencyFuture {
    type Output = Result<SocketAddr, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        std::task::ready!(this.sleep.poll(cx));
        match this.result.take() {
            Some(result) => Poll::Ready(result.map_err(Into::into)),
            None => panic!("LatencyFuture polled after completion"),
        }
    }
}

impl fmt::Debug for FixedLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedLatency")
            .field("default_latency", &*lock(&self.shared.default_latency))
            .field("endpoints", &lock(&self.shared.endpoints).len())
            .finish()
    }
}

impl fmt::Debug for FixedLatencyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedLatencyClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LatencyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyFuture")
            .field("deadline", &self.sleep.deadline())
            .finish_non_exhaustive()
    }
}

struct Shared {
    default_latency: Mutex<Duration>,
    endpoints: Mutex<HashMap<SocketAddr, Arc<Knobs>>>,
}

impl Shared {
    /// The settings and counters of `addr`, created on first use.
    fn knobs(&self, addr: SocketAddr) -> Arc<Knobs> {
        Arc::clone(lock(&self.endpoints).entry(addr).or_default())
    }

    fn latency(&self, knobs: &Knobs) -> Duration {
        let own = lock(&knobs.settings).latency;
        own.unwrap_or_else(|| *lock(&self.default_latency))
    }
}

#[derive(Default)]
struct Knobs {
    settings: Mutex<Settings>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    made: AtomicU64,
}

#[derive(Default)]
struct Settings {
    latency: Option<Duration>,
    failing: bool,
    refusing: bool,
}

/// Counts a request in flight until its future is dropped.
struct InFlight(Arc<Knobs>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write under these locks is a single assignment, so a poisoned lock holds
    // consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
