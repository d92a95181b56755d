//! Unit tests: header parsing, time arithmetic, JWKS entry filtering, outbound token checks,
//! and a property test that no Authorization header makes the authenticator panic or accept.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::config::Algorithm;
use super::error::{InvalidBearerToken, JwtConfigError, JwtErrorKind};
use super::jwks::parse_key_set;
use super::outbound::{bearer_value, token_value};
use super::verify::{bearer_token, check_times};
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

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

fn headers(value: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
    headers
}

fn token_of(value: &[u8]) -> Result<Option<String>, JwtErrorKind> {
    bearer_token(&headers(value)).map(|t| t.map(str::to_owned))
}

fn ec_jwk(kid: &str) -> Value {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65])})
}

fn rsa_jwk(kid: &str, bits: usize) -> Value {
    use rand::RngExt;
    let mut n = Vec::new();
    while n.len() < bits / 8 {
        n.extend_from_slice(&rand::rng().random::<[u8; 32]>());
    }
    n.truncate(bits / 8);
    n[0] |= 0x80;
    if let Some(last) = n.last_mut() {
        *last |= 1;
    }
    json!({"kty": "RSA", "kid": kid, "n": b64url(&n), "e": "AQAB"})
}

fn parse(keys: Vec<Value>, algorithms: &[Algorithm]) -> Result<usize, JwtConfigError> {
    let json = serde_json::to_vec(&json!({ "keys": keys })).unwrap();
    // The number of usable keys, seen through `select` without a kid for each algorithm.
    parse_key_set(&json, "test", algorithms).map(|set| {
        let mut usable = 0;
        for (i, _) in keys_kids(&json).iter().enumerate() {
            let kid = format!("k{i}");
            if algorithms
                .iter()
                .any(|&a| set.select(Some(&kid), a).is_ok())
            {
                usable += 1;
            }
        }
        usable
    })
}

fn keys_kids(json: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(json).unwrap();
    v["keys"].as_array().cloned().unwrap_or_default()
}

