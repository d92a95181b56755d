//! `authz::jwt` against SECURITY.md group F: every case is a real token signed in-process
//! (rcgen keys, jsonwebtoken signing), judged by an authenticator built from a JWKS, with the
//! clock pinned. Rejections go through a stand-in for the inbound layer and assert 401 and an
//! inner service that was never called. Key rotation and token-file rotation run under paused
//! time on real files.
//!
//! The configuration under test is SECURITY.md's with ES256 in place of RS256: rcgen (built
//! with *ring*) cannot generate RSA keys, and no private key is checked in. The RSA family is
//! covered by a build-and-refuse test with a random public modulus.
#![cfg(feature = "authz")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_mesh::authz::RequestPrincipal;
use tower_mesh::authz::jwt::{
    Algorithm, AlgorithmFamily, Bearer, BearerLayer, FileTokenSource, InvalidBearerToken,
    JwksSource, JwtAuthenticator, JwtConfigError, JwtErrorKind, StaticToken, TokenFileError,
    TokenSource,
};

const ISS: &str = "https://idp.test";
const AUD: &str = "mesh-api";
const SUB: &str = "spiffe://td-a/ns/x/sa/a";
const NOW: u64 = 1_700_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// An issuer's signing key, and the public JWK a JWKS publishes for it.
struct Key {
    alg: jsonwebtoken::Algorithm,
    kid: String,
    signing: EncodingKey,
    jwk: Value,
}

impl Key {
    fn es256(kid: &str) -> Self {
        Self::generate(kid, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    fn es384(kid: &str) -> Self {
        Self::generate(kid, &rcgen::PKCS_ECDSA_P384_SHA384)
    }

    fn ed25519(kid: &str) -> Self {
        Self::generate(kid, &rcgen::PKCS_ED25519)
    }

    fn generate(kid: &str, alg: &'static rcgen::SignatureAlgorithm) -> Self {
        let pair = rcgen::KeyPair::generate_for(alg).expect("generate key");
        let der = pair.serialize_der();
        let raw = pair.public_key_raw();
        let (alg, signing, jwk) = if alg == &rcgen::PKCS_ED25519 {
            (
                jsonwebtoken::Algorithm::EdDSA,
                EncodingKey::from_ed_der(&der),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}),
            )
        } else {
            let (alg, crv, half) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
                (jsonwebtoken::Algorithm::ES256, "P-256", 32)
            } else {
                (jsonwebtoken::Algorithm::ES384, "P-384", 48)
            };
            let (x, y) = raw[1..].split_at(half);
            (
                alg,
                EncodingKey::from_ec_der(&der),
                json!({"kty": "EC", "crv": crv, "x": b64url(x), "y": b64url(y)}),
            )
        };
        let mut jwk = jwk;
        jwk["kid"] = kid.into();
        jwk["use"] = "sig".into();
        Key {
            alg,
            kid: kid.to_owned(),
            signing,
            jwk,
        }
    }

    fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.signing).expect("sign")
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": SUB, "exp": NOW + 600, "iat": NOW})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().expect("object").remove(name);
    claims
}

fn es256_auth(keys: &[&Key]) -> JwtAuthenticator {
    JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::ES256])
        .jwks(JwksSource::memory(jwks(keys)))
        .build()
        .expect("build")
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    headers
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// A token of the given parts, encoded but signed by nobody.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// A stand-in for the inbound authorization layer, doing with the authenticator what its
/// contract says: 401 with a challenge on an error, else the inner service with the principal
/// (if any) as an extension. Counts the inner service's calls.
struct Server {
    auth: JwtAuthenticator,
    inner_calls: AtomicUsize,
}

impl Server {
    fn new(auth: &JwtAuthenticator) -> Self {
        Server {
            auth: auth.clone(),
            inner_calls: AtomicUsize::new(0),
        }
    }

    fn handle(&self, request: Request<()>) -> Response<Option<RequestPrincipal>> {
        match self.auth.authenticate_at(request.headers(), now()) {
            Err(error) => {
                let mut response = Response::new(None);
                *response.status_mut() = error.status();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, error.www_authenticate());
                response
            }
            Ok(principal) => {
                self.inner_calls.fetch_add(1, Ordering::SeqCst);
                Response::new(principal)
            }
        }
    }
}

