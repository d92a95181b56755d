//! Key material: our certificate chain and key, and trust bundles, from PEM files or memory.
//!
//! PEM is read with rustls-pki-types' [`PemObject`]; every error names its file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::error::{Origin, TlsConfigError};
use crate::identity::TrustDomain;
use crate::identity::x509::Leaf;

/// Our own certificate chain (leaf first) and its private key.
///
/// Parsing checks the PEM; whether the key matches the certificate is checked when the
/// credentials are used (it needs the crypto provider), by [`TlsConfigBuilder::build`] and
/// [`TlsConfig::update_credentials`].
///
/// [`TlsConfigBuilder::build`]: super::TlsConfigBuilder::build
/// [`TlsConfig::update_credentials`]: super::TlsConfig::update_credentials
pub struct Credentials {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_origin: Origin,
    key_origin: Origin,
}

impl Credentials {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key from files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Credentials, TlsConfigError> {
        let (cert_pem, cert_origin) = read(cert.as_ref())?;
        let (key_pem, key_origin) = read(key.as_ref())?;
        Self::parse(&cert_pem, cert_origin, &key_pem, key_origin)
    }

    /// Parses a PEM certificate chain (leaf first) and a PEM private key from memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Credentials, TlsConfigError> {
        Self::parse(cert_pem, Origin::Memory, key_pem, Origin::Memory)
    }

    /// Uses a DER certificate chain (leaf first) and a DER private key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Credentials, TlsConfigError> {
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                origin: Origin::Memory,
            });
        }
        Ok(Credentials {
            chain,
            key,
            cert_origin: Origin::Memory,
            key_origin: Origin::Memory,
        })
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn parse(
        cert_pem: &[u8],
        cert_origin: Origin,
        key_pem: &[u8],
        key_origin: Origin,
    ) -> Result<Credentials, TlsConfigError> {
        let chain = certificates(cert_pem, &cert_origin)?;
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificate {
                origin: cert_origin,
            });
        }
        let key = match PrivateKeyDer::from_pem_slice(key_pem) {
            Ok(key) => key,
            Err(rustls_pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsConfigError::NoPrivateKey { origin: key_origin });
            }
            Err(source) => {
                return Err(TlsConfigError::Pem {
                    origin: key_origin,
                    source,
                });
            }
        };
        Ok(Credentials {
            chain,
            key,
            cert_origin,
            key_origin,
        })
    }

    /// Reads the leaf's names and validity.
    pub(crate) fn leaf(&self) -> Result<Leaf, TlsConfigError> {
        // `parse` and `from_der` refuse an empty chain.
        Leaf::parse(&self.chain[0]).map_err(|source| TlsConfigError::UnreadableCertificate {
            origin: self.cert_origin.clone(),
            source,
        })
    }

    pub(crate) fn cert_origin(&self) -> &Origin {
        &self.cert_origin
    }

    /// Loads the key with the provider and checks that it matches the leaf.
    pub(crate) fn certify(
        &self,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, TlsConfigError> {
        let signing_key = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|source| TlsConfigError::InvalidKey {
                origin: self.key_origin.clone(),
                source,
            })?;
        let certified = CertifiedKey::new(self.chain.clone(), signing_key);
        match certified.keys_match() {
            Ok(()) => Ok(certified),
            Err(source @ rustls::Error::InconsistentKeys(_)) => Err(TlsConfigError::KeyMismatch {
                cert: self.cert_origin.clone(),
                key: self.key_origin.clone(),
                source,
            }),
            Err(source) => Err(TlsConfigError::InvalidCertificate {
                origin: self.cert_origin.clone(),
                source,
            }),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("certificates", &self.chain.len())
            .field("cert", &self.cert_origin)
            .field("key", &self.key_origin)
            .finish_non_exhaustive()
    }
}

/// A non-empty set of trust anchors (root certificates), and optionally the certificate
/// revocation lists (CRLs, RFC 5280 §5) of its CAs.
///
/// # Revocation
///
/// Without CRLs, no revocation check is made. Once a bundle has CRLs, every certificate of a
/// peer's chain verified against it (the leaf and each intermediate) must be covered by a CRL
/// of its issuer and not listed there; a certificate whose issuer has no CRL in the bundle is
/// refused (`CertificateError::UnknownRevocationStatus`: fail closed, as rustls's verifiers
/// default to), and so is a listed one (`CertificateError::Revoked`). A CRL past its
/// `nextUpdate` still counts (rustls's default too): replace CRLs by rotating the bundle.
#[derive(Clone)]
pub struct TrustBundle {
    roots: Arc<RootCertStore>,
    crls: Arc<[Arc<Crl>]>,
    origin: Origin,
}

