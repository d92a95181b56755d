//! SPIFFE IDs and trust domains, per the SPIFFE ID standard §2.

use std::fmt;
use std::sync::Arc;

use super::{IdentityErrorKind as Kind, InvalidIdentity};

/// A SPIFFE ID naming a workload: `spiffe://trust-domain/path`, with a non-root path.
///
/// Compares byte for byte: the trust domain is lowercase by construction and the path is
/// case-sensitive.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: Arc<str>,
    // Byte offset of the path's leading `/` in `id`.
    path_start: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID strictly (see the [module docs](super)).
    pub fn parse(s: &str) -> Result<SpiffeId, InvalidIdentity> {
        let err = |kind| Err(InvalidIdentity::new(s, kind));
        if s.is_empty() {
            return err(Kind::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return err(Kind::TooLong);
        }
        let Some(rest) = s.strip_prefix(SCHEME) else {
            return err(Kind::WrongScheme);
        };
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Err(kind) = check_trust_domain(td) {
            return err(kind);
        }
        if path.is_empty() || path == "/" {
            return err(Kind::RootPath);
        }
        for segment in path[1..].split('/') {
            match segment {
                "" => return err(Kind::EmptySegment),
                "." | ".." => return err(Kind::DotSegment),
                _ if !segment.bytes().all(is_path_byte) => return err(Kind::BadPathChar),
                _ => {}
            }
        }
        Ok(SpiffeId {
            id: Arc::from(s),
            path_start: SCHEME.len() + td.len(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(Arc::from(&self.id[SCHEME.len()..self.path_start]))
    }

    /// The trust domain name, without allocating.
    pub fn trust_domain_str(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", &*self.id)
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

/// A SPIFFE trust domain name, such as `prod.example`: the authority of a SPIFFE ID, which
/// selects the trust bundle that verifies its certificates.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(Arc<str>);

impl TrustDomain {
    /// Parses a trust domain name: lowercase letters, digits, `.`, `-` and `_`, at most 255
    /// bytes. A `spiffe://` prefix is accepted and removed.
    pub fn parse(s: &str) -> Result<TrustDomain, InvalidIdentity> {
        let td = s.strip_prefix(SCHEME).unwrap_or(s);
        check_trust_domain(td).map_err(|kind| InvalidIdentity::new(s, kind))?;
        Ok(TrustDomain(Arc::from(td)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", &*self.0)
    }
}

impl std::str::FromStr for TrustDomain {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::parse(s)
    }
}

fn check_trust_domain(td: &str) -> Result<(), Kind> {
    if td.is_empty() {
        return Err(Kind::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(Kind::TooLong);
    }
    if !td.bytes().all(is_trust_domain_byte) {
        return Err(Kind::BadTrustDomainChar);
    }
    Ok(())
}

fn is_trust_domain_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_')
}

pub(super) const SCHEME: &str = "spiffe://";
/// SPIFFE-ID §2.3: URIs up to 2048 bytes must be supported; we refuse longer ones.
const MAX_ID_LEN: usize = 2048;
/// SPIFFE-ID §2.3: trust domain names are at most 255 bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
