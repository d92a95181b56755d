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
/// Once the connection reaches its maximum age, or outlives the peer's certificate or our own
/// (see [`TlsConfig`](super::TlsConfig)'s defaults), every read and write fails with
/// [`ConnectionAgeExceeded`] (shutdown still works, so a `close_notify` can be sent). An HTTP
/// client pool then drops the connection and opens a new one, which re-handshakes.
pub struct TlsStream<IO> {
    inner: tokio_rustls::TlsStream<IO>,
    peer: Option<PeerIdentity>,
    // When reads and writes start failing, the allowed age, and whether a certificate's
    // expiry set it.
    deadline: Option<(Pin<Box<Sleep>>, Duration, bool)>,
}

impl<IO> TlsStream<IO> {
    pub(crate) fn new(
        inner: tokio_rustls::TlsStream<IO>,
        peer: Option<PeerIdentity>,
        limit: Option<(Duration, bool)>,
    ) -> Self {
        TlsStream {
            inner,
            peer,
            deadline: limit.map(|(age, cert)| (Box::pin(tokio::time::sleep(age)), age, cert)),
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

    /// Fails once the connection is past its deadline. A clock read, not a timer poll: polling
    /// the timer on every read and write would spend the task's cooperative budget on it.
    fn check_age(&self) -> io::Result<()> {
        match &self.deadline {
            Some((sleep, ..)) if tokio::time::Instant::now() >= sleep.deadline() => {
                Err(self.age_error())
            }
            _ => Ok(()),
        }
    }

    /// Called when the transport returned `Pending`: registers the deadline's timer with this
    /// task, so an idle connection is woken (and fails) when it reaches its age.
    fn arm(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some((sleep, ..)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Err(self.age_error());
        }
        Ok(())
    }

    fn age_error(&self) -> io::Error {
        let (max_age, certificate_expired) = match &self.deadline {
            Some((_, age, cert)) => (*age, *cert),
            None => (Duration::ZERO, false),
        };
        io::Error::new(
            io::ErrorKind::TimedOut,
            ConnectionAgeExceeded {
                max_age,
                certificate_expired,
            },
        )
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
        this.check_age()?;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if polled.is_pending() {
            this.arm(cx)?;
        }
        polled
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
        this.check_age()?;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if polled.is_pending() {
            this.arm(cx)?;
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_age()?;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if polled.is_pending() {
            this.arm(cx)?;
        }
        polled
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
            .field("max_age", &self.deadline.as_ref().map(|(_, age, _)| age))
            .finish()
    }
}
