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
//! they are. `Addr` must be an `ip:port` address (see below). `Metadata` may carry a `weight`
//! (an integer from 1 to 4294967295) and a `zone` (a string); its other fields become endpoint
//! labels when their values are strings, and are ignored otherwise. See [`decode_value`] for
//! every rule. A value that breaks them is reported as an [`InvalidValue`] naming the key and
//! the value; that key is skipped (or keeps its last good endpoint) and every other key keeps
//! working.
//!
//! # Addresses, not host names
//!
//! Go's endpoints manager stores whatever `Addr` it is given, and grpc-go passes a
//! `host:port` on to its dialer, which resolves the name on every connection. Here such a
//! value is refused with [`InvalidValueReason::HostName`], naming the key and the value,
//! rather than resolved, because:
//!
//! - an endpoint is a socket address, so a name would have to be resolved once, when its key
//!   changes; the set would then keep the addresses of that moment for as long as the key
//!   stands, hiding every later change of the name's records, which is the staleness discovery
//!   exists to prevent. A name that should be followed belongs in the
//!   `discover::dns::Dns` source (feature `dns`), which follows its TTLs;
//! - resolving in the watch loop would stall every key's updates behind a resolver with no
//!   bound on its latency, and a name failing to resolve on one client but not another would
//!   give clients different sets for the same store.
//!
//! Registering services by address (as [`Registration`] does) avoids all of it.
//!
//! # How the watch works
//!
//! [`Etcd`] follows etcd's documented pattern for a consistent view (etcd "Interacting with
//! etcd" and the `api/v3rpc` watch docs):
//!
//! 1. a range read of the whole prefix becomes one [`Update::Reset`](crate::discover::Update);
//! 2. a watch on the prefix starts at the revision just after that read, so nothing written in
//!    between is missed; each `PUT` becomes an `Insert`, each `DELETE` a `Remove` of the address
//!    that key held (two keys naming one address keep it until both are gone). Each watch
//!    response is decoded whole before any of it is applied, so a response that cannot be read
//!    is applied not in part but, after the reconnect that follows the error, in full;
//! 3. when the connection drops (etcd restarts, a member dies), the source yields the error and
//!    reconnects with jittered exponential backoff, trying the next cluster URL, and resumes the
//!    watch just after the last revision it applied, so no update is lost or repeated;
//! 4. if etcd has compacted that revision away meanwhile (the watch is canceled with a
//!    `compact_revision`), it reads the whole prefix again and yields a fresh `Reset`.
//!
//! A connection can also die without saying so: a member host powered off, a partition, a NAT
//! or load balancer that forgot the flow send no FIN or RST, and a watch on such a connection
//! would wait forever on a prefix that looks quiet. Three things catch it, each covering what
//! the one before cannot:
//!
//! - the watch asks for etcd's progress notifications (`progress_notify`), so even a quiet
//!   prefix hears from etcd at least every two of its progress intervals (10 min by default);
//! - after [`Builder::watch_liveness`]'s idle time with nothing on the stream, the member is
//!   sent a small linearizable read on a new connection, and when that fails
//!   ([`EtcdError::WatchProbeFailed`]) the watch is reopened, on the next member if need be.
//!   A dead host, a hung etcd or a member cut off from its quorum is left this way within the
//!   idle time plus the request timeout;
//! - the connections have TCP keepalive (see [`Cluster`]), so the kernel fails a connection
//!   whose peer stopped answering within about a minute; and should the member answer the
//!   checks while the watch stream itself delivers nothing for longer than the silence bound
//!   (a middlebox that dropped only that flow), the watch is reopened anyway
//!   ([`EtcdError::WatchSilent`]).
//!
//! Every reopened watch resumes after the last revision applied, as in step 3. The timers run
//! on [`tokio::time`], so they can be tested under paused time.
//!
//! Errors are `Err` items; a balancer logs them and keeps serving its last good set, so while
//! etcd is unreachable, requests keep flowing to the endpoints last known.
//!
//! # Client: the v3 JSON gateway over hyper
//!
//! etcd serves its v3 API as JSON on the client port (the grpc-gateway, `/v3/kv/range`,
//! `/v3/watch`, `/v3/lease/*`; keys and values base64, 64-bit integers as strings), and this
//! module speaks it over hyper's HTTP/1.1 client, with a new connection per request (and one
//! per watch). Only plain `http://` URLs are supported; TLS and authentication to etcd are not
//! (yet).
//!
//! The gRPC client crate (`etcd-client`) was not used. It is the heavier choice: it generates
//! its code with `tonic-build` at build time, which needs `protoc` installed, and brings tonic,
//! prost and h2 for the handful of calls used here. More to the point, it would not have made
//! the watch more robust, because what makes a watch robust is above the transport. Reading
//! its watch API (`src/rpc/watch.rs`), its `WatchStream` ends when the connection does: the
//! caller tracks the revision, reopens the watch after it, and resyncs after a compaction,
//! which is the loop this module has anyway; and it panics on input it does not expect (an
//! `assert!` on the first response being a create response, a `panic!` on an unknown event
//! type). What it would add is HTTP/2 keepalive pings, off by default; TCP keepalive and the
//! liveness check above do that job here. The behaviour that matters is verified against a
//! real etcd in `tests/etcd.rs`: reconnecting through a restart and a cut connection,
//! resuming with the exact log of updates (none lost, none repeated), resyncing after a
//! compaction, and detecting a half-open watch, a silent one, and TCP keepalive on the
//! connections.
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

mod builder;
mod client;
mod error;
mod liveness;
mod member;
mod proto;
mod registration;
mod tracker;
mod value;
mod watcher;

pub use self::builder::Builder;
pub use self::client::Cluster;
pub use self::error::{ConfigError, EtcdError, InvalidValue, InvalidValueReason};
pub use self::registration::Registration;
pub use self::value::{decode_value, encode_value};
pub use self::watcher::Etcd;

#[cfg(test)]
mod tests;
