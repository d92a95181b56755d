//! An in-process PKI built with rcgen: roots, intermediates and leaves, with every knob the
//! adversarial tests need. No checked-in keys.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A certificate authority (root or intermediate) that can issue certificates.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) cert: CertificateDer<'static>,
    /// Intermediates between this CA and its root, this CA first (empty for a root).
    pub(crate) chain: Vec<CertificateDer<'static>>,
}

/// An issued certificate with its key and the chain to present (leaf first, intermediates after).
pub(crate) struct Leaf {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: KeyPair,
    pub(crate) chain: Vec<CertificateDer<'static>>,
}

impl Ca {
    pub(crate) fn root(name: &str) -> Ca {
        Ca::root_with(name, |_| {})
    }

    pub(crate) fn root_with(name: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Ca {
        let mut params = ca_params(name);
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Ca {
            params,
            key,
            cert,
            chain: Vec::new(),
        }
    }

    pub(crate) fn intermediate(&self, name: &str) -> Ca {
        self.intermediate_with(name, |_| {})
    }

    pub(crate) fn intermediate_with(
        &self,
        name: &str,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Ca {
        let mut params = ca_params(name);
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .clone();
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Ca {
            params,
            key,
            cert,
            chain,
        }
    }

    /// A leaf with one URI SAN (a SPIFFE ID) and SVID-conformant defaults.
    pub(crate) fn spiffe_leaf(&self, id: &str) -> Leaf {
        self.leaf_with(|p| p.subject_alt_names = vec![uri(id)])
    }

    /// A leaf with the default SVID profile, changed by `tweak`.
    pub(crate) fn leaf_with(&self, tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
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
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &self.issuer())
            .unwrap()
            .der()
            .clone();
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Leaf { cert, key, chain }
    }

    /// Issues a certificate whose params are fully given (for "leaf used as issuer" and such).
    pub(crate) fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    pub(crate) fn pem(&self) -> String {
        pem("CERTIFICATE", &self.cert)
    }

    /// This CA turned into a leaf-like credential (its own cert and key), for "CA used as leaf".
    pub(crate) fn as_leaf(&self) -> Leaf {
        let mut chain = vec![self.cert.clone()];
        chain.extend(self.chain.iter().skip(1).cloned());
        Leaf {
            cert: self.cert.clone(),
            key: KeyPair::from_pem(&self.key.serialize_pem()).unwrap(),
            chain,
        }
    }
}

impl Leaf {
    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    pub(crate) fn cert_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Signs a new leaf with this (non-CA) leaf's key: "leaf used as issuer".
    pub(crate) fn issue(&self, params: &CertificateParams, own: &CertificateParams) -> Leaf {
        let issuer = Issuer::from_params(own, &self.key);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap().der().clone();
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Leaf { cert, key, chain }
    }
}

pub(crate) fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

pub(crate) fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

pub(crate) fn ca_params(name: &str) -> CertificateParams {
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
    params
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        writeln!(out, "{}", std::str::from_utf8(line).unwrap()).unwrap();
    }
    writeln!(out, "-----END {label}-----").unwrap();
    out
}
