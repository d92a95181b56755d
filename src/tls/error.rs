//! Errors of TLS configuration, handshakes and connection lifetime.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::identity::{CertificateIdentityError, Identity, InvalidIdentity};

/// Where a piece of key material came from, so an error can name it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// Bytes given in memory.
    Memory,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Memory => f.write_str("in-memory PEM"),
        }
    }
}

/// Key material or TLS settings that cannot be used, naming the file (or setting) at fault.
///
/// Returned when a [`TlsConfig`](super::TlsConfig) is built and when new material is offered
/// for rotation; a refused rotation keeps the previous material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Malformed PEM (a half-written file, a truncated section, bad base64).
    #[error("malformed PEM in {origin}")]
    Pem {
        /// Where the PEM came from.
        origin: Origin,
        /// The parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// No `CERTIFICATE` section where a certificate chain was expected.
    #[error("no certificate in {origin}")]
    NoCertificate {
        /// Where the PEM came from.
        origin: Origin,
    },
    /// No private key section where a key was expected.
    #[error("no private key in {origin}")]
    NoPrivateKey {
        /// Where the PEM came from.
        origin: Origin,
    },
    /// The private key cannot be loaded by the crypto provider.
    #[error("unusable private key in {origin}")]
    InvalidKey {
        /// Where the key came from.
        origin: Origin,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// Our leaf certificate cannot be parsed (webpki refuses it: bad DER, an unknown critical
    /// extension, ...).
    #[error("unusable certificate in {origin}")]
    InvalidCertificate {
        /// Where the certificate came from.
        origin: Origin,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The private key is not the key of the leaf certificate (or the provider cannot tell:
    /// refused, fail closed).
    #[error("private key in {key} does not match the certificate in {cert}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: Origin,
        /// Where the key came from.
        key: Origin,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// Our leaf certificate's names and validity cannot be read (x509-parser refuses it).
    #[error("unreadable certificate in {origin}")]
    UnreadableCertificate {
        /// Where the certificate came from.
        origin: Origin,
        /// The parser's error.
        #[source]
        source: CertificateIdentityError,
    },
    /// A rotation offered a certificate that is not valid now (expired, or not yet valid):
    /// swapping it in would only make every new handshake fail.
    #[error(
        "certificate in {origin} is not valid now: valid from {} to {} (Unix seconds), now {}",
        unix_secs(*.not_before), unix_secs(*.not_after), unix_secs(*.now)
    )]
    NotValidNow {
        /// Where the certificate came from.
        origin: Origin,
        /// The certificate's `notBefore`.
        not_before: SystemTime,
        /// The certificate's `notAfter`.
        not_after: SystemTime,
        /// The time it was checked at.
        now: SystemTime,
    },
    /// A rotation offered a certificate for other names than the one in use. A workload keeps
    /// its identity across rotations; a certificate for another workload in our files is a
    /// deployment mistake, refused so that peers do not start refusing us.
    #[error("certificate in {origin} names {} but the current one names {}", .new.join(", "), .current.join(", "))]
    IdentityChanged {
        /// Where the new certificate came from.
        origin: Origin,
        /// The names (URI and DNS SANs) of the certificate in use.
        current: Vec<String>,
        /// The names of the refused certificate.
        new: Vec<String>,
    },
    /// A trust bundle without any certificate.
    #[error("empty trust bundle in {origin}")]
    EmptyBundle {
        /// Where the bundle came from.
        origin: Origin,
    },
    /// A certificate in a trust bundle cannot be a trust anchor.
    #[error("unusable trust anchor in {origin}")]
    InvalidTrustAnchor {
        /// Where the bundle came from.
        origin: Origin,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// A SPIFFE bundle (JWK Set) that cannot be read.
    #[error("malformed SPIFFE bundle in {origin}: {reason}")]
    SpiffeBundle {
        /// Where the bundle came from.
        origin: Origin,
        /// What is wrong, with line and column for JSON syntax errors.
        reason: String,
    },
    /// A PEM file given as CRLs holds no `X509 CRL` section.
    #[error("no certificate revocation list in {origin}")]
    NoCrl {
        /// Where the PEM came from.
        origin: Origin,
    },
    /// A CRL file is listed for a bundle that is not reloaded from a file.
    #[error("CRLs in {origin} are for a trust bundle that is not listed")]
    CrlWithoutBundle {
        /// The CRL file.
        origin: Origin,
    },
    /// A certificate revocation list cannot be parsed.
    #[error("invalid certificate revocation list in {origin}: {reason}")]
    InvalidCrl {
        /// Where the CRL came from.
        origin: Origin,
        /// webpki's reason.
        reason: String,
    },
    /// rustls cannot build a verifier from a bundle (a CRL it refuses, for example).
    #[error("cannot build a verifier from the trust bundle in {origin}: {reason}")]
    Verifier {
        /// Where the bundle came from.
        origin: Origin,
        /// rustls's reason.
        reason: String,
    },
    /// No trust bundle at all: nothing could ever be verified.
    #[error("no trust bundle configured")]
    NoTrustBundle,
    /// The configuration was built without our own certificate and key.
    #[error("no certificate and key configured")]
    NoCredentials,
    /// The crypto provider cannot make a TLS 1.3 configuration.
    #[error("crypto provider unusable for TLS 1.3")]
    Provider(#[source] rustls::Error),
    /// A duration setting that must be positive was zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// The setting's name.
        setting: &'static str,
    },
}

/// The endpoint gave no identity to verify the server against, and the connector has no fixed
/// one: connecting would authenticate nobody, so it is refused before any socket is opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {addr} has no expected identity")]
pub struct NoExpectedIdentity {
    pub(crate) addr: SocketAddr,
}

impl NoExpectedIdentity {
    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The endpoint's expected identity does not parse; refused before any socket is opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {addr} has an invalid expected identity")]
pub struct InvalidExpectedIdentity {
    pub(crate) addr: SocketAddr,
    #[source]
    pub(crate) source: InvalidIdentity,
}

impl InvalidExpectedIdentity {
    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The parse error, naming the bad value.
    pub fn error(&self) -> &InvalidIdentity {
        &self.source
    }
}

/// A TLS handshake failed: the peer's certificate was refused, the peer refused ours, the
/// protocol could not be agreed, or the peer sent something that is not TLS.
///
/// The connection is closed; the library never retries at a lower version or without TLS.
#[derive(Debug, thiserror::Error)]
#[error("tls handshake failed{}", peer_suffix(.peer))]
pub struct HandshakeFailed {
    pub(crate) peer: Option<SocketAddr>,
    #[source]
    pub(crate) source: io::Error,
}

impl HandshakeFailed {
    /// The server finished a handshake without a certificate (which rustls does not allow for
    /// a client that verifies; kept as a fail-closed guard).
    pub(crate) fn no_peer_certificate(peer: SocketAddr) -> Self {
        HandshakeFailed {
            peer: Some(peer),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::NoCertificatesPresented,
            ),
        }
    }

    /// The peer's address, when known (the connector knows it; a generic acceptor does not).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The rustls error behind the failure, if the failure was a TLS error (and not, say, a
    /// reset connection).
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        self.source.get_ref()?.downcast_ref::<rustls::Error>()
    }
}

/// A handshake did not finish within the configured handshake timeout; the socket is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tls handshake timed out after {timeout:?}{}", peer_suffix(.peer))]
pub struct HandshakeTimeout {
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) timeout: Duration,
}

