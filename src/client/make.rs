//! [`HttpClient`]: the `MakeService<Endpoint>`, and the pools its clones share.

use std::collections::HashMap;
use std::fmt;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use http_body::Body;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tower::{BoxError, Service};

use super::builder::{Config, HttpClientBuilder, Protocol};
use super::connect::EndpointConnector;
use super::service::EndpointClient;
use crate::endpoint::Endpoint;

/// A `MakeService<Endpoint>` for [`Balance`](crate::balance::Balance): for each endpoint, an
/// [`EndpointClient`] sending HTTP requests to that endpoint's address over pooled hyper-util
/// connections (HTTP/1.1 or HTTP/2, plain TCP or, with [`HttpClientBuilder::tls`], mutual
/// TLS verifying the endpoint's identity).
///
/// Clones share one set of connection pools, keyed by endpoint address, expected identity and
/// protocol: an endpoint that is removed and discovered again (or that two balancers built
/// from clones both use) reuses its warm connections, while the same address with a different
/// [`Endpoint::identity`] gets a pool of its own, so a connection verified for one identity
/// is never used for another. A pool that no endpoint client has used for at least the
/// [pool idle timeout](HttpClientBuilder::pool_idle_timeout) (its idle connections have
/// expired by then) is dropped by a later call that makes a client, so the set of pools
/// follows the endpoints in use.
///
/// Making a client never connects: connections are opened by the first request that needs
/// one, and a failure to connect is that request's error (a [`ConnectError`](super::ConnectError)),
/// counted against the endpoint like any transport failure. With TLS, an endpoint without an
/// expected identity is refused when its client is made (see [`HttpClientBuilder::tls`]).
///
/// `B` is the request body type, as hyper-util's `Client<C, B>` has it; it is inferred from
/// the requests sent.
///
/// # Examples
///
/// A balancer over two endpoints; nothing listens on them here, so the request fails with the
/// endpoint's [`ConnectError`](super::ConnectError):
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Empty;
/// use tower::ServiceExt;
/// use tower_mesh::balance::{Balance, PeakEwma};
/// use tower_mesh::client::{ConnectError, HttpClient};
/// use tower_mesh::discover::Static;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// # let closed = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
/// let endpoints = Static::from_addrs([closed()?, closed()?]);
/// let client = Balance::builder(PeakEwma::new()).build(endpoints, HttpClient::new())?;
///
/// let request = http::Request::get("http://payments/health").body(Empty::<Bytes>::new())?;
/// let error = client.oneshot(request).await.unwrap_err();
/// assert!(error.is::<ConnectError>());
/// # Ok(())
/// # }
/// ```
pub struct HttpClient<B> {
    shared: Arc<Shared<B>>,
}

struct Shared<B> {
    config: Config,
    pools: Mutex<Pools<B>>,
}

struct Pools<B> {
    map: HashMap<PoolKey, Pool<B>>,
    last_sweep: Option<Instant>,
}

/// One endpoint's hyper-util client (its pool) and who uses it.
struct Pool<B> {
    client: Hyper<B>,
    // One strong reference per endpoint client made from this pool (shared by its clones),
    // plus this one.
    users: Arc<()>,
    unused_since: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    identity: Option<Arc<str>>,
    protocol: Protocol,
}

pub(crate) type Hyper<B> = hyper_util::client::legacy::Client<EndpointConnector, B>;

impl HttpClient<()> {
    /// A [`HttpClientBuilder`] with the defaults. (Defined on `HttpClient<()>` so that
    /// `HttpClient::builder()` needs no type annotation; the body type comes from `build`.)
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::new()
    }
}

impl<B> HttpClient<B> {
    /// A plaintext client with the defaults listed on [`HttpClientBuilder`]. Without TLS no
    /// identity is verified; endpoints' identities still key the pools, so the
    /// never-shared rule holds. For mutual TLS use [`HttpClient::builder`] and
    /// [`HttpClientBuilder::tls`].
    pub fn new() -> Self {
        HttpClient::from_config(HttpClientBuilder::new().config)
    }

