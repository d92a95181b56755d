use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::config::{Algorithm, Config, JwtAuthenticatorBuilder};
use super::error::{JwtError, JwtErrorKind};
use super::jwks::{KeyStore, truncate};
use crate::authz::RequestPrincipal;

/// Verifies bearer JWTs from one issuer for one audience, against the issuer's key set.
///
/// Cheap to clone (one `Arc`); `Send + Sync`, one value serves every connection.
///
/// See the [module docs](super) for the rules and why; build one with
/// [`JwtAuthenticator::builder`].
#[derive(Clone)]
pub struct JwtAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    validation: Validation,
    keys: KeyStore,
}

impl JwtAuthenticator {
    /// Starts a configuration for tokens whose `iss` is exactly `issuer` and whose `aud` is or
    /// contains exactly `audience`.
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> JwtAuthenticatorBuilder {
        JwtAuthenticatorBuilder::new(issuer.into(), audience.into())
    }

    pub(super) fn new(config: Config, keys: KeyStore) -> Self {
        // jsonwebtoken checks the signature, the presence of the claims, `iss` and `aud`. Times
        // are checked here, against the clock the caller passes, so `exp`/`nbf` validation is
        // off in `Validation` and its leeway unused.
        let algorithms: Vec<jsonwebtoken::Algorithm> =
            config.algorithms.iter().map(|a| a.to_jwt()).collect();
        // The placeholder algorithm is replaced at once by the configured ones.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.algorithms = algorithms;
        validation.set_required_spec_claims(&REQUIRED_CLAIMS);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.validate_aud = true;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        JwtAuthenticator {
            inner: Arc::new(Inner {
                config,
                validation,
                keys,
            }),
        }
    }

    /// Authenticates a request by its `Authorization` header, checking times against the
    /// system clock.
    ///
    /// `Ok(None)`: no `Authorization` header, an anonymous request for the policy to judge.
    /// `Ok(Some(_))`: a verified token. `Err(_)`: a credential that was presented and is not
    /// valid; answer [`JwtError::status`] (401), whatever the policy.
    ///
    /// Only the header is read: never the query string, a cookie or a form body.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<RequestPrincipal>, JwtError> {
        self.authenticate_at(headers, SystemTime::now())
    }

    /// [`authenticate`](Self::authenticate) with the time to check `exp` and `nbf` against.
    pub fn authenticate_at(
        &self,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Option<RequestPrincipal>, JwtError> {
        let Some(token) = bearer_token(headers)? else {
            return Ok(None);
        };
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| JwtErrorKind::ClockBeforeEpoch)?;
        Ok(Some(self.verify(token, now)?))
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.inner.config.audience
    }

    /// The algorithms accepted.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.config.algorithms
    }

    fn verify(&self, token: &str, now: Duration) -> Result<RequestPrincipal, JwtErrorKind> {
        let inner = &*self.inner;
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtErrorKind::Malformed)?;
        let alg = Algorithm::from_jwt(header.alg)
            .filter(|a| inner.config.algorithms.contains(a))
            .ok_or_else(|| JwtErrorKind::AlgorithmNotAllowed {
                alg: format!("{:?}", header.alg),
            })?;
        // `jku`, `x5u`, `jwk` and `x5c` are never read: the key comes from the key set only.
        let keys = inner.keys.current();
        let key = keys.select(header.kid.as_deref(), alg)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &inner.validation)
            .map_err(|e| decode_error(e, alg))?;
        let claims = data.claims;
        check_times(&claims, now, inner.config.leeway)?;
        let issuer = string_claim(&claims, "iss")?;
        let subject = string_claim(&claims, "sub")?;
        Ok(RequestPrincipal::new(issuer, subject, claims))
    }
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &inner.config.issuer)
            .field("audience", &inner.config.audience)
            .field("algorithms", &inner.config.algorithms)
            .field("leeway", &inner.config.leeway)
            .field("keys", &inner.keys)
            .finish()
    }
}