fn request(uri: &str, headers: HeaderMap) -> Request<()> {
    let mut request = Request::get(uri).body(()).expect("request");
    *request.headers_mut() = headers;
    request
}

/// Asserts the request is answered 401 without reaching the inner service; returns why.
#[track_caller]
fn refused(auth: &JwtAuthenticator, headers: HeaderMap) -> JwtErrorKind {
    let server = Server::new(auth);
    let response = server.handle(request("/api", headers.clone()));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(
        server.inner_calls.load(Ordering::SeqCst),
        0,
        "inner service called"
    );
    auth.authenticate_at(&headers, now())
        .expect_err("refused")
        .kind()
        .clone()
}

/// Asserts the request reaches the inner service as the verified principal.
#[track_caller]
fn accepted(auth: &JwtAuthenticator, headers: HeaderMap) -> RequestPrincipal {
    let server = Server::new(auth);
    let response = server.handle(request("/api", headers));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.inner_calls.load(Ordering::SeqCst), 1);
    response.into_body().expect("a principal")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tower-mesh-authz-jwt-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces `path` atomically (write a sibling, rename over), as the kubelet and config tools do.
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

// ---------------------------------------------------------------------------------------------
// F: the authenticator

#[test]
fn valid_token_becomes_the_request_principal() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let token = key.sign(&with(claims(), "groups", json!(["admin"])));
    let principal = accepted(&auth, bearer(&token));
    assert_eq!(principal.issuer(), ISS);
    assert_eq!(principal.subject(), SUB);
    assert_eq!(principal.claim("groups"), Some(&json!(["admin"])));
    assert_eq!(principal.to_string(), format!("{ISS}/{SUB}"));
}

#[test]
fn f1_alg_none_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let none = json!({"alg": "none", "typ": "JWT"});
    // The unsecured form (empty signature, RFC 7515 §A.5) and one with a signature part.
    let unsecured = forged(&none, &claims(), b"");
    assert!(unsecured.ends_with('.'));
    assert_eq!(refused(&auth, bearer(&unsecured)), JwtErrorKind::Malformed);
    let signed = forged(&none, &claims(), &[1; 64]);
    assert_eq!(refused(&auth, bearer(&signed)), JwtErrorKind::Malformed);
    let lowercase = forged(&json!({"alg": "None", "kid": "k1"}), &claims(), &[1; 64]);
    assert_eq!(refused(&auth, bearer(&lowercase)), JwtErrorKind::Malformed);
}

#[test]
fn f2_hmac_keyed_with_the_public_key_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    // The attacker's HMAC secret: the JWKS text itself, and the key's coordinates.
    for secret in [jwks(&[&key]).into_bytes(), key.jwk.to_string().into_bytes()] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(&secret).expect("secret"),
        )
        .expect("sign");
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::AlgorithmNotAllowed {
                alg: "HS256".into()
            }
        );
    }
}

#[test]
fn f2_hmac_against_an_rsa_issuer_is_refused() {
    let (auth, n) = rsa_auth([Algorithm::RS256]);
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("r1".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(&n).expect("secret"),
    )
    .expect("sign");
    assert_eq!(
        refused(&auth, bearer(&token)),
        JwtErrorKind::AlgorithmNotAllowed {
            alg: "HS256".into()
        }
    );
}

#[test]
fn f3_algorithm_not_configured_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    // RS512 (another family), and ES384 (same family, not configured).
    let rs512 = forged(&json!({"alg": "RS512", "kid": "k1"}), &claims(), &[1; 256]);
    assert_eq!(
        refused(&auth, bearer(&rs512)),
        JwtErrorKind::AlgorithmNotAllowed {
            alg: "RS512".into()
        }
    );
    let p384 = Key::es384("k1");
    assert_eq!(
        refused(&auth, bearer(&p384.sign(&claims()))),
        JwtErrorKind::AlgorithmNotAllowed {
            alg: "ES384".into()
        }
    );
}

