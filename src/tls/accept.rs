//! The server side: an acceptor that performs the TLS handshake on accepted streams and
//! extracts the client's verified identity.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tower::{BoxError, Service};

use super::config::TlsConfig;
use super::error::{BadPeerCertificate, HandshakeFailed, HandshakeTimeout};
use super::stream::TlsStream;
use crate::identity::PeerIdentity;
use crate::identity::x509::Leaf;

/// `Service<IO>` over accepted streams (TCP or any byte stream): performs the TLS 1.3 server
/// handshake within the handshake timeout and yields a [`TlsStream`] carrying the client's
/// verified [`PeerIdentity`].
///
/// Strict by default: a client without a certificate fails the handshake (rustls sends
/// `certificate_required`). With
/// [`TlsConfigBuilder::allow_unauthenticated`](super::TlsConfigBuilder::allow_unauthenticated)
/// such a client is let in with no identity. Plaintext, TLS 1.2 and older, and slow handshakes
/// are refused; nothing from a refused connection reaches the application.
///
/// To hand the identity to a hyper service, clone it into each request's extensions:
///
/// ```no_run
/// # async fn run(config: tower_mesh::tls::TlsConfig, listener: tokio::net::TcpListener)
/// # -> Result<(), tower_mesh::BoxError> {
/// use hyper_util::rt::TokioIo;
/// use tower::ServiceExt;
/// use tower_mesh::identity::PeerIdentity;
/// use tower_mesh::tls::TlsAcceptor;
///
/// let acceptor = TlsAcceptor::new(config);
/// let (tcp, _) = listener.accept().await?;
/// let stream = acceptor.clone().oneshot(tcp).await?;
/// let peer = stream.peer_identity().cloned();
/// let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
///     if let Some(peer) = &peer {
///         req.extensions_mut().insert(peer.clone());
///     }
///     async move {
///         let who = req.extensions().get::<PeerIdentity>().map(|p| p.to_string());
///         Ok::<_, std::convert::Infallible>(hyper::Response::new(who.unwrap_or_default()))
///     }
/// });
/// hyper::server::conn::http1::Builder::new()
///     .serve_connection(TokioIo::new(stream), service)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: TlsConfig,
    #[cfg(feature = "metrics")]
    metrics: std::sync::Arc<crate::metrics::TlsMetrics>,
}

impl TlsAcceptor {
    /// An acceptor using `config`.
    pub fn new(config: TlsConfig) -> Self {
        TlsAcceptor {
            config,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::TlsMetrics::new("server"),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }
}

impl<IO> Service<IO> for TlsAcceptor
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Response = TlsStream<IO>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<IO>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, io: IO) -> Self::Future {
        let config = self.config.clone();
        let accept = async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.server_config());
            let timeout = config.handshake_timeout();
            let stream = match tokio::time::timeout(timeout, acceptor.accept(io)).await {
                Err(_) => {
                    return Err(HandshakeTimeout {
                        peer: None,
                        timeout,
                    }
                    .into());
                }
                Ok(Err(source)) => {
                    tracing::debug!(error = %source, "tls handshake failed");
                    return Err(HandshakeFailed { peer: None, source }.into());
                }
                Ok(Ok(stream)) => stream,
            };
            let (peer, peer_not_after) = match stream.get_ref().1.peer_certificates() {
                Some([leaf, ..]) => {
                    // The verifier already applied these rules; this only reads the result.
                    let leaf = Leaf::parse(leaf).map_err(|source| BadPeerCertificate { source })?;
                    let identity = leaf
                        .identity(config.leaf_rules())
                        .map_err(|source| BadPeerCertificate { source })?;
                    (Some(PeerIdentity::new(identity)), Some(leaf.not_after()))
                }
                _ => (None, None),
            };
            Ok(TlsStream::new(
                tokio_rustls::TlsStream::Server(stream),
                peer,
                config.connection_limit(peer_not_after),
            ))
        };
        #[cfg(feature = "metrics")]
        let accept = std::sync::Arc::clone(&self.metrics).observe(accept);
        Box::pin(accept)
    }
}
