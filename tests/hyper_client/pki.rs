//! An in-process PKI (rcgen): one root for the trust domain and leaves with SPIFFE IDs and
//! DNS names. No checked-in keys.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{Credentials, TlsConfig, TrustBundle, TrustStore};

pub(crate) const TRUST_DOMAIN: &str = "prod.example";
pub(crate) const API: &str = "spiffe://prod.example/ns/pay/sa/api";
pub(crate) const OTHER: &str = "spiffe://prod.example/ns/pay/sa/other";
pub(crate) const FRONTEND: &str = "spiffe://prod.example/ns/web/sa/frontend";

pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert: CertificateDer<'static>,
}

pub(crate) struct Leaf {
    cert: CertificateDer<'static>,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new() -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(1);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Ca { params, key, cert }
    }

    /// A leaf with the given subject alternative names (SVID profile).
    pub(crate) fn leaf(&self, sans: Vec<SanType>) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::hours(1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap().der().clone();
        Leaf { cert, key }
    }

    pub(crate) fn spiffe_leaf(&self, id: &str) -> Leaf {
        self.leaf(vec![uri(id)])
    }

    /// A TLS configuration presenting `leaf`, trusting this CA for the trust domain (SPIFFE)
    /// and for DNS names, offering `alpn`.
    pub(crate) fn config(&self, leaf: &Leaf, alpn: &[&[u8]]) -> TlsConfig {
        let bundle = || TrustBundle::from_der([self.cert.clone()]).unwrap();
        let trust = TrustStore::new()
            .with_spiffe(TrustDomain::parse(TRUST_DOMAIN).unwrap(), bundle())
            .with_dns(bundle());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()));
        TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
            .credentials(Credentials::from_der(vec![leaf.cert.clone()], key).unwrap())
            .trust(trust)
            .handshake_timeout(Duration::from_secs(10))
            .alpn_protocols(alpn.iter().map(|p| p.to_vec()))
            .build()
            .unwrap()
    }
}

pub(crate) fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

pub(crate) fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}
