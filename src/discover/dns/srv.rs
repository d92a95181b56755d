//! The pure part of SRV handling (RFC 2782): priority groups, weights, merging addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::endpoint::{Endpoint, Weight};

/// One SRV record, with its target in whatever form the caller resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SrvRecord<T> {
    pub(super) priority: u16,
    pub(super) weight: u16,
    pub(super) port: u16,
    pub(super) target: T,
}

/// The records grouped by priority, lowest priority number (most preferred) first; within a
/// group, records keep their order.
pub(super) fn priority_groups<T>(mut records: Vec<SrvRecord<T>>) -> Vec<Vec<SrvRecord<T>>> {
    records.sort_by_key(|r| r.priority); // stable
    let mut groups: Vec<Vec<SrvRecord<T>>> = Vec::new();
    for record in records {
        match groups.last_mut() {
            Some(group) if group[0].priority == record.priority => group.push(record),
            _ => groups.push(vec![record]),
        }
    }
    groups
}

/// Maps the SRV weights of one priority group to endpoint weights.
///
/// RFC 2782 wants selection in proportion to weight, and a weight-0 record to have "a very small
/// chance" of selection when others in its group weigh more, or an equal chance when all weigh
/// 0. A [`Weight`] cannot be 0, so:
///
/// - no record weighs 0: the weights are used as they are;
/// - every record weighs 0: every endpoint gets weight 1 (equal shares);
/// - some do and some do not: each nonzero weight is multiplied by [`ZERO_WEIGHT_SCALE`] and
///   each 0 becomes 1, so a weight-0 record gets 1/100 of the share of a weight-1 record.
pub(super) fn endpoint_weights(srv_weights: &[u16]) -> Vec<Weight> {
    let zeros = srv_weights.iter().filter(|w| **w == 0).count();
    let scale = if zeros == 0 || zeros == srv_weights.len() {
        1
    } else {
        ZERO_WEIGHT_SCALE
    };
    srv_weights
        .iter()
        .map(|&w| match Weight::new(u32::from(w) * scale) {
            Ok(weight) => weight,
            Err(_) => Weight::ONE, // w == 0
        })
        .collect()
}

/// Builds the endpoint set of one priority group from each record's weight, port and resolved
/// addresses.
///
/// An address reached through several records (the same host and port named twice) is one
/// endpoint whose weight is the sum of those records' weights, since it is chosen whenever any
/// of them is. The result is sorted by address.
pub(super) fn merge(
    resolved: impl IntoIterator<Item = (Weight, u16, Vec<IpAddr>)>,
) -> Vec<Endpoint> {
    let mut by_addr: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for (weight, port, ips) in resolved {
        let mut ips = ips;
        ips.sort_unstable();
        ips.dedup();
        for ip in ips {
            let sum = by_addr.entry(SocketAddr::new(ip, port)).or_insert(0);
            *sum = sum.saturating_add(weight.get());
        }
    }
    by_addr
        .into_iter()
        .map(|(addr, weight)| {
            // Every sum adds at least one nonzero weight.
            let weight = Weight::new(weight).unwrap_or(Weight::ONE);
            Endpoint::new(addr).with_weight(weight)
        })
        .collect()
}

/// The factor nonzero SRV weights are multiplied by when weight-0 records share their group,
/// so that a weight-0 record's share is 1/100 of a weight-1 record's.
pub(super) const ZERO_WEIGHT_SCALE: u32 = 100;
