//! [`TestCa`]: an in-process certificate authority for tests (rcgen).

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair,
    RevokedCertParams, SerialNumber,
};

use super::error::TestCaError;
use super::spec::{CertSpec, since_epoch};

/// A certificate authority living in memory: a root, or an intermediate under one, that
/// issues workload certificates (SPIFFE X.509-SVIDs and DNS-named servers), further
/// intermediates, and certificate revocation lists. Keys are ECDSA P-256, generated fresh;
/// nothing is read from or written to disk.
///
/// With the `tls` feature, a CA gives the crate's [`TrustBundle`](crate::tls::TrustBundle)
/// and [`TrustStore`](crate::tls::TrustStore) ([`TestCa::trust_bundle`],
/// [`TestCa::spiffe_trust`], [`TestCa::dns_trust`]) and its certificates give
/// [`Credentials`](crate::tls::Credentials) and a [`TlsConfig`](crate::tls::TlsConfig)
/// ([`TestCert::credentials`], [`TestCert::tls_config`]).
///
/// For negative tests, [`CertSpec`] issues expired and not-yet-valid certificates, leaves
/// restricted to server or client use, certificates with several or odd names, and
/// [`TestCa::as_cert`] turns a CA into a certificate a peer presents (a CA used as a leaf).
///
/// # Examples
///
/// ```
/// use tower_mesh::test_util::{CertSpec, TestCa};
///
/// # fn main() -> Result<(), tower_mesh::test_util::TestCaError> {
/// let root = TestCa::new("example.org root")?;
/// let issuing = root.intermediate("issuing")?;
/// let server = issuing.spiffe("spiffe://example.org/ns/prod/sa/server")?;
/// assert_eq!(server.chain_der().len(), 2); // the leaf, then the intermediate
/// let expired = issuing.issue(&CertSpec::spiffe("spiffe://example.org/ns/prod/sa/old").expired())?;
/// let crl = issuing.crl_pem([expired.serial()])?;
/// assert!(crl.starts_with("-----BEGIN X509 CRL-----"));
/// # Ok(())
/// # }
/// ```
pub struct TestCa {
    name: String,
    params: CertificateParams,
    key: KeyPair,
    cert: Issued,
    /// This CA, then the intermediates above it (the root excluded; empty for a root).
    chain: Vec<Issued>,
    root: Issued,
    serial: u64,
}

/// A certificate issued by a [`TestCa`], with its private key and the chain to present.
pub struct TestCert {
    /// The certificate, then the intermediates of its issuer (the root excluded).
    chain: Vec<Issued>,
    key: KeyPair,
    serial: u64,
}

impl TestCa {
    /// A root CA named `name`, valid from an hour ago for a day.
    pub fn new(name: &str) -> Result<TestCa, TestCaError> {
        TestCa::root_with(name, &CertSpec::new())
    }

    /// A root CA named `name` as `spec` says (validity, path length, extra names).
    pub fn root_with(name: &str, spec: &CertSpec) -> Result<TestCa, TestCaError> {
        let (params, serial) = spec.params(Some(name))?;
        let key = generate_key()?;
        let cert = Issued::new(&params.self_signed(&key).map_err(generate)?);
        Ok(TestCa {
            name: name.to_owned(),
            params,
            key,
            root: cert.clone(),
            cert,
            chain: Vec::new(),
            serial,
        })
    }

    /// An intermediate CA named `name` under this one, valid from an hour ago for a day.
    pub fn intermediate(&self, name: &str) -> Result<TestCa, TestCaError> {
        self.intermediate_with(name, &CertSpec::new())
    }

    /// An intermediate CA named `name` under this one as `spec` says: expired, not yet valid,
    /// limited in path length.
    pub fn intermediate_with(&self, name: &str, spec: &CertSpec) -> Result<TestCa, TestCaError> {
        let (mut params, serial) = spec.params(Some(name))?;
        params.use_authority_key_identifier_extension = true;
        let key = generate_key()?;
        let cert = self.sign(&params, &key)?;
        let mut chain = vec![cert.clone()];
        chain.extend(self.chain.iter().cloned());
        Ok(TestCa {
            name: name.to_owned(),
            params,
            key,
            cert,
            chain,
            root: self.root.clone(),
            serial,
        })
    }

