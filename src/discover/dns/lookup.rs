//! The queries: hickory-resolver glue turning a target into endpoints or a classified failure.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, TokioResolver};

use super::answer::{Addrs, Known, Nothing, classify};
use super::builder::{IpStrategy, ResolverChoice};
use super::error::{DnsError, LookupFailure};
use super::srv::{self, SrvRecord};
use super::target::DnsTarget;
use crate::endpoint::Endpoint;

/// A resolver and the target it looks up.
pub(super) struct Lookups {
    resolver: TokioResolver,
    name: Name,
    port: Option<u16>,
    display: String,
    strategy: IpStrategy,
}

/// The outcome of one successful exchange with the name servers.
#[derive(Debug)]
pub(super) enum Resolved {
    /// Endpoints, and the smallest TTL of the records they came from.
    Endpoints {
        endpoints: Vec<Endpoint>,
        ttl: Option<u32>,
    },
    /// The servers answered that there is nothing (NXDOMAIN, NODATA, no usable SRV target),
    /// with the negative TTL when the answer carried one.
    Nothing { ttl: Option<u32>, error: DnsError },
}

impl Lookups {
    pub(super) fn new(
        target: &DnsTarget,
        choice: &ResolverChoice,
        timeout: Option<Duration>,
        strategy: IpStrategy,
    ) -> Result<Self, DnsError> {
        let name = Name::from_ascii(target.name()).map_err(|e| DnsError::InvalidTarget {
            input: target.to_string(),
            reason: e.to_string(),
        })?;
        let (config, mut opts) = match choice {
            ResolverChoice::System => system_conf()?,
            ResolverChoice::NameServers(addrs) => {
                let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
                for &addr in addrs {
                    config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                    config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                }
                let mut opts = ResolverOpts::default();
                opts.use_hosts_file = ResolveHosts::Never;
                (config, opts)
            }
        };
        // This source is the cache: it keeps the last answer for its TTL (clamped). A resolver
        // cache under it would hand back a stale answer when the upper bound is below the TTL.
        opts.cache_size = 0;
        if let Some(timeout) = timeout {
            opts.timeout = timeout;
        }
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(Lookups {
            resolver,
            name,
            port: target.port(),
            display: target.name().to_owned(),
            strategy,
        })
    }

    /// Looks the target up once.
    pub(super) async fn resolve(&self) -> Result<Resolved, DnsError> {
        self.resolver.clear_cache();
        match self.port {
            Some(port) => self.host(port).await,
            None => self.srv().await,
        }
    }

    async fn host(&self, port: u16) -> Result<Resolved, DnsError> {
        Ok(match self.addresses(&self.name, &self.display).await? {
            Addrs::Found { ips, ttl } => Resolved::Endpoints {
                endpoints: ips
                    .into_iter()
                    .map(|ip| Endpoint::new(SocketAddr::new(ip, port)))
                    .collect(),
                ttl: Some(ttl),
            },
            Addrs::Nothing(nothing) => nothing.into_resolved(&self.display),
        })
    }

