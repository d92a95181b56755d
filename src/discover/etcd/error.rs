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
    /// `Addr` is not an `ip:port` socket address (host names are not resolved).
    Addr(String),
    /// `Metadata.weight` is not an integer from 1 to 4294967295.
    Weight(String),
    /// `Metadata.zone` is neither a string nor null.
    Zone(String),
}

impl fmt::Display for InvalidValueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidValueReason::Json(e) => write!(f, "not a naming update: {e}"),
            InvalidValueReason::Addr(a) => {
                write!(f, "Addr {a:?} is not an ip:port socket address")
            }
            InvalidValueReason::Weight(w) => {
                write!(
                    f,
                    "Metadata.weight {w} is not an integer from 1 to 4294967295"
                )
            }
            InvalidValueReason::Zone(z) => write!(f, "Metadata.zone {z} is not a string"),
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
