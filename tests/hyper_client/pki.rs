//! The test PKI: the crate's own in-process [`TestCa`], one root for the trust domain and
//! leaves with SPIFFE IDs and DNS names. No checked-in keys.

use std::sync::Arc;
use std::time::Duration;

use tower_mesh::identity::TrustDomain;
use tower_mesh::test_util::{CertSpec, TestCa, TestCert};
use tower_mesh::tls::{TlsConfig, TrustStore};

pub(crate) const TRUST_DOMAIN: &str = "prod.example";
pub(crate) const API: &str = "spiffe://prod.example/ns/pay/sa/api";
pub(crate) const OTHER: &str = "spiffe://prod.example/ns/pay/sa/other";
pub(crate) const FRONTEND: &str = "spiffe://prod.example/ns/web/sa/frontend";

pub(crate) struct Ca(TestCa);

pub(crate) type Leaf = TestCert;

impl Ca {
    pub(crate) fn new() -> Ca {
        Ca(TestCa::new("test root").unwrap())
    }

    /// A leaf as `spec` describes it (SVID profile unless it says otherwise).
    pub(crate) fn leaf(&self, spec: CertSpec) -> Leaf {
        self.0.issue(&spec).unwrap()
    }

    pub(crate) fn spiffe_leaf(&self, id: &str) -> Leaf {
        self.0.spiffe(id).unwrap()
    }

    /// A TLS configuration presenting `leaf`, trusting this CA for the trust domain (SPIFFE)
    /// and for DNS names, offering `alpn`.
    pub(crate) fn config(&self, leaf: &Leaf, alpn: &[&[u8]]) -> TlsConfig {
        let trust = TrustStore::new()
            .with_spiffe(
                TrustDomain::parse(TRUST_DOMAIN).unwrap(),
                self.0.trust_bundle().unwrap(),
            )
            .with_dns(self.0.trust_bundle().unwrap());
        leaf.tls_config_builder(Arc::new(rustls::crypto::ring::default_provider()), trust)
            .handshake_timeout(Duration::from_secs(10))
            .alpn_protocols(alpn.iter().map(|p| p.to_vec()))
            .build()
            .unwrap()
    }
}
