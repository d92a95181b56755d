//! Mutual TLS with workload identity, on rustls: a client connector layer, a server acceptor,
//! identity-aware certificate verification and certificate rotation.
//!
//! ```text
//!  client: Service<Endpoint> ─▶ TlsConnector ─▶ TlsStream (server proved Endpoint::identity())
//!  server: accepted TcpStream ─▶ TlsAcceptor  ─▶ TlsStream (client's PeerIdentity, if any)
//! ```
//!
//! What it promises (the project's SECURITY.md, after Linkerd, Istio, the SPIFFE
//! [X.509-SVID](https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md) standard and
//! rustls):
//!
//! - **TLS 1.3 only**, with an explicit [`CryptoProvider`](rustls::crypto::CryptoProvider)
//!   and no fallback to an older version or to plaintext, ever (RFC 8446).
//! - **Chains are verified by webpki** against the trust bundle chosen by the peer's trust
//!   domain (never by trying every root); **then our X.509-SVID leaf rules** apply: exactly one
//!   URI SAN, scheme `spiffe`, a non-root path, `cA=false`, no `keyCertSign`/`cRLSign`. DNS
//!   identities match a DNS SAN exactly; a wildcard never names a workload.
//! - **The client verifies the expected identity inside the handshake**, so a server with a
//!   valid chain but the wrong identity never receives a request byte. For SPIFFE identities
//!   the hostname/SNI check is replaced by the SPIFFE ID match.
//! - **mTLS authenticates; it does not authorize**: the acceptor only extracts the verified
//!   [`PeerIdentity`](crate::identity::PeerIdentity); policy decides.
//! - **Rotation without restart**: [`TlsConfig::update_credentials`],
//!   [`TlsConfig::update_trust`] and [`TlsConfig::reload_from_files`] swap material atomically
//!   (arc-swap behind rustls's `ResolvesClientCert`/`ResolvesServerCert` and our verifier);
//!   bad material is refused and the old kept; open connections are untouched, and
//!   [`TlsConfigBuilder::max_connection_age`] bounds how long they live.
//! - **Revocation** by CRLs per trust bundle ([`TrustBundle::with_crl_pem_file`]), checked on
//!   both sides over the whole chain, failing closed when a certificate's status is unknown;
//!   CRL files reload with their bundles ([`ReloadFiles::with_spiffe_crls`]).
//! - **No connection outlives a certificate that opened it**: reads and writes fail once the
//!   peer's leaf or ours expires, so the next connection re-handshakes (TLS verifies once).
//! - **Rotations keep the workload's identity**: a new leaf that is not valid now, or names
//!   another workload, is refused; [`TlsConfig::certificate_expiry`] tells a readiness check
//!   when ours runs out.
//! - Risky switches live in [`danger`].
//!
//! Not supported: TLS 1.2 in any form (on purpose), OCSP stapling, and URI name constraints
//! on intermediates (webpki refuses such chains: fail closed).
//!
//! # Examples
//!
//! ```no_run
//! # fn run(cert: &str, key: &str, bundle: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tower_mesh::identity::TrustDomain;
//! use tower_mesh::tls::{Credentials, TlsAcceptor, TlsConfig, TlsConnectLayer, TrustBundle, TrustStore};
//!
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let config = TlsConfig::builder(provider)
//!     .credentials(Credentials::from_pem_files(cert, key)?)
//!     .trust(TrustStore::new().with_spiffe(
//!         TrustDomain::parse("prod.example")?,
//!         TrustBundle::from_pem_file(bundle)?,
//!     ))
//!     .build()?;
//! let connect = TlsConnectLayer::new(config.clone());
//! let accept = TlsAcceptor::new(config);
//! # Ok(()) }
//! ```

mod accept;
mod config;
mod connect;
pub mod danger;
mod error;
mod material;
mod provider;
mod reload;
mod stream;
mod verify;

pub use self::accept::TlsAcceptor;
pub use self::config::{TlsConfig, TlsConfigBuilder};
pub use self::connect::{TlsConnectLayer, TlsConnector};
pub use self::error::{
    BadPeerCertificate, ConnectionAgeExceeded, HandshakeFailed, HandshakeTimeout, IdentityMismatch,
    InvalidExpectedIdentity, NoExpectedIdentity, Origin, OwnCertificateNotValid, TlsConfigError,
    UnknownTrustDomain,
};
pub use self::material::{Credentials, TrustBundle, TrustStore};
pub use self::reload::{ReloadFiles, ReloadHandle, ReloadStatus};
pub use self::stream::TlsStream;
