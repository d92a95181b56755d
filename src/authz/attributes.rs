//! The attributes of one request that authentication produced and a policy judges.

use std::fmt;
use std::net::IpAddr;

use crate::identity::Identity;

/// A caller authenticated by a bearer JWT: its issuer, subject and claims.
///
/// Only the JWT authenticator creates one, after verifying the token's signature against the
/// configured keys and its issuer, audience and times; an application cannot build one from a
/// string, so a `RequestPrincipal` in a request's extensions always comes from a verified
/// token.
#[derive(Clone, PartialEq)]
pub struct RequestPrincipal {
    issuer: String,
    subject: String,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl RequestPrincipal {
    #[allow(dead_code)] // used by the JWT authenticator
    pub(crate) fn new(
        issuer: String,
        subject: String,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        RequestPrincipal {
            issuer,
            subject,
            claims,
        }
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// A claim by name (`"groups"`, `"scope"`, ...), as the token carried it.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.get(name)
    }

    /// All claims.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }
}

impl fmt::Debug for RequestPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims may carry personal data: only the principal is shown.
        f.debug_struct("RequestPrincipal")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RequestPrincipal {
    /// `iss/sub`, the form policies name request principals by (as Istio does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.issuer, self.subject)
    }
}

/// What a policy judges about one request or connection.
///
/// Every field is what this crate verified or derived, never what a peer asserted: `peer` is
/// the identity from the mTLS handshake, `request_principal` the verified JWT, `source` the
/// socket's remote address (never a forwarded-for header), and the HTTP path the one the
/// normalizer produced. `http` is `None` for a raw TCP connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attributes<'a> {
    /// The peer's verified workload identity (mTLS), if it proved one.
    pub peer: Option<&'a Identity>,
    /// The caller authenticated by a bearer token, if any.
    pub request_principal: Option<&'a RequestPrincipal>,
    /// The remote address of the connection.
    pub source: Option<IpAddr>,
    /// The local port the connection arrived on (policies' `ports` are the listener's).
    pub port: Option<u16>,
    /// The HTTP request, for HTTP and gRPC traffic.
    pub http: Option<HttpAttributes<'a>>,
}

/// The HTTP part of [`Attributes`].
#[derive(Clone, Copy, Debug)]
pub struct HttpAttributes<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The normalized path, without the query (`/pkg.Service/Method` for gRPC).
    pub path: &'a str,
    /// The canonical host: lowercase, without port and trailing dot.
    pub host: Option<&'a str>,
    /// The request headers (identity headers from outside already stripped).
    pub headers: &'a http::HeaderMap,
}