    async fn srv(&self) -> Result<Resolved, DnsError> {
        let lookup = match self
            .resolver
            .lookup(self.name.clone(), RecordType::SRV)
            .await
        {
            Ok(lookup) => lookup,
            Err(e) => return Ok(classify(&self.display, e)?.into_resolved(&self.display)),
        };
        let mut records = Vec::new();
        let mut srv_ttl: Option<u32> = None;
        let mut additional: HashMap<Name, (Vec<IpAddr>, u32)> = HashMap::new();
        for record in lookup.records() {
            let ip = match record.data() {
                RData::SRV(srv) => {
                    srv_ttl = min_ttl(srv_ttl, record.ttl());
                    // A target of "." means the service is decidedly not offered there
                    // (RFC 2782).
                    if !srv.target().is_root() {
                        records.push(SrvRecord {
                            priority: srv.priority(),
                            weight: srv.weight(),
                            port: srv.port(),
                            target: srv.target().clone(),
                        });
                    }
                    continue;
                }
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                _ => continue,
            };
            let entry = additional
                .entry(record.name().clone())
                .or_insert((Vec::new(), u32::MAX));
            entry.0.push(ip);
            entry.1 = entry.1.min(record.ttl());
        }

        for group in srv::priority_groups(records) {
            let weights =
                srv::endpoint_weights(&group.iter().map(|r| r.weight).collect::<Vec<_>>());
            // Each target name is resolved once, however many records name it.
            let mut names: Vec<Name> = group.iter().map(|r| r.target.clone()).collect();
            names.sort();
            names.dedup();
            let additional = &additional;
            let resolved: Vec<_> = futures_util::stream::iter(names)
                .map(|name| async move {
                    let addrs = self.target_addresses(&name, additional).await;
                    (name, addrs)
                })
                .buffered(MAX_CONCURRENT_TARGET_LOOKUPS)
                .collect()
                .await;
            let mut ttl = srv_ttl;
            let mut addresses: HashMap<Name, Vec<IpAddr>> = HashMap::new();
            for (name, addrs) in resolved {
                // A target that cannot be resolved now fails the refresh: falling back to a
                // lower priority because of a timeout would move traffic on a transient error.
                if let Addrs::Found { ips, ttl: t } = addrs? {
                    ttl = min_ttl(ttl, t);
                    addresses.insert(name, ips);
                }
            }
            let found = group.iter().zip(weights).filter_map(|(record, weight)| {
                let ips = addresses.get(&record.target)?;
                Some((weight, record.port, ips.clone()))
            });
            let endpoints = srv::merge(found);
            if !endpoints.is_empty() {
                return Ok(Resolved::Endpoints { endpoints, ttl });
            }
        }
        Ok(Resolved::Nothing {
            ttl: srv_ttl,
            error: DnsError::Lookup {
                name: self.display.clone(),
                failure: LookupFailure::NoRecords,
                source: None,
            },
        })
    }