#[test]
fn f3_a_key_is_used_with_its_curve_only() {
    // ES256 and ES384 both configured; the token claims ES384 but names the P-256 key.
    let p256 = Key::es256("k1");
    let auth = JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::ES256, Algorithm::ES384])
        .jwks(JwksSource::memory(jwks(&[&p256])))
        .build()
        .expect("build");
    let p384 = Key::es384("k1");
    assert_eq!(
        refused(&auth, bearer(&p384.sign(&claims()))),
        JwtErrorKind::AlgorithmNotAllowed {
            alg: "ES384".into()
        }
    );
    accepted(&auth, bearer(&p256.sign(&claims())));
}

#[test]
fn f4_expired_token_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let token = key.sign(&with(claims(), "exp", json!(NOW - 120)));
    assert_eq!(refused(&auth, bearer(&token)), JwtErrorKind::Expired);
}

#[test]
fn f5_leeway_boundary_is_30_seconds() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    for ago in [10, 29] {
        accepted(
            &auth,
            bearer(&key.sign(&with(claims(), "exp", json!(NOW - ago)))),
        );
    }
    // Valid only *before* exp + leeway (RFC 7519 §4.1.4).
    for ago in [30, 31] {
        let token = key.sign(&with(claims(), "exp", json!(NOW - ago)));
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::Expired,
            "{ago}"
        );
    }
}

#[test]
fn leeway_is_configurable_up_to_five_minutes() {
    let key = Key::es256("k1");
    let auth = JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::ES256])
        .leeway(Duration::ZERO)
        .jwks(JwksSource::memory(jwks(&[&key])))
        .build()
        .expect("build");
    accepted(
        &auth,
        bearer(&key.sign(&with(claims(), "exp", json!(NOW + 1)))),
    );
    let token = key.sign(&with(claims(), "exp", json!(NOW)));
    assert_eq!(refused(&auth, bearer(&token)), JwtErrorKind::Expired);

    let five = JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::ES256])
        .leeway(Duration::from_secs(300))
        .jwks(JwksSource::memory(jwks(&[&key])));
    assert!(five.clone().build().is_ok());
    match five.leeway(Duration::from_secs(301)).build() {
        Err(JwtConfigError::LeewayTooLarge { leeway, max }) => {
            assert_eq!(leeway, Duration::from_secs(301));
            assert_eq!(max, Duration::from_secs(300));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn f6_nbf_in_the_future_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let token = key.sign(&with(claims(), "nbf", json!(NOW + 300)));
    assert_eq!(refused(&auth, bearer(&token)), JwtErrorKind::NotYetValid);
    let token = key.sign(&with(claims(), "nbf", json!(NOW + 31)));
    assert_eq!(refused(&auth, bearer(&token)), JwtErrorKind::NotYetValid);
    accepted(
        &auth,
        bearer(&key.sign(&with(claims(), "nbf", json!(NOW + 30)))),
    );
}

#[test]
fn f6_regression_jsonwebtoken_defaults_would_accept_it() {
    // What this module guards against: jsonwebtoken's default `Validation` does not check
    // `nbf`, so a token valid only in five minutes passes it (on the real clock).
    let key = Key::es256("k1");
    let real_now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": SUB,
        "exp": real_now + 600, "nbf": real_now + 300});
    let token = key.sign(&claims);
    let decoding =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(key.jwk.clone()).expect("jwk"))
            .expect("key");
    let mut defaults = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    defaults.set_audience(&[AUD]);
    assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &defaults).is_ok());
    assert_eq!(
        es256_auth(&[&key])
            .authenticate(&bearer(&token))
            .expect_err("refused")
            .kind(),
        &JwtErrorKind::NotYetValid
    );
}

#[test]
fn f7_f11_f12_required_claims_are_required() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    for claim in ["exp", "iss", "aud", "sub"] {
        let token = key.sign(&without(claims(), claim));
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::MissingClaim {
                claim: claim.into()
            },
            "{claim}"
        );
    }
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let missing = |claim: &str| JwtErrorKind::MissingClaim {
        claim: claim.into(),
    };
    let invalid = |claim: &str| JwtErrorKind::InvalidClaim {
        claim: claim.into(),
    };
    let cases = [
        ("exp", json!("tomorrow"), missing("exp")),
        ("exp", json!(-1), missing("exp")),
        ("sub", json!(42), missing("sub")),
        ("nbf", json!("yesterday"), invalid("nbf")),
        // An issuer list is not a StringOrURI (RFC 7519 §4.1.1), even one listing ours.
        ("iss", json!([ISS]), invalid("iss")),
    ];
    for (claim, value, expected) in cases {
        let token = key.sign(&with(claims(), claim, value.clone()));
        assert_eq!(refused(&auth, bearer(&token)), expected, "{claim}: {value}");
    }
}

