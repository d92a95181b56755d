//! DNS discovery: endpoints from A/AAAA records of a host name, or from SRV records.
//!
//! [`Dns`] looks a [`DnsTarget`] up, yields the endpoint set as one [`Update::Reset`], and looks
//! it up again when the answer's TTL runs out, yielding a new reset only when the set changed.
//!
//! - **Host targets** (`api.internal:8080`): every A and AAAA address of the name (RFC 1035,
//!   RFC 3596; see [`IpStrategy`]) becomes an endpoint on the given port, with weight 1.
//! - **SRV targets** (`_http._tcp.api.internal`, RFC 2782): only the group with the lowest
//!   priority number whose targets have addresses is used (a lower-priority group is a backup:
//!   it is used only when no target of a better group has an address, never because a lookup
//!   failed); each record's port is used, and its weight becomes the endpoint weight, as
//!   follows. Weights are used as they are when none is 0, and all endpoints get weight 1 when
//!   all are 0. When some are 0 and some are not, RFC 2782 asks that the weight-0 records get "a
//!   very small chance" of selection: nonzero weights are multiplied by 100 and 0 becomes 1, so a
//!   weight-0 record gets 1/100 of a weight-1 record's share. Each address family the
//!   [`IpStrategy`] wants for a target is taken from the answer's additional section when it
//!   carries addresses of that family for the target, and looked up otherwise (a section with
//!   only A records does not mean the target has no AAAA records). A target of `.` is skipped (the service is "decidedly not available" there). An
//!   address named by several records is one endpoint whose weight is their sum. Each address
//!   of a target gets that record's full weight.
//!
//! Endpoints from DNS carry no zone, labels or identity.
//!
//! # Refresh, failures and NXDOMAIN
//!
//! The next lookup happens after the smallest TTL among the records used, clamped to
//! [`DnsBuilder::ttl_bounds`] and shortened by up to [`DnsBuilder::jitter`] of itself (never
//! lengthened, so a change is seen within the upper bound). This source keeps the answer for
//! that long itself: the resolver's own cache is turned off, so a lookup always asks a name
//! server.
//!
//! A lookup that gets no answer (a timeout, SERVFAIL, a server that is down) is yielded as an
//! `Err(`[`DnsError::Lookup`]`)`: the balancer logs it and keeps the last good set. The source
//! retries after an exponential, jittered [`DnsBuilder::backoff`], and once a lookup succeeds it
//! is back on the TTL schedule. An answer that says the name has nothing (NXDOMAIN, RFC 1035
//! §4.1.1; NODATA, RFC 2308) is handled per [`NxDomainPolicy`]: kept as a failure by default, or
//! an empty set.
//!
//! Lookups run inside the stream's own future, on the task that polls it (the balancer's
//! driver), so dropping the stream stops all work, and nothing runs while nobody polls.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tower_mesh::discover::dns::{Dns, NxDomainPolicy};
//!
//! # fn main() -> Result<(), tower_mesh::discover::dns::DnsError> {
//! let api = Dns::srv("_http._tcp.api.internal")
//!     .name_servers(["127.0.0.1:5353".parse().unwrap()])
//!     .ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
//!     .nx_domain(NxDomainPolicy::Clear)
//!     .build()?;
//! assert_eq!(api.target().to_string(), "_http._tcp.api.internal");
//!
//! // A bad value is named in the error, at build time.
//! let err = Dns::host("api..internal", 8080).build().unwrap_err();
//! assert!(err.to_string().contains("api..internal"));
//! # Ok(())
//! # }
//! ```
//!
//! Feeding a balancer (this one uses the system resolver):
//!
//! ```no_run
//! use tower_mesh::balance::{Balance, Weighted};
//! use tower_mesh::discover::dns::{Dns, DnsTarget};
//! use tower_mesh::endpoint::Endpoint;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_mesh::BoxError> {
//! let target: DnsTarget = "_grpc._tcp.users.svc.cluster.local".parse()?;
//! let make_client = tower::service_fn(|ep: Endpoint| async move {
//!     Ok::<_, std::convert::Infallible>(tower::service_fn(move |_req: ()| async move {
//!         Ok::<_, std::convert::Infallible>(ep.addr())
//!     }))
//! });
//! let balance = Balance::builder(Weighted::new()).build(Dns::builder(target).build()?, make_client)?;
//! # drop(balance);
//! # Ok(())
//! # }
//! ```

mod answer;
mod builder;
mod error;
mod lookup;
mod schedule;
mod srv;
mod target;

