//! Workload identities: a SPIFFE ID or a DNS name, and the verified [`PeerIdentity`] an
//! application reads.
//!
//! An [`Identity`] names a workload. Two forms are accepted:
//!
//! - a **SPIFFE ID**, `spiffe://trust-domain/path`, parsed strictly by the
//!   [SPIFFE ID standard](https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
//!   scheme `spiffe` in lowercase; a trust domain of lowercase letters, digits, `.`, `-` and `_`
//!   (no port, no user info); a non-empty path whose segments are non-empty, are not `.` or `..`
//!   and use only letters, digits, `.`, `-` and `_` (so no percent-encoding, query or fragment,
//!   and no trailing `/`); at most 2048 bytes in total (§2.3). Paths compare case-sensitively.
//! - a **DNS name** (RFC 1123 labels, compared case-insensitively, one trailing dot removed).
//!   A wildcard (`*.example.com`) is never a workload identity and is refused.
//!
//! A [`PeerIdentity`] is the identity of the peer of a connection, read from its certificate
//! *after* the certificate chain was verified (see the `tls` module). The TLS acceptor puts it
//! on each connection, and an application copies it into each request's extensions; nothing a
//! peer sends in a header can produce one.
//!
//! With the `tls` feature, `Identity::from_certificate_der` extracts the identity of an
//! X.509 certificate by the rules of the
//! [X.509-SVID standard](https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md).
//!
//! # Examples
//!
//! ```
//! use tower_mesh::identity::Identity;
//!
//! let id = Identity::parse("spiffe://prod.example/ns/payments/sa/api")?;
//! let spiffe = id.as_spiffe().expect("a SPIFFE ID");
//! assert_eq!(spiffe.trust_domain().as_str(), "prod.example");
//! assert_eq!(spiffe.path(), "/ns/payments/sa/api");
//!
//! assert!(Identity::parse("spiffe://prod.example/ns/../admin").is_err());
//! assert!(Identity::parse("*.example.com").is_err());
//! assert_eq!(Identity::parse("API.Example.com.")?.to_string(), "api.example.com");
//! # Ok::<(), tower_mesh::identity::InvalidIdentity>(())
//! ```

mod dns;
mod error;
mod spiffe;
#[cfg(feature = "tls")]
pub(crate) mod x509;

use std::fmt;

pub use self::dns::DnsName;
pub use self::error::{IdentityErrorKind, InvalidIdentity};
pub use self::spiffe::{SpiffeId, TrustDomain};
#[cfg(feature = "tls")]
pub use self::x509::CertificateIdentityError;

/// A workload identity: a SPIFFE ID or a DNS name.
///
/// Built only by parsing ([`Identity::parse`]), so every value is valid.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Identity {
    /// A SPIFFE ID, `spiffe://trust-domain/path`.
    Spiffe(SpiffeId),
    /// A DNS name.
    Dns(DnsName),
}

impl Identity {
    /// Parses an identity: a string starting with `spiffe://` is a SPIFFE ID; any other string
    /// containing `:` is refused (a URI of another scheme, or an address with a port); anything
    /// else is parsed as a DNS name.
    pub fn parse(s: &str) -> Result<Identity, InvalidIdentity> {
        // Bytes, not a `str` slice: the input may have a multi-byte character at that offset.
        if s.as_bytes()
            .get(..spiffe::SCHEME.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(spiffe::SCHEME.as_bytes()))
        {
            return SpiffeId::parse(s).map(Identity::Spiffe);
        }
        if s.contains(':') {
            return Err(InvalidIdentity::new(s, IdentityErrorKind::WrongScheme));
        }
        DnsName::parse(s).map(Identity::Dns)
    }

    /// The SPIFFE ID, if this is one.
    pub fn as_spiffe(&self) -> Option<&SpiffeId> {
        match self {
            Identity::Spiffe(id) => Some(id),
            Identity::Dns(_) => None,
        }
    }

    /// The DNS name, if this is one.
    pub fn as_dns(&self) -> Option<&DnsName> {
        match self {
            Identity::Dns(name) => Some(name),
            Identity::Spiffe(_) => None,
        }
    }

    /// The identity as a string (the canonical form that [`Identity::parse`] accepts).
    pub fn as_str(&self) -> &str {
        match self {
            Identity::Spiffe(id) => id.as_str(),
            Identity::Dns(name) => name.as_str(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Spiffe(id) => fmt::Debug::fmt(id, f),
            Identity::Dns(name) => fmt::Debug::fmt(name, f),
        }
    }
}

impl std::str::FromStr for Identity {
    type Err = InvalidIdentity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identity::parse(s)
    }
}

/// The verified identity of a connection's peer, as an application reads it from a request's
/// (or connection's) extensions.
///
/// Only this crate creates one, from a certificate whose chain it verified; an application
/// cannot build one from a string, so a `PeerIdentity` in a request's extensions always comes
/// from the TLS handshake. A peer that presented no certificate (a permissive server) has no
/// `PeerIdentity`: absence means anonymous.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    identity: Identity,
}

impl PeerIdentity {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn new(identity: Identity) -> Self {
        PeerIdentity { identity }
    }

    /// The verified identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The verified SPIFFE ID, if the peer proved one.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.identity.as_spiffe()
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerIdentity").field(&self.identity).finish()
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.identity, f)
    }
}

#[cfg(test)]
mod tests;