#[test]
fn f9_wrong_audience_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    for aud in [
        json!("other-api"),
        json!(["other-api", "billing"]),
        json!("MESH-API"),
    ] {
        let token = key.sign(&with(claims(), "aud", aud.clone()));
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::WrongAudience,
            "{aud}"
        );
    }
    // A list naming us is accepted (RFC 7519 §4.1.3).
    accepted(
        &auth,
        bearer(&key.sign(&with(claims(), "aud", json!(["other-api", AUD])))),
    );
}

#[test]
fn f12_wrong_issuer_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    for iss in ["https://evil", "https://idp.test/", "HTTPS://IDP.TEST"] {
        let token = key.sign(&with(claims(), "iss", json!(iss)));
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::WrongIssuer,
            "{iss}"
        );
    }
}

#[test]
fn f13_tampered_payload_is_refused() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let genuine = key.sign(&claims());
    let admin = key.sign(&with(claims(), "sub", json!("spiffe://td-a/ns/x/sa/admin")));
    let parts: Vec<&str> = genuine.split('.').collect();
    let admin_payload = admin.split('.').nth(1).expect("payload");
    let tampered = format!("{}.{}.{}", parts[0], admin_payload, parts[2]);
    assert_eq!(
        refused(&auth, bearer(&tampered)),
        JwtErrorKind::InvalidSignature
    );
    // Signed by another key under our key's id.
    let impostor = Key::es256("k1");
    assert_eq!(
        refused(&auth, bearer(&impostor.sign(&claims()))),
        JwtErrorKind::InvalidSignature
    );
    // A signature of the wrong length.
    let short = format!("{}.{}.{}", parts[0], parts[1], b64url(&[0; 10]));
    assert_eq!(
        refused(&auth, bearer(&short)),
        JwtErrorKind::InvalidSignature
    );
}

#[test]
fn f15_hostile_header_fields_are_ignored() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let attacker = Key::es256("k1");
    let attacker_jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
        &attacker.signing,
        jsonwebtoken::Algorithm::ES256,
    )
    .expect("jwk");
    let hostile = |signer: &Key, kid: &str| {
        let mut header = signer.header();
        header.kid = Some(kid.into());
        header.jku = Some("https://evil.test/jwks.json".into());
        header.x5u = Some("https://evil.test/cert.pem".into());
        header.jwk = Some(attacker_jwk.clone());
        signer.sign_with(&header, &claims())
    };
    // The attacker's key, embedded or linked, is never used: the configured k1 is.
    assert_eq!(
        refused(&auth, bearer(&hostile(&attacker, "k1"))),
        JwtErrorKind::InvalidSignature
    );
    assert_eq!(
        refused(&auth, bearer(&hostile(&attacker, "attacker"))),
        JwtErrorKind::UnknownKeyId {
            kid: "attacker".into()
        }
    );
    // The same fields on a genuine token change nothing: they are not read, let alone fetched.
    accepted(&auth, bearer(&hostile(&key, "k1")));
}

#[test]
fn f16_token_in_the_query_or_a_cookie_is_never_read() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let token = key.sign(&claims());
    let server = Server::new(&auth);
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&format!("access_token={token}")).expect("cookie"),
    );
    let response = server.handle(request(&format!("/api?access_token={token}"), headers));
    // Anonymous: the inner service (the policy) sees no principal.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body(), None);
    // The same token in the header is a principal, so the anonymous result above is the
    // query and cookie being ignored, not a bad token.
    accepted(&auth, bearer(&token));
}

