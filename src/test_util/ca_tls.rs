//! The [`TestCa`] and [`TestCert`] as the crate's TLS types (features `test-util` and `tls`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ca::{TestCa, TestCert};
use super::error::TestCaError;
use crate::identity::TrustDomain;
use crate::tls::{
    Credentials, TlsConfig, TlsConfigBuilder, TlsConfigError, TrustBundle, TrustStore,
};

impl TestCa {
    /// A trust bundle holding this CA's certificate as its one trust anchor.
    ///
    /// # Errors
    ///
    /// What [`TrustBundle::from_der`] refuses.
    pub fn trust_bundle(&self) -> Result<TrustBundle, TlsConfigError> {
        TrustBundle::from_der([CertificateDer::from(self.cert_der().to_vec())])
    }

    /// A trust store trusting this CA for the SPIFFE trust domain `trust_domain` (such as
    /// `example.org`).
    ///
    /// # Errors
    ///
    /// [`TestCaError::InvalidTrustDomain`] naming a bad trust domain, or
    /// [`TestCaError::Generate`] holding what [`TrustBundle::from_der`] refused.
    pub fn spiffe_trust(&self, trust_domain: &str) -> Result<TrustStore, TestCaError> {
        let td = TrustDomain::parse(trust_domain).map_err(TestCaError::InvalidTrustDomain)?;
        let bundle = self
            .trust_bundle()
            .map_err(|e| TestCaError::Generate(Box::new(e)))?;
        Ok(TrustStore::new().with_spiffe(td, bundle))
    }

    /// A trust store trusting this CA for DNS identities.
    ///
    /// # Errors
    ///
    /// What [`TrustBundle::from_der`] refuses.
    pub fn dns_trust(&self) -> Result<TrustStore, TlsConfigError> {
        Ok(TrustStore::new().with_dns(self.trust_bundle()?))
    }
}

impl TestCert {
    /// The certificate chain and key as [`Credentials`].
    pub fn credentials(&self) -> Credentials {
        let chain = self
            .chain_der()
            .into_iter()
            .map(|c| CertificateDer::from(c.to_vec()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der()));
        // The chain always holds at least the certificate itself, the only thing `from_der`
        // checks, so this cannot fail.
        Credentials::from_der(chain, key).expect("a test certificate's chain is never empty")
    }

    /// A [`TlsConfig`] builder presenting this certificate and trusting `trust`, using
    /// `provider`; set timeouts, ALPN and the rest on it before `build`.
    pub fn tls_config_builder(
        &self,
        provider: Arc<CryptoProvider>,
        trust: TrustStore,
    ) -> TlsConfigBuilder {
        TlsConfig::builder(provider)
            .credentials(self.credentials())
            .trust(trust)
    }

    /// A [`TlsConfig`] presenting this certificate and trusting `trust`, with the default
    /// settings, using `provider`.
    ///
    /// # Errors
    ///
    /// What [`TlsConfigBuilder::build`] refuses (a certificate that is not valid now, say).
    pub fn tls_config(
        &self,
        provider: Arc<CryptoProvider>,
        trust: TrustStore,
    ) -> Result<TlsConfig, TlsConfigError> {
        self.tls_config_builder(provider, trust).build()
    }
}
