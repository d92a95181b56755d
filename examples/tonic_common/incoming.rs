//! Serving tonic over tower-mesh's [`TlsAcceptor`]: the accepted connections as the stream
//! `Server::serve_with_incoming` takes, and the layer that hands each connection's verified
//! identity to [`AuthzLayer`](tower_mesh::authz::AuthzLayer).
//!
//! ```text
//!  TcpListener ─▶ TlsAcceptor (mTLS handshake) ─▶ TlsConnection: tonic's `Connected`
//!       tonic puts its ConnectInfo (a ConnectionInfoLayer) into every request ─▶
//!  ConnectInfoAdapterLayer: PeerIdentity + SocketAddr extensions ─▶ AuthzLayer ─▶ routes
//! ```
//!
//! tonic asks of the IO of `serve_with_incoming` that it be `AsyncRead + AsyncWrite +
//! Connected + Unpin + Send + 'static` (tonic 0.14, `transport/server/mod.rs`), and inserts
//! `Connected::connect_info()` into the extensions of every request of the connection, outside
//! every layer given to `Server::builder().layer(..)` (`MakeSvc::call` there). The connect info
//! is made by the server from the verified handshake, never from what the peer sent, so it can
//! carry the identity.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tower::{Layer, Service, ServiceExt};
use tower_mesh::authz::ConnectionInfoLayer;
use tower_mesh::tls::{TlsAcceptor, TlsStream};

/// Accepts TCP connections on `listener` and runs the mTLS handshake of each on its own task
/// (a slow client never holds up the others): the stream of connections whose handshake
/// succeeded, for `Server::serve_with_incoming`. A failed handshake drops that connection
/// only. At most `MAX_HANDSHAKES` run at once (each bounded by the `TlsConfig`'s handshake
/// timeout); beyond that, connections wait in the listener's backlog. Accepting stops when the
/// stream is dropped.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsConnection, Infallible>> + Send + 'static {
    let (tx, rx) = mpsc::channel(BACKLOG);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (permit, tcp) = tokio::select! {
                accepted = accept(&listener, &handshakes) => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait, as axum 0.8's `serve` does (1 s there), and go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = acceptor.oneshot(tcp).await;
                drop(permit);
                match handshake {
                    Ok(stream) => {
                        // Fails only when the server stopped: the connection is dropped.
                        let _ = tx.send(Ok(TlsConnection(stream))).await;
                    }
                    Err(error) => tracing::debug!(%error, "tls handshake refused"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A handshake slot, then the next connection.
async fn accept(
    listener: &TcpListener,
    handshakes: &Arc<Semaphore>,
) -> io::Result<(OwnedSemaphorePermit, TcpStream)> {
    // The semaphore is never closed, so `acquire_owned` cannot fail.
    let permit = Arc::clone(handshakes)
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    let (tcp, _) = listener.accept().await?;
    Ok((permit, tcp))
}

/// An accepted mTLS connection, for tonic: a byte stream that is tonic's `Connected`, with
/// the connection's verified [`PeerIdentity`](tower_mesh::identity::PeerIdentity) and remote
/// address as its connect info (a [`ConnectionInfoLayer`]).
#[derive(Debug)]
pub(crate) struct TlsConnection(TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = ConnectionInfoLayer;

    fn connect_info(&self) -> ConnectionInfoLayer {
        ConnectionInfoLayer::from_tls_stream(&self.0)
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Applies the [`ConnectionInfoLayer`] tonic put into a request's extensions (see
/// [`TlsConnection`]): the request then carries the connection's `PeerIdentity` and
/// `SocketAddr`, where `AuthzLayer` reads them. A request without one (a connection that was
/// not a `TlsConnection`) carries neither: an anonymous caller, never a stale identity.
///
/// Put it outside `AuthzLayer`: `Server::builder().layer(ConnectInfoAdapterLayer).layer(authz)`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnectInfoAdapterLayer;

/// The service of [`ConnectInfoAdapterLayer`].
#[derive(Clone, Debug)]
pub(crate) struct ConnectInfoAdapter<S> {
    inner: S,
}

impl<S> Layer<S> for ConnectInfoAdapterLayer {
    type Service = ConnectInfoAdapter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectInfoAdapter { inner }
    }
}

impl<S, B> Service<http::Request<B>> for ConnectInfoAdapter<S>
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
        let info = request
            .extensions_mut()
            .remove::<ConnectionInfoLayer>()
            .unwrap_or_default();
        // `&mut S` is a `Service` too: the connection's facts go in, then `S` is called.
        info.layer(&mut self.inner).call(request)
    }
}

/// Handshaken connections waiting for tonic to take them.
const BACKLOG: usize = 64;
/// How long to wait after a failed `accept` before the next.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// The most TLS handshakes in progress at once.
const MAX_HANDSHAKES: usize = 256;
