//! Patterns on who calls: the peer's verified identity (SPIFFE ID or DNS name), the JWT
//! caller (`iss/sub`) and its claims. SPIFFE paths match on whole segments and compare
//! case-sensitively; DNS names on whole labels, case-insensitively (SECURITY.md principle 4).

use crate::authz::RequestPrincipal;
use crate::identity::{DnsName, Identity, SpiffeId, TrustDomain};

/// A pattern on the peer's verified identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PrincipalPattern {
    /// `*`: any authenticated peer.
    Any,
    /// One SPIFFE ID or DNS name.
    Exact(Identity),
    /// `spiffe://td/a/b/*`: the SPIFFE IDs of trust domain `td` whose path is below `/a/b`
    /// (`under` is `/a/b/`, or `/` for `spiffe://td/*`).
    SpiffePrefix {
        trust_domain: Box<str>,
        under: Box<str>,
    },
    /// `*.svc.cluster.local`: DNS names with at least one label before `.svc.cluster.local`
    /// (stored with its leading dot, lowercase).
    DnsSuffix(Box<str>),
}

impl PrincipalPattern {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(PrincipalPattern::Any);
        }
        if let Some(stem) = s.strip_suffix("/**").or_else(|| s.strip_suffix("/*")) {
            let is_spiffe = stem
                .as_bytes()
                .get(..SPIFFE.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(SPIFFE.as_bytes()));
            if !is_spiffe {
                return Err(
                    "a trailing `/*` applies only to SPIFFE IDs (spiffe://trust-domain/path/*)"
                        .to_owned(),
                );
            }
            // The scheme is ASCII (checked above), so this is a character boundary.
            let rest = &stem[SPIFFE.len()..];
            if !rest.contains('/') {
                let td = TrustDomain::parse(rest).map_err(|e| e.kind().to_string())?;
                return Ok(PrincipalPattern::SpiffePrefix {
                    trust_domain: td.as_str().into(),
                    under: "/".into(),
                });
            }
            let id = SpiffeId::parse(stem).map_err(|e| e.kind().to_string())?;
            return Ok(PrincipalPattern::SpiffePrefix {
                trust_domain: id.trust_domain_str().into(),
                under: format!("{}/", id.path()).into(),
            });
        }
        if let Some(parent) = s.strip_prefix("*.") {
            let name = DnsName::parse(parent).map_err(|e| e.kind().to_string())?;
            return Ok(PrincipalPattern::DnsSuffix(format!(".{name}").into()));
        }
        if s.contains('*') {
            return Err(
                "`*` is allowed only alone, as a trailing `/*` of a SPIFFE ID, or as a \
                        leading `*.` label of a DNS name"
                    .to_owned(),
            );
        }
        Identity::parse(s)
            .map(PrincipalPattern::Exact)
            .map_err(|e| {
                if s.contains('/') && !s.contains("://") {
                    // Istio's `cluster.local/ns/x/sa/y` form.
                    format!(
                        "{}; write SPIFFE IDs in full (spiffe://trust-domain/path)",
                        e.kind()
                    )
                } else {
                    e.kind().to_string()
                }
            })
    }

    pub(super) fn matches(&self, peer: &Identity) -> bool {
        match self {
            PrincipalPattern::Any => true,
            PrincipalPattern::Exact(id) => id == peer,
            PrincipalPattern::SpiffePrefix {
                trust_domain,
                under,
            } => peer.as_spiffe().is_some_and(|id| {
                id.trust_domain_str() == &**trust_domain && id.path().starts_with(&**under)
            }),
            PrincipalPattern::DnsSuffix(suffix) => peer.as_dns().is_some_and(|name| {
                let name = name.as_str();
                name.len() > suffix.len() && name.ends_with(&**suffix)
            }),
        }
    }
}

/// A pattern on the JWT caller, written `iss/sub` as Istio's `requestPrincipals` are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RequestPrincipalPattern {
    /// `*`: any authenticated caller.
    Any,
    /// `iss/sub`: this subject of this issuer.
    Exact(Box<str>),
    /// `iss/*`: any subject of this issuer.
    Issuer(Box<str>),
}

impl RequestPrincipalPattern {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(RequestPrincipalPattern::Any);
        }
        if s.chars().any(char::is_control) {
            return Err("control character".to_owned());
        }
        if let Some(issuer) = s.strip_suffix("/*") {
            if issuer.is_empty() || issuer.contains('*') {
                return Err("expected `*`, `issuer/subject` or `issuer/*`".to_owned());
            }
            return Ok(RequestPrincipalPattern::Issuer(issuer.into()));
        }
        if s.contains('*') {
            return Err("`*` is allowed only alone or as `issuer/*`".to_owned());
        }
        match s.rfind('/') {
            Some(i) if i > 0 && i + 1 < s.len() => Ok(RequestPrincipalPattern::Exact(s.into())),
            _ => Err("expected `issuer/subject`, both non-empty".to_owned()),
        }
    }

    pub(super) fn matches(&self, principal: &RequestPrincipal) -> bool {
        let (iss, sub) = (
            principal.issuer().as_bytes(),
            principal.subject().as_bytes(),
        );
        match self {
            RequestPrincipalPattern::Any => true,
            RequestPrincipalPattern::Issuer(issuer) => issuer.as_bytes() == iss,
            RequestPrincipalPattern::Exact(pattern) => {
                // `pattern == format!("{iss}/{sub}")`, without building the string.
                let p = pattern.as_bytes();
                p.len() == iss.len().saturating_add(sub.len()).saturating_add(1)
                    && p.starts_with(iss)
                    && p.get(iss.len()) == Some(&b'/')
                    && p.ends_with(sub)
            }
        }
    }
}

/// A condition on a JWT claim: a string claim equal to one of `values`, or an array claim with
/// such a string among its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ClaimCondition {
    pub(super) name: Box<str>,
    pub(super) values: Box<[Box<str>]>,
}

impl ClaimCondition {
    pub(super) fn parse_name(s: &str) -> Result<Box<str>, String> {
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err("a claim name is non-empty, without control characters".to_owned());
        }
        Ok(s.into())
    }

    pub(super) fn matches(&self, principal: &RequestPrincipal) -> bool {
        let wanted = |s: &str| self.values.iter().any(|v| &**v == s);
        match principal.claim(&self.name) {
            Some(serde_json::Value::String(s)) => wanted(s),
            Some(serde_json::Value::Array(items)) => {
                items.iter().any(|item| item.as_str().is_some_and(wanted))
            }
            _ => false,
        }
    }
}

const SPIFFE: &str = "spiffe://";