#[test]
fn f18_missing_is_anonymous_and_invalid_is_401() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let server = Server::new(&auth);
    let response = server.handle(request("/public", HeaderMap::new()));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body(), None);
    assert_eq!(server.inner_calls.load(Ordering::SeqCst), 1);
    // An invalid token is 401 whatever the route's policy would have said of anonymous callers.
    let expired = key.sign(&with(claims(), "exp", json!(NOW - 3600)));
    let response = server.handle(request("/public", bearer(&expired)));
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(server.inner_calls.load(Ordering::SeqCst), 1);
}

#[test]
fn f20_mixed_families_are_refused_at_build() {
    let key = Key::es256("k1");
    for (algorithms, first, other) in [
        (
            vec![Algorithm::RS256, Algorithm::ES256],
            Algorithm::RS256,
            Algorithm::ES256,
        ),
        (
            vec![Algorithm::ES256, Algorithm::EdDSA],
            Algorithm::ES256,
            Algorithm::EdDSA,
        ),
        (
            vec![Algorithm::PS256, Algorithm::RS256, Algorithm::ES384],
            Algorithm::PS256,
            Algorithm::ES384,
        ),
    ] {
        let result = JwtAuthenticator::builder(ISS, AUD)
            .algorithms(algorithms)
            .jwks(JwksSource::memory(jwks(&[&key])))
            .build();
        match result {
            Err(JwtConfigError::MixedAlgorithmFamilies { first: f, other: o }) => {
                assert_eq!((f, o), (first, other));
            }
            other => panic!("{other:?}"),
        }
    }
    // HS* cannot even be named.
    assert!(matches!(
        "HS256".parse::<Algorithm>(),
        Err(JwtConfigError::SharedSecretAlgorithm { .. })
    ));
    // The default family (RSA) with only an EC key: refused at build, not per request.
    match JwtAuthenticator::builder(ISS, AUD)
        .jwks(JwksSource::memory(jwks(&[&key])))
        .build()
    {
        Err(JwtConfigError::NoUsableKey { family, origin }) => {
            assert_eq!(family, AlgorithmFamily::Rsa);
            assert_eq!(origin, "memory");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_configuration_errors_name_the_bad_value() {
    let key = Key::es256("k1");
    let builder = || {
        JwtAuthenticator::builder(ISS, AUD)
            .algorithms([Algorithm::ES256])
            .jwks(JwksSource::memory(jwks(&[&key])))
    };
    assert!(matches!(
        JwtAuthenticator::builder("", AUD).build(),
        Err(JwtConfigError::EmptyIssuer)
    ));
    assert!(matches!(
        JwtAuthenticator::builder(ISS, "").build(),
        Err(JwtConfigError::EmptyAudience)
    ));
    assert!(matches!(
        builder().algorithms([]).build(),
        Err(JwtConfigError::NoAlgorithms)
    ));
    assert!(matches!(
        JwtAuthenticator::builder(ISS, AUD)
            .algorithms([Algorithm::ES256])
            .build(),
        Err(JwtConfigError::NoJwks)
    ));
    match builder()
        .refresh_interval(Duration::from_millis(999))
        .build()
    {
        Err(JwtConfigError::RefreshIntervalTooShort { interval, .. }) => {
            assert_eq!(interval, Duration::from_millis(999));
        }
        other => panic!("{other:?}"),
    }
    let dir = TempDir::new("config");
    let missing = dir.join("missing.json");
    let error = builder()
        .jwks(JwksSource::file(&missing))
        .build()
        .expect_err("missing file");
    assert!(matches!(error, JwtConfigError::ReadJwks { ref path, .. } if path == &missing));
    assert!(error.to_string().contains("missing.json"), "{error}");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"keys\": [").expect("write");
    let error = builder()
        .jwks(JwksSource::file(&garbage))
        .build()
        .expect_err("garbage");
    assert!(
        matches!(error, JwtConfigError::ParseJwks { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("garbage.json"), "{error}");
}

#[test]
fn f21_key_rotation_by_file_with_rate_limited_refresh() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = TempDir::new("rotation");
        let path = dir.join("jwks.json");
        let (k1, k2) = (Key::es256("k1"), Key::es256("k2"));
        replace(&path, jwks(&[&k1]).as_bytes());
        let auth = JwtAuthenticator::builder(ISS, AUD)
            .algorithms([Algorithm::ES256])
            .jwks(JwksSource::file(&path))
            .refresh_interval(Duration::from_secs(60))
            .build()
            .expect("build");
        let (t1, t2) = (k1.sign(&claims()), k2.sign(&claims()));
        let unknown_k2 = JwtErrorKind::UnknownKeyId { kid: "k2".into() };
        accepted(&auth, bearer(&t1));
        assert_eq!(refused(&auth, bearer(&t2)), unknown_k2);

        // The issuer publishes k2. Unknown-kid tokens do not trigger reads: however many
        // arrive within the interval, the file (which now has k2) is not read again.
        replace(&path, jwks(&[&k1, &k2]).as_bytes());
        for _ in 0..100 {
            assert_eq!(refused(&auth, bearer(&t2)), unknown_k2);
        }
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(refused(&auth, bearer(&t2)), unknown_k2);

        // One interval after the last read: one refresh, then both keys verify.
        tokio::time::advance(Duration::from_secs(1)).await;
        accepted(&auth, bearer(&t2));
        accepted(&auth, bearer(&t1));

        // k1 is removed from the file: still accepted until the next refresh.
        replace(&path, jwks(&[&k2]).as_bytes());
        tokio::time::advance(Duration::from_secs(30)).await;
        accepted(&auth, bearer(&t1));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            refused(&auth, bearer(&t1)),
            JwtErrorKind::UnknownKeyId { kid: "k1".into() }
        );
        accepted(&auth, bearer(&t2));

        // A broken, empty or deleted file keeps the keys in force.
        for broken in [&b"{\"keys\": ["[..], b"{\"keys\": []}", b""] {
            replace(&path, broken);
            tokio::time::advance(Duration::from_secs(60)).await;
            accepted(&auth, bearer(&t2));
        }
        std::fs::remove_file(&path).expect("remove");
        tokio::time::advance(Duration::from_secs(60)).await;
        accepted(&auth, bearer(&t2));
        // And a good file again is picked up.
        replace(&path, jwks(&[&k1]).as_bytes());
        tokio::time::advance(Duration::from_secs(60)).await;
        accepted(&auth, bearer(&t1));
    });
}

