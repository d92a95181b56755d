//! A throwaway PKI for trust domain `example.org`, generated in memory with rcgen: one root
//! and an X.509-SVID per workload. `write` and `load` pass it between the two example
//! processes through PEM files. In production the certificates come from your PKI (SPIRE,
//! cert-manager, ...), and `TlsConfig::reload_from_files` picks up their rotations.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tower_mesh::BoxError;
use tower_mesh::identity::TrustDomain;
use tower_mesh::tls::{Credentials, TlsConfig, TrustBundle, TrustStore};

/// The examples' trust domain.
pub(crate) const TRUST_DOMAIN: &str = "example.org";

/// A root certificate authority.
pub(crate) struct Pki {
    params: CertificateParams,
    key: KeyPair,
    root_pem: String,
}

impl Pki {
    /// A new root (rcgen's default validity).
    pub(crate) fn new() -> Result<Pki, rcgen::Error> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "example.org root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let root_pem = params.self_signed(&key)?.pem();
        Ok(Pki {
            params,
            key,
            root_pem,
        })
    }

    /// The TLS configuration of workload `id` (a SPIFFE ID of `example.org`): its own SVID,
    /// this root as the trust domain's bundle, and ALPN `h2` (gRPC over TLS).
    pub(crate) fn tls(&self, id: &str) -> Result<TlsConfig, BoxError> {
        let (cert_pem, key_pem) = self.issue(id)?;
        let credentials = Credentials::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
        let bundle = TrustBundle::from_pem(self.root_pem.as_bytes())?;
        config(credentials, bundle)
    }

    /// Writes the root (`root.pem`) and `id`'s certificate and key (`<name>.pem`,
    /// `<name>-key.pem`) into `dir`, for [`load`] in another process.
    pub(crate) fn write(&self, dir: &Path, name: &str, id: &str) -> Result<(), BoxError> {
        let (cert_pem, key_pem) = self.issue(id)?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("root.pem"), &self.root_pem)?;
        std::fs::write(dir.join(format!("{name}.pem")), cert_pem)?;
        std::fs::write(dir.join(format!("{name}-key.pem")), key_pem)?;
        Ok(())
    }

    /// An X.509-SVID for `id`: the certificate and the key, in PEM.
    fn issue(&self, id: &str) -> Result<(String, String), rcgen::Error> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.subject_alt_names = vec![SanType::URI(id.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The TLS configuration that [`Pki::write`] left in `dir` for workload `name`.
pub(crate) fn load(dir: &Path, name: &str) -> Result<TlsConfig, BoxError> {
    let credentials = Credentials::from_pem_files(
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )?;
    let bundle = TrustBundle::from_pem_file(dir.join("root.pem"))?;
    config(credentials, bundle)
}

fn config(credentials: Credentials, bundle: TrustBundle) -> Result<TlsConfig, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(TlsConfig::builder(provider)
        .credentials(credentials)
        .trust(TrustStore::new().with_spiffe(TrustDomain::parse(TRUST_DOMAIN)?, bundle))
        .alpn_protocols([b"h2".to_vec()])
        .build()?)
}
