//! Per-endpoint load, kept in atomics beside the balancer's snapshot.
//!
//! Every endpoint in a balancer has one [`Load`]: how many requests are in flight, how many were
//! sent, and how many failed. The balancer hands an [`InFlight`] guard to every request's
//! response future; dropping the guard (the response arrived, failed, or the caller gave up)
//! ends the request, so a cancelled request can never leak in-flight load.
//!
//! # Cost
//!
//! A request costs two uncontended atomic additions and nothing else: requests in flight and
//! requests finished share one 64-bit word, so starting a request is one add and finishing it
//! (one fewer in flight, one more finished) is another. The guard reaches the counters through
//! a `'static` reference into a pool of reusable slots rather than an `Arc`, which would cost
//! two more atomic operations per request (see `arena.rs`). Errors cost one more add, on the
//! error path only.
//!
//! The counters of different endpoints live in separate 128-byte-aligned slots (two cache
//! lines, because adjacent-line prefetching pairs lines on x86), so traffic on one busy
//! endpoint does not slow its neighbours. Counter updates are `Relaxed`: each is independently
//! monotonic and readers need no ordering between them. The one exception is a finish, a
//! `Release` add (free on x86) that a completing guard reads with `Acquire` before it updates
//! the RTT estimate (below).
//!
//! # Latency
//!
//! Pickers that weigh endpoints by latency ([`PeakEwma`](crate::balance::PeakEwma)) ask the
//! balancer to time requests: one clock read when the request starts (shared with the pick) and
//! one when its guard drops. The estimate is a Peak-EWMA of round-trip time, Finagle's
//! definition as in tower's `load/peak_ewma.rs` and linkerd:
//!
//! - a sample above the estimate replaces it at once (the *peak*);
//! - a sample below it moves the estimate towards the sample by `1 - e^(-Δt/decay)`, where
//!   `Δt` is the time since the estimate was last updated, so the estimate forgets a peak
//!   over about `decay` of wall-clock time, however many samples arrive;
//! - read between samples, the estimate decays towards zero at the same rate
//!   (`estimate · e^(-Δt/decay)`), so an endpoint that gets no traffic is slowly tried again;
//! - a request dropped before it completed (cancelled, timed out) is evidence the endpoint
//!   was *at least* that slow: it can raise the estimate, never lower it;
//! - requests still in flight are evidence too: while an endpoint has requests in flight, the
//!   time since it last finished one (or since it became busy, if later) is a lower bound on
//!   the age of its oldest request. When that *stall* exceeds the estimate, the stall is used
//!   instead, so an endpoint that stops answering looks slow at once, not only when its first
//!   slow response finally arrives. Keeping it costs one plain store per completion and one
//!   when the endpoint goes from idle to busy, no read-modify-write.
//!
//! The estimate is kept in atomics, plain loads on a pick; nothing locks. A completion updates
//! it with a plain store when its request was the endpoint's only one in flight (no other
//! guard can be updating it then, since guards update before they stop counting; only a
//! request started and finished in the few nanoseconds between that check and the store can
//! lose its sample), and with a compare-and-swap loop otherwise: a sequential caller pays two
//! atomic additions per timed request, as for an untimed one.
//!
//! # Sources
//!
//! Peak-EWMA: Finagle's `PeakEwma` load metric
//! ([Finagle guide, "Load Balancing"](https://twitter.github.io/finagle/guide/Clients.html#load-balancing)),
//! as ported to tower's `load::PeakEwma` and used by linkerd2-proxy; its defaults (30 ms before
//! the first sample, 10 s decay) are linkerd's. The in-flight evidence ("stall") is this
//! crate's addition.

mod alarm;
mod arena;
#[cfg(feature = "http")]
mod body;
mod counters;
mod rtt;

pub(crate) use self::alarm::Alarm;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::body::{TrackBody, TrackedBody};
pub(crate) use self::counters::nanos as nanos_since;
pub use self::counters::{InFlight, Load};
pub use self::rtt::{Decay, Rtt};

#[cfg(test)]
mod tests;
