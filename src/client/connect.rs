//! The connector hyper-util's pool calls: it dials one endpoint's address, whatever the
//! request's URI names, over TCP and (feature `tls`) our TLS connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::{BoxError, Service};

use super::builder::{Config, Protocol};
#[cfg(feature = "tls")]
use super::builder::{H2, HTTP11};
use super::error::{ConnectError, ConnectTimeout};
use crate::endpoint::Endpoint;

/// Dials one endpoint. One per pool: its address and identity are the pool's key.
#[derive(Clone)]
pub(crate) struct EndpointConnector {
    endpoint: Endpoint,
    tcp: TcpConnect,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsConnector<TcpConnect>>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    protocol: Protocol,
}

impl EndpointConnector {
    pub(crate) fn new(endpoint: Endpoint, config: &Config) -> Self {
        let tcp = TcpConnect {
            timeout: config.connect_timeout,
            nodelay: config.nodelay,
        };
        EndpointConnector {
            endpoint,
            #[cfg(feature = "tls")]
            tls: config.tls_layer.as_ref().map(|layer| {
                use tower::Layer;
                layer.layer(tcp.clone())
            }),
            tcp,
            protocol: config.protocol,
        }
    }
}

impl Service<http::Uri> for EndpointConnector {
    type Response = TokioIo<Conn>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    /// Ignores `_uri`: the pool belongs to this endpoint, so its address is dialled, never the
    /// URI's host (which may be a logical name such as `payments`).
    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let addr = self.endpoint.addr();
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let connect = tls.clone().call(self.endpoint.clone());
            let protocol = self.protocol;
            return Box::pin(async move {
                let stream = connect.await.map_err(|e| failed(addr, e))?;
                check_negotiated(protocol, stream.get_ref().1.alpn_protocol())
                    .map_err(|e| failed(addr, e.into()))?;
                Ok(TokioIo::new(Conn::Tls(Box::new(stream))))
            });
        }
        let connect = self.tcp.connect(addr);
        Box::pin(async move {
            let tcp = connect.await.map_err(|e| failed(addr, e))?;
            Ok(TokioIo::new(Conn::Plain(tcp)))
        })
    }
}

fn failed(addr: std::net::SocketAddr, error: BoxError) -> ConnectError {
    tracing::debug!(%addr, %error, "connect failed");
    ConnectError::new(addr, error)
}

/// The TCP connect under the TLS connector (or alone): bounded by the connect timeout, with
/// `TCP_NODELAY` set as configured.
#[derive(Clone, Debug)]
pub(crate) struct TcpConnect {
    timeout: Duration,
    nodelay: bool,
}

impl TcpConnect {
    fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Result<TcpStream, BoxError>> + Send>> {
        let (timeout, nodelay) = (self.timeout, self.nodelay);
        Box::pin(async move {
            let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Err(_) => return Err(ConnectTimeout::new(timeout).into()),
                Ok(result) => result?,
            };
            tcp.set_nodelay(nodelay)?;
            Ok(tcp)
        })
    }
}

impl Service<Endpoint> for TcpConnect {
    type Response = TcpStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TcpStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, endpoint: Endpoint) -> Self::Future {
        self.connect(endpoint.addr())
    }
}

/// An established connection, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsStream<TcpStream>>),
}

/// Tells hyper-util whether ALPN chose HTTP/2, and puts `HttpInfo` (the socket addresses) and,
/// over TLS, the server's verified [`PeerIdentity`](crate::identity::PeerIdentity) into every
/// response's extensions.
impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(tcp) => tcp.connected(),
            #[cfg(feature = "tls")]
            Conn::Tls(tls) => {
                let connected = tls.connected();
                match tls.peer_identity() {
                    Some(peer) => connected.extra(peer.clone()),
                    None => connected,
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The ALPN protocols `tls` offers as a client. `TlsConfig` has no getter for them, but every
/// client configuration it hands out carries them; the identity given here only parametrizes
/// the verifier of a configuration that is read and dropped, never used to connect.
#[cfg(feature = "tls")]
pub(crate) fn offered_alpn(tls: &crate::tls::TlsConfig) -> Vec<Vec<u8>> {
    match crate::identity::Identity::parse("spiffe://alpn.probe/unused") {
        Ok(identity) => tls.client_config_for(identity).alpn_protocols.clone(),
        // A constant that parses; were it ever refused, nothing is checked at build time and
        // every connection is still checked by `check_negotiated`.
        Err(_) => Vec::new(),
    }
}

/// Refuses a TLS connection whose ALPN result the protocol cannot speak (fail closed: the
/// build-time check should make this unreachable, since rustls refuses a protocol it did not
/// offer).
#[cfg(feature = "tls")]
fn check_negotiated(
    protocol: Protocol,
    negotiated: Option<&[u8]>,
) -> Result<(), super::error::AlpnMismatch> {
    let ok = match (protocol, negotiated) {
        (_, None) => true,
        (Protocol::Http1, Some(p)) => p == HTTP11,
        (Protocol::Http2, Some(p)) => p == H2,
        (Protocol::Negotiate, Some(p)) => p == H2 || p == HTTP11,
    };
    if ok {
        Ok(())
    } else {
        Err(super::error::AlpnMismatch::new(
            protocol,
            negotiated.map(<[u8]>::to_vec),
        ))
    }
}
