//! Identity extraction from an X.509 leaf certificate, by the X.509-SVID standard
//! (<https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>).
//!
//! webpki verifies the chain, validity and extended key usage; it does not look at URI SANs,
//! basic constraints of the leaf beyond `CaUsedAsEndEntity`, or key usage. These checks are ours.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{DnsName, Identity, InvalidIdentity, SpiffeId};

impl Identity {
    /// Extracts the identity of a DER-encoded X.509 leaf certificate, without verifying its
    /// chain (the TLS verifier does that first).
    ///
    /// A certificate with any URI SAN is judged as an X.509-SVID: exactly one URI SAN, a valid
    /// SPIFFE ID with a non-root path, `cA=false`, a key usage extension with
    /// `digitalSignature` and without `keyCertSign`/`cRLSign`, and an extended key usage
    /// extension (§4.1–4.4). A certificate without a URI SAN has the identity of its one DNS
    /// SAN (not a wildcard); several DNS SANs are ambiguous and refused.
    ///
    /// Never panics, whatever the input.
    pub fn from_certificate_der(der: &[u8]) -> Result<Identity, CertificateIdentityError> {
        Leaf::parse(der)?.identity(LeafRules::STRICT)
    }
}

/// Why a certificate yields no identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateIdentityError {
    /// The bytes are not one DER X.509 certificate (or an extension is malformed or repeated).
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// A SPIFFE identity was required and the certificate has no URI SAN.
    #[error("no URI SAN")]
    NoUriSan,
    /// More than one URI SAN: an X.509-SVID has exactly one (§2).
    #[error("{0} URI SANs, an X.509-SVID has exactly one")]
    MultipleUriSans(usize),
    /// The URI SAN is not a valid workload SPIFFE ID.
    #[error("URI SAN is not a valid SPIFFE ID")]
    InvalidSpiffeId(#[source] InvalidIdentity),
    /// The leaf is a CA certificate (`cA=true`).
    #[error("leaf certificate is a CA")]
    CaCertificate,
    /// The leaf's key usage includes `keyCertSign` or `cRLSign`.
    #[error("leaf key usage includes keyCertSign or cRLSign")]
    ForbiddenKeyUsage,
    /// The leaf has no key usage extension.
    #[error("leaf has no key usage extension")]
    MissingKeyUsage,
    /// The leaf's key usage lacks `digitalSignature`.
    #[error("leaf key usage lacks digitalSignature")]
    MissingDigitalSignature,
    /// The leaf has no extended key usage extension.
    #[error("leaf has no extended key usage extension")]
    MissingExtendedKeyUsage,
    /// Neither a URI SAN nor a DNS SAN.
    #[error("no identity in certificate")]
    NoIdentity,
    /// No URI SAN and several DNS SANs: which one names the workload is ambiguous.
    #[error("{0} DNS SANs and no URI SAN: ambiguous identity")]
    MultipleDnsNames(usize),
    /// The single DNS SAN is not a valid workload DNS name (a wildcard, for example).
    #[error("DNS SAN is not a valid workload name")]
    InvalidDnsName(#[source] InvalidIdentity),
}

/// Which optional X.509-SVID rules are enforced. Strict by default; loosened only through
/// `tls::danger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeafRules {
    pub(crate) require_key_usage: bool,
    pub(crate) require_extended_key_usage: bool,
}

impl LeafRules {
    pub(crate) const STRICT: LeafRules = LeafRules {
        require_key_usage: true,
        require_extended_key_usage: true,
    };
}

/// What we read from a leaf certificate.
#[derive(Debug)]
pub(crate) struct Leaf {
    uris: Vec<String>,
    dns: Vec<String>,
    is_ca: bool,
    // (digitalSignature, keyCertSign or cRLSign), if the extension is present.
    key_usage: Option<(bool, bool)>,
    has_eku: bool,
    // The validity period, in seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
}