    /// A SPIFFE X.509-SVID for `id` (such as `spiffe://example.org/ns/a/sa/b`), valid from an
    /// hour ago for an hour, for server and client use.
    pub fn spiffe(&self, id: &str) -> Result<TestCert, TestCaError> {
        self.issue(&CertSpec::spiffe(id))
    }

    /// A certificate for the DNS name `name`, valid from an hour ago for an hour.
    pub fn dns(&self, name: &str) -> Result<TestCert, TestCaError> {
        self.issue(&CertSpec::dns(name))
    }

    /// A leaf certificate as `spec` says.
    pub fn issue(&self, spec: &CertSpec) -> Result<TestCert, TestCaError> {
        let (mut params, serial) = spec.params(None)?;
        params.use_authority_key_identifier_extension = true;
        let key = generate_key()?;
        let cert = self.sign(&params, &key)?;
        let mut chain = vec![cert];
        chain.extend(self.chain.iter().cloned());
        Ok(TestCert { chain, key, serial })
    }

    /// A PEM certificate revocation list from this CA naming the `serials` revoked five
    /// minutes ago, valid from an hour ago for an hour.
    pub fn crl_pem(&self, serials: impl IntoIterator<Item = u64>) -> Result<String, TestCaError> {
        let now = SystemTime::now();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let params = CertificateRevocationListParams {
            this_update: epoch + since_epoch(now - HOUR)?,
            next_update: epoch + since_epoch(now + HOUR)?,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .into_iter()
                .map(|serial| {
                    Ok(RevokedCertParams {
                        serial_number: SerialNumber::from(serial),
                        revocation_time: epoch + since_epoch(now - 5 * MINUTE)?,
                        reason_code: None,
                        invalidity_date: None,
                    })
                })
                .collect::<Result<_, TestCaError>>()?,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()).map_err(generate)?;
        crl.pem().map_err(generate)
    }

    /// This CA's own certificate and key as a certificate to present: the "CA used as an
    /// end entity" negative test.
    pub fn as_cert(&self) -> Result<TestCert, TestCaError> {
        let key = KeyPair::from_pem(&self.key.serialize_pem()).map_err(generate)?;
        let mut chain = vec![self.cert.clone()];
        chain.extend(self.chain.iter().skip(1).cloned());
        Ok(TestCert {
            chain,
            key,
            serial: self.serial,
        })
    }

    /// The name the CA was created with (its common name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This CA's serial number (for its parent's [`TestCa::crl_pem`]).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// This CA's certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert.der
    }

    /// This CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem.clone()
    }

    /// The root at the top of this CA's chain (itself, for a root), DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn sign(&self, params: &CertificateParams, key: &KeyPair) -> Result<Issued, TestCaError> {
        let cert = params.signed_by(key, &self.issuer()).map_err(generate)?;
        Ok(Issued::new(&cert))
    }
}

impl TestCert {
    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.chain[0].der
    }

    /// The chain to present, leaf first, then the issuer's intermediates (no root), DER.
    pub fn chain_der(&self) -> Vec<&[u8]> {
        self.chain.iter().map(|c| c.der.as_slice()).collect()
    }

    /// The chain to present as PEM (leaf first), as a certificate file holds it.
    pub fn cert_pem(&self) -> String {
        self.chain.iter().map(|c| c.pem.as_str()).collect()
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The serial number (for [`TestCa::crl_pem`]).
    pub fn serial(&self) -> u64 {
        self.serial
    }
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .field("intermediates_above", &self.chain.len().saturating_sub(1))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TestCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCert")
            .field("serial", &self.serial)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// One certificate, DER and PEM. (The chain of a `TestCert` always holds its leaf first, so
/// `chain[0]` exists.)
#[derive(Clone)]
struct Issued {
    der: Vec<u8>,
    pem: String,
}

impl Issued {
    fn new(cert: &rcgen::Certificate) -> Self {
        Issued {
            der: cert.der().to_vec(),
            pem: cert.pem(),
        }
    }
}

fn generate_key() -> Result<KeyPair, TestCaError> {
    KeyPair::generate().map_err(generate)
}

fn generate(e: rcgen::Error) -> TestCaError {
    TestCaError::Generate(Box::new(e))
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