fn claims(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

const NOW: Duration = Duration::from_secs(1_700_000_000);
const LEEWAY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The Authorization header

#[test]
fn no_header_is_anonymous() {
    assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
}

#[test]
fn scheme_is_case_insensitive_and_spaces_are_one_or_more() {
    for value in [
        "Bearer a.b.c",
        "bearer a.b.c",
        "BEARER a.b.c",
        "Bearer   a.b.c",
    ] {
        assert_eq!(
            token_of(value.as_bytes()),
            Ok(Some("a.b.c".to_owned())),
            "{value}"
        );
    }
}

#[test]
fn other_schemes_are_refused_by_name() {
    assert_eq!(
        token_of(b"Basic dXNlcjpwYXNz"),
        Err(JwtErrorKind::UnsupportedScheme {
            scheme: "Basic".to_owned()
        })
    );
    assert!(matches!(
        token_of(b"Bearera.b.c"),
        Err(JwtErrorKind::UnsupportedScheme { .. })
    ));
    // What does not look like a scheme is never echoed: it may be the credential itself.
    let long = format!("{} x", "S".repeat(100));
    for raw in [
        long.as_bytes(),
        b"ghp_0123456789abcdefSECRET",
        b"Bearera.b.c",
    ] {
        match token_of(raw) {
            Err(JwtErrorKind::UnsupportedScheme { scheme }) => assert_eq!(scheme, "<redacted>"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn token_shape_is_three_base64url_parts() {
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer a..c",
        "Bearer a.b.",
        "Bearer .b.c",
        "Bearer a.b.c ",
        "Bearer a b.c",
        "Bearer a.b.c=",
        "Bearer a+b.c.d",
        "Bearer a/b.c.d",
        "Bearer a.b.c\t",
    ] {
        assert_eq!(
            token_of(value.as_bytes()),
            Err(JwtErrorKind::Malformed),
            "{value:?}"
        );
    }
    assert_eq!(
        token_of(b"Bearer a.b.\xff"),
        Err(JwtErrorKind::Malformed),
        "non-ASCII"
    );
}

#[test]
fn two_headers_are_refused() {
    let mut headers = headers(b"Bearer a.b.c");
    headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer d.e.f"));
    assert_eq!(
        bearer_token(&headers),
        Err(JwtErrorKind::MultipleAuthorizationHeaders)
    );
}

#[test]
fn header_size_is_checked_first_at_8_kib() {
    let at_limit = format!("Bearer {}.b.c", "a".repeat(8 * 1024 - "Bearer .b.c".len()));
    assert_eq!(at_limit.len(), 8 * 1024);
    assert!(token_of(at_limit.as_bytes()).unwrap().is_some());
    // One byte more, and not even a bearer header: the size is what is reported.
    let over = format!("Basic {}", "!".repeat(8 * 1024 - 5));
    assert_eq!(
        token_of(over.as_bytes()),
        Err(JwtErrorKind::TooLarge {
            len: 8 * 1024 + 1,
            max: 8 * 1024
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Times

#[test]
fn exp_is_exclusive_at_exp_plus_leeway() {
    let at = |exp: f64| check_times(&claims(json!({ "exp": exp })), NOW, LEEWAY);
    let now = NOW.as_secs() as f64;
    assert_eq!(at(now - 29.0), Ok(()));
    assert_eq!(at(now - 29.999), Ok(()));
    assert_eq!(at(now - 30.0), Err(JwtErrorKind::Expired));
    assert_eq!(at(now - 31.0), Err(JwtErrorKind::Expired));
    assert_eq!(
        check_times(
            &claims(json!({ "exp": NOW.as_secs() })),
            NOW,
            Duration::ZERO
        ),
        Err(JwtErrorKind::Expired),
        "valid only before exp"
    );
    assert_eq!(
        check_times(&claims(json!({ "exp": -5 })), NOW, LEEWAY),
        Err(JwtErrorKind::Expired)
    );
}

#[test]
fn nbf_is_inclusive_at_nbf_minus_leeway() {
    let exp = NOW.as_secs() + 600;
    let at = |nbf: u64| check_times(&claims(json!({ "exp": exp, "nbf": nbf })), NOW, LEEWAY);
    assert_eq!(at(NOW.as_secs() + 30), Ok(()));
    assert_eq!(at(NOW.as_secs() + 31), Err(JwtErrorKind::NotYetValid));
    assert_eq!(at(NOW.as_secs() + 300), Err(JwtErrorKind::NotYetValid));
}

#[test]
fn times_of_the_wrong_type_are_refused() {
    let exp = NOW.as_secs() + 600;
    for (value, claim) in [
        (json!({ "exp": "soon" }), "exp"),
        (json!({ "exp": null }), "exp"),
        (json!({ "exp": exp, "nbf": "now" }), "nbf"),
        (json!({ "exp": exp, "nbf": [1] }), "nbf"),
    ] {
        assert_eq!(
            check_times(&claims(value), NOW, LEEWAY),
            Err(JwtErrorKind::InvalidClaim {
                claim: claim.to_owned()
            })
        );
    }
    assert_eq!(
        check_times(&claims(json!({})), NOW, LEEWAY),
        Err(JwtErrorKind::MissingClaim {
            claim: "exp".to_owned()
        })
    );
    // Huge values neither overflow nor panic.
    assert_eq!(
        check_times(&claims(json!({ "exp": 1e300 })), NOW, LEEWAY),
        Ok(())
    );
    assert_eq!(
        check_times(
            &claims(json!({ "exp": u64::MAX })),
            Duration::MAX,
            Duration::ZERO
        ),
        Err(JwtErrorKind::Expired)
    );
}

// ---------------------------------------------------------------------------------------------
// JWKS entries

#[test]
fn jwks_keeps_only_keys_for_the_configured_algorithms() {
    let es256 = [Algorithm::ES256];
    let mut enc = ec_jwk("k1");
    enc["use"] = "enc".into();
    let mut wrong_alg = ec_jwk("k2");
    wrong_alg["alg"] = "ES384".into();
    let mut no_verify = ec_jwk("k3");
    no_verify["key_ops"] = json!(["sign"]);
    let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "k4",
        "x": b64url(&[7; 48]), "y": b64url(&[8; 48])});
    let keys = vec![
        ec_jwk("k0"),
        enc,
        wrong_alg,
        no_verify,
        p384,
        rsa_jwk("k5", 2048),
        json!({"kty": "oct", "kid": "k6", "k": "c2VjcmV0"}),
        json!({"kid": "k7", "hello": "world"}),
        json!("not an object"),
        {
            let mut sig = ec_jwk("k9");
            sig["use"] = "sig".into();
            sig["alg"] = "ES256".into();
            sig
        },
    ];
    // k0 (no alg, no use) and k9 (use sig, alg ES256) only.
    assert_eq!(parse(keys, &es256).unwrap(), 2);
}

#[test]
fn jwks_skips_short_rsa_keys_and_ec_keys_for_rsa() {
    let rs256 = [Algorithm::RS256];
    assert_eq!(
        parse(vec![rsa_jwk("k0", 2048), rsa_jwk("k1", 1024)], &rs256).unwrap(),
        1
    );
    match parse(vec![ec_jwk("k0")], &rs256) {
        Err(JwtConfigError::NoUsableKey { origin, family }) => {
            assert_eq!(origin, "test");
            assert_eq!(family, AlgorithmFamily::Rsa);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn jwks_with_a_repeated_kid_is_refused() {
    let json = serde_json::to_vec(&json!({"keys": [ec_jwk("same"), ec_jwk("same")]})).unwrap();
    match parse_key_set(&json, "test", &[Algorithm::ES256]) {
        Err(JwtConfigError::DuplicateKeyId { kid, .. }) => assert_eq!(kid, "same"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn jwks_that_is_not_a_key_set_is_refused() {
    for json in [&b"not json"[..], b"{}", b"[]", b"{\"keys\": 3}"] {
        assert!(
            matches!(
                parse_key_set(json, "test", &[Algorithm::ES256]),
                Err(JwtConfigError::ParseJwks { .. })
            ),
            "{}",
            String::from_utf8_lossy(json)
        );
    }
    let big = vec![b' '; 1024 * 1024 + 1];
    assert!(matches!(
        parse_key_set(&big, "test", &[Algorithm::ES256]),
        Err(JwtConfigError::JwksTooLarge { .. })
    ));
}

#[test]
fn key_without_kid_is_used_only_when_it_is_the_only_one() {
    let mut a = ec_jwk("");
    a.as_object_mut().unwrap().remove("kid");
    let mut b = ec_jwk("");
    b.as_object_mut().unwrap().remove("kid");
    let one = serde_json::to_vec(&json!({"keys": [a.clone()]})).unwrap();
    let set = parse_key_set(&one, "test", &[Algorithm::ES256]).unwrap();
    assert!(set.select(None, Algorithm::ES256).is_ok());
    assert!(matches!(
        set.select(Some("x"), Algorithm::ES256),
        Err(JwtErrorKind::UnknownKeyId { .. })
    ));
    let two = serde_json::to_vec(&json!({"keys": [a, b]})).unwrap();
    let set = parse_key_set(&two, "test", &[Algorithm::ES256]).unwrap();
    assert_eq!(
        set.select(None, Algorithm::ES256).err(),
        Some(JwtErrorKind::MissingKeyId)
    );
}

#[test]
fn a_key_naming_its_alg_serves_that_alg_only() {
    let mut key = rsa_jwk("k0", 2048);
    key["alg"] = "RS256".into();
    let json = serde_json::to_vec(&json!({"keys": [key]})).unwrap();
    let set = parse_key_set(&json, "test", &[Algorithm::RS256, Algorithm::PS256]).unwrap();
    assert!(set.select(Some("k0"), Algorithm::RS256).is_ok());
    assert_eq!(
        set.select(Some("k0"), Algorithm::PS256).err(),
        Some(JwtErrorKind::AlgorithmNotAllowed {
            alg: "PS256".to_owned()
        })
    );
}

#[test]
fn unknown_kid_is_cut_for_display() {
    let json = serde_json::to_vec(&json!({"keys": [ec_jwk("k0")]})).unwrap();
    let set = parse_key_set(&json, "test", &[Algorithm::ES256]).unwrap();
    let long = "é".repeat(100);
    match set.select(Some(&long), Algorithm::ES256) {
        Err(JwtErrorKind::UnknownKeyId { kid }) => assert_eq!(kid, "é".repeat(32)),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn algorithm_names_parse_and_hmac_is_refused() {
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        assert_eq!(alg.name().parse::<Algorithm>().unwrap(), alg);
        assert_eq!(Algorithm::from_jwt(alg.to_jwt()), Some(alg));
    }
    for name in ["HS256", "HS384", "HS512"] {
        let error = name.parse::<Algorithm>().unwrap_err();
        assert!(matches!(
            error,
            JwtConfigError::SharedSecretAlgorithm { .. }
        ));
        assert!(error.to_string().contains("shared secret"), "{error}");
    }
    for name in ["none", "rs256", "ES512", ""] {
        assert!(matches!(
            name.parse::<Algorithm>(),
            Err(JwtConfigError::UnknownAlgorithm { .. })
        ));
    }
    assert_eq!(Algorithm::from_jwt(jsonwebtoken::Algorithm::HS256), None);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<JwtAuthenticator>();
    check::<JwtError>();
    check::<JwtConfigError>();
    check::<JwksSource>();
    check::<StaticToken>();
    check::<FileTokenSource>();
    check::<BearerLayer<FileTokenSource>>();
    check::<Bearer<(), StaticToken>>();
}

// ---------------------------------------------------------------------------------------------
// Outbound tokens

#[test]
fn bearer_value_refuses_what_could_split_a_header() {
    assert_eq!(bearer_value(""), Err(InvalidBearerToken::Empty));
    assert_eq!(
        bearer_value("abc\r\nX-Admin: 1"),
        Err(InvalidBearerToken::InvalidByte { index: 3 })
    );
    assert_eq!(
        bearer_value("abc def"),
        Err(InvalidBearerToken::InvalidByte { index: 3 })
    );
    assert_eq!(
        bearer_value("ab=cd"),
        Err(InvalidBearerToken::InvalidByte { index: 2 })
    );
    assert_eq!(
        bearer_value("=="),
        Err(InvalidBearerToken::InvalidByte { index: 0 })
    );
    assert_eq!(
        bearer_value("tökén"),
        Err(InvalidBearerToken::InvalidByte { index: 1 })
    );
    let max = 8 * 1024 - "Bearer ".len();
    assert!(bearer_value(&"a".repeat(max)).is_ok());
    assert_eq!(
        bearer_value(&"a".repeat(max + 1)),
        Err(InvalidBearerToken::TooLarge { len: max + 1, max })
    );
    let value = bearer_value("a-b.c_d~e+f/g==").unwrap();
    assert_eq!(value, "Bearer a-b.c_d~e+f/g==");
    assert!(value.is_sensitive());
}

#[test]
fn token_files_are_trimmed_and_positions_are_the_files() {
    assert_eq!(token_value(b"  abc.def\n").unwrap(), "Bearer abc.def");
    assert_eq!(token_value(b"\n\n  \n"), Err(InvalidBearerToken::Empty));
    assert_eq!(
        token_value(b"  ab\ncd"),
        Err(InvalidBearerToken::InvalidByte { index: 4 })
    );
    assert_eq!(
        token_value(b" ab\xffcd"),
        Err(InvalidBearerToken::InvalidByte { index: 3 })
    );
}

#[test]
fn errors_never_show_the_token() {
    let secret = "eyJzZWNyZXQiOiJ5ZXMifQ";
    let value = format!("Bearer {secret}.{secret}.{secret}");
    let auth = authenticator();
    let error = auth.authenticate(&headers(value.as_bytes())).unwrap_err();
    assert!(!error.to_string().contains(secret), "{error}");
    assert!(!format!("{error:?}").contains(secret), "{error:?}");
    let error = bearer_value(&format!("{secret}\n")).unwrap_err();
    assert!(!error.to_string().contains(secret));
    let debug = format!("{:?}", StaticToken::new(secret).unwrap());
    assert!(!debug.contains(secret), "{debug}");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn authenticator() -> JwtAuthenticator {
    let jwks = json!({ "keys": [ec_jwk("k1")] }).to_string();
    JwtAuthenticator::builder("https://idp.test", "mesh-api")
        .algorithms([Algorithm::ES256])
        .jwks(JwksSource::memory(jwks))
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No header value makes the authenticator panic, and none it cannot verify is accepted.
    #[test]
    fn arbitrary_authorization_never_panics_or_passes(
        value in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "(?i:bearer) [A-Za-z0-9_.-]{0,200}".prop_map(String::into_bytes),
            "Bearer eyJ[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}"
                .prop_map(String::into_bytes),
        ],
    ) {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        let auth = AUTH.with(Clone::clone);
        prop_assert!(auth.authenticate(&headers).is_err());
    }

    /// Any JSON in a token's header and claims, correctly encoded but unsigned by the key, is
    /// refused without a panic.
    #[test]
    fn arbitrary_json_parts_are_refused(
        header in json_value(),
        claims in json_value(),
        alg in prop_oneof![Just("ES256"), Just("none"), Just("HS256"), Just("RS256")],
        kid in prop_oneof![Just(Value::from("k1")), Just(Value::Null), Just(json!(7))],
    ) {
        let mut header = json!({ "alg": alg, "kid": kid, "extra": header });
        if let Value::Object(map) = &mut header {
            map.retain(|_, v| !v.is_null());
        }
        let token = format!(
            "Bearer {}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes()),
            b64url(&[0; 64]),
        );
        let auth = AUTH.with(Clone::clone);
        prop_assert!(auth.authenticate(&headers(token.as_bytes())).is_err());
    }
}

thread_local! {
    static AUTH: JwtAuthenticator = authenticator();
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("exp".to_owned()),
                    Just("iss".to_owned()),
                    Just("aud".to_owned()),
                    Just("sub".to_owned()),
                    Just("nbf".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