impl Leaf {
    pub(crate) fn parse(der: &[u8]) -> Result<Leaf, CertificateIdentityError> {
        let malformed =
            |e: &dyn std::fmt::Display| CertificateIdentityError::Malformed(e.to_string());
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| malformed(&e))?;
        if !rest.is_empty() {
            return Err(CertificateIdentityError::Malformed(
                "trailing bytes after certificate".into(),
            ));
        }
        let mut uris = Vec::new();
        let mut dns = Vec::new();
        if let Some(san) = cert.subject_alternative_name().map_err(|e| malformed(&e))? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push((*uri).to_owned()),
                    GeneralName::DNSName(name) => dns.push((*name).to_owned()),
                    _ => {}
                }
            }
        }
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| malformed(&e))?
            .is_some_and(|bc| bc.value.ca);
        let key_usage = cert.key_usage().map_err(|e| malformed(&e))?.map(|ku| {
            (
                ku.value.digital_signature(),
                ku.value.key_cert_sign() || ku.value.crl_sign(),
            )
        });
        let has_eku = cert
            .extended_key_usage()
            .map_err(|e| malformed(&e))?
            .is_some();
        let validity = cert.validity();
        Ok(Leaf {
            uris,
            dns,
            is_ca,
            key_usage,
            has_eku,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The identity: the SPIFFE ID if there is any URI SAN, else the one DNS SAN.
    pub(crate) fn identity(&self, rules: LeafRules) -> Result<Identity, CertificateIdentityError> {
        if !self.uris.is_empty() {
            return self.svid(rules).map(Identity::Spiffe);
        }
        if self.is_ca {
            return Err(CertificateIdentityError::CaCertificate);
        }
        match self.dns.as_slice() {
            [] => Err(CertificateIdentityError::NoIdentity),
            [one] => DnsName::parse(one)
                .map(Identity::Dns)
                .map_err(CertificateIdentityError::InvalidDnsName),
            many => Err(CertificateIdentityError::MultipleDnsNames(many.len())),
        }
    }

    /// The SPIFFE ID of an X.509-SVID leaf, applying every leaf rule.
    pub(crate) fn svid(&self, rules: LeafRules) -> Result<SpiffeId, CertificateIdentityError> {
        let uri = match self.uris.as_slice() {
            [] => return Err(CertificateIdentityError::NoUriSan),
            [one] => one,
            many => return Err(CertificateIdentityError::MultipleUriSans(many.len())),
        };
        let id = SpiffeId::parse(uri).map_err(CertificateIdentityError::InvalidSpiffeId)?;
        if self.is_ca {
            return Err(CertificateIdentityError::CaCertificate);
        }
        match self.key_usage {
            Some((_, true)) => return Err(CertificateIdentityError::ForbiddenKeyUsage),
            Some((false, false)) => return Err(CertificateIdentityError::MissingDigitalSignature),
            Some((true, false)) => {}
            None if rules.require_key_usage => {
                return Err(CertificateIdentityError::MissingKeyUsage);
            }
            None => tracing::warn!(spiffe_id = %id, "accepting SPIFFE leaf without key usage"),
        }
        if !self.has_eku {
            if rules.require_extended_key_usage {
                return Err(CertificateIdentityError::MissingExtendedKeyUsage);
            }
            tracing::warn!(spiffe_id = %id, "accepting SPIFFE leaf without extended key usage");
        }
        Ok(id)
    }

    /// Whether a DNS SAN equals `name` exactly (case-insensitively, without a trailing dot).
    /// Wildcard SANs never match: a workload identity names one workload.
    pub(crate) fn has_dns_name(&self, name: &DnsName) -> bool {
        self.dns.iter().any(|san| {
            let san = san.strip_suffix('.').unwrap_or(san);
            !san.contains('*') && san.eq_ignore_ascii_case(name.as_str())
        })
    }

    pub(crate) fn has_uri_sans(&self) -> bool {
        !self.uris.is_empty()
    }

    /// The first instant the certificate is valid (`notBefore`).
    pub(crate) fn not_before(&self) -> SystemTime {
        unix_time(self.not_before)
    }

    /// The last instant the certificate is valid (`notAfter`).
    pub(crate) fn not_after(&self) -> SystemTime {
        unix_time(self.not_after)
    }

    /// Every name the certificate carries (URI SANs, then DNS SANs in lowercase without a
    /// trailing dot), sorted: two certificates name the same workload when these are equal.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut uris = self.uris.clone();
        uris.sort();
        let mut dns: Vec<String> = self
            .dns
            .iter()
            .map(|d| d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase())
            .collect();
        dns.sort();
        uris.extend(dns);
        uris.dedup();
        uris
    }
}

fn unix_time(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
    // A time the platform cannot represent is past any certificate's use: clamp to the epoch,
    // which every validity check treats as long ago.
    .unwrap_or(UNIX_EPOCH)
}
