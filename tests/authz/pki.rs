//! An in-process PKI built with rcgen (after `tests/tls/pki.rs`): one root per trust domain and
//! SPIFFE leaves with the X.509-SVID profile. No checked-in keys.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A root certificate authority.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) cert: CertificateDer<'static>,
}

/// An issued leaf with its key and the chain to present.
pub(crate) struct Leaf {
    pub(crate) key: KeyPair,
    pub(crate) chain: Vec<CertificateDer<'static>>,
}

impl Ca {
    pub(crate) fn root(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(1);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Ca { params, key, cert }
    }

    /// A leaf with one URI SAN (a SPIFFE ID) and the SVID profile.
    pub(crate) fn spiffe_leaf(&self, id: &str) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::hours(1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap().der().clone();
        Leaf {
            key,
            chain: vec![cert],
        }
    }
}

impl Leaf {
    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}
