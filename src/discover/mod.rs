//! Service discovery: where a balancer learns its endpoints.
//!
//! A discovery source is any [`Stream`](futures_core::Stream) of
//! `Result<`[`Update`]`, E>`. Three kinds of update describe every change a registry can report:
//! one endpoint appearing or changing ([`Update::Insert`]), one disappearing
//! ([`Update::Remove`]), or the whole set replaced at once ([`Update::Reset`]), which is what a
//! poll-based registry (DNS, a file) naturally produces. Endpoints are keyed by address, so an
//! `Insert` for an address already present replaces its metadata.
//!
//! An `Err` item from a source is logged by the balancer, which **keeps serving the last good
//! set**; the source is polled again afterwards. A source that ends (returns `None`) leaves the
//! balancer with the set it had, for good.
//!
//! Sources here:
//!
//! - [`Static`]: a fixed list, given once.
//! - [`Watch`]: a cloneable handle application code pushes updates through; the paired
//!   [`WatchUpdates`] stream ends when every handle is dropped.
//! - [`FromTower`]: any [`tower::discover::Discover`] that yields [`Endpoint`]s.
//! - `dns::Dns` (feature `dns`): the A/AAAA or SRV records of a DNS name, followed at their TTL.
//! - `etcd::Etcd` (feature `etcd`): the keys under a prefix on an etcd v3 cluster, watched.
//! - `file::File` (feature `file`): a JSON or TOML file listing endpoints, reloaded on change.
//!
//! And the other way, [`ToTower`] turns any of our sources into a `tower::discover::Discover`,
//! so tower's own balancers can be fed by them.
//!
//! # Examples
//!
//! ```
//! use tower_mesh::discover::{Update, Watch};
//! use tower_mesh::endpoint::Endpoint;
//!
//! let (watch, updates) = Watch::new();
//! watch.insert(Endpoint::new("127.0.0.1:8080".parse().unwrap())).unwrap();
//! watch.remove("127.0.0.1:8080".parse().unwrap()).unwrap();
//! drop(watch); // the `updates` stream ends after delivering both
//! # drop(updates);
//! ```

#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod dns;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub mod file;
mod from_tower;
mod static_list;
pub mod subset;
mod to_tower;
mod watch;

use std::net::SocketAddr;

use crate::endpoint::Endpoint;

pub use self::from_tower::FromTower;
pub use self::static_list::Static;
pub use self::to_tower::ToTower;
pub use self::watch::{Watch, WatchUpdates};

/// One change to a balancer's endpoint set.
///
/// This enum is exhaustive on purpose: every consumer must handle every kind of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// An endpoint appeared, or an endpoint with this address changed its metadata.
    Insert(Endpoint),
    /// The endpoint with this address is gone. Removing an unknown address does nothing.
    Remove(SocketAddr),
    /// The whole set is now exactly these endpoints. When an address appears twice, the later
    /// entry wins.
    Reset(Vec<Endpoint>),
}

#[cfg(test)]
mod tests;
