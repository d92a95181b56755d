//! Consistent hashing: send the same key to the same endpoint, across membership changes.
//!
//! Affinity pickers route by a key taken from each request (a user id, a cache key, a session),
//! so that the endpoint holding that key's state or cache serves it, and so that a change in
//! membership moves as few keys as possible. Three designs, each a [`Pick`](super::Pick):
//!
//! | picker | pick cost | on a membership change | choose it when |
//! |---|---|---|---|
//! | [`RingHash`] | bucket index + a short scan: 24 ns at 1,000 endpoints | only the changed endpoint's keys move | keys must move as little as possible: caches, sharded state |
//! | [`RingHash`] + [`LoadBound`] | as above while the key's endpoint is idle; else a walk past full endpoints and an O(N) read of loads | as above while loads are even | some keys are hot: cap any endpoint at (1+ε)× its share |
//! | [`Maglev`] | one multiplication, one read: 5 ns | the changed endpoint's keys, plus 0.2–1% of the table | lookups must be cheapest and shares even; a little extra movement is fine |
//!
//! (Medians per pick including the key's hash, from `benches/hash.rs` on a 2-core AMD EPYC,
//! keys all distinct so the tables miss the cache as under real traffic. Side by side in the
//! same run: `pingora-ketama` 84 ns, `maglev-hash` 22 ns.)
//!
//! # Request keys
//!
//! A hashing picker is built around a key extractor, any [`ExtractKey`]: usually a closure
//! `Fn(&Req) -> Option<K>` where `K` is a [`HashKey`] (a string, bytes, an integer, an IP
//! address). The key's [`KeyHash`] is XXH3-64 with seed 0 of its bytes: **stable across
//! processes, platforms and versions of this crate** (changing it is a breaking change), and
//! specified independently of Rust, so services written in other languages can route the same
//! keys to the same endpoints.
//!
//! Why XXH3 and not SHA-1 for keys: the key is hashed on every request, and a cryptographic
//! hash buys nothing there, since which endpoint a key lands on is not a secret and the points
//! are fixed by SHA-1 anyway. Measured here (`benches/hash.rs`, 2-core AMD EPYC with SHA-NI),
//! median per key:
//!
//! | key length | XXH3-64 | SHA-1 |
//! |---|---|---|
//! | 16 bytes | 1.1 ns | 43 ns |
//! | 64 bytes | 2.4 ns | 56 ns |
//! | 256 bytes | 9.8 ns | 141 ns |
//!
//! SHA-1 would cost eight times a whole Maglev lookup. XXH3 is a published, frozen, portable
//! algorithm with good dispersion on short keys, unlike `std`'s `DefaultHasher`, whose output
//! may change between Rust releases.
//!
//! With the `http` feature, `Header`, `Path`, `Cookie` and `QueryParam` extract keys
//! from an `http::Request` (or its `Parts`) by borrowing the bytes as sent, without allocating.
//!
//! A request without a key (`None`) goes to the picker's **fallback**, [`Random`](super::Random)
//! unless set with `fallback(..)`; any picker can serve (for weights, a
//! [`WeightedRandom`](super::WeightedRandom)).
//!
//! # Ring hash
//!
//! Consistent hashing (Karger et al., 1997): every endpoint owns points on a ring of 2⁶⁴
//! positions; a key hash `h` belongs to the endpoint owning the first point `>= h`, wrapping
//! around to the smallest point. Removing an endpoint hands its arcs to the next points
//! clockwise; no other key moves. Adding one takes arcs only for the new endpoint.
//!
//! ## Placement
//!
//! Replica `j` (counting from 0) of the endpoint at address `addr` is the point
//!
//! ```text
//! point(addr, j) = first 8 bytes, read big-endian, of SHA-1("{addr}-{j}")
//! ```
//!
//! where `{addr}` is the socket address as Rust displays it — IPv4 `a.b.c.d:port`, IPv6
//! `[ip]:port` with the address in RFC 5952 canonical text (lowercase hex, the longest run of
//! zero groups as `::`), plus `%scope` when the scope id is non-zero — and `{j}` is the replica
//! number in decimal without padding. For example `10.0.0.1:8080-0`, `10.0.0.1:8080-1023`,
//! `[2001:db8::1]:443-7`. Points with equal values (a 2⁻⁶⁴ event) are ordered by address, then
//! replica, so the ring does not depend on the order endpoints are listed in.
//!
//! ## Point counts
//!
//! Points follow weight. With replicas `R` (default 1,024), ring size bounds `[lo, hi]`
//! (default `[1024, 2²²]`), weights `wᵢ`, their sum `W` and their minimum `w_min`, endpoint `i`
//! gets `pᵢ` points, in exact integer arithmetic:
//!
//! ```text
//! if R·W < lo·w_min:  pᵢ = ⌈lo·wᵢ / W⌉             (the ring is grown to at least lo)
//! if R·W > hi·w_min:  pᵢ = max(1, ⌊hi·wᵢ / W⌋)    (shrunk to at most hi, each keeping one)
//! otherwise:          pᵢ = ⌊R·wᵢ / w_min⌋          (the lightest endpoint gets exactly R)
//! ```
//!
//! Like Envoy's `min_ring_size` and `max_ring_size`, the bounds keep small sets balanced and
//! large sets affordable. Point counts depend on the set only through `w_min` and the bounds, so
//! a change keeps every other endpoint's points — and so moves only the changed endpoint's keys
//! — whenever it leaves `w_min` alone and no bound comes into play: always with equal weights
//! at the defaults, since `R·N >= 1024` from 1 endpoint on.
//! [`RingHash::point_counts`] applies the rule.
//!
//! ## Balance, memory and time
//!
//! Shares of the ring are random, with a spread that shrinks as `1/√points`. At the default
//! 1,024 points and 100 endpoints, the most loaded endpoint's exact share was 1.079× the mean
//! (median over 1,000 random address sets), 1.131× at worst; at 160 points (ketama) 1.20×
//! (median). The ring costs 12–16 bytes per point: see [`RingTable`] for the layout, a bucket
//! index over the sorted points so that a lookup touches about two cache lines instead of one
//! per binary-search step. Building costs one SHA-1 per point (~45 ns with SHA-NI) plus an
//! O(points) bucket sort: 59 ms for 1,000 endpoints from scratch. The picker keeps the points
//! of its last build (8 more bytes per point), so a rebuild computes only new endpoints'
//! points: 9.7 ms after one endpoint of 1,000 was replaced, 92 ms at 10,000. Builds run on the
//! balancer's driver task, never on a request's.
//!
//! # Bounded loads
//!
//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, SODA 2018):
//! [`RingHash::bounded_loads`] gives every endpoint a capacity of `⌈(1+ε) × its fair share⌉` of
//! the requests in flight, counting the one being placed (see [`LoadBound`] for the exact
//! formula; ε = 0.25 by default), and a key walks clockwise from its point past every endpoint
//! at capacity. So no placement lifts an endpoint above `⌈(1+ε) · (L+1)/N⌉`, hot keys spill to
//! the next endpoints on the ring instead of to all of them, and keys stay on their own
//! endpoint whenever it has room.
//!
//! In-flight counts are read, not reserved: two clones placing requests at the same instant
//! can both see the last free unit of capacity, so under concurrency an endpoint may exceed its
//! capacity by the number of simultaneous placements. When an endpoint has requests in flight,
//! a pick reads every endpoint's count to learn the total, O(N): 0.9 µs at 1,000 endpoints.
//!
//! # Maglev
//!
//! Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, section 3.4) fills a table of prime size `M` (default 65,537) so that
//! a lookup is one read: key hash `h` reads entry `⌊h · M / 2⁶⁴⌋`. The table is built so:
//!
//! 1. Each endpoint, in address order, gets `offset = H₁ mod M` and `skip = H₂ mod (M−1) + 1`,
//!    where `H₁` and `H₂` are bytes 0–7 and 8–15, read big-endian, of SHA-1(`"{addr}"`)
//!    (`addr` as for the ring). Its preference list is `(offset + j · skip) mod M` for
//!    `j = 0, 1, …`, a permutation of all entries because `M` is prime.
//! 2. In rounds, each endpoint in address order adds its weight to its credit (starting at 0);
//!    if the credit is then at least the largest weight `w_max`, it pays `w_max` and takes a
//!    turn — the heaviest endpoints every round, one of half that weight every other round.
//!    (Envoy weighs Maglev the same way.)
//! 3. A turn claims the first entry of the endpoint's preference list not yet claimed. The
//!    build stops when all `M` entries are claimed.
//!
//! With equal weights, entry counts differ by at most one; weighted, each endpoint's count is
//! within one round of its weight's share. Maglev trades some disruption for that evenness: a
//! removal reassigns the removed endpoint's entries and, through the changed claiming order, a
//! few more. Measured here (`tests/hash.rs`), removing one of `N` endpoints changed this
//! fraction of the table:
//!
//! | M | N = 10 | 50 | 100 | 200 | 500 | 1,000 |
//! |---|---|---|---|---|---|---|
//! | 65,537 | 1/N + 0.21% | + 0.46% | + 0.58% | + 0.70% | + 0.88% | |
//! | 655,373 | | | | | | 1/N + 0.34% |
//!
//! The table stays at `M × 4` bytes whatever the number of endpoints, which should stay below
//! `M / 100` (the paper's advice) for even shares. Building it takes 1.2 ms at 1,000
//! endpoints (1.4 ms with weights 1–4) and 2.5 ms at 10,000, at `M` = 65,537.
//!
//! # Stability
//!
//! Where keys land is part of this crate's compatibility promise, like the key hash: the ring's
//! placement and point-count rule and the Maglev construction above map the same endpoints and
//! keys the same way in every version, on every platform. Changing any of them would be a
//! breaking change, announced in the changelog. (Which endpoint a bounded-load walk settles on
//! depends on live loads, and the fallback picker's choices on its seed.)
//!
//! # Examples
//!
//! ```
//! use tower::{Service, ServiceExt};
//! use tower_mesh::balance::Balance;
//! use tower_mesh::balance::hash::RingHash;
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! struct Request { user: Option<String> }
//!
//! // A client per endpoint; here, one that answers with its endpoint's port.
//! let make = tower::service_fn(|ep: Endpoint| async move {
//!     let port = ep.addr().port();
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_: Request| async move {
//!         Ok::<_, std::convert::Infallible>(port)
//!     }))
//! });
//! let endpoints = Static::from_addrs((9001..=9005).map(|port| ([127, 0, 0, 1], port).into()));
//! let ring = RingHash::new(|req: &Request| req.user.clone());
//! let mut balance = Balance::builder(ring).build(endpoints, make)?;
//!
//! let first = balance.ready().await?.call(Request { user: Some("ada".into()) }).await?;
//! for _ in 0..10 {
//!     let again = balance.ready().await?.call(Request { user: Some("ada".into()) }).await?;
//!     assert_eq!(again, first); // same key, same endpoint
//! }
//! // No key: the fallback picker (random) chooses.
//! let any = balance.ready().await?.call(Request { user: None }).await?;
//! assert!((9001..=9005).contains(&any));
//! # Ok(())
//! # }
//! ```
//!
//! # References
//!
//! - D. Karger, E. Lehman, T. Leighton, R. Panigrahy, M. Levine, D. Lewin, "Consistent hashing
//!   and random trees", STOC 1997.
//! - D. E. Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
//!   NSDI 2016.
//! - V. Mirrokni, M. Thorup, M. Zadimoghaddam, "Consistent Hashing with Bounded Loads",
//!   SODA 2018 (arXiv:1608.01350).
//! - Envoy, "Ring hash" and "Maglev" load balancers: ring size bounds, weighted Maglev.
//! - Y. Collet, "xxHash fast digest algorithm", XXH3 specification.

mod bounded;
mod error;
mod fallback;
#[cfg(feature = "http")]
mod http;
mod key;
mod maglev;
mod placement;
mod ring;
mod ring_table;

pub use self::bounded::LoadBound;
pub use self::error::HashConfigError;
pub use self::fallback::WithFallback;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::http::{Cookie, Header, Path, QueryParam};
pub use self::key::{ExtractKey, HashKey, KeyHash};
pub use self::maglev::{Maglev, MaglevTable};
pub use self::ring::RingHash;
pub use self::ring_table::RingTable;

#[cfg(test)]
mod tests;