    /// The addresses of one SRV target, per the IP strategy: each address family the strategy
    /// wants is taken from the answer's additional section when it carries addresses of that
    /// family for the target, and looked up otherwise. A section with only A records says
    /// nothing about AAAA records (servers may leave any of it out), so under
    /// [`IpStrategy::Ipv4AndIpv6`] the AAAA records are still looked up.
    async fn target_addresses(
        &self,
        target: &Name,
        additional: &HashMap<Name, (Vec<IpAddr>, u32)>,
    ) -> Result<Addrs, DnsError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let mut ttl = u32::MAX;
        if let Some((ips, t)) = additional.get(target) {
            for &ip in ips {
                if ip.is_ipv4() {
                    v4.push(ip)
                } else {
                    v6.push(ip)
                }
            }
            ttl = *t;
        }
        let known = |mut ips: Vec<IpAddr>| {
            (!ips.is_empty()).then(|| {
                ips.sort_unstable();
                ips.dedup();
                Addrs::Found { ips, ttl }
            })
        };
        let known = Known {
            v4: known(v4),
            v6: known(v6),
        };
        self.resolve_addresses(target, &target.to_string(), known)
            .await
    }

    /// The addresses of a name, per the IP strategy.
    async fn addresses(&self, name: &Name, display: &str) -> Result<Addrs, DnsError> {
        self.resolve_addresses(name, display, Known::default())
            .await
    }

    /// The addresses of a name per the IP strategy, looking up only the families not `known`.
    async fn resolve_addresses(
        &self,
        name: &Name,
        display: &str,
        known: Known,
    ) -> Result<Addrs, DnsError> {
        use RecordType::{A, AAAA};
        let Known { v4, v6 } = known;
        match self.strategy {
            IpStrategy::Ipv4Only => self.known_or_lookup(v4, name, display, A).await,
            IpStrategy::Ipv6Only => self.known_or_lookup(v6, name, display, AAAA).await,
            IpStrategy::Ipv4ThenIpv6 => self.first_found(name, display, (v4, A), (v6, AAAA)).await,
            IpStrategy::Ipv6ThenIpv4 => self.first_found(name, display, (v6, AAAA), (v4, A)).await,
            IpStrategy::Ipv4AndIpv6 => {
                let (v4, v6) = futures_util::future::join(
                    self.known_or_lookup(v4, name, display, A),
                    self.known_or_lookup(v6, name, display, AAAA),
                )
                .await;
                Ok(v4?.union(v6?))
            }
        }
    }

    /// The addresses of the `first` family, or when the name has none, of the `then` family.
    async fn first_found(
        &self,
        name: &Name,
        display: &str,
        first: (Option<Addrs>, RecordType),
        then: (Option<Addrs>, RecordType),
    ) -> Result<Addrs, DnsError> {
        match self
            .known_or_lookup(first.0, name, display, first.1)
            .await?
        {
            found @ Addrs::Found { .. } => Ok(found),
            nothing => {
                let then = self.known_or_lookup(then.0, name, display, then.1).await?;
                Ok(nothing.union(then))
            }
        }
    }

    /// `known` when there is one, else the addresses of one record type, looked up.
    async fn known_or_lookup(
        &self,
        known: Option<Addrs>,
        name: &Name,
        display: &str,
        rtype: RecordType,
    ) -> Result<Addrs, DnsError> {
        match known {
            Some(addrs) => Ok(addrs),
            None => self.family(name, display, rtype).await,
        }
    }

    /// The addresses of one record type.
    async fn family(
        &self,
        name: &Name,
        display: &str,
        rtype: RecordType,
    ) -> Result<Addrs, DnsError> {
        match self.resolver.lookup(name.clone(), rtype).await {
            Ok(lookup) => {
                let mut ips = Vec::new();
                let mut ttl = u32::MAX;
                for record in lookup.records() {
                    // CNAME records of the chain count for the TTL too.
                    ttl = ttl.min(record.ttl());
                    match record.data() {
                        RData::A(a) => ips.push(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => ips.push(IpAddr::V6(aaaa.0)),
                        _ => {}
                    }
                }
                if ips.is_empty() {
                    return Ok(Addrs::Nothing(Nothing {
                        failure: LookupFailure::NoRecords,
                        ttl: None,
                        source: None,
                    }));
                }
                ips.sort_unstable();
                ips.dedup();
                Ok(Addrs::Found { ips, ttl })
            }
            Err(e) => classify(display, e).map(Addrs::Nothing),
        }
    }
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("name", &self.display)
            .field("port", &self.port)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// The system resolver configuration: `/etc/resolv.conf`, read here rather than by hickory so
/// that an error names the file.
#[cfg(unix)]
fn system_conf() -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    read_resolv_conf(std::path::Path::new("/etc/resolv.conf"))
}

/// The system resolver configuration, from where the platform keeps it (not a file).
#[cfg(not(unix))]
fn system_conf() -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    hickory_resolver::system_conf::read_system_conf().map_err(|e| DnsError::SystemConfig {
        path: None,
        source: Box::new(e),
    })
}

/// Reads and parses a `resolv.conf` file as hickory's `read_system_conf` does.
#[cfg(unix)]
pub(super) fn read_resolv_conf(
    path: &std::path::Path,
) -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    let fail = |source: crate::error::BoxError| DnsError::SystemConfig {
        path: Some(path.to_owned()),
        source,
    };
    let data = std::fs::read(path).map_err(|e| fail(e.into()))?;
    hickory_resolver::system_conf::parse_resolv_conf(data).map_err(|e| fail(e.into()))
}

fn min_ttl(a: Option<u32>, b: u32) -> Option<u32> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// How many SRV targets are looked up at once.
const MAX_CONCURRENT_TARGET_LOOKUPS: usize = 16;
