//! etcd v3 discovery ([`Etcd`]) and self-registration ([`Registration`]).
//!
//! # Layout in etcd
//!
//! The layout is the one etcd's own gRPC naming package uses (Go
//! `go.etcd.io/etcd/client/v3/naming/endpoints`, and `clientv3/naming` before it; see etcd's
//! "gRPC naming and discovery" guide): every key under `<prefix>/` is one endpoint, usually
//! `<prefix>/<addr>`, and its value is the JSON of a naming update,
//!
//! ```json
//! {"Op": 0, "Addr": "10.0.0.7:8080", "Metadata": {"weight": 3, "zone": "eu-west-1a", "version": "v2"}}
//! ```
//!
//! so services registered by the Go endpoints manager (or `etcdctl put`) are discovered as
//! they are. `Addr` must be an `ip:port` address. `Metadata` may carry a `weight` (an integer
//! from 1 to 4294967295) and a `zone` (a string); its other fields become endpoint labels when
//! their values are strings, and are ignored otherwise. See [`decode_value`] for every rule.
//! A value that breaks them is reported as an [`InvalidValue`] naming the key and the value;
//! that key is skipped (or keeps its last good endpoint) and every other key keeps working.
//!
//! # How the watch works
//!
//! [`Etcd`] follows etcd's documented pattern for a consistent view (etcd "Interacting with
//! etcd" and the `api/v3rpc` watch docs):
//!
//! 1. a range read of the whole prefix becomes one [`Update::Reset`](crate::discover::Update);
//! 2. a watch on the prefix starts at the revision just after that read, so nothing written in
//!    between is missed; each `PUT` becomes an `Insert`, each `DELETE` a `Remove` of the address
//!    that key held (two keys naming one address keep it until both are gone);
//! 3. when the connection drops (etcd restarts, a member dies), the source yields the error and
//!    reconnects with jittered exponential backoff, trying the next cluster URL, and resumes the
//!    watch just after the last revision it applied, so no update is lost or repeated;
//! 4. if etcd has compacted that revision away meanwhile (the watch is canceled with a
//!    `compact_revision`), it reads the whole prefix again and yields a fresh `Reset`.
//!
//! Errors are `Err` items; a balancer logs them and keeps serving its last good set, so while
//! etcd is unreachable, requests keep flowing to the endpoints last known.
//!
//! # Client: the v3 JSON gateway over hyper
//!
//! etcd serves its v3 API as JSON on the client port (the grpc-gateway, `/v3/kv/range`,
//! `/v3/watch`, `/v3/lease/*`; keys and values base64, 64-bit integers as strings), and this
//! module speaks it over hyper's HTTP/1.1 client. The gRPC client crate (`etcd-client`) was
//! not used: it generates its code with `tonic-build` at build time, which needs `protoc`
//! installed, and brings tonic, prost and h2 for the three calls used here. Only plain
//! `http://` URLs are supported; TLS and authentication to etcd are not (yet).
//!
//! # Examples
//!
//! ```no_run
//! use tower_mesh::balance::{Balance, RoundRobin};
//! use tower_mesh::discover::etcd::{Cluster, Etcd};
//! use tower_mesh::endpoint::Endpoint;
//!
//! # async fn f() -> Result<(), tower_mesh::BoxError> {
//! let cluster = Cluster::new(["http://127.0.0.1:2379"])?;
//! let endpoints = Etcd::builder(cluster, "services/api").build()?;
//! let make = tower::service_fn(|ep: Endpoint| async move {
//!     // Connect your client to `ep.addr()` here.
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: ()| async move {
//!         Ok::<_, std::convert::Infallible>(ep.addr())
//!     }))
//! });
//! let balance = Balance::builder(RoundRobin::new()).build(endpoints, make)?;
//! # drop(balance);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod proto;
mod registration;
mod tracker;
mod value;
mod watcher;

pub use self::client::Cluster;
pub use self::error::{ConfigError, EtcdError, InvalidValue, InvalidValueReason};
pub use self::registration::Registration;
pub use self::value::{decode_value, encode_value};
pub use self::watcher::{Builder, Etcd};

#[cfg(test)]
mod tests;
