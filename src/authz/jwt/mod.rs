//! Bearer JWT authentication, inbound, and bearer tokens on outbound requests.
//!
//! ```text
//!  inbound:  Authorization: Bearer <JWS> ─▶ JwtAuthenticator ─▶ Ok(Some(RequestPrincipal))
//!                                            │ no header ─────▶ Ok(None): anonymous, the policy judges
//!                                            └ anything wrong ▶ Err(JwtError): 401
//!  outbound: request ─▶ BearerLayer(TokenSource) ─▶ Authorization: Bearer <token> ─▶ your client
//! ```
//!
//! [`JwtAuthenticator`] checks a JSON Web Token (RFC 7519) signed as a JWS in compact form
//! (RFC 7515), sent as an OAuth 2.0 bearer token (RFC 6750), the way the JWT best current
//! practice (RFC 8725) asks, and stricter than jsonwebtoken's defaults. A token it accepts
//! becomes a [`RequestPrincipal`](crate::authz::RequestPrincipal), `iss/sub`, that a policy can
//! name.
//!
//! # The rules, and why
//!
//! | rule | why |
//! |---|---|
//! | The token is read from the `Authorization` header only, never from the query string, a cookie or a form body (RFC 6750 §2.1). | A token in a URL lands in access logs, proxies and `Referer` headers (RFC 6750 §5.3); Istio reads `?access_token=` by default, we do not. |
//! | One `Authorization` header; scheme `Bearer`, in any case (RFC 6750 §2.1, RFC 9110 §11.1); the header at most 8 KiB, checked before anything is decoded. | Two headers are ambiguous; another scheme is a credential we cannot check; a 1 MiB token must cost nothing before it is refused. |
//! | Algorithms are pinned, all of one family: RSA (`RS*`, `PS*`), EC (`ES256`, `ES384`) or `EdDSA`. A mixed set is refused at build. | The header's `alg` is chosen by whoever made the token. With one family, a token cannot pick how its signature is checked (RFC 8725 §3.1). |
//! | No `HS*`, no `none`. | An HMAC secret is shared by every verifier, so any of them could mint tokens; a shared secret is not a workload key, and a public key misread as an HMAC secret is the classic key-confusion attack (RFC 8725 §2.1). `none` is not an algorithm at all. |
//! | Keys come only from the configured JWKS; the header's `jku`, `x5u`, `jwk` and `x5c` are ignored. A `kid` must name a key in the set; a key that names its `alg` is used with that one only. | A token that names its own key proves nothing, and fetching a URL it names is server-side request forgery (RFC 8725 §3.10). |
//! | `exp`, `iss`, `aud` and `sub` are required; `iss` must equal the issuer and `aud` contain the audience. | A token without `exp` lives forever; `iss` and `aud` pin it to its issuer and to us, so a token for another service is not replayed here (RFC 8725 §3.8, §3.9); `sub` is who the principal is. |
//! | `exp` and `nbf` are checked, with a leeway of at most 5 minutes. | RFC 7519 §4.1.4–4.1.5 allow "some small leeway, usually no more than a few minutes". jsonwebtoken ignores `nbf` by default. |
//! | Signature validation cannot be turned off: no configuration reaches jsonwebtoken's `dangerous` functions. | There is no legitimate use for an unverified token in an authorization path. |
//!
//! **Missing is not invalid** (Istio's `RequestAuthentication` semantics): a request with no
//! `Authorization` header is anonymous, and the policy decides whether anonymous callers may
//! pass; a request with a bad token is answered 401 even on a route open to anonymous callers,
//! because its caller meant to authenticate and should learn that it failed.
//!
//! # Keys and rotation
//!
//! The key set is a JWKS document (RFC 7517 §5), from memory or from a file that a sidecar,
//! a ConfigMap or a deploy tool keeps current. Entries whose `use` is not `sig`, whose
//! `key_ops` lack `verify`, whose `alg` is not configured, whose type or curve do not fit the
//! configured family, or RSA keys under 2048 bits, are skipped with a warning; a set with no
//! usable key is refused at build, and on a refresh the keys in force are kept.
//!
//! A file is re-read at most once per refresh interval (5 minutes by default), on the first
//! authentication after the interval: a token naming an unknown `kid` does **not** trigger a
//! read of its own, so a flood of made-up `kid`s costs nothing. To rotate, publish the new key
//! in the JWKS at least one refresh interval before signing with it, and remove the old key
//! only after the last token it signed has expired. The read is a small, bounded file read on
//! the request path, once per interval; fetching a JWKS over HTTPS is left to that sidecar.
//!
//! # Outbound
//!
//! [`BearerLayer`] sets `Authorization: Bearer <token>` on every request from a
//! [`TokenSource`]: a [`StaticToken`], or a [`FileTokenSource`] that re-reads a token file on an
//! interval (a Kubernetes projected service-account token rotates in place) and keeps the last
//! good token when the file is briefly missing, empty or invalid. A token that is not a clean
//! RFC 6750 `b64token` is refused, never sent: CR and LF cannot smuggle headers.
//!
//! # Defaults
//!
//! | setting | default | bounds |
//! |---|---|---|
//! | algorithms | `[RS256]` | one family; no `HS*` |
//! | leeway | 30 s | at most 5 min |
//! | JWKS refresh interval | 5 min | at least 1 s |
//! | `Authorization` header size | 8 KiB | fixed |
//! | JWKS size | 1 MiB | fixed |
//! | token file refresh interval | 60 s | more than zero |
//!
//! # Examples
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use tower_mesh::authz::jwt::{Algorithm, JwksSource, JwtAuthenticator, JwtErrorKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // The issuer's key pair, made up for the example; the JWKS holds its public half only.
//! # let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
//! # let signing = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
//! # let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, jsonwebtoken::Algorithm::ES256)?;
//! # let mut jwk = serde_json::to_value(public)?;
//! # jwk["kid"] = "k1".into();
//! # let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
//! # let sign = |aud: &str| -> Result<String, Box<dyn std::error::Error>> {
//! #     let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
//! #     let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
//! #     header.kid = Some("k1".into());
//! #     let claims = serde_json::json!({
//! #         "iss": "https://idp.example", "aud": aud, "sub": "alice", "exp": exp,
//! #     });
//! #     Ok(jsonwebtoken::encode(&header, &claims, &signing)?)
//! # };
//! let auth = JwtAuthenticator::builder("https://idp.example", "orders")
//!     .algorithms([Algorithm::ES256])
//!     .jwks(JwksSource::memory(jwks)) // or JwksSource::file("/etc/mesh/jwks.json")
//!     .build()?;
//!
//! // No Authorization header: anonymous, for the policy to judge.
//! assert!(auth.authenticate(&http::HeaderMap::new())?.is_none());
//!
//! let mut headers = http::HeaderMap::new();
//! let token = sign("orders")?;
//! headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
//! let caller = auth.authenticate(&headers)?.expect("a verified caller");
//! assert_eq!(caller.to_string(), "https://idp.example/alice");
//!
//! // A token for another service is refused: answer 401.
//! let token = sign("billing")?;
//! headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
//! let refused = auth.authenticate(&headers).unwrap_err();
//! assert_eq!(refused.kind(), &JwtErrorKind::WrongAudience);
//! assert_eq!(refused.status(), http::StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod jwks;
mod outbound;
mod verify;

pub use self::config::{Algorithm, AlgorithmFamily, JwtAuthenticatorBuilder};
pub use self::error::{InvalidBearerToken, JwtConfigError, JwtError, JwtErrorKind, TokenFileError};
pub use self::jwks::JwksSource;
pub use self::outbound::{
    Bearer, BearerFuture, BearerLayer, FileTokenSource, StaticToken, TokenSource, bearer_value,
};
pub use self::verify::JwtAuthenticator;

#[cfg(test)]
mod tests;
