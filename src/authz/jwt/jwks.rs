use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use tokio::time::Instant;

use super::config::{Algorithm, AlgorithmFamily};
use super::error::{JwtConfigError, JwtErrorKind};

/// Where an authenticator's verification keys come from: a JSON Web Key Set (RFC 7517 §5).
///
/// Keys come only from here: a token's `jku`, `x5u`, `jwk` and `x5c` header fields, which
/// would let the token name its own key, are never read (RFC 8725 §3.10).
#[derive(Clone)]
pub struct JwksSource(Source);

#[derive(Clone)]
enum Source {
    File(PathBuf),
    Memory(Arc<str>),
}

/// The keys in force, swapped whole on a refresh.
pub(super) struct KeyStore {
    source: Source,
    algorithms: Vec<Algorithm>,
    keys: ArcSwap<KeySet>,
    /// `None` for an in-memory set, which never changes.
    refresh: Option<Refresh>,
}

/// The usable keys of one JWKS document.
#[derive(Debug)]
pub(super) struct KeySet {
    keys: Vec<Key>,
}

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    /// The configured algorithms this key may verify: its `alg` if it names one, else every
    /// configured one its type and curve fit.
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// The rate limit on file reads: a read is due once `interval` has passed since the last one.
/// Lock-free: the first caller to move `next_ms` forward does the read, the others go on with
/// the keys in force.
struct Refresh {
    interval: Duration,
    epoch: Instant,
    next_ms: AtomicU64,
}

impl JwksSource {
    /// A JWKS file, read at build and again at most once per refresh interval.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        JwksSource(Source::File(path.into()))
    }

    /// A JWKS document given as JSON text, which never changes.
    pub fn memory(json: impl Into<String>) -> Self {
        JwksSource(Source::Memory(Arc::from(json.into())))
    }
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::File(path) => f.debug_tuple("JwksSource::File").field(path).finish(),
            Source::Memory(json) => f
                .debug_struct("JwksSource::Memory")
                .field("len", &json.len())
                .finish(),
        }
    }
}

impl KeyStore {
    pub(super) fn load(
        source: JwksSource,
        algorithms: &[Algorithm],
        interval: Duration,
    ) -> Result<Self, JwtConfigError> {
        let source = source.0;
        let keys = read_key_set(&source, algorithms)?;
        let refresh = match source {
            Source::File(_) => Some(Refresh {
                interval,
                epoch: Instant::now(),
                next_ms: AtomicU64::new(millis(interval)),
            }),
            Source::Memory(_) => None,
        };
        Ok(KeyStore {
            source,
            algorithms: algorithms.to_vec(),
            keys: ArcSwap::from_pointee(keys),
            refresh,
        })
    }

    /// The keys in force, after re-reading the file first if a read is due. A read that fails,
    /// or finds no usable key, keeps the keys in force and waits for the next interval.
    pub(super) fn current(&self) -> Arc<KeySet> {
        if let Some(refresh) = &self.refresh
            && refresh.claim()
        {
            match read_key_set(&self.source, &self.algorithms) {
                Ok(keys) => {
                    tracing::debug!(jwks = %origin(&self.source), keys = keys.keys.len(), "JWKS refreshed");
                    self.keys.store(Arc::new(keys));
                }
                Err(error) => tracing::warn!(
                    error = %error,
                    cause = ?std::error::Error::source(&error),
                    "JWKS refresh failed; keeping the previous keys"
                ),
            }
        }
        self.keys.load_full()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("source", &origin(&self.source))
            .field("keys", &self.keys.load().keys.len())
            .field(
                "refresh_interval",
                &self.refresh.as_ref().map(|r| r.interval),
            )
            .finish()
    }
}

impl KeySet {
    /// The key for a token naming `kid` (or none) and `alg`.
    ///
    /// A `kid` must name a key, and that key must be one for `alg`. Without a `kid`, the one
    /// key for `alg` is used; with several, the token is refused rather than tried against each.
    pub(super) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&DecodingKey, JwtErrorKind> {
        let key = match kid {
            Some(kid) => {
                let Some(key) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) else {
                    return Err(JwtErrorKind::UnknownKeyId {
                        kid: truncate(kid, MAX_KID_SHOWN),
                    });
                };
                key
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithms.contains(&alg));
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => key,
                    (Some(_), Some(_)) => return Err(JwtErrorKind::MissingKeyId),
                    (None, _) => {
                        return Err(JwtErrorKind::AlgorithmNotAllowed {
                            alg: alg.name().to_owned(),
                        });
                    }
                }
            }
        };
        if !key.algorithms.contains(&alg) {
            // RFC 8725 §3.1: a key is used only with the algorithm it is for.
            return Err(JwtErrorKind::AlgorithmNotAllowed {
                alg: alg.name().to_owned(),
            });
        }
        Ok(&key.decoding)
    }
}

