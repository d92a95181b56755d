//! The client side: a Tower layer over any connector that performs the TLS handshake and
//! verifies the server's identity.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::{BoxError, Layer, Service};

use super::config::TlsConfig;
use super::error::{
    BadPeerCertificate, HandshakeFailed, HandshakeTimeout, InvalidExpectedIdentity,
    NoExpectedIdentity,
};
use super::stream::TlsStream;
use crate::endpoint::Endpoint;
use crate::identity::x509::Leaf;
use crate::identity::{Identity, PeerIdentity};

/// Wraps a connector (`Service<Endpoint>` yielding a byte stream, such as a TCP connect) in a
/// TLS 1.3 client handshake that verifies the server.
///
/// The server must prove the endpoint's expected identity ([`Endpoint::identity`]), or the
/// fixed one set with [`TlsConnectLayer::with_identity`], which then takes precedence. An
/// endpoint with no identity, or an unparseable one, is refused with
/// [`NoExpectedIdentity`] / [`InvalidExpectedIdentity`] before the inner connector is called,
/// so no socket is opened. A server whose identity differs fails the handshake: the stream is
/// never returned, so no request byte is ever written to it.
///
/// For a SPIFFE identity no SNI is sent (the server name given to rustls is the endpoint's IP
/// address) and the hostname check is replaced by the SPIFFE ID match; for a DNS identity the
/// name is sent as SNI and must equal a DNS SAN exactly.
///
/// # Examples
///
/// ```no_run
/// # async fn run(config: tower_mesh::tls::TlsConfig) -> Result<(), tower_mesh::BoxError> {
/// use tower::{Layer, ServiceExt};
/// use tower_mesh::endpoint::Endpoint;
/// use tower_mesh::tls::TlsConnectLayer;
///
/// let tcp = tower::service_fn(|ep: Endpoint| tokio::net::TcpStream::connect(ep.addr()));
/// let connector = TlsConnectLayer::new(config).layer(tcp);
/// let endpoint = Endpoint::new("127.0.0.1:8443".parse()?)
///     .with_identity("spiffe://prod.example/ns/payments/sa/api");
/// let stream = connector.oneshot(endpoint).await?;
/// assert!(stream.peer_identity().is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsConnectLayer {
    config: TlsConfig,
    fixed: Option<Identity>,
    #[cfg(feature = "metrics")]
    metrics: std::sync::Arc<crate::metrics::TlsMetrics>,
}

impl TlsConnectLayer {
    /// A layer verifying each server against its endpoint's identity.
    pub fn new(config: TlsConfig) -> Self {
        TlsConnectLayer {
            config,
            fixed: None,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::TlsMetrics::new("client"),
        }
    }

    /// Verifies every server against `identity`, whatever the endpoint says.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.fixed = Some(identity);
        self
    }
}

impl<C> Layer<C> for TlsConnectLayer {
    type Service = TlsConnector<C>;

    fn layer(&self, inner: C) -> Self::Service {
        TlsConnector {
            inner,
            config: self.config.clone(),
            fixed: self.fixed.clone(),
            #[cfg(feature = "metrics")]
            metrics: std::sync::Arc::clone(&self.metrics),
        }
    }
}

/// The service made by [`TlsConnectLayer`]: `Service<Endpoint>` yielding a [`TlsStream`].
#[derive(Clone)]
pub struct TlsConnector<C> {
    inner: C,
    config: TlsConfig,
    fixed: Option<Identity>,
    #[cfg(feature = "metrics")]
    metrics: std::sync::Arc<crate::metrics::TlsMetrics>,
}

impl<C> TlsConnector<C> {
    /// The inner connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The inner connector, mutably.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Unwraps the inner connector.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C> Service<Endpoint> for TlsConnector<C>
where
    C: Service<Endpoint>,
    C::Response: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = TlsStream<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        let addr = endpoint.addr();
        let expected = match (&self.fixed, endpoint.identity()) {
            (Some(fixed), _) => fixed.clone(),
            (None, Some(s)) => match Identity::parse(s) {
                Ok(identity) => identity,
                Err(source) => {
                    return Box::pin(std::future::ready(Err(InvalidExpectedIdentity {
                        addr,
                        source,
                    }
                    .into())));
                }
            },
            (None, None) => {
                return Box::pin(std::future::ready(Err(NoExpectedIdentity { addr }.into())));
            }
        };
        let server_name = match &expected {
            Identity::Dns(name) => match rustls_pki_types::DnsName::try_from(name.as_str()) {
                Ok(dns) => ServerName::DnsName(dns.to_owned()),
                Err(_) => {
                    let source = crate::identity::InvalidIdentity::new(
                        name.as_str(),
                        crate::identity::IdentityErrorKind::BadDnsLabel,
                    );
                    return Box::pin(std::future::ready(Err(InvalidExpectedIdentity {
                        addr,
                        source,
                    }
                    .into())));
                }
            },
            Identity::Spiffe(_) => ServerName::IpAddress(addr.ip().into()),
        };
        if let Err(e) = self.config.check_own_certificate() {
            return Box::pin(std::future::ready(Err(e.into())));
        }
        let config = self.config.clone();
        let connect = self.inner.call(endpoint);
        let handshake = async move {
            let io = connect.await.map_err(Into::into)?;
            let connector =
                tokio_rustls::TlsConnector::from(config.client_config_for(expected.clone()));
            let timeout = config.handshake_timeout();
            let stream =
                match tokio::time::timeout(timeout, connector.connect(server_name, io)).await {
                    Err(_) => {
                        return Err(HandshakeTimeout {
                            peer: Some(addr),
                            timeout,
                        }
                        .into());
                    }
                    Ok(Err(source)) => {
                        tracing::debug!(%addr, error = %source, "tls handshake failed");
                        return Err(HandshakeFailed {
                            peer: Some(addr),
                            source,
                        }
                        .into());
                    }
                    Ok(Ok(stream)) => stream,
                };
            // The verifier parsed and accepted these same bytes, so this read succeeds; were it
            // ever to fail, the connection is refused (fail closed), never left unbounded.
            let peer_not_after = match stream.get_ref().1.peer_certificates() {
                Some([leaf, ..]) => Leaf::parse(leaf)
                    .map_err(|source| BadPeerCertificate { source })?
                    .not_after(),
                _ => return Err(HandshakeFailed::no_peer_certificate(addr).into()),
            };
            Ok(TlsStream::new(
                tokio_rustls::TlsStream::Client(stream),
                Some(PeerIdentity::new(expected)),
                config.connection_limit(Some(peer_not_after)),
            ))
        };
        #[cfg(feature = "metrics")]
        let handshake = std::sync::Arc::clone(&self.metrics).observe(handshake);
        Box::pin(handshake)
    }
}

impl<C: fmt::Debug> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("fixed", &self.fixed)
            .finish()
    }
}