/// The compact JWS of the one `Authorization: Bearer` header, if there is a header at all.
///
/// The length is checked before anything else is looked at (E13); the token must then be
/// three base64url parts joined by dots, nothing else, so no later decoder sees stray bytes.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, JwtErrorKind> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(JwtErrorKind::MultipleAuthorizationHeaders);
    }
    let bytes = value.as_bytes();
    if bytes.len() > MAX_AUTHORIZATION_BYTES {
        return Err(JwtErrorKind::TooLarge {
            len: bytes.len(),
            max: MAX_AUTHORIZATION_BYTES,
        });
    }
    // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive
    // (RFC 9110 §11.1).
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(space) => (&bytes[..space], &bytes[space..]),
        None => (bytes, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // A scheme is echoed only when it looks like one (a short word followed by a space):
        // a credential sent without a scheme (`Authorization: ghp_…`) must never reach a log.
        let looks_like_scheme = !rest.is_empty()
            && scheme.len() <= MAX_SCHEME_SHOWN.min(20)
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
        let scheme = if looks_like_scheme {
            truncate(&String::from_utf8_lossy(scheme), MAX_SCHEME_SHOWN)
        } else {
            "<redacted>".to_owned()
        };
        return Err(JwtErrorKind::UnsupportedScheme { scheme });
    }
    let token = rest.trim_ascii_start();
    if !is_compact_jws(token) {
        return Err(JwtErrorKind::Malformed);
    }
    // All ASCII, checked just above.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| JwtErrorKind::Malformed)
}

/// Three non-empty base64url parts (no padding) joined by two dots. The signature part may
/// not be empty either: there is no unsecured JWS here (RFC 7515 §A.5).
fn is_compact_jws(token: &[u8]) -> bool {
    let mut parts = 0;
    for part in token.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty()
            || !part
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// `exp` (required) and `nbf` (if present) against `now`, with `leeway` either way.
///
/// RFC 7519 §4.1.4: the token is valid *before* `exp`, so `now == exp + leeway` is expired;
/// §4.1.5: valid *from* `nbf`. NumericDates may carry fractions; they are compared in
/// milliseconds.
pub(super) fn check_times(
    claims: &Map<String, Value>,
    now: Duration,
    leeway: Duration,
) -> Result<(), JwtErrorKind> {
    let now = i128::try_from(now.as_millis()).unwrap_or(i128::MAX);
    let leeway = i128::try_from(leeway.as_millis()).unwrap_or(i128::MAX);
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(JwtErrorKind::MissingClaim {
            claim: "exp".to_owned(),
        });
    };
    if now >= exp.saturating_add(leeway) {
        return Err(JwtErrorKind::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(JwtErrorKind::NotYetValid);
    }
    Ok(())
}

/// A NumericDate claim in milliseconds since the epoch.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i128>, JwtErrorKind> {
    let invalid = || JwtErrorKind::InvalidClaim {
        claim: name.to_owned(),
    };
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = value else {
        return Err(invalid());
    };
    if let Some(secs) = n.as_u64() {
        Ok(Some(i128::from(secs) * 1000))
    } else if let Some(secs) = n.as_i64() {
        Ok(Some(i128::from(secs) * 1000))
    } else if let Some(secs) = n.as_f64() {
        // `as` saturates; serde_json numbers are finite.
        Ok(Some((secs * 1000.0).floor() as i128))
    } else {
        Err(invalid())
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<String, JwtErrorKind> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(JwtErrorKind::InvalidClaim {
            claim: name.to_owned(),
        }),
        None => Err(JwtErrorKind::MissingClaim {
            claim: name.to_owned(),
        }),
    }
}

fn decode_error(error: jsonwebtoken::errors::Error, alg: Algorithm) -> JwtErrorKind {
    use jsonwebtoken::errors::ErrorKind;
    match error.into_kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => JwtErrorKind::InvalidSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => JwtErrorKind::AlgorithmNotAllowed {
            alg: alg.name().to_owned(),
        },
        ErrorKind::MissingRequiredClaim(claim) => JwtErrorKind::MissingClaim { claim },
        ErrorKind::InvalidClaimFormat(claim) => JwtErrorKind::InvalidClaim { claim },
        ErrorKind::InvalidIssuer => JwtErrorKind::WrongIssuer,
        ErrorKind::InvalidAudience => JwtErrorKind::WrongAudience,
        ErrorKind::ExpiredSignature => JwtErrorKind::Expired,
        ErrorKind::ImmatureSignature => JwtErrorKind::NotYetValid,
        _ => JwtErrorKind::Malformed,
    }
}

/// The claims a token must carry: `exp` so it cannot live forever, `iss` and `aud` so it is
/// pinned to its issuer and to us, `sub` so it names a principal.
const REQUIRED_CLAIMS: [&str; 4] = ["exp", "iss", "aud", "sub"];
/// Limit on the whole `Authorization` header value (E13). Real JWTs are well under 2 KiB.
pub(super) const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
const MAX_SCHEME_SHOWN: usize = 32;