impl Refresh {
    /// Whether this caller is the one to read the file now.
    fn claim(&self) -> bool {
        let now = millis(Instant::now().saturating_duration_since(self.epoch));
        let next = self.next_ms.load(Ordering::Acquire);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(millis(self.interval)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

/// Parses a JWKS document, keeping the keys usable with `algorithms` and skipping (with a
/// warning) the others.
pub(super) fn parse_key_set(
    json: &[u8],
    origin: &str,
    algorithms: &[Algorithm],
) -> Result<KeySet, JwtConfigError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }

    if json.len() > MAX_JWKS_BYTES {
        return Err(JwtConfigError::JwksTooLarge {
            origin: origin.to_owned(),
            max: MAX_JWKS_BYTES,
        });
    }
    let document: Document =
        serde_json::from_slice(json).map_err(|source| JwtConfigError::ParseJwks {
            origin: origin.to_owned(),
            source,
        })?;
    let mut keys: Vec<Key> = Vec::new();
    for (index, entry) in document.keys.into_iter().enumerate() {
        match usable_key(entry, algorithms) {
            Ok(key) => {
                if let Some(kid) = &key.kid
                    && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
                {
                    return Err(JwtConfigError::DuplicateKeyId {
                        origin: origin.to_owned(),
                        kid: kid.clone(),
                    });
                }
                keys.push(key);
            }
            Err(reason) => {
                tracing::warn!(jwks = %origin, index, reason, "skipping JWKS entry");
            }
        }
    }
    if keys.is_empty() {
        // `build` refuses an empty algorithm list before any key set is read.
        let family = algorithms
            .first()
            .map_or(AlgorithmFamily::Rsa, |a| a.family());
        return Err(JwtConfigError::NoUsableKey {
            origin: origin.to_owned(),
            family,
        });
    }
    Ok(KeySet { keys })
}

/// One JWKS entry as a key, or why it is skipped.
fn usable_key(entry: serde_json::Value, algorithms: &[Algorithm]) -> Result<Key, &'static str> {
    let jwk: Jwk = serde_json::from_value(entry).map_err(|_| "not a JSON Web Key")?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("\"use\" is not \"sig\""),
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("\"key_ops\" does not include \"verify\"");
    }
    // The algorithms the key's type and curve fit, among the configured ones.
    let (fits, decoding): (&[Algorithm], DecodingKey) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                .map_err(|_| "RSA key components are not base64url")?;
            if rsa_modulus_bits(&key) < MIN_RSA_BITS {
                return Err("RSA modulus is shorter than 2048 bits");
            }
            (
                &[
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
                key,
            )
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (fits, point_len): (&[Algorithm], usize) = match ec.curve {
                EllipticCurve::P256 => (&[Algorithm::ES256], 65),
                EllipticCurve::P384 => (&[Algorithm::ES384], 97),
                _ => return Err("EC curve is neither P-256 nor P-384"),
            };
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y)
                .map_err(|_| "EC key coordinates are not base64url")?;
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(point_len) {
                return Err("EC key coordinates do not fit the curve");
            }
            (fits, key)
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("OKP curve is not Ed25519");
            }
            let key = DecodingKey::from_ed_components(&okp.x)
                .map_err(|_| "Ed25519 key is not base64url")?;
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                return Err("Ed25519 key is not 32 bytes");
            }
            (&[Algorithm::EdDSA], key)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (\"oct\") keys are never used");
        }
        _ => return Err("unsupported key type"),
    };
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None => algorithms
            .iter()
            .copied()
            .filter(|a| fits.contains(a))
            .collect(),
        Some(declared) => {
            let declared = jsonwebtoken::Algorithm::try_from(declared)
                .ok()
                .and_then(Algorithm::from_jwt)
                .ok_or("\"alg\" is not a supported signature algorithm")?;
            if !fits.contains(&declared) {
                return Err("\"alg\" does not fit the key type");
            }
            if !algorithms.contains(&declared) {
                return Err("\"alg\" is not one of the configured algorithms");
            }
            vec![declared]
        }
    };
    if algorithms.is_empty() {
        return Err("key type does not fit the configured algorithms");
    }
    Ok(Key {
        kid: jwk.common.key_id,
        algorithms,
        decoding,
    })
}

fn read_key_set(source: &Source, algorithms: &[Algorithm]) -> Result<KeySet, JwtConfigError> {
    match source {
        Source::File(path) => {
            let json = read_bounded(path)?;
            parse_key_set(&json, &path.display().to_string(), algorithms)
        }
        Source::Memory(json) => parse_key_set(json.as_bytes(), MEMORY, algorithms),
    }
}

/// Reads at most one byte more than the limit, so an oversized file costs bounded memory.
fn read_bounded(path: &Path) -> Result<Vec<u8>, JwtConfigError> {
    let read_error = |source| JwtConfigError::ReadJwks {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut json = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut json)
        .map_err(read_error)?;
    Ok(json)
}

fn origin(source: &Source) -> String {
    match source {
        Source::File(path) => path.display().to_string(),
        Source::Memory(_) => MEMORY.to_owned(),
    }
}

fn rsa_modulus_bits(key: &DecodingKey) -> usize {
    match key.kind() {
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } => {
            let n = match n.iter().position(|&b| b != 0) {
                Some(first) => &n[first..],
                None => return 0,
            };
            // `n` is not empty here: it holds the non-zero byte found above.
            n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
        }
        jsonwebtoken::DecodingKeyKind::SecretOrDer(_) => 0,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

const MEMORY: &str = "memory";
/// A JWKS larger than this is refused (the largest real ones hold a few dozen keys, some KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MIN_RSA_BITS: usize = 2048;
const MAX_KID_SHOWN: usize = 64;
