use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

/// A failure talking to etcd, or a value under the watched prefix that is not an endpoint.
///
/// [`Etcd`](super::Etcd) yields these as `Err` items and carries on (a balancer logs them and
/// keeps its last good set); [`Registration`](super::Registration) returns them from
/// [`register`](super::Registration::register) and [`withdraw`](super::Registration::withdraw).
/// Every variant names the cluster URL, key or value concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The configuration was refused before anything was sent.
    #[error("invalid etcd configuration")]
    Config(#[from] ConfigError),
    /// No TCP connection could be made to this cluster member.
    #[error("cannot connect to etcd at {url}")]
    Connect {
        /// The cluster URL.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange with this cluster member failed (connection reset, malformed HTTP).
    #[error("http exchange with etcd at {url} failed")]
    Transport {
        /// The cluster URL.
        url: String,
        /// The transport error (a `hyper::Error`).
        #[source]
        source: BoxError,
    },
    /// This cluster member did not answer within the request timeout.
    #[error("etcd at {url} did not answer {path} within {timeout:?}")]
    Timeout {
        /// The cluster URL.
        url: String,
        /// The API path, such as `/v3/kv/range`.
        path: &'static str,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// etcd answered with an error (its gRPC status code and message).
    #[error("etcd at {url} refused {path}: {message} (grpc code {code}, http status {status})")]
    Server {
        /// The cluster URL.
        url: String,
        /// The API path.
        path: &'static str,
        /// The HTTP status of the gateway's answer.
        status: u16,
        /// The gRPC status code etcd reported (5 = not found, 11 = out of range, 14 =
        /// unavailable, ...), or 0 when the body carried none.
        code: i32,
        /// etcd's message, or the start of the body when it was not etcd's JSON error.
        message: String,
    },
    /// etcd's answer was not the JSON the v3 gateway documents.
    #[error("unexpected answer from etcd at {url} to {path}: {reason}")]
    Response {
        /// The cluster URL.
        url: String,
        /// The API path.
        path: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The watch stream ended (etcd stopped, or the connection closed); the source reconnects
    /// and resumes after the last revision it saw.
    #[error("watch stream from etcd at {url} ended")]
    WatchEnded {
        /// The cluster URL.
        url: String,
    },
    /// The watch stream was quiet for the idle timeout, and the liveness check then sent to the
    /// same member on a new connection failed: the member (or the way to it) is taken for dead,
    /// and the source reconnects, to the next member if need be, and resumes after the last
    /// revision it saw. See [`Builder::watch_liveness`](super::Builder::watch_liveness).
    #[error("watch stream from etcd at {url} was quiet for {idle:?} and its liveness check failed")]
    WatchProbeFailed {
        /// The cluster URL.
        url: String,
        /// The idle timeout after which the check was made.
        idle: Duration,
        /// Why the check failed.
        #[source]
        source: Box<EtcdError>,
    },
    /// The watch stream sent nothing, not even a progress notification, for longer than the
    /// silence bound, although the member answered liveness checks: the watch connection is
    /// taken for dead (a peer or middlebox that dropped it without a FIN or RST), and the source
    /// reconnects and resumes after the last revision it saw.
    #[error("watch stream from etcd at {url} sent nothing for {silent_for:?}")]
    WatchSilent {
        /// The cluster URL.
        url: String,
        /// How long it was silent: the configured bound.
        silent_for: Duration,
    },
    /// etcd canceled the watch for a reason other than compaction.
    #[error("etcd at {url} canceled the watch: {reason}")]
    WatchCanceled {
        /// The cluster URL.
        url: String,
        /// etcd's `cancel_reason`, possibly empty.
        reason: String,
    },
    /// A value under the watched prefix is not an endpoint; that key is skipped.
    #[error(transparent)]
    Value(#[from] InvalidValue),
}

/// A setting etcd discovery or registration cannot work with, naming it and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No cluster URL was given.
    #[error("no etcd cluster url given")]
    NoUrls,
    /// A cluster URL that is not `http://host:port`.
    #[error("invalid etcd cluster url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key prefix was empty.
    #[error("etcd key prefix must not be empty")]
    EmptyPrefix,
    /// A zero request timeout: every request would fail.
    #[error("etcd request timeout must be greater than zero, got {0:?}")]
    ZeroRequestTimeout(Duration),
    /// The reconnect backoff's minimum is zero or larger than its maximum.
    #[error("etcd reconnect backoff must have 0 < min <= max, got min {min:?} max {max:?}")]
    InvalidBackoff {
        /// The first delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
    /// The watch liveness settings are zero or inverted: `0 < idle <= max_silence` is needed.
    #[error(
        "etcd watch liveness must have 0 < idle <= max_silence, got idle {idle:?} max_silence {max_silence:?}"
    )]
    InvalidWatchLiveness {
        /// The idle timeout after which the member is checked.
        idle: Duration,
        /// The longest silence allowed on the watch stream.
        max_silence: Duration,
    },
    /// A lease TTL etcd would not grant: below one second or above etcd's maximum.
    #[error("lease ttl must be from 1 s to 9000000000 s, got {0:?}")]
    InvalidTtl(Duration),
}

/// A value under the watched prefix that does not describe an endpoint.
///
/// Names the key and the value (lossily decoded as UTF-8 and cut at 512 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint at etcd key {key:?}, value {value:?}: {reason}")]
pub struct InvalidValue {
    key: String,
    value: String,
    reason: InvalidValueReason,
}

impl InvalidValue {
    pub(crate) fn new(key: &[u8], value: &[u8], reason: InvalidValueReason) -> Self {
        InvalidValue {
            key: shown(key),
            value: shown(value),
            reason,
        }
    }

    /// The key, lossily decoded as UTF-8.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, lossily decoded as UTF-8, cut at 512 bytes.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &InvalidValueReason {
        &self.reason
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidValueReason {
    /// Not JSON, or not an object with a string `Addr`.
    Json(String),
    /// `Addr` is not an `ip:port` socket address.
    Addr(String),
    /// `Addr` is a `host:port` with a host name: names are refused, not resolved (see the
    /// [module docs](super#addresses-not-host-names) for why).
    HostName(String),
    /// The value is not valid base64 as etcd's gateway sent it, so it cannot even be read; the
    /// error's [`value`](InvalidValue::value) is then the base64 text as received.
    Base64(String),
    /// `Metadata.weight` is not an integer from 1 to 4294967295.
    Weight(String),
    /// `Metadata.zone` is neither a string nor null.
    Zone(String),
    /// `Metadata.region` is neither a string nor null.
    Region(String),
}

impl fmt::Display for InvalidValueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidValueReason::Json(e) => write!(f, "not a naming update: {e}"),
            InvalidValueReason::Addr(a) => {
                write!(f, "Addr {a:?} is not an ip:port socket address")
            }
            InvalidValueReason::HostName(a) => write!(
                f,
                "Addr {a:?} names a host; only ip:port addresses are accepted (host names are not resolved)"
            ),
            InvalidValueReason::Base64(e) => write!(f, "the value is not valid base64: {e}"),
            InvalidValueReason::Weight(w) => {
                write!(
                    f,
                    "Metadata.weight {w} is not an integer from 1 to 4294967295"
                )
            }
            InvalidValueReason::Zone(z) => write!(f, "Metadata.zone {z} is not a string"),
            InvalidValueReason::Region(r) => write!(f, "Metadata.region {r} is not a string"),
        }
    }
}

/// Bytes from outside, as text fit for an error message.
pub(crate) fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 512;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}
