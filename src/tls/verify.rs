//! Certificate verifiers: webpki builds and checks the chain, then our X.509-SVID leaf rules
//! and the expected-identity match run on top.
//!
//! - **Server certificates** (client side): the chain is verified with
//!   [`rustls::client::verify_server_cert_signed_by_trust_anchor`] against the bundle chosen by
//!   the *expected* identity: the bundle of its trust domain for a SPIFFE ID, the DNS bundle for
//!   a DNS name. For a SPIFFE ID the hostname check is **replaced** by the SPIFFE ID match (the
//!   leaf must be a valid X.509-SVID whose one URI SAN equals the expected ID; SNI and DNS SANs
//!   play no part). For a DNS name the leaf must carry a DNS SAN exactly equal to it; a
//!   wildcard SAN never satisfies a workload identity.
//! - **Client certificates** (server side): the leaf is read first to choose the bundle by its
//!   trust domain (or the DNS bundle if it has no URI SAN), then rustls's
//!   [`WebPkiClientVerifier`] for that bundle checks chain, validity and the `clientAuth` EKU,
//!   then the leaf rules and identity extraction run. Because the leaf is read before its
//!   chain is checked, a client certificate that is malformed or breaks the X.509-SVID leaf
//!   rules is refused with our error (`BadPeerCertificate`: `Malformed`, `CaCertificate`, ...)
//!   rather than webpki's; either way nothing of an unverified certificate is used.
//!
//! Signatures are verified by the crypto provider's algorithms; TLS 1.2 signatures are always
//! refused, since this crate only speaks TLS 1.3.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError,
    PeerIncompatible, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::{BadPeerCertificate, IdentityMismatch, TlsConfigError, UnknownTrustDomain};
use super::material::{Crl, TrustBundle, TrustStore};
use crate::identity::x509::{Leaf, LeafRules};
use crate::identity::{Identity, TrustDomain};

/// The verification state that rotation swaps: per-trust-domain roots and client verifiers.
pub(crate) struct Trust {
    spiffe: HashMap<TrustDomain, Anchors>,
    dns: Option<Anchors>,
}

struct Anchors {
    roots: Arc<RootCertStore>,
    crls: Arc<[Arc<Crl>]>,
    client: Arc<dyn ClientCertVerifier>,
}

impl Anchors {
    /// With CRLs, checks the revocation of every certificate of a server's chain (already
    /// verified without them): webpki is asked again, this time with revocation options. The
    /// client side needs no such step: rustls's client verifier takes the CRLs itself.
    fn check_server_revocation(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        provider: &CryptoProvider,
    ) -> Result<(), Error> {
        if self.crls.is_empty() {
            return Ok(());
        }
        let crls: Vec<&webpki::CertRevocationList<'_>> =
            self.crls.iter().map(|crl| &crl.parsed).collect();
        let options = webpki::RevocationOptionsBuilder::new(&crls)
            .map_err(|_| Error::General("no CRLs".into()))?
            .with_depth(webpki::RevocationCheckDepth::Chain)
            .with_status_policy(webpki::UnknownStatusPolicy::Deny)
            .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
            .build();
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_for_usage(
            provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            Some(options),
            None,
        )
        .map(drop)
        .map_err(|e| match e {
            webpki::Error::CertRevoked => CertificateError::Revoked.into(),
            webpki::Error::UnknownRevocationStatus => {
                CertificateError::UnknownRevocationStatus.into()
            }
            // The chain verified a moment ago without CRLs: what fails now is a CRL itself
            // (a bad signature, an issuer that may not sign CRLs).
            other => Error::InvalidCertRevocationList(rustls::CertRevocationListError::Other(
                OtherError(Arc::new(CrlFailure(format!("{other:?}")))),
            )),
        })
    }
}

/// Why a CRL could not be used in a revocation check.
#[derive(Debug)]
struct CrlFailure(String);

impl fmt::Display for CrlFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation list unusable: {}", self.0)
    }
}

impl std::error::Error for CrlFailure {}

