//! Risky settings, kept apart so that review sees them (as rustls's `dangerous()`).
//!
//! Each loosens a rule that the default configuration enforces. Use them only to
//! interoperate with an issuer that cannot be fixed, and log what it lets through: each
//! accepted certificate that would have been refused is logged at `warn`.

use super::config::TlsConfigBuilder;

/// Loosening switches for a [`TlsConfigBuilder`]; obtained from
/// [`TlsConfigBuilder::dangerous`].
#[derive(Debug)]
pub struct DangerousConfigBuilder {
    builder: TlsConfigBuilder,
}

impl TlsConfigBuilder {
    /// Opens the risky settings.
    pub fn dangerous(self) -> DangerousConfigBuilder {
        DangerousConfigBuilder { builder: self }
    }
}

impl DangerousConfigBuilder {
    /// Accepts SPIFFE leaves without a key usage extension (X.509-SVID §4.3 says issuers MUST
    /// set one). `keyCertSign` and `cRLSign` are still refused when the extension is present.
    pub fn allow_leaf_without_key_usage(mut self) -> Self {
        self.builder.rules.require_key_usage = false;
        self
    }

    /// Accepts SPIFFE leaves without an extended key usage extension (webpki's own default:
    /// EKU is checked only when present).
    pub fn allow_leaf_without_extended_key_usage(mut self) -> Self {
        self.builder.rules.require_extended_key_usage = false;
        self
    }

    /// Lets the connector open connections while our own certificate is expired or not yet
    /// valid, instead of failing with [`OwnCertificateNotValid`](super::OwnCertificateNotValid)
    /// before connecting. Peers still refuse such a certificate; this exists to test that
    /// they do.
    pub fn connect_with_invalid_certificate(mut self) -> Self {
        self.builder.connect_with_invalid_certificate = true;
        self
    }

    /// Back to the ordinary builder.
    pub fn done(self) -> TlsConfigBuilder {
        self.builder
    }
}
