//! DNS names as workload identities (RFC 1123 host names).

use std::fmt;
use std::sync::Arc;

use super::{IdentityErrorKind as Kind, InvalidIdentity};

/// A DNS name naming a workload, such as `api.payments.svc`.
///
/// Stored in lowercase without a trailing dot, so two names are equal exactly when DNS would
/// treat them as the same name. Wildcards and IP addresses are refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(Arc<str>);

impl DnsName {
    /// Parses a DNS name: labels of 1 to 63 letters, digits and `-` (not first or last),
    /// at most 253 bytes, one optional trailing dot.
    pub fn parse(s: &str) -> Result<DnsName, InvalidIdentity> {
        let err = |kind| Err(InvalidIdentity::new(s, kind));
        let name = s.strip_suffix('.').unwrap_or(s);
        if name.is_empty() {
            return err(Kind::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return err(Kind::TooLong);
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return err(Kind::IpAddress);
        }
        for label in name.split('.') {
            if label == "*" || label.contains('*') {
                return err(Kind::Wildcard);
            }
            let bytes = label.as_bytes();
            let ok = !bytes.is_empty()
                && bytes.len() <= MAX_LABEL_LEN
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
            if !ok {
                return err(Kind::BadDnsLabel);
            }
        }
        // An all-numeric last label would read as an IPv4 address to some resolvers.
        if name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return err(Kind::IpAddress);
        }
        Ok(DnsName(Arc::from(name.to_ascii_lowercase())))
    }

    /// The name, lowercase, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsName({:?})", &*self.0)
    }
}

impl std::str::FromStr for DnsName {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DnsName::parse(s)
    }
}

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
