use std::net::SocketAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{InvalidValue, InvalidValueReason};
use crate::endpoint::{Endpoint, Weight};

/// Decodes one value written in the format of etcd's gRPC naming package,
/// `{"Op":0,"Addr":"ip:port","Metadata":...}`, into an [`Endpoint`].
///
/// - `Addr` (also accepted as `addr`, as Go's case-insensitive decoder does) must be an
///   `ip:port` socket address; a `host:port` is refused with
///   [`InvalidValueReason::HostName`], not resolved (see the
///   [module docs](super#addresses-not-host-names) for why).
/// - `Op` is ignored, as etcd's own resolver does: a key that exists is an endpoint.
/// - `Metadata`, when it is an object, may carry `weight` (an integer from 1 to 4294967295, as a
///   JSON number or a decimal string), `zone` and `region` (strings or null), and any other field whose
///   value is a string, which becomes a label. Fields with other value types are ignored. When
///   `Metadata` is absent, null, or not an object (a Go service may store any value there), the
///   endpoint has weight 1 and no zone or labels.
///
/// `key` only names the value in the error.
///
/// # Examples
///
/// ```
/// use tower_mesh::discover::etcd::decode_value;
///
/// let ep = decode_value(
///     b"services/api/10.0.0.1:80",
///     br#"{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"weight":3,"zone":"a","version":"v2"}}"#,
/// )
/// .unwrap();
/// assert_eq!(ep.addr(), "10.0.0.1:80".parse().unwrap());
/// assert_eq!(ep.weight().get(), 3);
/// assert_eq!(ep.zone(), Some("a"));
/// assert_eq!(ep.label("version"), Some("v2"));
///
/// let err = decode_value(b"services/api/x", br#"{"Addr":"db.local:80"}"#).unwrap_err();
/// assert_eq!(err.key(), "services/api/x");
/// assert_eq!(err.value(), r#"{"Addr":"db.local:80"}"#);
/// ```
pub fn decode_value(key: &[u8], value: &[u8]) -> Result<Endpoint, InvalidValue> {
    let fail = |reason| InvalidValue::new(key, value, reason);
    let update: NamingUpdate =
        serde_json::from_slice(value).map_err(|e| fail(InvalidValueReason::Json(e.to_string())))?;
    let addr: SocketAddr = update.addr.parse().map_err(|_| {
        fail(if is_host_and_port(&update.addr) {
            InvalidValueReason::HostName(update.addr.clone())
        } else {
            InvalidValueReason::Addr(update.addr.clone())
        })
    })?;
    let mut endpoint = Endpoint::new(addr);
    let Some(Value::Object(metadata)) = update.metadata else {
        return Ok(endpoint);
    };
    for (name, field) in metadata {
        match (name.as_str(), field) {
            ("weight", w) => endpoint = endpoint.with_weight(weight(&w).map_err(fail)?),
            ("zone", Value::String(z)) => endpoint = endpoint.with_zone(z),
            ("zone", Value::Null) => {}
            ("zone", z) => return Err(fail(InvalidValueReason::Zone(z.to_string()))),
            ("region", Value::String(r)) => endpoint = endpoint.with_region(r),
            ("region", Value::Null) => {}
            ("region", r) => return Err(fail(InvalidValueReason::Region(r.to_string()))),
            (_, Value::String(v)) => endpoint = endpoint.with_label(name, v),
            _ => {}
        }
    }
    Ok(endpoint)
}

/// Encodes an endpoint the way etcd's Go endpoints manager does:
/// `{"Op":0,"Addr":"ip:port","Metadata":{...}}`, with the weight, the zone (when set) and the
/// labels in `Metadata`, so [`decode_value`] gives the same endpoint back.
///
/// Labels named `weight`, `zone` or `region` are not written (they would be read back as the
/// weight, zone or region). The expected identity is not published: it is the caller's to configure.
///
/// # Examples
///
/// ```
/// use tower_mesh::discover::etcd::{decode_value, encode_value};
/// use tower_mesh::endpoint::Endpoint;
///
/// let ep = Endpoint::new("10.0.0.1:80".parse().unwrap()).with_zone("a");
/// let json = encode_value(&ep);
/// assert_eq!(json, br#"{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"weight":1,"zone":"a"}}"#);
/// assert_eq!(decode_value(b"k", &json).unwrap(), ep);
/// ```
pub fn encode_value(endpoint: &Endpoint) -> Vec<u8> {
    let mut metadata = Map::new();
    metadata.insert("weight".into(), Value::from(endpoint.weight().get()));
    if let Some(zone) = endpoint.zone() {
        metadata.insert("zone".into(), Value::from(zone));
    }
    if let Some(region) = endpoint.region() {
        metadata.insert("region".into(), Value::from(region));
    }
    for (name, value) in endpoint.labels() {
        if name != "weight" && name != "zone" && name != "region" {
            metadata.insert(name.into(), Value::from(value));
        }
    }
    // Field order as Go's encoding/json writes the struct: Op, Addr, Metadata.
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"Op\":0,\"Addr\":");
    out.extend_from_slice(
        Value::from(endpoint.addr().to_string())
            .to_string()
            .as_bytes(),
    );
    out.extend_from_slice(b",\"Metadata\":");
    out.extend_from_slice(Value::Object(metadata).to_string().as_bytes());
    out.push(b'}');
    out
}

/// The naming package's update (`internal.Update` in `client/v3/naming/endpoints`, grpc's
/// `naming.Update` before it). Unknown fields, `Op` among them, are ignored.
#[derive(Deserialize)]
struct NamingUpdate {
    #[serde(rename = "Addr", alias = "addr")]
    addr: String,
    #[serde(rename = "Metadata", alias = "metadata", default)]
    metadata: Option<Value>,
}

fn weight(w: &Value) -> Result<Weight, InvalidValueReason> {
    let n = match w {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok())
        .and_then(|n| Weight::new(n).ok())
        .ok_or_else(|| InvalidValueReason::Weight(w.to_string()))
}

/// Whether `addr` is shaped like `host:port` with a host name (not an IP address) and a port.
fn is_host_and_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok()
        && host.parse::<std::net::IpAddr>().is_err()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}