#[test]
fn in_memory_jwks_never_changes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = Key::es256("k1");
        let auth = es256_auth(&[&key]);
        tokio::time::advance(Duration::from_secs(3600)).await;
        accepted(&auth, bearer(&key.sign(&claims())));
    });
}

#[test]
fn unknown_and_missing_kid() {
    let (k1, k2) = (Key::es256("k1"), Key::es256("k2"));
    let auth = es256_auth(&[&k1, &k2]);
    let mut header = k1.header();
    header.kid = None;
    assert_eq!(
        refused(&auth, bearer(&k1.sign_with(&header, &claims()))),
        JwtErrorKind::MissingKeyId
    );
    // With one key in the set, a token without kid uses it.
    let single = es256_auth(&[&k1]);
    accepted(&single, bearer(&k1.sign_with(&header, &claims())));
    let mut header = k1.header();
    header.kid = Some("k3".into());
    assert_eq!(
        refused(&auth, bearer(&k1.sign_with(&header, &claims()))),
        JwtErrorKind::UnknownKeyId { kid: "k3".into() }
    );
}

#[test]
fn es384_and_eddsa_families_verify() {
    let p384 = Key::es384("e1");
    let auth = JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::ES384])
        .jwks(JwksSource::memory(jwks(&[&p384])))
        .build()
        .expect("build");
    accepted(&auth, bearer(&p384.sign(&claims())));

    let ed = Key::ed25519("d1");
    let auth = JwtAuthenticator::builder(ISS, AUD)
        .algorithms([Algorithm::EdDSA])
        .jwks(JwksSource::memory(jwks(&[&ed])))
        .build()
        .expect("build");
    accepted(&auth, bearer(&ed.sign(&claims())));
    let tampered = Key::ed25519("d1").sign(&claims());
    assert_eq!(
        refused(&auth, bearer(&tampered)),
        JwtErrorKind::InvalidSignature
    );
}

