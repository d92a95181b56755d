use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::JwtConfigError;
use super::jwks::{JwksSource, KeyStore};
use super::verify::JwtAuthenticator;

/// A JWS signature algorithm (RFC 7518 §3.1) this crate verifies.
///
/// Only asymmetric algorithms exist here: `HS256`, `HS384` and `HS512` check a MAC with a
/// secret every verifier shares, so any verifier could mint tokens; a workload's credentials
/// are signed with a private key only its issuer holds. Parsing `"HS256"` is an error
/// ([`JwtConfigError::SharedSecretAlgorithm`]), and `none` is no algorithm at all.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519 (RFC 8037).
    EdDSA,
}

/// The kind of key an [`Algorithm`] verifies with. One authenticator accepts one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmFamily {
    /// RSA keys: `RS*` and `PS*`.
    Rsa,
    /// Elliptic-curve keys on the NIST curves: `ES256` (P-256) and `ES384` (P-384).
    Ec,
    /// Edwards-curve keys: `EdDSA` (Ed25519).
    EdDsa,
}

/// Builds a [`JwtAuthenticator`]; from [`JwtAuthenticator::builder`].
///
/// # Defaults
///
/// - algorithms: `[RS256]`, what most identity providers and the Kubernetes service-account
///   issuer sign with. A key set with no usable RSA key is refused at [`build`](Self::build),
///   so a wrong default fails at start, never per request.
/// - leeway: 30 seconds on `exp` and `nbf`, for clock skew between issuer and server; at most
///   5 minutes.
/// - refresh interval: 5 minutes between reads of a JWKS file; at least 1 second.
/// - JWKS: none; one must be given.
#[derive(Clone, Debug)]
pub struct JwtAuthenticatorBuilder {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    refresh_interval: Duration,
    jwks: Option<JwksSource>,
}

/// A validated configuration, as the authenticator uses it.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) leeway: Duration,
}

impl Algorithm {
    /// Its family.
    pub fn family(self) -> AlgorithmFamily {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => AlgorithmFamily::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
            Algorithm::EdDSA => AlgorithmFamily::EdDsa,
        }
    }

    /// Its name in a JWS header's `alg` (RFC 7518 §3.1): `"RS256"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub(super) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The algorithm of a parsed header; `None` for HMAC (and anything jsonwebtoken may add).
    pub(super) fn from_jwt(alg: jsonwebtoken::Algorithm) -> Option<Self> {
        Some(match alg {
            jsonwebtoken::Algorithm::RS256 => Algorithm::RS256,
            jsonwebtoken::Algorithm::RS384 => Algorithm::RS384,
            jsonwebtoken::Algorithm::RS512 => Algorithm::RS512,
            jsonwebtoken::Algorithm::PS256 => Algorithm::PS256,
            jsonwebtoken::Algorithm::PS384 => Algorithm::PS384,
            jsonwebtoken::Algorithm::PS512 => Algorithm::PS512,
            jsonwebtoken::Algorithm::ES256 => Algorithm::ES256,
            jsonwebtoken::Algorithm::ES384 => Algorithm::ES384,
            jsonwebtoken::Algorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        })
    }
}

impl FromStr for Algorithm {
    type Err = JwtConfigError;

    /// Parses a JWS `alg` name, case-sensitively as RFC 7515 §4.1.1 requires.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            "HS256" | "HS384" | "HS512" => {
                return Err(JwtConfigError::SharedSecretAlgorithm {
                    name: name.to_owned(),
                });
            }
            _ => {
                return Err(JwtConfigError::UnknownAlgorithm {
                    name: name.to_owned(),
                });
            }
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for AlgorithmFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlgorithmFamily::Rsa => "RSA",
            AlgorithmFamily::Ec => "EC",
            AlgorithmFamily::EdDsa => "EdDSA",
        })
    }
}

impl JwtAuthenticatorBuilder {
    pub(super) fn new(issuer: String, audience: String) -> Self {
        JwtAuthenticatorBuilder {
            issuer,
            audience,
            algorithms: vec![Algorithm::RS256],
            leeway: DEFAULT_LEEWAY,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            jwks: None,
        }
    }

    /// The algorithms accepted, all of one family (refused at build otherwise). Repeats are
    /// ignored.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms.clear();
        for algorithm in algorithms {
            if !self.algorithms.contains(&algorithm) {
                self.algorithms.push(algorithm);
            }
        }
        self
    }

    /// The clock skew tolerated on `exp` and `nbf`; at most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Where the verification keys come from.
    pub fn jwks(mut self, jwks: JwksSource) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// The least time between two reads of a JWKS file; at least 1 second. Ignored for an
    /// in-memory JWKS.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Checks the configuration, loads the key set, and builds the authenticator.
    ///
    /// # Errors
    ///
    /// An empty issuer or audience, no algorithms or several families, a leeway above 5
    /// minutes, a refresh interval below 1 second, no JWKS, a JWKS file that cannot be read,
    /// a JWKS that is not JSON, has two usable keys with one `kid`, or has no key usable with
    /// the algorithms; and no jsonwebtoken crypto provider.
    pub fn build(self) -> Result<JwtAuthenticator, JwtConfigError> {
        if self.issuer.is_empty() {
            return Err(JwtConfigError::EmptyIssuer);
        }
        if self.audience.is_empty() {
            return Err(JwtConfigError::EmptyAudience);
        }
        let Some(&first) = self.algorithms.first() else {
            return Err(JwtConfigError::NoAlgorithms);
        };
        if let Some(&other) = self
            .algorithms
            .iter()
            .find(|a| a.family() != first.family())
        {
            return Err(JwtConfigError::MixedAlgorithmFamilies { first, other });
        }
        if self.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::LeewayTooLarge {
                leeway: self.leeway,
                max: MAX_LEEWAY,
            });
        }
        if self.refresh_interval < MIN_REFRESH_INTERVAL {
            return Err(JwtConfigError::RefreshIntervalTooShort {
                interval: self.refresh_interval,
                min: MIN_REFRESH_INTERVAL,
            });
        }
        let Some(jwks) = self.jwks else {
            return Err(JwtConfigError::NoJwks);
        };
        // jsonwebtoken panics on first use without a provider; find out here instead.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(JwtConfigError::NoCryptoProvider);
        }
        let keys = KeyStore::load(jwks, &self.algorithms, self.refresh_interval)?;
        let config = Config {
            issuer: self.issuer,
            audience: self.audience,
            algorithms: self.algorithms,
            leeway: self.leeway,
        };
        Ok(JwtAuthenticator::new(config, keys))
    }
}

const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
