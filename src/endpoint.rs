//! The endpoint model: one network address a balancer can send requests to.
//!
//! An [`Endpoint`] is what discovery produces and what the user's
//! `MakeService<Endpoint>` turns into a client. Endpoints are keyed by their socket address: two
//! updates naming the same address describe the same endpoint, and the later one wins.
//!
//! Everything that is not the address is metadata the balancer and later layers read: a
//! [`Weight`] for weighted pickers, an optional zone for locality, free-form labels for subsets,
//! and an optional expected identity that a TLS connector verifies the peer against.
//!
//! # Examples
//!
//! ```
//! use tower_mesh::endpoint::{Endpoint, Weight};
//!
//! let ep = Endpoint::new("127.0.0.1:8080".parse().unwrap())
//!     .with_weight(Weight::new(3).unwrap())
//!     .with_zone("eu-west-1a")
//!     .with_label("version", "canary");
//! assert_eq!(ep.weight().get(), 3);
//! assert_eq!(ep.label("version"), Some("canary"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::InvalidWeight;

/// One network address a balancer can route to, with the metadata discovery knows about it.
///
/// Endpoints compare equal when every field is equal; the balancer uses the address alone as the
/// key (see [`Endpoint::key`]).
///
/// # Defaults
///
/// - weight: 1 (every endpoint equal unless discovery says otherwise)
/// - zone, region: none
/// - labels: none
/// - identity: none (no identity is expected; a TLS layer configured to require one will refuse
///   the endpoint rather than guess)
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    addr: SocketAddr,
    weight: Weight,
    zone: Option<Arc<str>>,
    region: Option<Arc<str>>,
    labels: Arc<BTreeMap<String, String>>,
    identity: Option<Arc<str>>,
}

impl Endpoint {
    /// An endpoint at `addr` with weight 1 and no metadata.
    pub fn new(addr: SocketAddr) -> Self {
        Endpoint {
            addr,
            weight: Weight::ONE,
            zone: None,
            region: None,
            labels: Arc::default(),
            identity: None,
        }
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: Weight) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone (for example an availability zone name).
    pub fn with_zone(mut self, zone: impl Into<Arc<str>>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Sets the region: the group of zones the endpoint's zone belongs to, for
    /// [`Locality`](crate::balance::Locality)'s failover order (zone, then region, then
    /// anywhere).
    pub fn with_region(mut self, region: impl Into<Arc<str>>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Adds one label, replacing any earlier value for the same name.
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.labels).insert(name.into(), value.into());
        self
    }

    /// Sets the identity the peer at this address is expected to prove (a SPIFFE ID or a DNS
    /// name). The TLS layer reads it; the balancer does not.
    pub fn with_identity(mut self, identity: impl Into<Arc<str>>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key the balancer tracks this endpoint by: its address.
    pub fn key(&self) -> SocketAddr {
        self.addr
    }

    /// The weight.
    pub fn weight(&self) -> Weight {
        self.weight
    }

    /// The zone, if discovery named one.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The region, if discovery named one.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// All labels, sorted by name.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of one label.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The identity the peer is expected to prove, if any.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::new(addr)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Endpoint");
        d.field("addr", &self.addr)
            .field("weight", &self.weight.get());
        if let Some(zone) = &self.zone {
            d.field("zone", zone);
        }
        if let Some(region) = &self.region {
            d.field("region", region);
        }
        if !self.labels.is_empty() {
            d.field("labels", &self.labels);
        }
        if let Some(identity) = &self.identity {
            d.field("identity", identity);
        }
        d.finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.addr, f)
    }
}

/// A relative endpoint weight, never zero.
///
/// A weight of zero would mean "send nothing", which is what removing the endpoint says; a
/// zero weight is therefore refused where it is built ([`Weight::new`] returns
/// [`InvalidWeight`]) instead of silently becoming 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(NonZeroU32);

impl Weight {
    /// Weight 1, the default.
    pub const ONE: Weight = Weight(NonZeroU32::MIN);

    /// A weight from a raw value; zero is an error naming the value.
    pub fn new(weight: u32) -> Result<Self, InvalidWeight> {
        NonZeroU32::new(weight)
            .map(Weight)
            .ok_or_else(|| InvalidWeight::new(weight.to_string()))
    }

    /// The weight as a number, at least 1.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl Default for Weight {
    fn default() -> Self {
        Weight::ONE
    }
}

impl From<NonZeroU32> for Weight {
    fn from(w: NonZeroU32) -> Self {
        Weight(w)
    }
}

impl TryFrom<u32> for Weight {
    type Error = InvalidWeight;

    fn try_from(w: u32) -> Result<Self, Self::Error> {
        Weight::new(w)
    }
}

impl FromStr for Weight {
    type Err = InvalidWeight;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The error names the input exactly as given, whitespace included.
        match s.trim().parse::<u32>().ok().and_then(NonZeroU32::new) {
            Some(w) => Ok(Weight(w)),
            None => Err(InvalidWeight::new(s.to_owned())),
        }
    }
}

impl fmt::Debug for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.get(), f)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.get(), f)
    }
}

#[cfg(test)]
mod tests;
