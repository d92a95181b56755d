//! [`HttpClientBuilder`]: the settings of the hyper client, checked as they are set.

use std::fmt;
use std::time::Duration;

use super::error::ClientConfigError;
use super::make::HttpClient;

/// Which HTTP version the client speaks to an endpoint.
///
/// gRPC (tonic) needs HTTP/2: [`Protocol::Http2`] in plaintext; over TLS either
/// [`Protocol::Http2`] or [`Protocol::Negotiate`] with `h2` offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 only. Over TLS, the TLS configuration must not offer `h2` by ALPN.
    Http1,
    /// HTTP/2 with prior knowledge (RFC 9113 §3.3): no upgrade and no ALPN needed; in
    /// plaintext this is `h2c`. Over TLS, a configuration offering ALPN must offer `h2`.
    Http2,
    /// Over TLS, the protocol the server picks by ALPN (RFC 7301) from those the
    /// [`TlsConfig`](crate::tls::TlsConfig) offers: HTTP/2 for `h2`, HTTP/1.1 for `http/1.1`
    /// or when no protocol is agreed. In plaintext, HTTP/1.1 (there is nothing to negotiate
    /// with). The default.
    ///
    /// To reach HTTP/2 servers over TLS, build the TLS configuration with
    /// `.alpn_protocols([b"h2".to_vec(), b"http/1.1".to_vec()])`: without ALPN every TLS
    /// connection speaks HTTP/1.1.
    #[default]
    Negotiate,
}

/// Configures an [`HttpClient`]; start from [`HttpClient::builder`].
///
/// Setters that take a value check it and return [`ClientConfigError`] naming it.
///
/// # Defaults
///
/// - protocol: [`Protocol::Negotiate`]: HTTP/1.1 in plaintext; over TLS what ALPN agrees
///   (works with every server, and reaches HTTP/2 where both sides offer it).
/// - TLS (feature `tls`): none, plain TCP. With [`tls`](Self::tls), every connection is mutual
///   TLS verifying the endpoint's [expected identity](crate::endpoint::Endpoint::identity).
/// - connect timeout: 5 s for the TCP connect (Envoy's default cluster `connect_timeout`):
///   long enough for a distant region, short enough that a black-holed address fails while
///   the caller still cares. The TLS handshake has its own timeout in the `TlsConfig`.
/// - pool idle timeout: 90 s (hyper-util's default): an idle connection is closed after this
///   long unused, below the common 120 s+ idle limits of servers and NAT tables.
/// - max idle connections per endpoint: unbounded (as hyper-util and reqwest); idle
///   connections still expire after the idle timeout. HTTP/2 multiplexes on one connection.
/// - `TCP_NODELAY`: on. RPCs are small writes waiting for an answer; Nagle's algorithm would
///   hold them for up to one round trip.
/// - HTTP/2 keep-alive: off (hyper's default); see [`http2_keep_alive`](Self::http2_keep_alive).
#[derive(Clone)]
pub struct HttpClientBuilder {
    pub(crate) config: Config,
}

/// The validated settings shared by every endpoint client.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) protocol: Protocol,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
    pub(crate) nodelay: bool,
    pub(crate) keep_alive: Option<(Duration, Duration)>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsConfig>,
    /// Made once from `tls` and cloned into every pool's connector (its handshake metrics
    /// are registered once, not per pool).
    #[cfg(feature = "tls")]
    pub(crate) tls_layer: Option<crate::tls::TlsConnectLayer>,
}

