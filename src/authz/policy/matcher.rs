//! The patterns of each field of a rule but principals and paths: hosts, methods, ports,
//! source blocks and headers. Parsed once at load into a form that matches without allocating,
//! on label boundaries (SECURITY.md principle 4).
//!
//! Each `parse` (here, in `principal` and in `path`) returns the reason a value is refused;
//! the loader adds the field, the value and its place.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, Method};
use ipnet::IpNet;

use crate::authz::normalize_host;

/// A pattern on the request's canonical host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HostPattern {
    /// `*`: any host.
    Any,
    /// This host (lowercase, without port or trailing dot).
    Exact(Box<str>),
    /// `*.example.com`: hosts with at least one label before `.example.com` (stored with its
    /// leading dot, lowercase).
    Suffix(Box<str>),
}

impl HostPattern {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        let (wildcard, name) = match s.strip_prefix("*.") {
            Some(parent) => (true, parent),
            None => (false, s),
        };
        if name.contains('*') {
            return Err("`*` is allowed only alone or as a leading `*.` label".to_owned());
        }
        // The canonical form requests are compared in.
        let host = normalize_host(name).ok_or(
            "not a valid host: a DNS name, a dotted-decimal IPv4 address or a bracketed IPv6 \
             address, with an optional port",
        )?;
        if !wildcard {
            return Ok(HostPattern::Exact(host.into()));
        }
        if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err("a `*.` wildcard applies to DNS names only".to_owned());
        }
        Ok(HostPattern::Suffix(format!(".{host}").into()))
    }

    /// Matches `host`, a canonical host with any trailing dot already removed, comparing
    /// ASCII case-insensitively.
    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(p) => host.eq_ignore_ascii_case(p),
            HostPattern::Suffix(suffix) => {
                let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// The host this pattern matches, when it matches exactly one.
    pub(super) fn exact(&self) -> Option<&str> {
        match self {
            HostPattern::Exact(h) => Some(h),
            HostPattern::Any | HostPattern::Suffix(_) => None,
        }
    }
}

/// Whether `host` is a canonical host (what `normalize_host` returns, up to ASCII case):
/// dot-separated non-empty labels of letters, digits, `-` and `_` whose last label is not all
/// digits, a dotted-quad IPv4 address, or a bracketed IPv6 address in its canonical text form.
/// Anything else (a port, an empty label, `127.1`, `[0:0::1]`) is not compared, so it counts
/// as missing. No allocation except for IPv6.
pub(super) fn is_canonical_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    match bytes {
        [] => false,
        [b'[', inside @ .., b']'] => std::str::from_utf8(inside)
            .ok()
            .and_then(|text| text.parse::<std::net::Ipv6Addr>().ok().map(|ip| (text, ip)))
            .is_some_and(|(text, ip)| ip.to_string().eq_ignore_ascii_case(text)),
        _ if host.parse::<std::net::Ipv4Addr>().is_ok() => true,
        _ => {
            let labels_ok = host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            });
            let numeric_last = host
                .rsplit('.')
                .next()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
            labels_ok && !numeric_last
        }
    }
}

/// A method: an uppercase token.
pub(super) fn parse_method(s: &str) -> Result<Method, String> {
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "methods are case-sensitive and written in uppercase (\"{}\")",
            s.to_ascii_uppercase()
        ));
    }
    if s.is_empty() || !s.bytes().all(is_tchar) {
        return Err("not an HTTP method token".to_owned());
    }
    Method::from_bytes(s.as_bytes()).map_err(|_| "not an HTTP method token".to_owned())
}

/// A local port, 1 to 65535.
pub(super) fn parse_port(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err("a port is between 1 and 65535".to_owned()),
    }
}

/// A source block: a CIDR with no host bits set, or one address.
pub(super) fn parse_source_block(s: &str) -> Result<IpNet, String> {
    let net = if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| "expected a CIDR block (10.0.0.0/8, 2001:db8::/32) or an address")?;
        if net.trunc() != net {
            return Err(format!("host bits set; did you mean {}?", net.trunc()));
        }
        net
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| "expected a CIDR block (10.0.0.0/8, 2001:db8::/32) or an address")?;
        IpNet::from(ip)
    };
    if let IpNet::V6(v6) = net
        && v6.network().to_ipv4_mapped().is_some()
        && v6.prefix_len() >= 96
    {
        return Err(
            "an IPv4-mapped block never matches (sources are compared as IPv4): write the IPv4 \
             block"
                .to_owned(),
        );
    }
    Ok(net)
}

/// A condition on a request header: present, with a value matching one of `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HeaderCondition {
    pub(super) name: HeaderName,
    pub(super) values: Box<[ValuePattern]>,
}

impl HeaderCondition {
    pub(super) fn parse_name(s: &str) -> Result<HeaderName, String> {
        if s.starts_with(':') {
            return Err("pseudo-headers are matched by `hosts`, `paths` and `methods`".to_owned());
        }
        HeaderName::from_bytes(s.as_bytes()).map_err(|_| "not a valid header name".to_owned())
    }

    /// Whether the request's values of this header match. When the header is repeated, a
    /// DENY rule matches if any value matches and an ALLOW rule only if every value does: a
    /// backend reading the first or the last one then never sees a value the policy did not
    /// judge the way that fails closed.
    pub(super) fn matches(&self, headers: &HeaderMap, any_value: bool) -> bool {
        let mut values = headers.get_all(&self.name).iter().peekable();
        if values.peek().is_none() {
            return false;
        }
        let matches = |v: &http::HeaderValue| self.values.iter().any(|p| p.matches(v.as_bytes()));
        if any_value {
            values.any(matches)
        } else {
            values.all(matches)
        }
    }
}

/// A pattern on a header value: exact, or `prefix*` (`*` alone: any value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ValuePattern {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
}

impl ValuePattern {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err("control character in a header value".to_owned());
        }
        let (stem, prefix) = match s.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (s, false),
        };
        if stem.contains('*') {
            return Err("`*` is allowed only as the last character (a prefix match)".to_owned());
        }
        let bytes = Box::from(stem.as_bytes());
        Ok(if prefix {
            ValuePattern::Prefix(bytes)
        } else {
            ValuePattern::Exact(bytes)
        })
    }

    fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValuePattern::Exact(p) => value == &**p,
            ValuePattern::Prefix(p) => value.starts_with(p),
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
