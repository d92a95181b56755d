//! The error of identity parsing.

use std::fmt;

/// A string that is not a valid [`Identity`](super::Identity), naming the value and the rule it
/// broke.
///
/// The value is kept whole up to 256 bytes and cut beyond (marked with `…`), so an attacker's
/// 64 KiB string does not travel through logs.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid identity {value:?}: {kind}")]
pub struct InvalidIdentity {
    value: String,
    kind: IdentityErrorKind,
}

impl InvalidIdentity {
    pub(crate) fn new(value: &str, kind: IdentityErrorKind) -> Self {
        let value = if value.len() <= SHOWN {
            value.to_owned()
        } else {
            let mut end = SHOWN;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &value[..end])
        };
        InvalidIdentity { value, kind }
    }

    /// The refused value (cut to 256 bytes).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The rule the value broke.
    pub fn kind(&self) -> IdentityErrorKind {
        self.kind
    }
}

impl fmt::Debug for InvalidIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidIdentity")
            .field("value", &self.value)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Which rule an identity string broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityErrorKind {
    /// Empty string.
    #[error("empty")]
    Empty,
    /// Longer than 2048 bytes (SPIFFE ID) or 253 bytes (DNS name).
    #[error("too long")]
    TooLong,
    /// A URI whose scheme is not exactly `spiffe`, or a `:` in a DNS name.
    #[error("scheme must be `spiffe` (lowercase)")]
    WrongScheme,
    /// The SPIFFE trust domain is empty.
    #[error("empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain has a character outside `[a-z0-9._-]` (uppercase, `@` user info,
    /// `:` port, `%` ...).
    #[error("trust domain may contain only lowercase letters, digits, `.`, `-` and `_`")]
    BadTrustDomainChar,
    /// A SPIFFE ID without a path, or with only `/`: it names a trust domain, not a workload.
    #[error("a workload identity needs a non-root path")]
    RootPath,
    /// An empty path segment (`//`, or a trailing `/`).
    #[error("empty path segment")]
    EmptySegment,
    /// A `.` or `..` path segment.
    #[error("dot segment in path")]
    DotSegment,
    /// A path character outside `[A-Za-z0-9._-]` (`%`, `?`, `#`, space, `*` ...).
    #[error("path may contain only letters, digits, `.`, `-` and `_`")]
    BadPathChar,
    /// A DNS label that is empty, longer than 63 bytes, starts or ends with `-`, or has a
    /// character outside `[A-Za-z0-9-]`.
    #[error("invalid DNS label")]
    BadDnsLabel,
    /// A wildcard DNS name: it matches many workloads, so it is never one workload's identity.
    #[error("a wildcard is not a workload identity")]
    Wildcard,
    /// An IP address where a name was expected.
    #[error("an IP address is not a DNS name")]
    IpAddress,
}

const SHOWN: usize = 256;