use std::fmt;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use self::lookup::{Lookups, Resolved};
use self::schedule::{LastSet, Timing};
use super::Update;

pub use self::builder::{DnsBuilder, IpStrategy, NxDomainPolicy};
pub use self::error::{DnsError, LookupFailure};
pub use self::target::DnsTarget;

/// A discovery source that follows a DNS name: A/AAAA records of a host, or SRV records.
///
/// A `Stream` of `Result<`[`Update`]`, `[`DnsError`]`>`: each `Ok` item is an
/// [`Update::Reset`] with the whole set, emitted only when the set changed (compared
/// regardless of order). Give it to [`Balance::builder`](crate::balance::Balance::builder)'s
/// `build`. The stream never ends. See the [module docs](self) for the algorithm and
/// [`DnsBuilder`] for the settings and their defaults.
pub struct Dns {
    target: DnsTarget,
    // The `Mutex` is never locked (only `get_mut` is used): it makes `Dns` `Sync` although the
    // resolver's futures are not.
    stream: Mutex<BoxStream>,
}

type BoxStream = Pin<Box<dyn Stream<Item = Result<Update, DnsError>> + Send>>;

impl Dns {
    /// A source following the A/AAAA records of `name`, every address on `port`.
    ///
    /// The name is checked by [`DnsBuilder::build`].
    pub fn host(name: &str, port: u16) -> DnsBuilder {
        DnsBuilder::for_host(name, port)
    }

    /// A source following the SRV records of `name` (`_service._proto.domain`).
    ///
    /// The name is checked by [`DnsBuilder::build`].
    pub fn srv(name: &str) -> DnsBuilder {
        DnsBuilder::for_srv(name)
    }

    /// A source following a parsed target.
    pub fn builder(target: DnsTarget) -> DnsBuilder {
        DnsBuilder::for_target(target)
    }

    /// What this source looks up.
    pub fn target(&self) -> &DnsTarget {
        &self.target
    }

    fn start(
        target: DnsTarget,
        lookups: Lookups,
        timing: Timing,
        policy: NxDomainPolicy,
        seed: u64,
    ) -> Dns {
        let refresher = Refresher {
            lookups,
            timing,
            policy,
            rng: SmallRng::seed_from_u64(seed),
            last: LastSet::default(),
            failures: 0,
            wait: None,
        };
        let stream = futures_util::stream::unfold(refresher, |mut r| async move {
            let item = r.next().await;
            Some((item, r))
        });
        Dns {
            target,
            stream: Mutex::new(Box::pin(stream)),
        }
    }
}

impl Stream for Dns {
    type Item = Result<Update, DnsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .stream
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .poll_next(cx)
    }
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The lookup loop's state.
struct Refresher {
    lookups: Lookups,
    timing: Timing,
    policy: NxDomainPolicy,
    rng: SmallRng,
    last: LastSet,
    /// Failed lookups in a row.
    failures: u32,
    /// How long to wait before the next lookup.
    wait: Option<Duration>,
}

impl Refresher {
    /// Looks up until the set changes or a lookup fails.
    async fn next(&mut self) -> Result<Update, DnsError> {
        loop {
            if let Some(delay) = self.wait.take() {
                tokio::time::sleep(delay).await;
            }
            let (set, ttl) = match self.lookups.resolve().await {
                Ok(Resolved::Endpoints { endpoints, ttl }) => (endpoints, ttl),
                Ok(Resolved::Nothing { ttl, error }) => match self.policy {
                    NxDomainPolicy::Clear => (Vec::new(), ttl),
                    NxDomainPolicy::KeepLast => return Err(self.failed(error)),
                },
                Err(error) => return Err(self.failed(error)),
            };
            self.failures = 0;
            let delay = self.timing.refresh_after(ttl, self.rng.random());
            self.wait = Some(delay);
            match self.last.replace(set) {
                Some(set) => {
                    tracing::debug!(
                        target = ?self.lookups,
                        endpoints = set.len(),
                        next_lookup = ?delay,
                        "dns endpoint set changed"
                    );
                    return Ok(Update::Reset(set));
                }
                None => {
                    tracing::trace!(target = ?self.lookups, next_lookup = ?delay, "dns answer unchanged")
                }
            }
        }
    }

    fn failed(&mut self, error: DnsError) -> DnsError {
        self.failures = self.failures.saturating_add(1);
        let delay = self.timing.retry_after(self.failures, self.rng.random());
        self.wait = Some(delay);
        tracing::debug!(%error, failures = self.failures, retry_in = ?delay, "dns lookup failed");
        error
    }
}

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
