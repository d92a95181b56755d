//! The table of a label route: the inner picker's table per label value.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use super::super::pick::{EndpointView, Pick};

/// A [`LabelRoute`](super::LabelRoute)'s table: the inner picker's table over every endpoint,
/// and one per label value over the endpoints carrying it.
///
/// Groups are sorted by value and never empty: a value that only unready endpoints carry has
/// no group. Each group keeps the map from its own indices to the endpoint set's (ascending),
/// which the route hands to [`Loads::subset`](crate::balance::Loads::subset).
#[derive(Debug, Clone)]
pub struct LabelTable<T> {
    all: T,
    groups: Box<[Group<T>]>,
    /// Each group's [`fingerprint`], side by side so a scan reads one cache line, when there
    /// are few groups; empty otherwise.
    prints: Box<[u64]>,
    /// An open-addressed table of `(xxh3 of the value, group)`, a power of two at most half
    /// full, when there are more groups than a scan is worth; empty otherwise.
    slots: Box<[(u64, u32)]>,
    /// The group of the [`Fallback::Value`](super::Fallback::Value), if it has one.
    fallback: Option<usize>,
}

#[derive(Debug, Clone)]
pub(super) struct Group<T> {
    value: Box<str>,
    pub(super) map: Box<[u32]>,
    pub(super) table: T,
}

impl<T> LabelTable<T> {
    /// The number of label values with at least one ready endpoint.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no ready endpoint carries the label.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The label values with at least one ready endpoint, in sorted order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &str> {
        self.groups.iter().map(|g| &*g.value)
    }

    /// The endpoints carrying label value `value`, as ascending indices into the endpoint set,
    /// or `None` when no ready endpoint does.
    pub fn members(&self, value: &str) -> Option<&[u32]> {
        self.find(value).map(|g| &*self.groups[g].map)
    }

    /// The inner picker's table over every endpoint.
    pub fn all(&self) -> &T {
        &self.all
    }

    /// The inner picker's table for label value `value`.
    pub fn table(&self, value: &str) -> Option<&T> {
        self.find(value).map(|g| &self.groups[g].table)
    }

    /// Builds the table: groups `ready` by their value of label `key` and builds `inner`'s
    /// table for each group and for all of them. With `unready` (when `inner` wants unready
    /// endpoints), each inner table also sees the unready endpoints of its group.
    pub(super) fn build<P>(
        inner: &P,
        key: &str,
        fallback: Option<&str>,
        ready: &[EndpointView<'_>],
        unready: Option<&[EndpointView<'_>]>,
    ) -> Self
    where
        P: Pick<Table = T>,
    {
        let mut by_value: BTreeMap<&str, (Vec<u32>, Vec<EndpointView<'_>>)> = BTreeMap::new();
        for (i, view) in ready.iter().enumerate() {
            if let Some(value) = view.endpoint().label(key) {
                let (map, views) = by_value.entry(value).or_default();
                // `Loads::subset` maps are u32: a balancer's slots are far fewer than 2^32.
                map.push(u32::try_from(i).unwrap_or(u32::MAX));
                views.push(*view);
            }
        }
        let mut unready_by_value: BTreeMap<&str, Vec<EndpointView<'_>>> = BTreeMap::new();
        for view in unready.unwrap_or_default() {
            if let Some(value) = view.endpoint().label(key)
                && by_value.contains_key(value)
            {
                unready_by_value.entry(value).or_default().push(*view);
            }
        }
        let build = |ready: &[EndpointView<'_>], unready_of: Option<&[EndpointView<'_>]>| {
            match unready_of {
                Some(unready) => inner.build_with_unready(ready, unready),
                None => inner.build(ready),
            }
        };
        let groups: Box<[Group<T>]> = by_value
            .into_iter()
            .map(|(value, (map, views))| {
                let unready_of = unready.map(|_| {
                    unready_by_value
                        .get(value)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                });
                Group {
                    table: build(&views, unready_of),
                    value: value.into(),
                    map: map.into(),
                }
            })
            .collect();
        let (prints, slots) = if groups.len() > SCAN_MAX {
            (Box::default(), hash_slots(&groups))
        } else {
            let prints = groups.iter().map(|g| fingerprint(&g.value)).collect();
            (prints, Box::default())
        };
        let mut table = LabelTable {
            all: build(ready, unready),
            groups,
            prints,
            slots,
            fallback: None,
        };
        table.fallback = fallback.and_then(|value| table.find(value));
        table
    }

    /// The group of `value`: a scan of a few groups' fingerprints, or a hash table probe.
    #[inline]
    pub(super) fn find(&self, value: &str) -> Option<usize> {
        if self.slots.is_empty() {
            let print = fingerprint(value);
            self.prints
                .iter()
                .enumerate()
                .filter(|&(_, &p)| p == print)
                .map(|(g, _)| g)
                .find(|&g| *self.groups[g].value == *value)
        } else {
            self.find_hashed(value)
        }
    }

    fn find_hashed(&self, value: &str) -> Option<usize> {
        let hash = xxh3_64(value.as_bytes());
        let mask = self.slots.len() - 1;
        // The table is at most half full, so the probe meets an empty slot.
        let mut i = hash as usize & mask;
        loop {
            let (h, g) = self.slots[i];
            if g == EMPTY {
                return None;
            }
            if h == hash && *self.groups[g as usize].value == *value {
                return Some(g as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// Group `g` (an index [`find`](Self::find) returned).
    #[inline]
    pub(super) fn group(&self, g: usize) -> &Group<T> {
        &self.groups[g]
    }

    /// The group of the fallback value, if it has ready endpoints.
    #[inline]
    pub(super) fn fallback(&self) -> Option<usize> {
        self.fallback
    }
}

/// A cheap summary of a value for the scan: its length and its first, middle and last bytes
/// (versions tend to share prefixes and differ at the end). Equal values have equal prints;
/// the scan confirms a matching print by comparing the values.
#[inline]
fn fingerprint(value: &str) -> u64 {
    let b = value.as_bytes();
    match b.len() {
        0 => 0,
        n => {
            (n as u64) << 24
                | u64::from(b[0]) << 16
                | u64::from(b[n / 2]) << 8
                | u64::from(b[n - 1])
        }
    }
}

/// The open-addressed slots for `groups`: the smallest power of two at least twice their
/// number, linear probing.
fn hash_slots<T>(groups: &[Group<T>]) -> Box<[(u64, u32)]> {
    let len = (groups.len() * 2).next_power_of_two();
    let mask = len - 1;
    let mut slots = vec![(0, EMPTY); len];
    for (group, g) in groups.iter().zip(0u32..) {
        let hash = xxh3_64(group.value.as_bytes());
        let mut i = hash as usize & mask;
        while slots[i].1 != EMPTY {
            i = (i + 1) & mask;
        }
        slots[i] = (hash, g);
    }
    slots.into()
}

/// Up to this many groups, a lookup scans their fingerprints (one cache line); beyond, it
/// hashes the value and probes a table.
pub(super) const SCAN_MAX: usize = 8;

/// An empty hash slot (no group has this index: a balancer's endpoints are far fewer).
const EMPTY: u32 = u32::MAX;