impl HandshakeTimeout {
    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The peer's address, when known (the connector knows it; a generic acceptor does not).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// Our own certificate is expired or not yet valid, so the connector refuses to connect:
/// every peer would refuse the handshake. Renew the certificate (or let rotation do it); see
/// [`TlsConfig::certificate_expiry`](super::TlsConfig::certificate_expiry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "our certificate is not valid now (valid from {} to {}, Unix seconds)",
    unix_secs(*.not_before), unix_secs(*.not_after)
)]
pub struct OwnCertificateNotValid {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

impl OwnCertificateNotValid {
    /// Our certificate's `notAfter`.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Our certificate's `notBefore`.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }
}

/// The peer's certificate chain is valid but its identity is not the expected one.
///
/// Carried inside the rustls error of a failed handshake
/// (`rustls::Error::InvalidCertificate(CertificateError::Other(..))`); the handshake is aborted
/// before any application byte is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer identity is not {expected}: {}", presented_text(.presented))]
pub struct IdentityMismatch {
    pub(crate) expected: Identity,
    pub(crate) presented: Option<Identity>,
}

impl IdentityMismatch {
    /// The identity the peer was expected to prove.
    pub fn expected(&self) -> &Identity {
        &self.expected
    }

    /// The identity the certificate carries, when it carries a valid one.
    pub fn presented(&self) -> Option<&Identity> {
        self.presented.as_ref()
    }
}

/// The peer certificate breaks a rule of workload identity (X.509-SVID leaf rules, or no
/// usable identity). Carried inside the rustls error of a failed handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer certificate carries no acceptable identity")]
pub struct BadPeerCertificate {
    #[source]
    pub(crate) source: CertificateIdentityError,
}

impl BadPeerCertificate {
    /// The rule that was broken.
    pub fn error(&self) -> &CertificateIdentityError {
        &self.source
    }
}

/// The peer's leaf certificate names a SPIFFE trust domain for which no bundle is configured.
/// Carried inside the rustls error of a failed handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no trust bundle for trust domain {trust_domain}")]
pub struct UnknownTrustDomain {
    pub(crate) trust_domain: String,
}

impl UnknownTrustDomain {
    /// The trust domain the certificate (or the expected identity) named.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }
}

/// A connection reached its maximum age, or outlived a certificate that opened it; reads and
/// writes fail with this error (inside an [`io::Error`] of kind `TimedOut`) from then on. See
/// [`TlsConfigBuilder::max_connection_age`].
///
/// [`TlsConfigBuilder::max_connection_age`]: super::TlsConfigBuilder::max_connection_age
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .certificate_expired {
    false => format!("connection reached its maximum age of {:?}", .max_age),
    true => format!("connection outlived a certificate that opened it (after {:?})", .max_age),
})]
pub struct ConnectionAgeExceeded {
    pub(crate) max_age: Duration,
    pub(crate) certificate_expired: bool,
}

impl ConnectionAgeExceeded {
    /// How long the connection was allowed to live: the configured maximum age, or less when
    /// a certificate of the handshake expired sooner.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Whether the limit was a certificate's expiry rather than the configured maximum age.
    pub fn certificate_expired(&self) -> bool {
        self.certificate_expired
    }
}

fn presented_text(presented: &Option<Identity>) -> String {
    match presented {
        Some(id) => format!("it presented {id}"),
        None => "it presented no valid identity".to_owned(),
    }
}

fn unix_secs(t: SystemTime) -> String {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs().to_string(),
        Err(e) => format!("-{}", e.duration().as_secs()),
    }
}

fn peer_suffix(peer: &Option<SocketAddr>) -> String {
    match peer {
        Some(addr) => format!(" with {addr}"),
        None => String::new(),
    }
}