/// One parsed CRL, kept both ways the verifiers need it.
pub(crate) struct Crl {
    pub(crate) der: CertificateRevocationListDer<'static>,
    pub(crate) parsed: webpki::CertRevocationList<'static>,
}

impl TrustBundle {
    /// Reads a PEM bundle of root certificates from a file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<TrustBundle, TlsConfigError> {
        let (pem, origin) = read(path.as_ref())?;
        let certs = certificates(&pem, &origin)?;
        Self::from_certs(certs, origin)
    }

    /// Parses a PEM bundle of root certificates from memory.
    pub fn from_pem(pem: &[u8]) -> Result<TrustBundle, TlsConfigError> {
        let certs = certificates(pem, &Origin::Memory)?;
        Self::from_certs(certs, Origin::Memory)
    }

    /// Uses DER root certificates.
    pub fn from_der(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<TrustBundle, TlsConfigError> {
        Self::from_certs(certs.into_iter().collect(), Origin::Memory)
    }

    /// How many trust anchors the bundle holds.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Always false: an empty bundle is refused at construction.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Reads a SPIFFE bundle (the JWK Set of the SPIFFE Trust Domain and Bundle standard,
    /// §4) from a file. See [`TrustBundle::from_spiffe_bundle`].
    pub fn from_spiffe_bundle_file(path: impl AsRef<Path>) -> Result<TrustBundle, TlsConfigError> {
        let (json, origin) = read(path.as_ref())?;
        Self::parse_spiffe_bundle(&json, origin)
    }

    /// Parses a SPIFFE bundle: a JWK Set whose `x509-svid` keys carry the trust domain's root
    /// certificates in `x5c` (SPIFFE Trust Domain and Bundle §4.2.1, X.509-SVID §6.2).
    ///
    /// Keys with another `use` (`jwt-svid` keys verify JWT-SVIDs, not certificates) are
    /// skipped, as are `x509-svid` keys without a certificate. A key whose `x5c` holds more
    /// than one certificate contributes only the first (the standard requires exactly one);
    /// this is logged at `warn`. An `x509-svid` key with a `kid` is accepted with a warning
    /// (the standard says it must not have one). A bundle with no usable certificate is
    /// [`TlsConfigError::EmptyBundle`]; malformed JSON is [`TlsConfigError::SpiffeBundle`]
    /// with line and column.
    pub fn from_spiffe_bundle(json: &[u8]) -> Result<TrustBundle, TlsConfigError> {
        Self::parse_spiffe_bundle(json, Origin::Memory)
    }

    /// PEM, or a SPIFFE bundle when the text starts with `{` (what rotation reads).
    pub(crate) fn parse_any(bytes: &[u8], origin: Origin) -> Result<TrustBundle, TlsConfigError> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::parse_spiffe_bundle(bytes, origin),
            _ => Self::parse_pem(bytes, origin),
        }
    }

    fn parse_spiffe_bundle(json: &[u8], origin: Origin) -> Result<TrustBundle, TlsConfigError> {
        use base64::Engine as _;
        let bad = |reason: String| TlsConfigError::SpiffeBundle {
            origin: origin.clone(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| bad(format!("line {} column {}: {e}", e.line(), e.column())))?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| bad("no \"keys\" array".into()))?;
        let mut certs = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if key.get("use").and_then(|u| u.as_str()) != Some("x509-svid") {
                continue;
            }
            let chain = match key.get("x5c") {
                None => continue,
                Some(serde_json::Value::Array(chain)) => chain,
                Some(_) => return Err(bad(format!("keys[{i}].x5c is not an array"))),
            };
            let Some(first) = chain.first() else {
                continue;
            };
            if chain.len() > 1 {
                tracing::warn!(%origin, key = i, "x509-svid key with several x5c certificates: using the first");
            }
            if key.get("kid").is_some() {
                tracing::warn!(%origin, key = i, "x509-svid key with a kid (the SPIFFE bundle format forbids one)");
            }
            let b64 = first
                .as_str()
                .ok_or_else(|| bad(format!("keys[{i}].x5c[0] is not a string")))?;
            // RFC 7517 §4.7: x5c holds standard base64 (not URL-safe), with padding.
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| bad(format!("keys[{i}].x5c[0] is not base64: {e}")))?;
            let cert = CertificateDer::from(der);
            // The same root listed under two keys is one anchor.
            if !certs.contains(&cert) {
                certs.push(cert);
            }
        }
        Self::from_certs(certs, origin)
    }

    /// Adds the CRLs of a PEM file (`X509 CRL` sections) to the bundle.
    pub fn with_crl_pem_file(self, path: impl AsRef<Path>) -> Result<TrustBundle, TlsConfigError> {
        let (pem, origin) = read(path.as_ref())?;
        self.add_crls(&pem, origin)
    }

    /// Adds the CRLs of PEM text in memory (`X509 CRL` sections) to the bundle.
    pub fn with_crl_pem(self, pem: &[u8]) -> Result<TrustBundle, TlsConfigError> {
        self.add_crls(pem, Origin::Memory)
    }

    /// How many CRLs the bundle holds.
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    pub(crate) fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    pub(crate) fn crls(&self) -> &Arc<[Arc<Crl>]> {
        &self.crls
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    pub(crate) fn add_crls(
        mut self,
        pem: &[u8],
        origin: Origin,
    ) -> Result<TrustBundle, TlsConfigError> {
        let ders = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsConfigError::Pem {
                origin: origin.clone(),
                source,
            })?;
        if ders.is_empty() {
            return Err(TlsConfigError::NoCrl { origin });
        }
        let mut crls: Vec<Arc<Crl>> = self.crls.to_vec();
        for der in ders {
            let parsed = webpki::OwnedCertRevocationList::from_der(&der).map_err(|e| {
                TlsConfigError::InvalidCrl {
                    origin: origin.clone(),
                    reason: format!("{e:?}"),
                }
            })?;
            crls.push(Arc::new(Crl {
                der,
                parsed: parsed.into(),
            }));
        }
        self.crls = crls.into();
        Ok(self)
    }

    pub(crate) fn parse_pem(pem: &[u8], origin: Origin) -> Result<TrustBundle, TlsConfigError> {
        let certs = certificates(pem, &origin)?;
        Self::from_certs(certs, origin)
    }

    fn from_certs(
        certs: Vec<CertificateDer<'static>>,
        origin: Origin,
    ) -> Result<TrustBundle, TlsConfigError> {
        if certs.is_empty() {
            return Err(TlsConfigError::EmptyBundle { origin });
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|source| TlsConfigError::InvalidTrustAnchor {
                    origin: origin.clone(),
                    source,
                })?;
        }
        Ok(TrustBundle {
            roots: Arc::new(roots),
            crls: Arc::from([]),
            origin,
        })
    }
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("anchors", &self.roots.len())
            .field("crls", &self.crls.len())
            .field("origin", &self.origin)
            .finish()
    }
}

