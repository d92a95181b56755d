//! F18, missing versus invalid bearer tokens, through the layer over mTLS: a missing token is
//! an anonymous caller the policy judges (403 where a principal is required), an invalid one
//! is 401 with a challenge even on a route open to anonymous callers.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tower_mesh::authz::AuthzLayer;
use tower_mesh::authz::jwt::{Algorithm, JwksSource, JwtAuthenticator};

use crate::support::*;

const ISS: &str = "https://idp.test";
const AUD: &str = "mesh-api";

/// An ES256 issuer: its signing key and its JWKS.
struct Issuer {
    signing: jsonwebtoken::EncodingKey,
    jwks: String,
}

impl Issuer {
    fn new() -> Issuer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        let public =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, jsonwebtoken::Algorithm::ES256)
                .unwrap();
        let mut jwk = serde_json::to_value(public).unwrap();
        jwk["kid"] = "k1".into();
        jwk["use"] = "sig".into();
        Issuer {
            signing,
            jwks: json!({ "keys": [jwk] }).to_string(),
        }
    }

    fn authenticator(&self) -> JwtAuthenticator {
        JwtAuthenticator::builder(ISS, AUD)
            .algorithms([Algorithm::ES256])
            .jwks(JwksSource::memory(self.jwks.clone()))
            .build()
            .unwrap()
    }

    fn token(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }

    fn claims(aud: &str) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({"iss": ISS, "aud": aud, "sub": "alice", "exp": now + 600})
    }
}

fn with_token(target: &str, token: Option<&str>, grpc: bool) -> Request<Full<hyper::body::Bytes>> {
    let mut req = Request::post(target).header("host", "api");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if grpc {
        req = req.header("content-type", "application/grpc");
    }
    req.body(Full::default()).unwrap()
}

#[tokio::test]
async fn f18_missing_token_is_anonymous_invalid_token_is_401() {
    let mesh = Mesh::new();
    let issuer = Issuer::new();
    let authz = AuthzLayer::new(policy(&format!(
        r#"
        [[rules]]
        name = "anyone-anon"
        action = "allow"
        to.paths = ["/anon/**"]

        [[rules]]
        name = "callers-of-idp"
        action = "allow"
        from.request_principals = ["{ISS}/*"]
        to.paths = ["/jwt/**"]
        "#
    )))
    .jwt(issuer.authenticator());
    let server = Server::start(mesh.tls(SERVER), authz).await;
    let a = Client::new(&mesh, A, &server);

    // Missing: anonymous, and the policy requires a principal: 403, no challenge.
    let reply = a.send(with_token("/jwt/x", None, false)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get("www-authenticate").is_none());
    // Invalid (another audience; garbage), even on the anonymous route: 401.
    let wrong_audience = issuer.token(&Issuer::claims("other-api"));
    for token in [wrong_audience.as_str(), "not.a.jwt"] {
        for target in ["/anon/x", "/jwt/x"] {
            let reply = a.send(with_token(target, Some(token), false)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{target}");
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer error=\"invalid_token\""
            );
        }
    }
    // gRPC: UNAUTHENTICATED.
    let reply = a.send(with_token("/anon/x", Some("not.a.jwt"), true)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["grpc-status"], "16");
    assert_eq!(server.calls(), 0);

    // The controls: anonymous on the open route; a valid token on the principal's route,
    // with the verified principal attached for the application.
    let reply = a.send(with_token("/anon/x", None, false)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(server.last().unwrap().principal, None);
    let valid = issuer.token(&Issuer::claims(AUD));
    let reply = a.send(with_token("/jwt/x", Some(&valid), false)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = server.last().unwrap();
    assert_eq!(seen.principal.as_deref(), Some("https://idp.test/alice"));
    assert_eq!(seen.rule.as_deref(), Some("callers-of-idp"));
    assert_eq!(seen.peer.as_deref(), Some(A));
    assert_eq!(server.calls(), 2);
}
