//! [`TlsConfig`]: the shared TLS configuration behind the connector and the acceptor.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use super::error::{OwnCertificateNotValid, TlsConfigError};
use super::material::{Credentials, TrustStore};
use super::verify::{ClientVerifier, ServerVerifier, Trust, Verification};
use crate::identity::Identity;
use crate::identity::x509::{Leaf, LeafRules};

/// The TLS configuration of a workload: its certificate and key, its trust bundles, and the
/// settings shared by [`TlsConnectLayer`](super::TlsConnectLayer) and
/// [`TlsAcceptor`](super::TlsAcceptor). Cheap to clone (one `Arc`); clones share the material,
/// so a rotation through any clone is seen by all.
///
/// # Defaults
///
/// - TLS 1.3 only, with no setting to lower it: mesh traffic never falls back to an older
///   version or to plaintext.
/// - The crypto provider is passed in explicitly; nothing uses a process-wide default.
/// - Client certificates are **required** by the acceptor (strict); see
///   [`TlsConfigBuilder::allow_unauthenticated`].
/// - Handshake timeout: 10 s, so a stalled peer cannot hold a socket.
/// - No maximum connection age (see [`TlsConfigBuilder::max_connection_age`]), but no
///   connection outlives a certificate that opened it: once the peer's leaf or our own
///   expires, the connection fails its reads and writes, so the next one re-handshakes with
///   current material (TLS verifies a certificate only once, at the handshake).
/// - SPIFFE leaves must carry key usage with `digitalSignature` and an extended key usage
///   extension (X.509-SVID §4.3–4.4); [`danger`](super::danger) can relax this.
/// - Session resumption is off on both sides: a resumed TLS 1.3 session skips certificate
///   verification, so it could not prove the expected identity against the current trust
///   bundle, and it would let a session outlive a rotation.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Inner>,
}

struct Inner {
    verification: Arc<Verification>,
    credentials: Arc<CredentialSlot>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    handshake_timeout: Duration,
    max_connection_age: Option<Duration>,
    connect_with_invalid_certificate: bool,
}

impl TlsConfig {
    /// Starts a configuration using `provider` for all cryptography.
    pub fn builder(provider: Arc<CryptoProvider>) -> TlsConfigBuilder {
        TlsConfigBuilder {
            provider,
            credentials: None,
            trust: TrustStore::new(),
            mandatory: true,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connection_age: None,
            alpn: Vec::new(),
            rules: LeafRules::STRICT,
            connect_with_invalid_certificate: false,
        }
    }

    /// Replaces our certificate and key for new handshakes, after checking that the key
    /// matches the certificate. On error the current pair is kept. Open connections are not
    /// touched.
    ///
    /// A rotation must keep the workload's identity and be usable now, so it is also refused
    /// when the new leaf is expired or not yet valid by the system clock
    /// ([`TlsConfigError::NotValidNow`]), or names other workloads (its URI and DNS SANs differ
    /// from the current leaf's: [`TlsConfigError::IdentityChanged`]).
    pub fn update_credentials(&self, credentials: &Credentials) -> Result<(), TlsConfigError> {
        let certified = credentials.certify(&self.inner.verification.provider)?;
        let leaf = credentials.leaf()?;
        let now = SystemTime::now();
        if now < leaf.not_before() || now > leaf.not_after() {
            return Err(TlsConfigError::NotValidNow {
                origin: credentials.cert_origin().clone(),
                not_before: leaf.not_before(),
                not_after: leaf.not_after(),
                now,
            });
        }
        let current = self.inner.credentials.current.load();
        let (names, current_names) = (leaf.names(), current.leaf.names());
        if names != current_names {
            return Err(TlsConfigError::IdentityChanged {
                origin: credentials.cert_origin().clone(),
                current: current_names,
                new: names,
            });
        }
        self.inner.credentials.current.store(Arc::new(Current {
            key: Arc::new(certified),
            leaf,
        }));
        Ok(())
    }

