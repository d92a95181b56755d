//! The canonical form of a `Host` header or `:authority`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The canonical form of a host as a request names it (`Host` header, `:authority`, or the
/// authority of an absolute-form request-target), or `None` if it is not a valid host.
///
/// Hosts compare case-insensitively, without port and trailing dot (SECURITY principle 4), so
/// this returns the host lowercased, with an optional `:port` and then one trailing `.`
/// removed:
///
/// - a DNS name: labels of 1 to 63 ASCII letters, digits, `-` and `_`, not starting or ending
///   with `-`, at most 253 bytes in all: `API.Example.com.:8443` is `api.example.com`;
/// - an IPv4 address in dotted-decimal form: a name whose last label is numeric must be one,
///   since URL parsers read `127.1`, `0x7f.0.0.1` or `010.0.0.1` as addresses, so those are
///   refused rather than compared as names;
/// - an IPv6 address in brackets, written back in its canonical form (RFC 5952):
///   `[0:0::1]:80` is `[::1]`. Zone identifiers and IPvFuture are refused.
///
/// Refused: the empty string, user info (`user@host`), an empty, non-numeric or out-of-range
/// port, empty labels (`a..b`, a lone `.`), and any other character (non-ASCII names must
/// arrive in their `xn--` form).
///
/// # Examples
///
/// ```
/// use tower_mesh::authz::normalize_host;
///
/// assert_eq!(normalize_host("API.Example.com.:8443").as_deref(), Some("api.example.com"));
/// assert_eq!(normalize_host("[0:0::1]:80").as_deref(), Some("[::1]"));
/// assert_eq!(normalize_host("10.0.0.1").as_deref(), Some("10.0.0.1"));
/// assert_eq!(normalize_host("127.1"), None);
/// assert_eq!(normalize_host("admin@api"), None);
/// ```
pub fn normalize_host(host: &str) -> Option<String> {
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !after.is_empty() {
            check_port(after.strip_prefix(':')?)?;
        }
        let addr: Ipv6Addr = addr.parse().ok()?;
        return Some(format!("[{addr}]"));
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) => {
            check_port(port)?;
            name
        }
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_numeric_label(last) {
        let addr: Ipv4Addr = name.parse().ok()?;
        return Some(addr.to_string());
    }
    if !name.split('.').all(is_label) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// A port: 1 to 5 digits, at most 65535.
fn check_port(port: &str) -> Option<()> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().map(drop)
}

/// A label a URL parser would read as a number: decimal digits, or `0x` and hex digits.
fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;
