//! [`CertSpec`]: what a [`TestCa`](super::TestCa) puts in a certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};

use super::error::TestCaError;

/// The contents of a certificate to issue: names, validity period, usage, serial number.
///
/// Built from [`CertSpec::spiffe`], [`CertSpec::dns`] or [`CertSpec::new`] and changed with
/// the methods below, then given to [`TestCa::issue`](super::TestCa::issue) (a leaf) or
/// [`TestCa::intermediate_with`](super::TestCa::intermediate_with) (a CA).
///
/// Nothing here checks the SPIFFE X.509-SVID rules: a test CA must be able to issue the bad
/// certificates negative tests need (two URI SANs, a SPIFFE ID with no path, a leaf without
/// extended key usage), and the verifier under test is what should refuse them.
///
/// # Defaults
///
/// - Valid from one hour before [`CertSpec::new`] was called to one hour after (one day for
///   a CA), so clock skew of a few minutes does not matter.
/// - Leaves: key usage `digitalSignature`, extended key usage server and client
///   authentication ([`Usage::ServerAndClient`]), the X.509-SVID profile. CAs: `keyCertSign`,
///   `cRLSign`, `digitalSignature`, no path length limit.
/// - No extra extensions.
/// - Common name `"leaf"` for leaves, the given name for CAs; a serial number unique in the
///   process.
#[derive(Debug, Clone)]
pub struct CertSpec {
    common_name: Option<String>,
    sans: Vec<San>,
    not_before: SystemTime,
    not_after: Option<SystemTime>,
    usage: Usage,
    serial: Option<u64>,
    path_len: Option<u8>,
    key_usages: Option<Vec<KeyUsage>>,
    extensions: Vec<(Vec<u64>, Vec<u8>, bool)>,
}

/// Which extended key usages a leaf carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Usage {
    /// Server and client authentication (what a mesh workload needs).
    #[default]
    ServerAndClient,
    /// Server authentication only: refused as a client certificate.
    Server,
    /// Client authentication only: refused as a server certificate.
    Client,
    /// No extended key usage extension at all (refused by default for SPIFFE leaves).
    Omit,
}

/// A key usage bit (RFC 5280 §4.2.1.3) for [`CertSpec::key_usages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUsage {
    /// `digitalSignature`: what a TLS 1.3 leaf needs.
    DigitalSignature,
    /// `keyEncipherment`.
    KeyEncipherment,
    /// `keyCertSign`: forbidden in a SPIFFE leaf.
    KeyCertSign,
    /// `cRLSign`: forbidden in a SPIFFE leaf.
    CrlSign,
}

#[derive(Debug, Clone)]
enum San {
    Uri(String),
    Dns(String),
    Ip(IpAddr),
}

impl CertSpec {
    /// No names, default validity and usage.
    pub fn new() -> Self {
        CertSpec {
            common_name: None,
            sans: Vec::new(),
            not_before: SystemTime::now() - HOUR,
            not_after: None,
            usage: Usage::ServerAndClient,
            serial: None,
            path_len: None,
            key_usages: None,
            extensions: Vec::new(),
        }
    }

    /// A SPIFFE X.509-SVID: one URI SAN, `id` (such as `spiffe://example.org/ns/a/sa/b`).
    pub fn spiffe(id: impl Into<String>) -> Self {
        CertSpec::new().uri(id)
    }

    /// A DNS-named server: one DNS SAN, `name`.
    pub fn dns(name: impl Into<String>) -> Self {
        CertSpec::new().dns_name(name)
    }

