//! Deterministic subsetting: each client connects to a small, evenly spread subset of a large
//! endpoint set.
//!
//! When C clients each balance over all N endpoints, the fleet holds C·N connections, and every
//! endpoint carries the memory and health-check cost of every client. With subsetting each
//! client keeps only k endpoints, and the choice is coordinated without any communication, so
//! that every endpoint still gets close to the same number of clients (C·k/N), and a change in
//! the endpoint set moves few connections.
//!
//! # The algorithm: a ring of endpoints, evenly spaced clients
//!
//! Every client sorts the endpoints by address, so all clients that see the same set agree on
//! one ring of N positions. Client `i` of `C` sits at the fraction `p = i / C` of the way round
//! ([`Subsetting::by_index`]), and its window starts at position `s = ⌊p·N⌋` and covers the k
//! consecutive positions `s, s+1, …, s+k−1` (mod N). With `N ≤ k`, every client keeps all N.
//! [`Subsetting::select`] and [`Subsetting::indices`] compute this as a pure function;
//! [`Subset`] applies it to a discovery stream.
//!
//! This is the deterministic aperture of Finagle (Twitter), "Deterministic Aperture: A
//! distributed, load balancing algorithm" (Twitter engineering blog, 2019; the Finagle guide's
//! "Aperture Load Balancers"), which places clients and servers on two rings and lets each client
//! take the servers under its arc. Finagle's window is a continuous arc of width k/N whose edge
//! servers it weights by their fractional overlap (so up to k+1 connections); here the start is
//! rounded down to a whole position, so a client holds exactly k connections and spreads its
//! requests evenly over them with its own picker, at the price of the per-endpoint client count
//! being balanced to within one client rather than fractionally exact.
//!
//! ## Balance bound ([`Subsetting::by_index`])
//!
//! For `k < N`, every endpoint has either ⌊C·k/N⌋ or ⌈C·k/N⌉ clients: strictly within 1 of the
//! mean C·k/N (tighter than ⌈mean⌉ + 1). With `k ≥ N` every endpoint has all C.
//!
//! *Proof.* Extend the starts periodically: `s_i = ⌊i·N/C⌋` for every integer `i`, so that
//! `s_{i+C} = s_i + N`. Endpoint `j` is in client `i`'s window exactly when `s_i` lies in the
//! k integers `j−k+1, …, j` (mod N), and one period of clients covers each residue class once.
//! For integers `a` and `i`: `⌊i·N/C⌋ ≥ a ⇔ i ≥ a·C/N`, and `⌊i·N/C⌋ ≤ a+k−1 ⇔ i < (a+k)·C/N`.
//! So the clients holding `j` are the integers of the half-open interval
//! `[(j−k+1)·C/N, (j+1)·C/N)`, of length exactly C·k/N; a half-open interval of length L holds
//! ⌊L⌋ or ⌈L⌉ integers. ∎
//!
//! Client counts, not request rates: if every client sends the same rate spread evenly over its
//! k endpoints, per-endpoint load follows the same bound. Choose `k ≥ ⌈N/C⌉` so every endpoint
//! gets at least one client (with `C·k < N`, some endpoints get none, by counting).
//!
//! ## Churn bound: one endpoint added or removed
//!
//! When one endpoint `r` leaves the set, each client's subset loses at most one endpoint besides
//! `r` and gains at most two, and at most one unless `r` was in it: every client makes at most
//! two new connections and closes at most one live one. Adding an endpoint is the same step
//! backwards (at most one new connection besides the added endpoint itself, at most two closed).
//! This holds for both kinds of position.
//!
//! *Proof.* Let `r` be at position `q` of N. The start moves from `s = ⌊p·N⌋` to
//! `s' = ⌊p·(N−1)⌋`, and `p·N − p·(N−1) = p < 1`, so `s − s' ∈ {0, 1}`. Renumbered into the
//! old ring, the new window starts at `t = s'` (if `s' < q`) or `s' + 1` (if `s' ≥ q`), so
//! `t ∈ {s−1, s, s+1}`, and it holds the k survivors from `t` on in ring order: the old ring's
//! arc `t … t+k−1`, extended by one position when it passes `q`. Against the old arc
//! `s … s+k−1`, the new one can add `s−1` at the front (only when `t = s−1`, and then its end
//! does not pass `s+k−1`) and at most `t + k − (s + k − 1) ≤ 2` positions at the back, the
//! second only when `t = s+1` and the arc passes `q`, that is when `r` was in the old window (the
//! window wraps round the end of the list). It drops `s` when `t = s+1`, or one position at the
//! back when `t = s−1`, besides `r`. When `N − 1 ≤ k` the new subset is everything left, which
//! adds at most one. ∎
//!
//! A change of client count is not so cheap: going from C to C+1 clients moves client `i`'s
//! start by `⌊i·N/C⌋ − ⌊i·N/(C+1)⌋ ≤ ⌈N/(C+1)⌉` positions, so each client replaces at most
//! `min(k, ⌈N/(C+1)⌉)` endpoints; call [`SubsetHandle::set_clients`]
//! when the fleet is resized.
//!
//! ## Why the ring, not the SRE book's deterministic subsetting
//!
//! Google's *Site Reliability Engineering* book, chapter 20 "Load Balancing in the Datacenter",
//! describes deterministic subsetting: clients are grouped into rounds of N/k, each round
//! shuffles the endpoint list with the round number as seed, and client `i` takes slice
//! `i mod (N/k)` of its round's shuffle. That gives the same balance (each round assigns every
//! endpoint exactly once), but the shuffle is a function of the whole list: one endpoint added
//! or removed (or N/k changing) reshuffles every round, and most clients replace most of their
//! subset. Google's own follow-up, "Reinventing Backend Subsetting at Google" (ACM Queue /
//! CACM, 2023), names that connection churn as the reason it replaced the algorithm. The ring
//! keeps the balance and bounds the churn to two connections per client per membership change,
//! as proved above; it needs only a total order on endpoints, which the address gives.
//!
//! ## Stable client ids ([`Subsetting::by_id`])
//!
//! When clients do not know their index and the count (autoscaled fleets, clients that do not
//! know each other), `p` is the XXH3 hash of a stable id divided by 2⁶⁴. The churn bound above
//! holds unchanged (it needs only `p < 1`), and a client's subset does not depend on the other
//! clients at all, so resizing the client fleet moves nothing. The balance is statistical: the
//! starts are independent and uniform, so an endpoint's client count is Binomial(C, k/N), with
//! mean C·k/N and standard deviation √(C·(k/N)·(1 − k/N)) — the same banding Finagle documents
//! for its random aperture. For C = 1,000, N = 200, k = 20 that is 100 ± 9.5 clients.
//!
//! # When to choose it
//!
//! When C·N connections are too many: large fleets on both sides, expensive TLS handshakes,
//! per-connection memory on servers. Not when the endpoint set is small (`k ≥ N` degenerates to
//! "every endpoint", which is fine but pointless) or when requests must reach a specific
//! endpoint (hash pickers need the full set). Subsetting counts endpoints, not weights: weighted
//! pickers weigh within the subset. All clients must see the same endpoint set for the balance
//! bound; while discovery is propagating, clients briefly disagree and the bound holds per view.
//!
//! # Examples
//!
//! Three clients over six endpoints, two each, every endpoint used exactly once:
//!
//! ```
//! use tower_mesh::discover::subset::Subsetting;
//! use tower_mesh::endpoint::Endpoint;
//!
//! let endpoints: Vec<Endpoint> = (1..=6)
//!     .map(|port| Endpoint::new(([10, 0, 0, 1], port).into()))
//!     .collect();
//! for (client, ports) in [(0, [1, 2]), (1, [3, 4]), (2, [5, 6])] {
//!     let subset = Subsetting::by_index(client, 3, 2)?.select(&endpoints);
//!     let got: Vec<u16> = subset.iter().map(|ep| ep.addr().port()).collect();
//!     assert_eq!(got, ports);
//! }
//! # Ok::<(), tower_mesh::discover::subset::SubsetError>(())
//! ```
//!
//! As a discovery source, in front of a balancer:
//!
//! ```
//! use futures_util::StreamExt;
//! use tower_mesh::discover::subset::{Subset, Subsetting};
//! use tower_mesh::discover::{Update, Watch};
//! use tower_mesh::endpoint::Endpoint;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (watch, updates) = Watch::new();
//! let mut subset = Subset::new(updates, Subsetting::by_id("pod-a", 2)?);
//! watch.reset((1..=10).map(|port| Endpoint::new(([10, 0, 0, 1], port).into())))?;
//! // One update for the whole first set: the two endpoints this client keeps.
//! let Some(Ok(Update::Reset(kept))) = subset.next().await else { unreachable!() };
//! assert_eq!(kept.len(), 2);
//! assert_eq!(subset.full_len(), 10);
//! // `subset` now goes to `Balance::builder(picker).build(subset, make_client)`.
//! # Ok(())
//! # }
//! ```

mod error;
mod stream;
mod subsetting;

pub use self::error::SubsetError;
pub use self::stream::{Subset, SubsetHandle};
pub use self::subsetting::{Indices, Subsetting};

#[cfg(test)]
mod tests;