    /// Replaces the trust bundles for new handshakes. On error (an empty store) the current
    /// bundles are kept. Open connections are not touched.
    pub fn update_trust(&self, trust: &TrustStore) -> Result<(), TlsConfigError> {
        let built = Trust::build(trust, &self.inner.verification.provider)?;
        self.inner.verification.trust.store(Arc::new(built));
        Ok(())
    }

    /// The leaf certificate currently presented to peers.
    pub fn current_certificate(&self) -> rustls_pki_types::CertificateDer<'static> {
        // A CertifiedKey is only stored after `keys_match`, which requires a leaf.
        self.inner.credentials.current.load().key.cert[0].clone()
    }

    /// When the leaf certificate currently presented to peers expires (its `notAfter`).
    ///
    /// Peers refuse it from then on, so a readiness check can watch this: a workload whose
    /// certificate is about to expire and is not being renewed should stop taking traffic
    /// before its handshakes start failing.
    pub fn certificate_expiry(&self) -> SystemTime {
        self.inner.credentials.current.load().leaf.not_after()
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.inner.handshake_timeout
    }

    /// The maximum connection age, if set.
    pub fn max_connection_age(&self) -> Option<Duration> {
        self.inner.max_connection_age
    }

    /// How long a connection that just completed its handshake may live, and whether that
    /// limit is a certificate's expiry (rather than the maximum age): the earliest of the
    /// maximum age, the peer leaf's `notAfter` and our leaf's `notAfter`. Our own leaf counts
    /// only while it is still valid: once it expired, the peer's verdict on it decides (with
    /// TLS 1.3 a client learns of the refusal on its first read, and that error says more).
    pub(crate) fn connection_limit(
        &self,
        peer_not_after: Option<SystemTime>,
    ) -> Option<(Duration, bool)> {
        let now = SystemTime::now();
        let own = self.certificate_expiry();
        let remaining = |t: SystemTime| t.duration_since(now).unwrap_or(Duration::ZERO);
        let certificate = peer_not_after
            .map(remaining)
            .into_iter()
            .chain((own > now).then(|| remaining(own)))
            .min();
        match (self.inner.max_connection_age, certificate) {
            (Some(age), Some(cert)) if cert < age => Some((cert, true)),
            (Some(age), _) => Some((age, false)),
            (None, Some(cert)) => Some((cert, true)),
            (None, None) => None,
        }
    }

    /// Refuses to open a connection with our own certificate outside its validity period:
    /// the peer would refuse it, and failing here says why (SECURITY.md G6: a workload whose
    /// certificate ran out does not start connections it knows will be rejected).
    pub(crate) fn check_own_certificate(&self) -> Result<(), OwnCertificateNotValid> {
        if self.inner.connect_with_invalid_certificate {
            return Ok(());
        }
        let current = self.inner.credentials.current.load();
        let now = SystemTime::now();
        let (not_before, not_after) = (current.leaf.not_before(), current.leaf.not_after());
        if now < not_before || now > not_after {
            return Err(OwnCertificateNotValid {
                not_before,
                not_after,
            });
        }
        Ok(())
    }

    pub(crate) fn leaf_rules(&self) -> LeafRules {
        self.inner.verification.rules
    }

    /// The rustls server configuration the acceptor uses.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.inner.server.clone()
    }

    /// A rustls client configuration that accepts only a server proving `expected`.
    pub fn client_config_for(&self, expected: Identity) -> Arc<ClientConfig> {
        let mut config = ClientConfig::clone(&self.inner.client);
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(ServerVerifier {
                verification: self.inner.verification.clone(),
                expected: Some(expected),
            }));
        Arc::new(config)
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_auth_mandatory", &self.inner.credentials.mandatory)
            .field("handshake_timeout", &self.inner.handshake_timeout)
            .field("max_connection_age", &self.inner.max_connection_age)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TlsConfig`]; see its `# Defaults`.
pub struct TlsConfigBuilder {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) trust: TrustStore,
    pub(crate) mandatory: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connection_age: Option<Duration>,
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) rules: LeafRules,
    pub(crate) connect_with_invalid_certificate: bool,
}

