//! [`TlsStream`]: an established TLS connection with its verified peer identity and an
//! optional maximum age.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::error::ConnectionAgeExceeded;
use crate::identity::PeerIdentity;

/// An established TLS 1.3 connection, client or server side.
///
/// [`peer_identity`](TlsStream::peer_identity) is the identity proven by the peer's
/// certificate: on the client side the expected identity (the handshake fails otherwise), on
/// the server side the identity read from the verified client certificate, or `None` for an
/// unauthenticated client of a permissive server.
///
/// With a maximum connection age, every read and write fails with
/// [`ConnectionAgeExceeded`] once the age is reached (shutdown still works, so a
/// `close_notify` can be sent).
pub struct TlsStream<IO> {
    inner: tokio_rustls::TlsStream<IO>,
    peer: Option<PeerIdentity>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
}

impl<IO> TlsStream<IO> {
    pub(crate) fn new(
        inner: tokio_rustls::TlsStream<IO>,
        peer: Option<PeerIdentity>,
        max_age: Option<Duration>,
    ) -> Self {
        TlsStream {
            inner,
            peer,
            deadline: max_age.map(|age| (Box::pin(tokio::time::sleep(age)), age)),
        }
    }

    /// The verified identity of the peer, if it proved one.
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }

    /// The underlying transport and the rustls connection state (negotiated ALPN protocol,
    /// peer certificates, ...).
    pub fn get_ref(&self) -> (&IO, &rustls::CommonState) {
        self.inner.get_ref()
    }

    /// The underlying transport.
    pub fn io(&self) -> &IO {
        self.inner.get_ref().0
    }

    fn check_age(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some((sleep, age)) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    ConnectionAgeExceeded { max_age: *age },
                ));
            }
        }
        Ok(())
    }
}

impl<IO> AsyncRead for TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_age(cx)?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO> AsyncWrite for TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_age(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_age(cx)?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Lets hyper-util's legacy client use a [`TlsConnector`](super::TlsConnector) (wrapped in
/// `hyper_util::rt::TokioIo`) as its connector; reports HTTP/2 when ALPN chose `h2`.
impl<IO> hyper_util::client::legacy::connect::Connection for TlsStream<IO>
where
    IO: hyper_util::client::legacy::connect::Connection,
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        let (io, state) = self.inner.get_ref();
        let connected = io.connected();
        if state.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl<IO: fmt::Debug> fmt::Debug for TlsStream<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("io", self.inner.get_ref().0)
            .field("peer", &self.peer)
            .field("max_age", &self.deadline.as_ref().map(|(_, age)| age))
            .finish()
    }
}