/// The trust bundles: one per SPIFFE trust domain, and optionally one for peers identified by
/// DNS name.
///
/// A SPIFFE peer's chain is verified against the bundle of the trust domain named in its
/// certificate's URI SAN, never against every root (X.509-SVID §5.2): a root of `td-b` cannot
/// vouch for `spiffe://td-a/...`.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    pub(crate) spiffe: BTreeMap<TrustDomain, TrustBundle>,
    pub(crate) dns: Option<TrustBundle>,
}

impl TrustStore {
    /// An empty store (refused by [`TlsConfigBuilder::build`](super::TlsConfigBuilder::build)
    /// until a bundle is added).
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Trusts `bundle` for certificates of the SPIFFE trust domain `trust_domain` (replacing
    /// any bundle set for it before).
    pub fn with_spiffe(mut self, trust_domain: TrustDomain, bundle: TrustBundle) -> TrustStore {
        self.spiffe.insert(trust_domain, bundle);
        self
    }

    /// Trusts `bundle` for certificates identified by DNS name.
    pub fn with_dns(mut self, bundle: TrustBundle) -> TrustStore {
        self.dns = Some(bundle);
        self
    }

    /// Whether no bundle is set.
    pub fn is_empty(&self) -> bool {
        self.spiffe.is_empty() && self.dns.is_none()
    }
}

fn read(path: &Path) -> Result<(Vec<u8>, Origin), TlsConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok((bytes, Origin::File(path.to_owned()))),
        Err(source) => Err(TlsConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn certificates(
    pem: &[u8],
    origin: &Origin,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem {
            origin: origin.clone(),
            source,
        })
}
