use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::BoxError;

/// Why a [`Dns`](super::Dns) source could not be built, or why one lookup failed.
///
/// Configuration errors come from [`DnsBuilder::build`](super::DnsBuilder::build) and
/// [`DnsTarget`](super::DnsTarget)'s constructors, each naming the value refused. A
/// [`DnsError::Lookup`] is yielded by the running stream as an `Err` item: the balancer logs it
/// and keeps its last good set, and the source retries with backoff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The target is not a valid host name with port, or SRV name.
    #[error("invalid dns target {input:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TTL clamp bounds are zero or inverted.
    #[error("dns ttl bounds must satisfy 0 < min <= max, got min {min:?} and max {max:?}")]
    InvalidTtlBounds {
        /// The smallest refresh interval given.
        min: Duration,
        /// The largest refresh interval given.
        max: Duration,
    },
    /// The retry backoff bounds are zero or inverted.
    #[error("dns retry backoff must satisfy 0 < min <= max, got min {min:?} and max {max:?}")]
    InvalidBackoff {
        /// The smallest delay given.
        min: Duration,
        /// The largest delay given.
        max: Duration,
    },
    /// The jitter fraction is negative, not below 1, or not a number.
    #[error("dns jitter must be a fraction from 0 up to but not including 1, got {0}")]
    InvalidJitter(f64),
    /// The per-query timeout is zero.
    #[error("dns query timeout must be greater than zero, got {0:?}")]
    InvalidTimeout(Duration),
    /// An explicit resolver was asked for with no name server address.
    #[error("no dns name server address given")]
    NoNameServers,
    /// The system resolver configuration could not be read or parsed.
    #[error("cannot read the system dns configuration{}", from_path(.path.as_deref()))]
    SystemConfig {
        /// The file it was read from: `/etc/resolv.conf` on Unix; `None` where the
        /// configuration is not a file (the Windows registry).
        path: Option<PathBuf>,
        /// Why it could not be read: the I/O error, or the resolver's parse error.
        #[source]
        source: BoxError,
    },
    /// One lookup failed; the source keeps its last good set and retries with backoff.
    #[error("dns lookup of {name} failed: {failure}")]
    Lookup {
        /// The name looked up: the target's, or an SRV record's target host.
        name: String,
        /// What kind of failure it was.
        failure: LookupFailure,
        /// The resolver's error, when there is one (an SRV answer whose targets all lack
        /// addresses has none).
        #[source]
        source: Option<BoxError>,
    },
}

impl DnsError {
    /// The kind of lookup failure, for a [`DnsError::Lookup`].
    pub fn lookup_failure(&self) -> Option<LookupFailure> {
        match self {
            DnsError::Lookup { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

/// `" from <path>"`, or nothing.
fn from_path(path: Option<&Path>) -> String {
    path.map(|p| format!(" from {}", p.display()))
        .unwrap_or_default()
}

/// The kind of a failed lookup.
///
/// [`NxDomain`](LookupFailure::NxDomain) and [`NoRecords`](LookupFailure::NoRecords) are
/// answers (the name server said there is nothing); under
/// [`NxDomainPolicy::Clear`](super::NxDomainPolicy::Clear) they are not errors at all but an
/// empty set. The others are failures to get an answer, after which the last good set is always
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LookupFailure {
    /// The name does not exist (response code NXDOMAIN, RFC 1035 §4.1.1).
    NxDomain,
    /// The name exists but has no records of the type asked for (NODATA, RFC 2308 §2.2), or an
    /// SRV answer has no target with an address.
    NoRecords,
    /// The server answered with an error code: SERVFAIL, REFUSED, ... (RFC 1035 §4.1.1).
    ServerFailure,
    /// No answer arrived in time from any name server.
    Timeout,
    /// Anything else: a network error, a malformed answer.
    Other,
}

impl LookupFailure {
    /// Whether the name server answered that there is nothing at this name (NXDOMAIN or
    /// NODATA), as opposed to failing to answer.
    pub fn is_empty_answer(self) -> bool {
        matches!(self, LookupFailure::NxDomain | LookupFailure::NoRecords)
    }
}

impl fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LookupFailure::NxDomain => "name does not exist",
            LookupFailure::NoRecords => "no records",
            LookupFailure::ServerFailure => "server failure",
            LookupFailure::Timeout => "timed out",
            LookupFailure::Other => "resolver error",
        })
    }
}