impl TlsConfigBuilder {
    /// Our certificate chain and key, presented to servers (mTLS) and to clients.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The trust bundles peers are verified against.
    pub fn trust(mut self, trust: TrustStore) -> Self {
        self.trust = trust;
        self
    }

    /// Lets the acceptor complete handshakes with clients that present no certificate
    /// (permissive mode). Such connections have no
    /// [`PeerIdentity`](crate::identity::PeerIdentity); a client that does present a
    /// certificate is still verified fully and refused if invalid.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.mandatory = false;
        self
    }

    /// How long a handshake may take, on both sides, before the socket is closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The longest a connection may live. Once it is reached, every read and write on the
    /// connection fails with [`ConnectionAgeExceeded`](super::ConnectionAgeExceeded) (inside an
    /// `io::Error` of kind `TimedOut`), on both client and server streams; the owner (hyper,
    /// for instance) then closes it, and the next connection handshakes with the current
    /// material. An idle connection is woken up and fails at that moment too. Set it no longer
    /// than the lifetime of the certificates so no connection outlives the certificate that
    /// opened it.
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// ALPN protocols to offer (client) and accept (server), most preferred first, such as
    /// `b"h2"` and `b"http/1.1"`.
    pub fn alpn_protocols(mut self, protocols: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.alpn = protocols.into_iter().collect();
        self
    }

    /// Checks the material and builds the configuration.
    pub fn build(self) -> Result<TlsConfig, TlsConfigError> {
        if self.handshake_timeout.is_zero() {
            return Err(TlsConfigError::ZeroDuration {
                setting: "handshake timeout",
            });
        }
        if self.max_connection_age.is_some_and(|age| age.is_zero()) {
            return Err(TlsConfigError::ZeroDuration {
                setting: "maximum connection age",
            });
        }
        let credentials = self.credentials.ok_or(TlsConfigError::NoCredentials)?;
        let certified = credentials.certify(&self.provider)?;
        let leaf = credentials.leaf()?;
        let trust = Trust::build(&self.trust, &self.provider)?;
        let verification = Arc::new(Verification {
            provider: self.provider.clone(),
            trust: ArcSwap::from_pointee(trust),
            rules: self.rules,
        });
        let slot = Arc::new(CredentialSlot {
            current: ArcSwap::from_pointee(Current {
                key: Arc::new(certified),
                leaf,
            }),
            mandatory: self.mandatory,
        });

        let mut client = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsConfigError::Provider)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerVerifier {
                verification: verification.clone(),
                expected: None,
            }))
            .with_client_cert_resolver(slot.clone());
        client.resumption = Resumption::disabled();
        client.alpn_protocols = self.alpn.clone();

        let mut server = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsConfigError::Provider)?
            .with_client_cert_verifier(Arc::new(ClientVerifier {
                verification: verification.clone(),
                mandatory: self.mandatory,
            }))
            .with_cert_resolver(slot.clone());
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        server.alpn_protocols = self.alpn;

        Ok(TlsConfig {
            inner: Arc::new(Inner {
                verification,
                credentials: slot,
                client: Arc::new(client),
                server: Arc::new(server),
                handshake_timeout: self.handshake_timeout,
                max_connection_age: self.max_connection_age,
                connect_with_invalid_certificate: self.connect_with_invalid_certificate,
            }),
        })
    }
}

impl fmt::Debug for TlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigBuilder")
            .field("credentials", &self.credentials)
            .field("trust", &self.trust)
            .field("client_auth_mandatory", &self.mandatory)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_connection_age", &self.max_connection_age)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Our current certificate and key, swapped atomically; resolves for both sides.
struct CredentialSlot {
    current: ArcSwap<Current>,
    mandatory: bool,
}

/// One accepted pair, with what we read of its leaf.
struct Current {
    key: Arc<CertifiedKey>,
    leaf: Leaf,
}

impl CredentialSlot {
    /// The pair for a new handshake.
    fn key(&self) -> Arc<CertifiedKey> {
        self.current.load().key.clone()
    }
}

impl ResolvesClientCert for CredentialSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for CredentialSlot {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl fmt::Debug for CredentialSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSlot").finish_non_exhaustive()
    }
}

const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