    /// Adds a URI SAN.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.sans.push(San::Uri(uri.into()));
        self
    }

    /// Adds a DNS SAN.
    pub fn dns_name(mut self, name: impl Into<String>) -> Self {
        self.sans.push(San::Dns(name.into()));
        self
    }

    /// Adds an IP address SAN.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.sans.push(San::Ip(ip));
        self
    }

    /// Sets the subject common name.
    pub fn common_name(mut self, name: impl Into<String>) -> Self {
        self.common_name = Some(name.into());
        self
    }

    /// Valid from `not_before` to `not_after` (whole seconds; both must lie in the years 1970
    /// to 9999, and `not_after` must not come first).
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> Self {
        self.not_before = not_before;
        self.not_after = Some(not_after);
        self
    }

    /// Expired: valid from two hours ago until one hour ago.
    pub fn expired(self) -> Self {
        let now = SystemTime::now();
        self.validity(now - 2 * HOUR, now - HOUR)
    }

    /// Not yet valid: valid from one hour from now until two hours from now.
    pub fn not_yet_valid(self) -> Self {
        let now = SystemTime::now();
        self.validity(now + HOUR, now + 2 * HOUR)
    }

    /// Sets the extended key usages of a leaf (ignored for CAs).
    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the serial number (as for a CRL test; by default each certificate gets its own).
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = Some(serial);
        self
    }

    /// Limits how many intermediates may follow a CA in a chain (`pathLenConstraint`; ignored
    /// for leaves).
    pub fn path_len(mut self, len: u8) -> Self {
        self.path_len = Some(len);
        self
    }

    /// Replaces the key usage bits; none at all leaves the extension out.
    pub fn key_usages(mut self, usages: impl IntoIterator<Item = KeyUsage>) -> Self {
        self.key_usages = Some(usages.into_iter().collect());
        self
    }

    /// Adds an extension with object identifier `oid` (such as `[2, 5, 29, 17]`) and DER
    /// `content`, as given: for an unknown critical extension, or a second SAN extension. An
    /// invalid identifier is refused when the certificate is issued
    /// ([`TestCaError::InvalidOid`]).
    pub fn extension(mut self, oid: &[u64], content: Vec<u8>, critical: bool) -> Self {
        self.extensions.push((oid.to_vec(), content, critical));
        self
    }

    /// The rcgen parameters for a leaf (`ca` is `None`) or the CA named `ca`, and the serial.
    pub(crate) fn params(&self, ca: Option<&str>) -> Result<(CertificateParams, u64), TestCaError> {
        let mut params = CertificateParams::default();
        let cn = match (&self.common_name, ca) {
            (Some(cn), _) => cn.as_str(),
            (None, Some(name)) => name,
            (None, None) => "leaf",
        };
        params.distinguished_name.push(DnType::CommonName, cn);
        for san in &self.sans {
            params.subject_alt_names.push(san.to_rcgen()?);
        }
        let default_life = if ca.is_some() { DAY } else { HOUR };
        let not_after = self
            .not_after
            .unwrap_or_else(|| self.not_before + HOUR + default_life);
        if not_after < self.not_before {
            return Err(TestCaError::InvalidValidity(format!(
                "not_after {not_after:?} is before not_before {:?}",
                self.not_before
            )));
        }
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.not_before)?;
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(not_after)?;
        let serial = self.serial.unwrap_or_else(next_serial);
        params.serial_number = Some(SerialNumber::from(serial));
        if ca.is_some() {
            params.is_ca = IsCa::Ca(match self.path_len {
                Some(len) => BasicConstraints::Constrained(len),
                None => BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = match self.usage {
                Usage::ServerAndClient => vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
                Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
                Usage::Omit => Vec::new(),
            };
        }
        if let Some(usages) = &self.key_usages {
            params.key_usages = usages.iter().map(|u| u.to_rcgen()).collect();
        }
        for (oid, content, critical) in &self.extensions {
            let valid = match oid.as_slice() {
                [first @ 0..=1, second, ..] => *second < 40 && *first <= 1,
                [2, _, ..] => true,
                _ => false,
            };
            if !valid {
                return Err(TestCaError::InvalidOid(oid.clone()));
            }
            let mut ext = CustomExtension::from_oid_content(oid, content.clone());
            ext.set_criticality(*critical);
            params.custom_extensions.push(ext);
        }
        Ok((params, serial))
    }
}

impl Default for CertSpec {
    fn default() -> Self {
        CertSpec::new()
    }
}

impl KeyUsage {
    fn to_rcgen(self) -> KeyUsagePurpose {
        match self {
            KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
            KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        }
    }
}

impl San {
    fn to_rcgen(&self) -> Result<SanType, TestCaError> {
        let invalid = |kind: &'static str, value: &str| TestCaError::InvalidName {
            kind,
            value: value.to_owned(),
        };
        Ok(match self {
            San::Uri(u) => SanType::URI(u.as_str().try_into().map_err(|_| invalid("URI SAN", u))?),
            San::Dns(d) => {
                SanType::DnsName(d.as_str().try_into().map_err(|_| invalid("DNS SAN", d))?)
            }
            San::Ip(ip) => SanType::IpAddress(*ip),
        })
    }
}

/// Time since 1970 of `t`, which must lie in the years X.509 can express here (to 9999).
pub(crate) fn since_epoch(t: SystemTime) -> Result<Duration, TestCaError> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= LAST_SECOND => Ok(Duration::from_secs(d.as_secs())),
        _ => Err(TestCaError::InvalidValidity(format!(
            "{t:?} lies outside the years 1970 to 9999"
        ))),
    }
}

/// A serial number no other certificate of this process has (unless a spec set it).
fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;
