//! Load balancing: a lock-free [`Balance`] service and the pickers that choose endpoints.
//!
//! # How it works
//!
//! ```text
//!  discovery source ──Update──▶ driver task ──Arc<Snapshot>──▶ Balance (every clone)
//!                               │ one client per endpoint        │ per request: read snapshot,
//!                               │ via the user's MakeService     │ pick, clone client, call
//!                               │ picker table rebuilt once      │
//!                               ▼ per burst of updates           ▼
//! ```
//!
//! A picker ([`Pick`] + [`PickRequest`]) turns the endpoint list into an immutable table once
//! per set change, on the driver task, and picks from it per request without locks. The
//! published snapshot is swapped with `arc-swap`, so writers (discovery) never block readers
//! and readers never block each other. Compared with tower's `p2c::Balance`, which needs
//! `&mut self` and a `Buffer` to be shared, the request path here is a cached pointer check,
//! a pick over plain data, one client clone and two counter increments.
//!
//! # Choosing a picker
//!
//! | picker | picks | choose it when |
//! |---|---|---|
//! | [`RoundRobin`] | each endpoint in turn (per clone) | endpoints and requests are alike |
//! | [`Random`] | uniformly at random | many independent clients; no lockstep |
//! | [`Weighted`] | exact weight shares per cycle, smoothly interleaved | capacities differ and must be honoured exactly |
//! | [`WeightedRandom`] | at random, in proportion to weight (alias method) | capacities differ; many clients; weights change often |
//! | [`LeastRequest`] | fewest in flight of `d` random candidates | request costs vary; latency unknown |
//! | [`PeakEwma`] | lowest `rtt × (in_flight + 1)` of two random candidates | endpoints differ in speed, or slow down |
//! | [`LabelRoute`](label::LabelRoute) | the group whose label matches the request's selector; any picker within | canaries, versions, tenants named by the request |
//! | [`Locality`] | the client's zone first, spilling evenly, failing over by region; any picker within | clients and servers span zones or regions |
//! | [`RingHash`](hash::RingHash) | the owner of the key's arc on a SHA-1 ring (optionally load-bounded) | the same key must reach the same endpoint, with minimal movement |
//! | [`Maglev`](hash::Maglev) | one lookup-table entry for the key | affinity with the cheapest lookup and even shares |
//!
//! Writing a picker: implement [`Pick`] (what to precompute) and [`PickRequest`] (how to pick
//! for a request). `build` may be slow; `pick` must not allocate or lock.
//!
//! The manual's [choosing a balancer](crate::manual::choosing_a_balancer) page has the measured
//! cost of every picker and the trade-offs in full.
//!
//! # Sources
//!
//! - Power of two choices ([`LeastRequest`], [`PeakEwma`]): M. Mitzenmacher, "The Power of Two
//!   Choices in Randomized Load Balancing", IEEE TPDS 12(10), 2001; gRPC's `least_request`
//!   policy, [gRFC A48](https://github.com/grpc/proposal/blob/master/A48-xds-least-request-lb-policy.md)
//!   (choice count 2, at most 10).
//! - Peak-EWMA ([`PeakEwma`]): Finagle's `Balancers.p2cPeakEwma`
//!   ([Finagle guide, "Load Balancing"](https://twitter.github.io/finagle/guide/Clients.html#load-balancing)),
//!   linkerd's "Beyond Round Robin: Load Balancing for Latency" (2016) and tower's
//!   `load::PeakEwma`.
//! - Smooth exact weights ([`Weighted`]): WF²Q, J. C. R. Bennett and H. Zhang, "WF²Q:
//!   Worst-case Fair Weighted Fair Queueing", INFOCOM 1996; the goal of gRPC's static-stride
//!   scheduler,
//!   [gRFC A58](https://github.com/grpc/proposal/blob/master/A58-client-side-weighted-round-robin-lb-policy.md).
//! - Weighted random ([`WeightedRandom`]): M. D. Vose, "A Linear Algorithm for Generating
//!   Random Numbers with a Given Distribution", IEEE TSE 17(9), 1991.
//! - Consistent hashing ([`hash`]): Karger et al. (STOC 1997) for the ring, Eisenbud et al.
//!   (NSDI 2016) for Maglev, Mirrokni, Thorup and Zadimoghaddam (SODA 2018) for bounded loads.
//! - Locality ([`Locality`]): Envoy's
//!   [zone-aware routing](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/zone_aware)
//!   and [priority levels](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority)
//!   (overprovisioning factor 1.4).
//! - Label subsets ([`label`]): Envoy's
//!   [subset load balancer](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/subsets).
//! - The snapshot design: tower's `balance::p2c` as the baseline it is measured against.

mod builder;
mod choices;
mod chunked;
mod driver;
pub mod hash;
pub mod label;
mod layer;
mod least_request;
mod locality;
mod peak_ewma;
mod pick;
mod random;
mod reroute;
pub(crate) mod respond;
mod round_robin;
mod seed;
mod service;
mod snapshot;
mod stats;
mod weighted;
mod weighted_random;

pub use self::builder::Builder;
pub use self::layer::BalanceLayer;
pub use self::least_request::LeastRequest;
pub use self::locality::{Locality, LocalityCursor, LocalityTable};
pub use self::peak_ewma::PeakEwma;
pub use self::pick::{EndpointView, Loads, MAX_DEPTH, Pick, PickRequest};
pub use self::random::Random;
pub use self::reroute::{Attempted, Reroute};
pub use self::respond::Respond;
pub use self::round_robin::{Position, RoundRobin};
pub use self::seed::PickRng;
pub use self::service::{Balance, ResponseFuture};
pub use self::stats::{EndpointState, EndpointStats};
pub use self::weighted::{Schedule, Weighted};
pub use self::weighted_random::{AliasTable, WeightedRandom};

impl<P: Pick> Balance<P, ()> {
    /// A [`Builder`] for a balancer using `picker`. (Defined on `Balance<P, ()>` so that
    /// `Balance::builder(..)` needs no type annotations; the client type comes from `build`.)
    pub fn builder(picker: P) -> Builder<P> {
        Builder::new(picker)
    }
}

#[cfg(test)]
mod tests;
