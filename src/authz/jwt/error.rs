use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{Algorithm, AlgorithmFamily};

/// A bearer credential that was presented and refused: the request is answered `401`.
///
/// Returned by [`JwtAuthenticator::authenticate`](super::JwtAuthenticator::authenticate). A
/// request with no `Authorization` header is not an error (it is anonymous, and the policy
/// judges it); every `JwtError` is a credential that was presented and is not valid, so the
/// request must not reach the application, even on a route open to anonymous callers: a
/// caller who sent a bad token should learn so, not be silently downgraded.
///
/// `Display` never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct JwtError {
    kind: JwtErrorKind,
}

/// Why a bearer credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// More than one `Authorization` header: which one would count is ambiguous.
    #[error("more than one authorization header")]
    MultipleAuthorizationHeaders,
    /// A scheme other than `Bearer` (compared case-insensitively, RFC 6750 §2.1).
    #[error("unsupported authorization scheme {scheme:?}: expected Bearer")]
    UnsupportedScheme {
        /// The scheme as sent, cut to 32 bytes.
        scheme: String,
    },
    /// The `Authorization` header is longer than the limit; nothing of it was decoded.
    #[error("authorization header of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The header's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JWS in compact serialization (three base64url parts joined by `.`), or its
    /// header or claims are not the JSON they must be. A header with `"alg": "none"` is one:
    /// `none` is not an algorithm this crate (or jsonwebtoken) knows.
    #[error("malformed bearer token")]
    Malformed,
    /// The header's `alg` is not one of the configured algorithms (`HS256` against an RSA
    /// issuer, `RS512` when only `RS256` is configured).
    #[error("token algorithm {alg} is not allowed")]
    AlgorithmNotAllowed {
        /// The algorithm the token's header names.
        alg: String,
    },
    /// The header names no key (`kid`) and the key set holds more than one key for its
    /// algorithm: the key is never guessed by trying them in turn.
    #[error("token names no key id and the key set holds several keys for its algorithm")]
    MissingKeyId,
    /// The header's `kid` is not in the key set, after at most one rate-limited refresh.
    #[error("unknown key id {kid:?}")]
    UnknownKeyId {
        /// The key id the token names, cut to 64 bytes.
        kid: String,
    },
    /// The signature does not verify with the key the header names.
    #[error("invalid token signature")]
    InvalidSignature,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim (`exp`, `iss`, `aud` or `sub`) is absent, or is not of the type it
    /// must have (jsonwebtoken does not tell the two apart): a string `exp`, a number `sub`.
    #[error("token has no valid {claim} claim")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// A claim of the wrong type where that can be told: an `nbf` that is not a number, an
    /// `iss` that is a list rather than one string (RFC 7519 §4.1.1).
    #[error("token claim {claim} has the wrong type")]
    InvalidClaim {
        /// The claim's name.
        claim: String,
    },
    /// `iss` is not the configured issuer.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token audience does not match")]
    WrongAudience,
    /// The clock given (or the system clock) is before 1970; no time can be checked, so every
    /// token is refused.
    #[error("clock is before the unix epoch")]
    ClockBeforeEpoch,
}

impl JwtError {
    pub(super) fn new(kind: JwtErrorKind) -> Self {
        JwtError { kind }
    }

    /// Why the credential was refused.
    pub fn kind(&self) -> &JwtErrorKind {
        &self.kind
    }

    /// The status to answer with: always `401 Unauthorized`.
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::UNAUTHORIZED
    }

    /// The `WWW-Authenticate` challenge to answer with (RFC 6750 §3): `Bearer
    /// error="invalid_request"` for a request that is ambiguous (several `Authorization`
    /// headers), `Bearer` alone for another scheme, `Bearer error="invalid_token"` otherwise.
    /// It never carries a description: the reason is for the server's logs, not the caller.
    pub fn www_authenticate(&self) -> http::HeaderValue {
        http::HeaderValue::from_static(match self.kind {
            JwtErrorKind::MultipleAuthorizationHeaders => "Bearer error=\"invalid_request\"",
            JwtErrorKind::UnsupportedScheme { .. } => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        })
    }
}

impl From<JwtErrorKind> for JwtError {
    fn from(kind: JwtErrorKind) -> Self {
        JwtError::new(kind)
    }
}

