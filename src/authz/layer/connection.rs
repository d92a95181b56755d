//! Connection-level facts (the verified peer identity, the remote address) copied into every
//! request of the connection, where [`AuthzLayer`](super::AuthzLayer) reads them.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::identity::PeerIdentity;

/// Inserts what a server knows about one connection into each of its requests' extensions:
/// the [`PeerIdentity`] the TLS handshake verified, and the remote address as a
/// [`SocketAddr`]. Build one per accepted connection, and put it outside
/// [`AuthzLayer`](super::AuthzLayer).
///
/// A cheap `Clone` holding the two values. Nothing a peer sends can become an extension, so
/// these are the only identity and address the policy sees: never a header. A connection
/// without a verified identity (a permissive server's anonymous client) removes any
/// `PeerIdentity` a request might carry.
///
/// # Examples
///
/// With the `tls` feature, `ConnectionInfoLayer::from_tls_stream` reads both from an accepted
/// `TlsStream`; see there for a whole server.
/// Without it, from any source of identity this crate verified:
///
/// ```
/// use std::net::SocketAddr;
/// use tower::{Layer, ServiceExt};
/// use tower_mesh::authz::ConnectionInfoLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let remote: SocketAddr = "10.1.2.3:50000".parse()?;
/// let connection = ConnectionInfoLayer::new().remote_addr(remote);
/// let app = tower::service_fn(|req: http::Request<()>| async move {
///     let source = req.extensions().get::<SocketAddr>().copied();
///     Ok::<_, std::convert::Infallible>(source)
/// });
/// let seen = connection.layer(app).oneshot(http::Request::new(())).await?;
/// assert_eq!(seen, Some(remote));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectionInfoLayer {
    peer: Option<PeerIdentity>,
    remote: Option<SocketAddr>,
}

/// The service of [`ConnectionInfoLayer`].
#[derive(Clone, Debug)]
pub struct ConnectionInfo<S> {
    inner: S,
    info: ConnectionInfoLayer,
}

impl ConnectionInfoLayer {
    /// Nothing known: no peer identity (anonymous), no remote address.
    pub fn new() -> Self {
        ConnectionInfoLayer::default()
    }

    /// The connection's verified peer identity, as `TlsStream::peer_identity` gives it.
    pub fn peer_identity(mut self, peer: Option<PeerIdentity>) -> Self {
        self.peer = peer;
        self
    }

    /// The connection's remote address, as the listener's `accept` gives it.
    pub fn remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }

    /// The peer identity and the remote address of a TLS connection accepted by
    /// [`TlsAcceptor`](crate::tls::TlsAcceptor).
    ///
    /// # Examples
    ///
    /// A whole mTLS server: each connection is accepted, its identity copied into each
    /// request, and every request judged by the policy.
    ///
    /// ```no_run
    /// # async fn run(config: tower_mesh::tls::TlsConfig) -> Result<(), tower::BoxError> {
    /// use hyper_util::rt::TokioIo;
    /// use tower::{ServiceBuilder, ServiceExt};
    /// use tower_mesh::authz::policy::{Policy, SharedPolicy};
    /// use tower_mesh::authz::{AuthzLayer, ConnectionInfoLayer};
    /// use tower_mesh::tls::TlsAcceptor;
    ///
    /// let policy = SharedPolicy::new(Policy::from_toml_file("/etc/mesh/policy.toml")?);
    /// let authz = AuthzLayer::new(policy).local_port(8443);
    /// let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
    /// });
    /// let acceptor = TlsAcceptor::new(config);
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
    /// loop {
    ///     let (tcp, _) = listener.accept().await?;
    ///     let Ok(stream) = acceptor.clone().oneshot(tcp).await else { continue };
    ///     let service = ServiceBuilder::new()
    ///         .layer(ConnectionInfoLayer::from_tls_stream(&stream))
    ///         .layer(authz.clone())
    ///         .service(app.clone());
    ///     let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
    ///     tokio::spawn(
    ///         hyper::server::conn::http1::Builder::new()
    ///             .serve_connection(TokioIo::new(stream), service),
    ///     );
    /// }
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn from_tls_stream(stream: &crate::tls::TlsStream<tokio::net::TcpStream>) -> Self {
        ConnectionInfoLayer {
            peer: stream.peer_identity().cloned(),
            remote: stream.io().peer_addr().ok(),
        }
    }
}

impl<S> Layer<S> for ConnectionInfoLayer {
    type Service = ConnectionInfo<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionInfo {
            inner,
            info: self.clone(),
        }
    }
}

impl<S> ConnectionInfo<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<http::Request<B>> for ConnectionInfo<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        match &self.info.peer {
            Some(peer) => extensions.insert(peer.clone()),
            None => extensions.remove::<PeerIdentity>(),
        };
        match self.info.remote {
            Some(addr) => extensions.insert(addr),
            None => extensions.remove::<SocketAddr>(),
        };
        self.inner.call(request)
    }
}
