//! What an answer says: addresses found, nothing there (NXDOMAIN, NODATA), or no answer.

use std::net::IpAddr;

use hickory_resolver::ResolveError;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;

use super::error::{DnsError, LookupFailure};
use super::lookup::Resolved;

/// The addresses of one name.
#[derive(Debug)]
pub(super) enum Addrs {
    Found { ips: Vec<IpAddr>, ttl: u32 },
    Nothing(Nothing),
}

/// Addresses of a name already known (from an SRV answer's additional section), by family.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub(super) v4: Option<Addrs>,
    pub(super) v6: Option<Addrs>,
}

/// An answer saying there is nothing at a name.
#[derive(Debug)]
pub(super) struct Nothing {
    pub(super) failure: LookupFailure,
    pub(super) ttl: Option<u32>,
    pub(super) source: Option<ResolveError>,
}

impl Addrs {
    /// The addresses of both lookups: found if either found any; "does not exist" only if
    /// neither name exists.
    pub(super) fn union(self, other: Addrs) -> Addrs {
        match (self, other) {
            (Addrs::Found { mut ips, ttl }, Addrs::Found { ips: more, ttl: t }) => {
                ips.extend(more);
                ips.sort_unstable();
                ips.dedup();
                Addrs::Found {
                    ips,
                    ttl: ttl.min(t),
                }
            }
            (found @ Addrs::Found { .. }, Addrs::Nothing(_))
            | (Addrs::Nothing(_), found @ Addrs::Found { .. }) => found,
            (Addrs::Nothing(a), Addrs::Nothing(b)) => Addrs::Nothing(Nothing {
                failure: if a.failure == LookupFailure::NxDomain
                    && b.failure == LookupFailure::NxDomain
                {
                    LookupFailure::NxDomain
                } else {
                    LookupFailure::NoRecords
                },
                ttl: match (a.ttl, b.ttl) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                },
                source: a.source.or(b.source),
            }),
        }
    }
}

impl Nothing {
    pub(super) fn into_resolved(self, name: &str) -> Resolved {
        Resolved::Nothing {
            ttl: self.ttl,
            error: DnsError::Lookup {
                name: name.to_owned(),
                failure: self.failure,
                source: self.source.map(|e| Box::new(e) as _),
            },
        }
    }
}

/// Sorts a resolver error into an answer saying there is nothing (`Ok`), or a failure to get an
/// answer (`Err`).
pub(super) fn classify(name: &str, error: ResolveError) -> Result<Nothing, DnsError> {
    let failure = match error.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound {
            response_code,
            negative_ttl,
            ..
        }) => {
            let failure = match *response_code {
                ResponseCode::NXDomain => LookupFailure::NxDomain,
                ResponseCode::NoError => LookupFailure::NoRecords,
                _ => LookupFailure::ServerFailure,
            };
            if failure.is_empty_answer() {
                return Ok(Nothing {
                    failure,
                    ttl: *negative_ttl,
                    source: Some(error),
                });
            }
            failure
        }
        Some(ProtoErrorKind::Timeout) => LookupFailure::Timeout,
        Some(ProtoErrorKind::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
            LookupFailure::Timeout
        }
        _ => LookupFailure::Other,
    };
    Err(DnsError::Lookup {
        name: name.to_owned(),
        failure,
        source: Some(Box::new(error)),
    })
}