impl Trust {
    pub(crate) fn build(
        store: &TrustStore,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Trust, TlsConfigError> {
        if store.is_empty() {
            return Err(TlsConfigError::NoTrustBundle);
        }
        let anchors = |bundle: &TrustBundle| -> Result<Anchors, TlsConfigError> {
            let crls = bundle.crls().clone();
            // rustls's defaults once CRLs are given: the whole chain, unknown status refused.
            let client = WebPkiClientVerifier::builder_with_provider(
                bundle.roots().clone(),
                provider.clone(),
            )
            .with_crls(crls.iter().map(|crl| crl.der.clone()))
            .build()
            .map_err(|source| TlsConfigError::Verifier {
                origin: bundle.origin().clone(),
                reason: source.to_string(),
            })?;
            Ok(Anchors {
                roots: bundle.roots().clone(),
                crls,
                client,
            })
        };
        let mut spiffe = HashMap::with_capacity(store.spiffe.len());
        for (td, bundle) in &store.spiffe {
            spiffe.insert(td.clone(), anchors(bundle)?);
        }
        let dns = store.dns.as_ref().map(anchors).transpose()?;
        Ok(Trust { spiffe, dns })
    }

    fn for_trust_domain(&self, td: &str) -> Result<&Anchors, Error> {
        // Keys are TrustDomain; look up by string without allocating a new Arc per handshake
        // would need a Borrow impl; trust domains are few, so a scan is as fast.
        self.spiffe
            .iter()
            .find(|(k, _)| k.as_str() == td)
            .map(|(_, a)| a)
            .ok_or_else(|| {
                other(UnknownTrustDomain {
                    trust_domain: td.to_owned(),
                })
            })
    }

    fn for_dns(&self) -> Result<&Anchors, Error> {
        self.dns
            .as_ref()
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    }
}

/// What both verifiers share with the configuration: the swappable trust and the rules.
pub(crate) struct Verification {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) trust: ArcSwap<Trust>,
    pub(crate) rules: LeafRules,
}

impl Verification {
    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies a server against one expected identity (one instance per connection).
pub(crate) struct ServerVerifier {
    pub(crate) verification: Arc<Verification>,
    pub(crate) expected: Option<Identity>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The configuration's template verifier has no expected identity: fail closed.
        let Some(expected) = &self.expected else {
            return Err(Error::General("no expected identity".into()));
        };
        let trust = self.verification.trust.load();
        let anchors = match expected {
            Identity::Spiffe(id) => trust.for_trust_domain(id.trust_domain_str())?,
            Identity::Dns(_) => trust.for_dns()?,
        };
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &anchors.roots,
            intermediates,
            now,
            self.verification
                .provider
                .signature_verification_algorithms
                .all,
        )?;
        anchors.check_server_revocation(
            end_entity,
            intermediates,
            now,
            &self.verification.provider,
        )?;
        let leaf = Leaf::parse(end_entity).map_err(bad_cert)?;
        match expected {
            Identity::Spiffe(id) => {
                let presented = leaf.svid(self.verification.rules).map_err(bad_cert)?;
                if presented != *id {
                    return Err(other(IdentityMismatch {
                        expected: expected.clone(),
                        presented: Some(Identity::Spiffe(presented)),
                    }));
                }
            }
            Identity::Dns(name) => {
                if !leaf.has_dns_name(name) {
                    return Err(other(IdentityMismatch {
                        expected: expected.clone(),
                        presented: leaf.identity(self.verification.rules).ok(),
                    }));
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verification.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verification.schemes()
    }
}

impl fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

/// Verifies clients: bundle by the leaf's trust domain, webpki chain and EKU, our leaf rules.
pub(crate) struct ClientVerifier {
    pub(crate) verification: Arc<Verification>,
    pub(crate) mandatory: bool,
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the client has one identity and presents it.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let leaf = Leaf::parse(end_entity).map_err(bad_cert)?;
        let trust = self.verification.trust.load();
        let anchors = if leaf.has_uri_sans() {
            // The bundle is chosen by the trust domain of the leaf's one SPIFFE ID (after the
            // leaf rules), and the chain must verify against that bundle alone.
            let id = leaf.svid(self.verification.rules).map_err(bad_cert)?;
            trust.for_trust_domain(id.trust_domain_str())?
        } else {
            trust.for_dns()?
        };
        anchors
            .client
            .verify_client_cert(end_entity, intermediates, now)?;
        leaf.identity(self.verification.rules).map_err(bad_cert)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verification.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verification.schemes()
    }
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

fn bad_cert(source: crate::identity::CertificateIdentityError) -> Error {
    other(BadPeerCertificate { source })
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}
