//! The JSON shapes of the etcd v3 gateway's answers used here (etcd `api/etcdserverpb/rpc.proto`
//! and `api/mvccpb/kv.proto`, as grpc-gateway marshals them: `bytes` as base64, `int64` as a
//! decimal string, fields at their default value omitted).

use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Header {
    #[serde(default, deserialize_with = "int64")]
    pub(crate) revision: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RangeResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) kvs: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeyValue {
    #[serde(default)]
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) value: String,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) mod_revision: i64,
}

/// One line of the watch stream: `{"result": WatchResponse}` or `{"error": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WatchLine {
    pub(crate) result: Option<WatchResponse>,
    pub(crate) error: Option<StreamError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamError {
    #[serde(default)]
    pub(crate) code: i32,
    #[serde(default)]
    pub(crate) message: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WatchResponse {
    #[serde(default)]
    pub(crate) created: bool,
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    /// `PUT` (0) is the default and therefore omitted; `DELETE` is spelled out.
    #[serde(rename = "type", default)]
    pub(crate) kind: EventKind,
    #[serde(default)]
    pub(crate) kv: KeyValue,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum EventKind {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LeaseGrantResponse {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    pub(crate) id: i64,
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub(crate) ttl: i64,
    #[serde(default)]
    pub(crate) error: String,
}

/// The keep-alive endpoint is a stream on the gateway: one `{"result": ...}` per request.
#[derive(Debug, Deserialize)]
pub(crate) struct LeaseKeepAliveLine {
    #[serde(default)]
    pub(crate) result: LeaseKeepAliveResponse,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LeaseKeepAliveResponse {
    /// Zero (omitted) when the lease no longer exists.
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub(crate) ttl: i64,
}

/// Any answer whose content is not needed beyond "it succeeded".
#[derive(Debug, Deserialize)]
pub(crate) struct Ignored {}

/// An `int64` as grpc-gateway writes it (a string), or as a plain number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Int64::deserialize(d)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}