    pub(crate) fn from_config(config: Config) -> Self {
        HttpClient {
            shared: Arc::new(Shared {
                config,
                pools: Mutex::new(Pools {
                    map: HashMap::new(),
                    last_sweep: None,
                }),
            }),
        }
    }

    /// The number of pools held (one per endpoint address, identity and protocol in use or
    /// recently used).
    pub fn pools(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> MutexGuard<'_, Pools<B>> {
        // The map stays consistent whatever panicked while holding the lock: every change to
        // it is a single insert or retain.
        self.shared
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<B> HttpClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn make(&self, endpoint: Endpoint) -> Result<EndpointClient<B>, BoxError> {
        let config = &self.shared.config;
        #[cfg(feature = "tls")]
        let tls = config.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        #[cfg(feature = "tls")]
        if tls {
            check_identity(&endpoint)?;
        }
        let key = PoolKey {
            addr: endpoint.addr(),
            identity: endpoint.identity().map(Arc::from),
            protocol: config.protocol,
        };
        let now = Instant::now();
        let mut pools = self.lock();
        pools.sweep(now, config.idle_timeout);
        let pool = pools.map.entry(key).or_insert_with(|| {
            tracing::debug!(
                addr = %endpoint.addr(),
                identity = endpoint.identity(),
                "new connection pool"
            );
            Pool {
                client: build_hyper(config, endpoint.clone()),
                users: Arc::new(()),
                unused_since: None,
            }
        });
        pool.unused_since = None;
        let (client, users) = (pool.client.clone(), pool.users.clone());
        drop(pools);
        EndpointClient::new(client, users, endpoint.addr(), tls)
    }
}

impl<B> Pools<B> {
    /// Drops pools no endpoint client has used for at least `idle` (their idle connections
    /// have expired by then). Runs at most once per `idle`, so making a client stays O(1)
    /// amortized however many pools there are.
    fn sweep(&mut self, now: Instant, idle: std::time::Duration) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < idle)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.map.retain(|key, pool| {
            if Arc::strong_count(&pool.users) > 1 {
                pool.unused_since = None;
                return true;
            }
            match pool.unused_since {
                None => {
                    pool.unused_since = Some(now);
                    true
                }
                Some(since) => {
                    let keep = now.saturating_duration_since(since) < idle;
                    if !keep {
                        tracing::debug!(addr = %key.addr, identity = key.identity.as_deref(), "unused connection pool dropped");
                    }
                    keep
                }
            }
        });
    }
}

/// Refuses, before any pool exists for it, an endpoint that names no identity a TLS server
/// could prove, or one that does not parse.
#[cfg(feature = "tls")]
fn check_identity(endpoint: &Endpoint) -> Result<(), BoxError> {
    let addr = endpoint.addr();
    match endpoint.identity() {
        None => Err(crate::tls::NoExpectedIdentity { addr }.into()),
        Some(identity) => match crate::identity::Identity::parse(identity) {
            Ok(_) => Ok(()),
            Err(source) => Err(crate::tls::InvalidExpectedIdentity { addr, source }.into()),
        },
    }
}

fn build_hyper<B>(config: &Config, endpoint: Endpoint) -> Hyper<B>
where
    B: Body + Send,
    B::Data: Send,
{
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(config.idle_timeout)
        .pool_max_idle_per_host(config.max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(config.protocol == Protocol::Http2);
    if let Some((interval, timeout)) = config.keep_alive {
        builder
            .http2_keep_alive_interval(interval)
            .http2_keep_alive_timeout(timeout)
            .http2_keep_alive_while_idle(true);
    }
    builder.build(EndpointConnector::new(endpoint, config))
}

impl<B> Service<Endpoint> for HttpClient<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = EndpointClient<B>;
    type Error = BoxError;
    type Future = Ready<Result<EndpointClient<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        ready(self.make(endpoint))
    }
}

impl<B> Clone for HttpClient<B> {
    fn clone(&self) -> Self {
        HttpClient {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B> Default for HttpClient<B> {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl<B> fmt::Debug for HttpClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.shared.config)
            .field("pools", &self.pools())
            .finish()
    }
}