/// A [`JwtAuthenticator`](super::JwtAuthenticator) configuration that is refused, naming the
/// bad value or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The issuer is empty.
    #[error("the issuer is empty")]
    EmptyIssuer,
    /// The audience is empty.
    #[error("the audience is empty")]
    EmptyAudience,
    /// No algorithm is configured.
    #[error("no algorithm is configured")]
    NoAlgorithms,
    /// Algorithms of two families (RSA and EC, say). One issuer signs with one kind of key;
    /// a mixed set would let the token's header choose how its signature is checked.
    #[error("algorithms {first} and {other} are of different families ({first_family} and {other_family})",
        first_family = .first.family(), other_family = .other.family())]
    MixedAlgorithmFamilies {
        /// The first algorithm configured.
        first: Algorithm,
        /// The first one of another family.
        other: Algorithm,
    },
    /// An `HS*` algorithm name: an HMAC secret is shared by every party that can check a
    /// token, so any of them can mint one. Workload tokens are signed with private keys.
    #[error(
        "algorithm {name:?} is refused: HMAC uses a shared secret, and a shared secret is not \
         a workload key; use RS*, PS*, ES* or EdDSA"
    )]
    SharedSecretAlgorithm {
        /// The name as given.
        name: String,
    },
    /// An algorithm name that is not a JWS signature algorithm this crate supports.
    #[error(
        "unknown algorithm {name:?}: expected RS256, RS384, RS512, PS256, PS384, PS512, \
         ES256, ES384 or EdDSA"
    )]
    UnknownAlgorithm {
        /// The name as given.
        name: String,
    },
    /// A leeway above the maximum.
    #[error("leeway of {leeway:?} exceeds the maximum of {max:?}")]
    LeewayTooLarge {
        /// The leeway asked for.
        leeway: Duration,
        /// The maximum.
        max: Duration,
    },
    /// A JWKS refresh interval below the minimum.
    #[error("JWKS refresh interval of {interval:?} is below the minimum of {min:?}")]
    RefreshIntervalTooShort {
        /// The interval asked for.
        interval: Duration,
        /// The minimum.
        min: Duration,
    },
    /// No JWKS is configured.
    #[error("no JWKS is configured")]
    NoJwks,
    /// The JWKS file cannot be read.
    #[error("cannot read JWKS file {}", path.display())]
    ReadJwks {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The JWKS is larger than the limit.
    #[error("JWKS {origin} exceeds the {max}-byte limit")]
    JwksTooLarge {
        /// The file's path, or `memory`.
        origin: String,
        /// The limit.
        max: usize,
    },
    /// The JWKS is not a JSON object with a `keys` array.
    #[error("JWKS {origin} is not a JSON key set")]
    ParseJwks {
        /// The file's path, or `memory`.
        origin: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Two usable keys with the same `kid`: a token naming it would be ambiguous.
    #[error("JWKS {origin} has two usable keys with key id {kid:?}")]
    DuplicateKeyId {
        /// The file's path, or `memory`.
        origin: String,
        /// The repeated key id.
        kid: String,
    },
    /// The JWKS holds no key usable with the configured algorithms (entries of another type,
    /// for encryption, or for another algorithm are skipped with a warning).
    #[error("JWKS {origin} has no usable {family} signing key for the configured algorithms")]
    NoUsableKey {
        /// The file's path, or `memory`.
        origin: String,
        /// The configured family.
        family: AlgorithmFamily,
    },
    /// jsonwebtoken has no crypto provider: none installed and not exactly one of its
    /// backend features enabled in the build.
    #[error("jsonwebtoken has no crypto provider")]
    NoCryptoProvider,
}

/// A bearer token that cannot be sent: it is not an RFC 6750 `b64token` (token68), so it would
/// not be a valid, unambiguous `Authorization` header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBearerToken {
    /// The token is empty.
    #[error("bearer token is empty")]
    Empty,
    /// The token is longer than the limit.
    #[error("bearer token of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A byte outside `A-Z a-z 0-9 - . _ ~ + /` (with `=` only as trailing padding): a space,
    /// a control character such as CR or LF, a non-ASCII byte.
    #[error("bearer token byte {index} is not a token68 character")]
    InvalidByte {
        /// The byte's position, from 0 (the byte itself is not shown: tokens are secrets).
        index: usize,
    },
    /// `http` refused the header value (its `InvalidHeaderValue` carries nothing more).
    #[error("bearer token is not a valid header value")]
    HeaderValue,
}

/// A token file that cannot be used: at construction this is returned, on a later refresh it
/// is logged and the last good token kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read token file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a valid bearer token (after trimming surrounding whitespace).
    #[error("token file {} does not hold a valid bearer token", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: InvalidBearerToken,
    },
    /// A refresh interval of zero.
    #[error("token file refresh interval is zero")]
    ZeroInterval,
    /// Not called from within a Tokio runtime, which runs the refresh task.
    #[error("no tokio runtime to run the token file refresh task")]
    NoRuntime,
}
