use std::net::SocketAddr;
use std::time::Duration;

use super::error::DnsError;
use super::schedule::Timing;
use super::target::DnsTarget;
use super::{Dns, lookup};

/// Configures and builds a [`Dns`] source; created by [`Dns::host`], [`Dns::srv`] or
/// [`Dns::builder`].
///
/// Nothing is checked until [`build`](DnsBuilder::build), which names the first bad value.
///
/// # Defaults
///
/// - resolver: the system's (`/etc/resolv.conf` on Unix: its name servers, search domains,
///   timeouts; and `/etc/hosts`), as every other program on the host resolves;
/// - TTL bounds: 5 s to 300 s. A record with TTL 0 (common in service registries) would
///   otherwise have every client query on every poll; a day-long TTL would hide a change for a
///   day. Envoy's default DNS refresh rate is also 5 s;
/// - jitter: 0.1, each delay shortened by up to 10 %, so clients that started together do not
///   query together;
/// - retry backoff after a failed lookup: 1 s doubling to 30 s;
/// - NXDOMAIN: [`NxDomainPolicy::KeepLast`], the safe choice (see there);
/// - address families: [`IpStrategy::Ipv4AndIpv6`], every address the name has, as gRPC does;
/// - query timeout: the resolver configuration's (5 s per attempt, 2 attempts, unless
///   `resolv.conf` says otherwise).
#[derive(Debug, Clone)]
pub struct DnsBuilder {
    target: TargetSpec,
    resolver: ResolverChoice,
    timing: Timing,
    nx_domain: NxDomainPolicy,
    ip_strategy: IpStrategy,
    query_timeout: Option<Duration>,
    seed: Option<u64>,
}

/// What an NXDOMAIN (or NODATA) answer does to the endpoint set.
///
/// The policy covers every answer in which the name server says there is nothing: the name does
/// not exist (NXDOMAIN), it has no records of the type asked (NODATA), or an SRV name's records
/// all point at `.` or at hosts without addresses. Failures to get an answer (timeouts,
/// SERVFAIL, a server that is down) always keep the last good set, whatever the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NxDomainPolicy {
    /// Keep serving the last good set, yield a [`DnsError::Lookup`] and retry with backoff.
    ///
    /// The default, because a name that vanishes is far more often a mistake (a zone pushed
    /// half-written, a registry restarting, a split-horizon view answering the wrong client)
    /// than a deliberate decommission, and emptying a balancer turns that mistake into an
    /// outage.
    #[default]
    KeepLast,
    /// Make the set empty, as the answer says: requests then fail with
    /// [`NoEndpoints`](crate::NoEndpoints) until the name has records again. The next lookup is
    /// after the answer's negative TTL (RFC 2308), clamped to the TTL bounds.
    Clear,
}

/// Which address records a host name (or an SRV target) is looked up for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpStrategy {
    /// A and AAAA, in parallel; every address of either family is an endpoint. A name with
    /// records of only one family is fine; a failure of either lookup fails the refresh (so a
    /// family never vanishes from the set because one query timed out).
    #[default]
    Ipv4AndIpv6,
    /// A records only.
    Ipv4Only,
    /// AAAA records only.
    Ipv6Only,
    /// A records; AAAA only when the name has no A record.
    Ipv4ThenIpv6,
    /// AAAA records; A only when the name has no AAAA record.
    Ipv6ThenIpv4,
}

