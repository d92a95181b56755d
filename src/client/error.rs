//! Errors of the hyper client: bad settings, failed connections, refused requests.

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Protocol;

/// A client setting that cannot work, naming the setting and the value given.
///
/// Returned by the [`HttpClientBuilder`](super::HttpClientBuilder) setters and by
/// [`build`](super::HttpClientBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientConfigError {
    /// A setting out of range.
    #[error("invalid {setting} {value}: must be {expected}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What the setting accepts.
        expected: &'static str,
    },
    /// The TLS configuration offers an ALPN protocol that the chosen [`Protocol`] cannot
    /// speak, which a server could choose: anything but `http/1.1` for [`Protocol::Http1`],
    /// anything but `h2` for [`Protocol::Http2`], anything but those two for
    /// [`Protocol::Negotiate`]. (An empty offer suits every protocol.)
    #[error(
        "protocol {protocol:?} cannot use the ALPN protocols offered by the TLS configuration {offered:?}"
    )]
    Alpn {
        /// The protocol setting.
        protocol: Protocol,
        /// The ALPN protocols the TLS configuration offers, most preferred first.
        offered: Vec<String>,
    },
}

/// A connection to an endpoint could not be established: the TCP connect was refused or timed
/// out, or the TLS handshake failed (a wrong identity among the reasons), or the server chose
/// an application protocol the client does not speak.
///
/// Returned (boxed) by [`EndpointClient`](super::EndpointClient) for a request that needed a
/// new connection; no byte of the request was sent. [`source`](Error::source) holds the cause:
/// an [`io::Error`](std::io::Error) from the connect, a [`ConnectTimeout`], an
/// [`AlpnMismatch`], or (feature `tls`) the connector's error, such as
/// [`HandshakeFailed`](crate::tls::HandshakeFailed).
///
/// It is an error of the endpoint, so the balancer's default classifier
/// ([`TransportErrors`](crate::health::TransportErrors)) counts it as the endpoint's failure.
#[derive(Clone)]
pub struct ConnectError {
    addr: SocketAddr,
    source: Arc<dyn Error + Send + Sync>,
}

impl ConnectError {
    pub(crate) fn new(addr: SocketAddr, source: Box<dyn Error + Send + Sync>) -> Self {
        ConnectError {
            addr,
            source: Arc::from(source),
        }
    }

    /// The address of the endpoint that could not be reached.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Debug for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectError")
            .field("addr", &self.addr)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}", self.addr)
    }
}

impl Error for ConnectError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// The TCP connect did not complete within the configured
/// [connect timeout](super::HttpClientBuilder::connect_timeout). The cause of a
/// [`ConnectError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tcp connect timed out after {timeout:?}")]
pub struct ConnectTimeout {
    timeout: Duration,
}

impl ConnectTimeout {
    pub(crate) fn new(timeout: Duration) -> Self {
        ConnectTimeout { timeout }
    }

    /// The timeout that elapsed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The server chose (by TLS ALPN) an application protocol the client was not configured to
/// speak, so the connection was closed before any request was written. The cause of a
/// [`ConnectError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server chose protocol {} but the client speaks {protocol:?}", display_alpn(.negotiated.as_deref()))]
pub struct AlpnMismatch {
    protocol: Protocol,
    negotiated: Option<Vec<u8>>,
}

impl AlpnMismatch {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn new(protocol: Protocol, negotiated: Option<Vec<u8>>) -> Self {
        AlpnMismatch {
            protocol,
            negotiated,
        }
    }

    /// The client's protocol setting.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The ALPN protocol the server chose, if it chose one.
    pub fn negotiated(&self) -> Option<&[u8]> {
        self.negotiated.as_deref()
    }
}

/// A request with an `https` URI was given to a client with no TLS configuration. It is
/// refused, never sent in plaintext: the caller asked for encryption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("https request {uri} on a client without tls")]
pub struct HttpsWithoutTls {
    uri: http::Uri,
}

impl HttpsWithoutTls {
    pub(crate) fn new(uri: http::Uri) -> Self {
        HttpsWithoutTls { uri }
    }

    /// The refused request's URI.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }
}

pub(crate) fn display_alpn(protocol: Option<&[u8]>) -> String {
    match protocol {
        None => "none".to_owned(),
        Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
    }
}
