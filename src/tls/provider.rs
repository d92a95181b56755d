//! Constructors for the built-in crypto providers; each only adds a shortcut for
//! [`TlsConfig::builder`] with that provider.

#[cfg(any(feature = "tls-ring", feature = "tls-aws-lc-rs"))]
use std::sync::Arc;

use super::config::TlsConfig;
#[cfg(any(feature = "tls-ring", feature = "tls-aws-lc-rs"))]
use super::config::TlsConfigBuilder;

impl TlsConfig {
    /// [`TlsConfig::builder`] with the *ring* provider.
    #[cfg(feature = "tls-ring")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls-ring")))]
    pub fn builder_with_ring() -> TlsConfigBuilder {
        TlsConfig::builder(Arc::new(rustls::crypto::ring::default_provider()))
    }

    /// [`TlsConfig::builder`] with the aws-lc-rs provider.
    #[cfg(feature = "tls-aws-lc-rs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls-aws-lc-rs")))]
    pub fn builder_with_aws_lc_rs() -> TlsConfigBuilder {
        TlsConfig::builder(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
}