#[derive(Debug, Clone)]
enum TargetSpec {
    Parsed(DnsTarget),
    Host(String, u16),
    Srv(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ResolverChoice {
    System,
    NameServers(Vec<SocketAddr>),
}

impl DnsBuilder {
    pub(super) fn for_target(target: DnsTarget) -> Self {
        DnsBuilder::new(TargetSpec::Parsed(target))
    }

    pub(super) fn for_host(name: &str, port: u16) -> Self {
        DnsBuilder::new(TargetSpec::Host(name.to_owned(), port))
    }

    pub(super) fn for_srv(name: &str) -> Self {
        DnsBuilder::new(TargetSpec::Srv(name.to_owned()))
    }

    fn new(target: TargetSpec) -> Self {
        DnsBuilder {
            target,
            resolver: ResolverChoice::System,
            timing: Timing {
                ttl_min: DEFAULT_TTL_MIN,
                ttl_max: DEFAULT_TTL_MAX,
                jitter: DEFAULT_JITTER,
                backoff_min: DEFAULT_BACKOFF_MIN,
                backoff_max: DEFAULT_BACKOFF_MAX,
            },
            nx_domain: NxDomainPolicy::default(),
            ip_strategy: IpStrategy::default(),
            query_timeout: None,
            seed: None,
        }
    }

    /// Uses the system resolver configuration, read when the source is built (the default).
    pub fn system_resolver(mut self) -> Self {
        self.resolver = ResolverChoice::System;
        self
    }

    /// Queries these name servers (UDP, and TCP for truncated answers) instead of the system's,
    /// with no search domains and no hosts file. The servers are tried in the order the
    /// resolver's statistics favour.
    pub fn name_servers(mut self, servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.resolver = ResolverChoice::NameServers(servers.into_iter().collect());
        self
    }

    /// Bounds the interval between lookups: the answer's smallest TTL, raised to at least `min`
    /// and lowered to at most `max`, then shortened by the jitter.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.timing.ttl_min = min;
        self.timing.ttl_max = max;
        self
    }

    /// The fraction, from 0 up to but not including 1, by which each delay (refresh or retry)
    /// is randomly shortened. 0 turns jitter off.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.timing.jitter = fraction;
        self
    }

    /// The delay before retrying after a failed lookup: `min` after the first failure, doubling
    /// with each failure in a row up to `max`, then shortened by the jitter.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.timing.backoff_min = min;
        self.timing.backoff_max = max;
        self
    }

    /// What an answer saying "nothing here" does to the set.
    pub fn nx_domain(mut self, policy: NxDomainPolicy) -> Self {
        self.nx_domain = policy;
        self
    }

    /// Which address families are looked up.
    pub fn ip_strategy(mut self, strategy: IpStrategy) -> Self {
        self.ip_strategy = strategy;
        self
    }

    /// How long the resolver waits for one answer from one name server before trying again
    /// (it makes two attempts, or what `resolv.conf` says).
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = Some(timeout);
        self
    }

    /// Seeds the jitter's random numbers, for reproducible schedules. By default the seed comes
    /// from the operating system.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every setting, without reading the system configuration.
    ///
    /// # Errors
    ///
    /// The first bad setting, as [`build`](DnsBuilder::build) would report it.
    pub fn validate(&self) -> Result<(), DnsError> {
        self.checked().map(drop)
    }

    /// The target, once every setting is checked.
    fn checked(&self) -> Result<DnsTarget, DnsError> {
        let target = match &self.target {
            TargetSpec::Parsed(target) => target.clone(),
            TargetSpec::Host(name, port) => DnsTarget::host(name, *port)?,
            TargetSpec::Srv(name) => DnsTarget::srv(name)?,
        };
        let t = &self.timing;
        if t.ttl_min.is_zero() || t.ttl_min > t.ttl_max {
            return Err(DnsError::InvalidTtlBounds {
                min: t.ttl_min,
                max: t.ttl_max,
            });
        }
        if t.backoff_min.is_zero() || t.backoff_min > t.backoff_max {
            return Err(DnsError::InvalidBackoff {
                min: t.backoff_min,
                max: t.backoff_max,
            });
        }
        if !(0.0..1.0).contains(&t.jitter) {
            return Err(DnsError::InvalidJitter(t.jitter));
        }
        if let Some(timeout) = self.query_timeout.filter(|t| t.is_zero()) {
            return Err(DnsError::InvalidTimeout(timeout));
        }
        if self.resolver == ResolverChoice::NameServers(Vec::new()) {
            return Err(DnsError::NoNameServers);
        }
        Ok(target)
    }

    /// Builds the source. No query is sent until the stream is first polled.
    ///
    /// # Errors
    ///
    /// [`DnsError`] naming the first bad setting, or [`DnsError::SystemConfig`] naming the file
    /// when the system resolver is chosen and its configuration cannot be read.
    pub fn build(self) -> Result<Dns, DnsError> {
        let target = self.checked()?;
        let lookups = lookup::Lookups::new(
            &target,
            &self.resolver,
            self.query_timeout,
            self.ip_strategy,
        )?;
        let seed = self.seed.unwrap_or_else(|| {
            use rand::RngExt;
            rand::rng().random()
        });
        Ok(Dns::start(
            target,
            lookups,
            self.timing,
            self.nx_domain,
            seed,
        ))
    }
}

const DEFAULT_TTL_MIN: Duration = Duration::from_secs(5);
const DEFAULT_TTL_MAX: Duration = Duration::from_secs(300);
const DEFAULT_JITTER: f64 = 0.1;
const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
