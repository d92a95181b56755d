use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::error::DnsError;

/// What a [`Dns`](super::Dns) source looks up: a host name with a port (A/AAAA records), or an
/// SRV name (RFC 2782) whose records carry their own ports and weights.
///
/// A target is only ever built valid: the name is checked against the DNS syntax of RFC 1035
/// §2.3.4 (labels of 1 to 63 letters, digits, hyphens or underscores, separated by dots, at most
/// 253 characters, an optional trailing dot for a fully qualified name), a port is 1 to 65535,
/// and an SRV name starts with its `_service._proto` labels. Internationalized names must be
/// given in their ASCII (`xn--`) form.
///
/// # Text form
///
/// [`FromStr`] reads the two forms users write in configuration:
///
/// - `host:port`, for example `api.internal:8080`: look up A/AAAA for `api.internal`, connect to
///   port 8080;
/// - `_service._proto.name`, for example `_http._tcp.api.internal`: look up SRV records.
///
/// [`Display`](fmt::Display) writes the same form back, so a target round-trips through text.
///
/// # Examples
///
/// ```
/// use tower_mesh::discover::dns::DnsTarget;
///
/// let host: DnsTarget = "api.internal:8080".parse()?;
/// assert_eq!((host.name(), host.port(), host.is_srv()), ("api.internal", Some(8080), false));
///
/// let srv: DnsTarget = "_http._tcp.api.internal".parse()?;
/// assert_eq!((srv.name(), srv.port(), srv.is_srv()), ("_http._tcp.api.internal", None, true));
///
/// assert!("api.internal".parse::<DnsTarget>().is_err()); // neither a port nor an SRV name
/// # Ok::<(), tower_mesh::discover::dns::DnsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsTarget {
    name: String,
    port: Option<u16>,
}

impl DnsTarget {
    /// A host name whose A/AAAA records are looked up; every address gets `port`.
    ///
    /// # Errors
    ///
    /// [`DnsError::InvalidTarget`] naming the input when the name is not a valid DNS name (or
    /// is an IP address), or the port is 0.
    pub fn host(name: &str, port: u16) -> Result<Self, DnsError> {
        let input = || format!("{name}:{port}");
        check_name(name).map_err(|reason| invalid(input(), reason))?;
        if port == 0 {
            return Err(invalid(input(), "port 0 cannot be connected to".into()));
        }
        Ok(DnsTarget {
            name: name.to_owned(),
            port: Some(port),
        })
    }

    /// An SRV name, `_service._proto.name` (RFC 2782), whose records name targets, ports and
    /// weights.
    ///
    /// # Errors
    ///
    /// [`DnsError::InvalidTarget`] naming the input when the name is not a valid DNS name or
    /// does not start with two underscore labels followed by a domain.
    pub fn srv(name: &str) -> Result<Self, DnsError> {
        check_name(name).map_err(|reason| invalid(name.to_owned(), reason))?;
        check_srv(name).map_err(|reason| invalid(name.to_owned(), reason))?;
        Ok(DnsTarget {
            name: name.to_owned(),
            port: None,
        })
    }

    /// The name looked up, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port every address gets, for a host target; `None` for an SRV target, whose records
    /// carry the ports.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether this is an SRV target.
    pub fn is_srv(&self) -> bool {
        self.port.is_none()
    }
}

impl FromStr for DnsTarget {
    type Err = DnsError;

    /// Parses `host:port` or `_service._proto.name`; see the [type docs](DnsTarget).
    fn from_str(s: &str) -> Result<Self, DnsError> {
        match s.rsplit_once(':') {
            Some((name, port)) => {
                if name.contains(':') || name.starts_with('[') {
                    return Err(invalid(
                        s.to_owned(),
                        "an IP address is not a DNS name; use discover::Static for fixed addresses"
                            .into(),
                    ));
                }
                let port = parse_port(port).map_err(|reason| invalid(s.to_owned(), reason))?;
                if check_srv(name).is_ok() {
                    return Err(invalid(
                        s.to_owned(),
                        "an SRV name takes no port: its records carry the ports".into(),
                    ));
                }
                check_name(name).map_err(|reason| invalid(s.to_owned(), reason))?;
                Ok(DnsTarget {
                    name: name.to_owned(),
                    port: Some(port),
                })
            }
            None if s.starts_with('_') => DnsTarget::srv(s),
            None => {
                check_name(s).map_err(|reason| invalid(s.to_owned(), reason))?;
                Err(invalid(
                    s.to_owned(),
                    "missing port: write name:port for A/AAAA records, or _service._proto.name \
                     for SRV records"
                        .into(),
                ))
            }
        }
    }
}

impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn invalid(input: String, reason: String) -> DnsError {
    DnsError::InvalidTarget { input, reason }
}

/// Checks DNS name syntax (RFC 1035 §2.3.4, with RFC 1123's leading digits and the underscores
/// of RFC 2782 service labels), returning the reason a name is refused.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(
            "an IP address is not a DNS name; use discover::Static for fixed addresses".into(),
        );
    }
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("the root name \".\" has no addresses".into());
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} characters long, more than {MAX_NAME_LEN}",
            bare.len()
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("the name has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} is {} characters long, more than {MAX_LABEL_LEN}",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(if c.is_ascii() {
                format!(
                    "label {label:?} has the character {c:?}: only letters, digits, '-' and '_' are allowed"
                )
            } else {
                format!(
                    "label {label:?} is not ASCII: give an internationalized name in its xn-- form"
                )
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
    }
    Ok(())
}

/// Checks the `_service._proto.name` shape of an SRV name (RFC 2782) whose syntax is valid.
fn check_srv(name: &str) -> Result<(), String> {
    let mut labels = name.strip_suffix('.').unwrap_or(name).split('.');
    let service = labels.next().unwrap_or_default();
    let proto = labels.next().unwrap_or_default();
    let rest = labels.next();
    if !service.starts_with('_') || service.len() < 2 {
        return Err(
            "an SRV name starts with a _service label, as in _http._tcp.example.com".into(),
        );
    }
    if !proto.starts_with('_') || proto.len() < 2 {
        return Err(
            "an SRV name's second label is a _proto label, as in _http._tcp.example.com".into(),
        );
    }
    if rest.is_none() {
        return Err("an SRV name needs a domain after _service._proto".into());
    }
    Ok(())
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number from 1 to 65535"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be connected to".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

/// The longest name in text form without its trailing dot (RFC 1035 §2.3.4: 255 octets on the
/// wire, which is 253 characters of text).
const MAX_NAME_LEN: usize = 253;
/// The longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