/// An RSA authenticator over a JWKS holding a random 2048-bit public modulus (no private key
/// exists for it, so nothing can verify), and the modulus.
fn rsa_auth<const N: usize>(algorithms: [Algorithm; N]) -> (JwtAuthenticator, Vec<u8>) {
    use rand::RngExt;
    let mut n = Vec::new();
    while n.len() < 256 {
        n.extend_from_slice(&rand::rng().random::<[u8; 32]>());
    }
    n[0] |= 0x80;
    n[255] |= 1;
    let jwks =
        json!({"keys": [{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64url(&n), "e": "AQAB"}]});
    let auth = JwtAuthenticator::builder(ISS, AUD)
        .algorithms(algorithms)
        .jwks(JwksSource::memory(jwks.to_string()))
        .build()
        .expect("build");
    (auth, n)
}

#[test]
fn rsa_family_builds_and_refuses_a_forged_signature() {
    let (auth, _) = rsa_auth([Algorithm::RS256, Algorithm::PS256]);
    assert_eq!(auth.algorithms(), &[Algorithm::RS256, Algorithm::PS256]);
    for alg in ["RS256", "PS256"] {
        let token = forged(&json!({"alg": alg, "kid": "r1"}), &claims(), &[7; 256]);
        assert_eq!(
            refused(&auth, bearer(&token)),
            JwtErrorKind::InvalidSignature
        );
    }
    let token = forged(&json!({"alg": "RS384", "kid": "r1"}), &claims(), &[7; 256]);
    assert_eq!(
        refused(&auth, bearer(&token)),
        JwtErrorKind::AlgorithmNotAllowed {
            alg: "RS384".into()
        }
    );
}

#[test]
fn e13_oversized_token_is_refused_before_decoding() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    // 1 MiB that is not even base64url: the size is what is reported.
    let huge = format!("Bearer {}", "!".repeat(1024 * 1024));
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&huge).expect("header"));
    assert_eq!(
        refused(&auth, headers),
        JwtErrorKind::TooLarge {
            len: huge.len(),
            max: 8 * 1024
        }
    );
}

#[test]
fn authorization_header_rules() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let token = key.sign(&claims());

    let mut two = bearer(&token);
    two.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let server = Server::new(&auth);
    let response = server.handle(request("/api", two.clone()));
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_request\""
    );
    assert_eq!(
        refused(&auth, two),
        JwtErrorKind::MultipleAuthorizationHeaders
    );

    let mut basic = HeaderMap::new();
    basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
    assert_eq!(
        refused(&auth, basic),
        JwtErrorKind::UnsupportedScheme {
            scheme: "Basic".into()
        }
    );

    let mut lower = HeaderMap::new();
    lower.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("bEaReR {token}")).expect("header"),
    );
    accepted(&auth, lower);
}

#[test]
fn a_clock_before_the_epoch_refuses_every_token() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let error = auth
        .authenticate_at(
            &bearer(&key.sign(&claims())),
            UNIX_EPOCH - Duration::from_secs(1),
        )
        .expect_err("refused");
    assert_eq!(error.kind(), &JwtErrorKind::ClockBeforeEpoch);
}

#[test]
fn authenticator_is_cheap_to_clone_and_shares_keys() {
    let key = Key::es256("k1");
    let auth = es256_auth(&[&key]);
    let clone = auth.clone();
    let token = key.sign(&claims());
    std::thread::spawn(move || {
        assert!(clone.authenticate_at(&bearer(&token), now()).is_ok());
    })
    .join()
    .expect("thread");
    let debug = format!("{auth:?}");
    assert!(debug.contains(ISS) && debug.contains("ES256"), "{debug}");
}

// ---------------------------------------------------------------------------------------------
// Outbound

/// An inner service recording the Authorization headers it received.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<std::sync::Mutex<Vec<Vec<HeaderValue>>>>,
}

impl Service<Request<()>> for Recorder {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let values = request
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .cloned()
            .collect();
        self.seen.lock().expect("lock").push(values);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn bearer_layer_sets_and_replaces_authorization() {
    let recorder = Recorder::default();
    let mut service =
        BearerLayer::new(StaticToken::new("tok-1").expect("token")).layer(recorder.clone());
    let mut request = Request::get("/").body(()).expect("request");
    request
        .headers_mut()
        .append(AUTHORIZATION, HeaderValue::from_static("Bearer stale"));
    request
        .headers_mut()
        .append(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
    service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("call");
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], vec![HeaderValue::from_static("Bearer tok-1")]);
    assert!(seen[0][0].is_sensitive());
}

