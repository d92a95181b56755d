//! The errors of the authorization layers: a request that cannot be read one way only, and an
//! outbound call the egress policy refuses.

use std::fmt;

use http::Method;

use crate::authz::PathRejected;
use crate::authz::policy::{DecidedBy, RuleName};

/// A request whose request line or host can be read more than one way, or not at all: refused
/// before any policy is consulted (inbound: `400 Bad Request`, or gRPC `INVALID_ARGUMENT`;
/// outbound: this error, and nothing is sent).
///
/// `Display` names the rule broken, never the attacker's bytes; the refused path is in
/// [`PathRejected`], reachable through [`source`](std::error::Error::source).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The [`Normalizer`](crate::authz::Normalizer) refused the path (SECURITY D group).
    #[error("request path refused")]
    Path(#[source] PathRejected),
    /// A method with a lowercase letter. Methods are case-sensitive (RFC 9110 §9.1): `get` is
    /// not `GET`, policies name methods in uppercase, so a lowercase method could slip past a
    /// DENY rule for its uppercase twin while a lenient backend serves it as that twin
    /// (SECURITY D18).
    #[error("method is not uppercase")]
    LowercaseMethod(Method),
    /// `OPTIONS *` (asterisk-form), unless allowed with
    /// [`AuthzLayer::allow_asterisk_form`](super::AuthzLayer::allow_asterisk_form)
    /// (SECURITY D16).
    #[error("asterisk-form request-target refused")]
    AsteriskForm,
    /// `CONNECT` (authority-form), unless allowed with
    /// [`AuthzLayer::allow_connect`](super::AuthzLayer::allow_connect) (SECURITY D16).
    #[error("connect request refused")]
    Connect,
    /// A request-target that is neither origin-form (`/path`) nor absolute-form
    /// (`http://host/path`): authority-form on a method other than `CONNECT`, or `*` on a
    /// method other than `OPTIONS`.
    #[error("request-target form refused")]
    TargetForm,
    /// The authority or the `Host` header is not a valid host (see
    /// [`normalize_host`](crate::authz::normalize_host)): user info, a bad port, an empty
    /// label, an IPv4 address in a form URL parsers disagree on.
    #[error("invalid host")]
    InvalidHost,
    /// More than one `Host` header: which one counts is ambiguous (RFC 9112 §3.2).
    #[error("more than one host header")]
    MultipleHosts,
    /// The request-target's authority (absolute-form, or HTTP/2 `:authority`) and the `Host`
    /// header name different hosts or ports (SECURITY D15; RFC 9113 §8.3.1).
    #[error("request-target authority conflicts with the host header")]
    HostConflict,
    /// An HTTP/1.1 request with neither a `Host` header nor an authority (RFC 9112 §3.2: a
    /// server must answer 400).
    #[error("missing host")]
    MissingHost,
}

/// An outbound request the egress policy refused: returned by
/// [`Egress`](super::Egress) without calling the inner service, so nothing was sent.
///
/// It names the destination as judged: the method, the canonical host, and the normalized
/// path without its query (a query may carry credentials).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct EgressDenied {
    method: Method,
    host: Option<String>,
    path: String,
    decided_by: DecidedBy,
}

impl EgressDenied {
    pub(super) fn new(
        method: Method,
        host: Option<String>,
        path: String,
        decided_by: DecidedBy,
    ) -> Self {
        EgressDenied {
            method,
            host,
            path,
            decided_by,
        }
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The destination host in canonical form (lowercase, no port, no trailing dot), if the
    /// request named one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The normalized path, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The DENY rule that refused the call, or `None` when no ALLOW rule matched (the
    /// default).
    pub fn rule(&self) -> Option<&RuleName> {
        match &self.decided_by {
            DecidedBy::Rule(name) => Some(name),
            DecidedBy::Default => None,
        }
    }

    /// What refused the call: a rule, or the default.
    pub fn decided_by(&self) -> &DecidedBy {
        &self.decided_by
    }
}

impl fmt::Display for EgressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "egress policy denied {} {:?} on host {:?}",
            self.method,
            self.path,
            self.host.as_deref().unwrap_or("(none)"),
        )?;
        match self.rule() {
            Some(rule) => write!(f, " by rule {:?}", rule.as_str()),
            None => f.write_str(" by default"),
        }
    }
}
