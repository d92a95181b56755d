//! Retries to another endpoint under a budget, and hedged requests.
//!
//! ```text
//!  caller ──▶ Retry ──call_avoiding──▶ Balance ──▶ endpoint A   (attempt 1: fails)
//!              │  └─ retry ─(budget)──▶ Balance ──▶ endpoint B   (attempt 2: not A)
//!              └──── hedge ─(budget)──▶ Balance ──▶ endpoint C   (no answer yet after the delay)
//! ```
//!
//! [`Retry`] wraps a balancer that implements [`Reroute`](crate::balance::Reroute) (as
//! [`Balance`](crate::balance::Balance) does) and sends a request again when an attempt fails
//! in a way another endpoint may fix. Each logical request carries an
//! [`Attempted`](crate::balance::Attempted) set, so every retry and hedge goes to an endpoint
//! it has not tried while one remains.
//!
//! # When a request is retried
//!
//! All of these must hold; otherwise the last result is returned unchanged (the original
//! error or response):
//!
//! 1. The [`Policy`] gave a replay copy ([`Policy::replay`] returns `Some`). It is asked once
//!    before the first attempt, since the original is consumed by sending it: that copy is the
//!    cost of being able to retry. Each retry and hedge sends a fresh replay of that copy, made
//!    before the budget is asked; if the request can no longer be replayed by then (a
//!    `ReplayBody` read past its limit), it is not retried. [`AssumeIdempotent`] clones every
//!    request (the name is the opt-in); with feature `http`, an HTTP policy replays only
//!    idempotent methods.
//! 2. The attempt's result is [retryable](Policy::retryable), or it timed out (see
//!    [`RetryLayer::per_try_timeout`]). A [`NoEndpoints`](crate::NoEndpoints) error is never
//!    retried: no other endpoint exists to fix it.
//! 3. Attempts remain ([`RetryLayer::max_attempts`], the first attempt and hedges included).
//! 4. The [`Budget`] allows it. Retries are limited to a share of recent requests plus a small
//!    floor, so that when an endpoint or a whole service fails, retries add a bounded load
//!    instead of multiplying it. A refusal is logged at `warn`.
//!
//! Before retry `n` the request waits a random time in `[0, min((2^n − 1) × base, max)]`
//! (Envoy's fully jittered exponential backoff).
//!
//! # Hedging
//!
//! With [`RetryLayer::hedge`], a request still unanswered after a delay (fixed, or a
//! percentile of recent latencies: [`Hedge`]) is sent once more to another endpoint, the first
//! successful response wins, and the other attempt is dropped, which cancels it. This cuts the
//! latency tail that one slow endpoint causes, at the price of a little extra load, which the
//! same budget bounds.
//!
//! # Defaults and their sources
//!
//! | setting | default | source |
//! |---|---|---|
//! | budget window (`ttl`) | 10 s | tower `TpsBudget`, linkerd |
//! | budget floor | 10 retries a second | tower, linkerd |
//! | budget ratio | 0.2 retries per request | tower, linkerd (Finagle's `RetryBudget`) |
//! | attempts | 3 in total | gRPC retry policy (gRFC A6), linkerd |
//! | per-try timeout | none | Envoy |
//! | backoff | 25 ms base, 250 ms cap, full jitter | Envoy |
//! | hedging | off; one hedge per request when on | gRFC A6; Dean and Barroso, "The Tail at Scale", CACM 2013 |
//!
//! # Cost
//!
//! A request that succeeds at its first attempt pays for one [`Policy::replay`] (a clone of
//! the request with [`AssumeIdempotent`]), one uncontended reference count and a plain counter
//! on the calling clone's own state, and one [`Policy::retryable`] check of the result; the
//! first request of every batch of 32 also reads the clock, and the last adds the batch
//! to the shared budget. Nothing is
//! allocated, no timer is set and the inner service is not cloned unless a retry or hedge is
//! sent. A per-try timeout costs one timer per attempt; hedging costs one timer per request,
//! and a percentile delay two clock reads and two shared atomic increments per request. These
//! figures are measured in the `resilience/` group of `benches/balance.rs`.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{Layer, Service, ServiceExt};
//! use tower_mesh::BoxError;
//! use tower_mesh::balance::{Balance, RoundRobin};
//! use tower_mesh::discover::Static;
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::retry::{AssumeIdempotent, Budget, Hedge, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Endpoint 9001 is broken; 9002 answers with its port.
//! let make_client = tower::service_fn(|ep: Endpoint| async move {
//!     let port = ep.addr().port();
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: &'static str| async move {
//!         if port == 9001 { Err::<u16, BoxError>("connection reset".into()) } else { Ok(port) }
//!     }))
//! });
//! let endpoints = Static::from_addrs(["127.0.0.1:9001".parse()?, "127.0.0.1:9002".parse()?]);
//! let balance = Balance::builder(RoundRobin::new()).build(endpoints, make_client)?;
//!
//! let budget = Arc::new(Budget::default());
//! let mut retry = RetryLayer::new(AssumeIdempotent::new())
//!     .budget(budget.clone())
//!     .max_attempts(2)?
//!     .per_try_timeout(Duration::from_secs(1))?
//!     .hedge(Hedge::percentile(95.0, Duration::from_millis(5), Duration::from_millis(500))?)
//!     .layer(balance);
//!
//! for _ in 0..10 {
//!     // Whichever endpoint the balancer picks first, the request succeeds.
//!     assert_eq!(retry.ready().await?.call("hello").await?, 9002);
//! }
//! drop(retry); // deposits this clone's last requests
//! let stats = budget.stats();
//! assert_eq!(stats.requests, 10);
//! assert!(stats.retries >= 1 && stats.refused == 0);
//! # Ok(())
//! # }
//! ```

mod attempt;
mod backoff;
mod budget;
mod error;
mod future;
mod hedge;
#[cfg(feature = "http")]
mod http;
mod latency;
mod layer;
mod policy;
#[cfg(feature = "http")]
mod replay_body;
mod service;

pub use self::budget::{Budget, BudgetStats};
pub use self::error::{AttemptTimedOut, RetryConfigError};
pub use self::future::ResponseFuture;
pub use self::hedge::Hedge;
#[cfg(feature = "http")]
pub use self::http::Http;
pub use self::layer::RetryLayer;
pub use self::policy::{AssumeIdempotent, Policy};
#[cfg(feature = "http")]
pub use self::replay_body::{ReplayBody, ReplayBodyError, ReplayableBody};
pub use self::service::Retry;

#[cfg(test)]
mod tests;