#[tokio::test]
async fn failing_token_source_fails_the_request_unsent() {
    #[derive(Clone)]
    struct Broken;
    impl TokenSource for Broken {
        fn authorization(&self) -> Result<HeaderValue, BoxError> {
            Err("token service unavailable".into())
        }
    }
    let recorder = Recorder::default();
    let mut service = Bearer::new(recorder.clone(), Broken);
    let error = service
        .ready()
        .await
        .expect("ready")
        .call(Request::get("/").body(()).expect("request"))
        .await
        .expect_err("refused");
    assert_eq!(error.to_string(), "token service unavailable");
    assert!(
        recorder.seen.lock().expect("lock").is_empty(),
        "inner service called"
    );
    assert!(service.get_ref().seen.lock().expect("lock").is_empty());
}

#[test]
fn static_token_refuses_header_injection() {
    assert_eq!(
        StaticToken::new("abc\r\nX-Admin: 1").expect_err("refused"),
        InvalidBearerToken::InvalidByte { index: 3 }
    );
    assert_eq!(
        StaticToken::new("").expect_err("refused"),
        InvalidBearerToken::Empty
    );
}

#[tokio::test(start_paused = true)]
async fn file_token_source_rotates_and_keeps_the_last_good_token() {
    let dir = TempDir::new("token");
    let path = dir.join("token");
    let interval = Duration::from_secs(10);
    replace(&path, b"tok-1\n");
    let source = FileTokenSource::with_interval(&path, interval)
        .await
        .expect("source");
    assert_eq!(source.path(), path);
    let current = |s: &FileTokenSource| s.authorization().expect("token");
    assert_eq!(current(&source), "Bearer tok-1");
    assert!(current(&source).is_sensitive());

    // Rotated in place: picked up at the next interval, not before.
    replace(&path, b"tok-2\n");
    tokio::time::sleep(interval / 2).await;
    assert_eq!(current(&source), "Bearer tok-1");
    tokio::time::sleep(interval).await;
    assert_eq!(current(&source), "Bearer tok-2");

    // Empty, invalid, oversized, or gone: the last good token stays.
    let oversized = vec![b'a'; 64 * 1024];
    let bad: [&[u8]; 4] = [b"", b"  \n", b"tok 3\r\nX-Admin: 1", &oversized];
    for contents in bad {
        replace(&path, contents);
        tokio::time::sleep(interval * 2).await;
        assert_eq!(current(&source), "Bearer tok-2");
    }
    std::fs::remove_file(&path).expect("remove");
    tokio::time::sleep(interval * 2).await;
    assert_eq!(current(&source), "Bearer tok-2");

    // And a good token again is picked up.
    replace(&path, b"tok-4");
    tokio::time::sleep(interval * 2).await;
    assert_eq!(current(&source), "Bearer tok-4");
}

#[tokio::test]
async fn file_token_source_needs_a_good_file_to_start() {
    let dir = TempDir::new("token-start");
    let missing = dir.join("missing");
    match FileTokenSource::new(&missing).await {
        Err(TokenFileError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").expect("write");
    match FileTokenSource::new(&empty).await {
        Err(TokenFileError::Invalid { path, source }) => {
            assert_eq!(path, empty);
            assert_eq!(source, InvalidBearerToken::Empty);
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&empty, "tok").expect("write");
    assert!(matches!(
        FileTokenSource::with_interval(&empty, Duration::ZERO).await,
        Err(TokenFileError::ZeroInterval)
    ));
}

#[test]
fn file_token_source_outside_a_runtime_is_an_error() {
    let dir = TempDir::new("token-no-runtime");
    let path = dir.join("token");
    std::fs::write(&path, "tok").expect("write");
    let result = futures_util::FutureExt::now_or_never(FileTokenSource::new(&path));
    assert!(matches!(result, Some(Err(TokenFileError::NoRuntime))));
}