impl HttpClientBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        HttpClientBuilder {
            config: Config {
                protocol: Protocol::default(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_idle: usize::MAX,
                nodelay: true,
                keep_alive: None,
                #[cfg(feature = "tls")]
                tls: None,
                #[cfg(feature = "tls")]
                tls_layer: None,
            },
        }
    }

    /// The HTTP version to speak; see [`Protocol`].
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// Connects over mutual TLS with `config`, through
    /// [`TlsConnectLayer`](crate::tls::TlsConnectLayer): each server must prove its
    /// endpoint's [expected identity](crate::endpoint::Endpoint::identity) inside the
    /// handshake, so a server with another identity never receives a request byte. An
    /// endpoint without an expected identity (or with one that does not parse) gets no client:
    /// making it fails with [`NoExpectedIdentity`](crate::tls::NoExpectedIdentity) (or
    /// [`InvalidExpectedIdentity`](crate::tls::InvalidExpectedIdentity)), and the balancer
    /// keeps it out of its set.
    ///
    /// The ALPN protocols the configuration offers must suit the [`Protocol`]; that is
    /// checked by [`build`](Self::build).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: crate::tls::TlsConfig) -> Self {
        self.config.tls_layer = Some(crate::tls::TlsConnectLayer::new(config.clone()));
        self.config.tls = Some(config);
        self
    }

    /// How long a TCP connect may take, greater than zero and at most one hour.
    pub fn connect_timeout(mut self, timeout: Duration) -> Result<Self, ClientConfigError> {
        if timeout.is_zero() || timeout > MAX_DURATION {
            return Err(invalid(
                "connect_timeout",
                format!("{timeout:?}"),
                "greater than zero and at most 1h",
            ));
        }
        self.config.connect_timeout = timeout;
        Ok(self)
    }

    /// How long an unused connection stays in the pool before it is closed, greater than zero
    /// and at most one day. (To keep no idle connection at all, set
    /// [`max_idle_per_endpoint`](Self::max_idle_per_endpoint) to 0.)
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Result<Self, ClientConfigError> {
        if timeout.is_zero() || timeout > MAX_IDLE {
            return Err(invalid(
                "pool_idle_timeout",
                format!("{timeout:?}"),
                "greater than zero and at most 24h",
            ));
        }
        self.config.idle_timeout = timeout;
        Ok(self)
    }

    /// The most idle connections kept per endpoint (and per request authority, which
    /// hyper-util's pool also keys by). 0 keeps none: every HTTP/1 request then opens a new
    /// connection. Any value is valid.
    pub fn max_idle_per_endpoint(mut self, max: usize) -> Self {
        self.config.max_idle = max;
        self
    }

    /// Sets `TCP_NODELAY` on new connections (on by default).
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.config.nodelay = nodelay;
        self
    }

    /// Sends an HTTP/2 PING every `interval`, also on idle pooled connections, and closes the
    /// connection when no answer arrives within `timeout`, so a dead peer behind a silent
    /// network is found before a request is sent to it. Both from 1 ms to 1 hour. Applies to
    /// HTTP/2 connections only.
    pub fn http2_keep_alive(
        mut self,
        interval: Duration,
        timeout: Duration,
    ) -> Result<Self, ClientConfigError> {
        for (setting, value) in [
            ("http2_keep_alive.interval", interval),
            ("http2_keep_alive.timeout", timeout),
        ] {
            if !(Duration::from_millis(1)..=MAX_DURATION).contains(&value) {
                return Err(invalid(setting, format!("{value:?}"), "from 1ms to 1h"));
            }
        }
        self.config.keep_alive = Some((interval, timeout));
        Ok(self)
    }

    /// Checks the settings together and builds the client.
    ///
    /// # Errors
    ///
    /// [`ClientConfigError::Alpn`] when the TLS configuration's ALPN protocols do not suit the
    /// [`Protocol`] (see its variants).
    pub fn build<B>(self) -> Result<HttpClient<B>, ClientConfigError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.config.tls {
            check_alpn(self.config.protocol, &super::connect::offered_alpn(tls))?;
        }
        Ok(HttpClient::from_config(self.config))
    }
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder::new()
    }
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpClientConfig");
        d.field("protocol", &self.protocol)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.idle_timeout)
            .field("max_idle_per_endpoint", &self.max_idle)
            .field("tcp_nodelay", &self.nodelay)
            .field("http2_keep_alive", &self.keep_alive);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls);
        d.finish()
    }
}

/// Refuses ALPN offers naming a protocol the client cannot speak (see
/// [`ClientConfigError::Alpn`]). An empty offer always suits: no ALPN means HTTP/1.1, or HTTP/2
/// by prior knowledge.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn check_alpn(protocol: Protocol, offered: &[Vec<u8>]) -> Result<(), ClientConfigError> {
    if offered.is_empty() {
        return Ok(());
    }
    // Every protocol offered must be one the client can speak: a server may choose any of
    // them, and a choice the client cannot speak fails every connection to that server.
    let speaks: &[&[u8]] = match protocol {
        Protocol::Http1 => &[HTTP11],
        Protocol::Http2 => &[H2],
        Protocol::Negotiate => &[H2, HTTP11],
    };
    let suits = offered.iter().all(|o| speaks.contains(&o.as_slice()));
    if suits {
        Ok(())
    } else {
        Err(ClientConfigError::Alpn {
            protocol,
            offered: offered
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        })
    }
}

fn invalid(setting: &'static str, value: String, expected: &'static str) -> ClientConfigError {
    ClientConfigError::Invalid {
        setting,
        value,
        expected,
    }
}

pub(crate) const H2: &[u8] = b"h2";
pub(crate) const HTTP11: &[u8] = b"http/1.1";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_IDLE: Duration = Duration::from_secs(24 * 3600);
