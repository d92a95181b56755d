//! The rule index: which rules can match a request, found without scanning them all.
//!
//! Each rule goes into exactly one bucket of its action:
//!
//! - **by path**, when it has `paths` and every one of them fixes the first segment (`/api/x`,
//!   `/api/**`, `/pkg.Service/*`): under each first segment. A path pattern matches only paths
//!   with its first segment, so a request consults the bucket of its own first segment;
//! - else **by host**, when it has `hosts` and all of them are exact: under each host;
//! - else **other**: always consulted.
//!
//! A request with an HTTP part consults three ascending lists (its path bucket, its host
//! bucket, other), and the first match is the lowest index among the lists' first matches:
//! the rule a scan in file order finds. What the request lacks changes the lists the way it
//! changes the matching: with no host (or a path not in normalized form), the host-indexed
//! (path-indexed) DENY rules all match on `hosts` (`paths`) and are consulted, while the
//! ALLOW rules of those buckets cannot match and are skipped; with no HTTP part (TCP), every
//! DENY rule is consulted and only the ALLOW rules without HTTP fields.

use std::collections::HashMap;

use super::eval::Request;
use super::model::{Action, Rule};
use super::path::first_segment;

#[derive(Debug, Default)]
pub(super) struct Index {
    allow: Buckets,
    deny: Buckets,
}

impl Index {
    pub(super) fn new(rules: &[Rule]) -> Self {
        let mut allow = Builder::default();
        let mut deny = Builder::default();
        for (i, rule) in rules.iter().enumerate() {
            let builder = match rule.action {
                Action::Allow => &mut allow,
                Action::Deny => &mut deny,
            };
            builder.add(i, rule);
        }
        Index {
            allow: allow.build(),
            deny: deny.build(),
        }
    }

    /// The rules of `action` that can match `request`, as three ascending lists.
    pub(super) fn candidates<'s>(
        &'s self,
        action: Action,
        request: &Request<'_>,
    ) -> [&'s [usize]; 3] {
        let buckets = match action {
            Action::Allow => &self.allow,
            Action::Deny => &self.deny,
        };
        if request.http().is_none() {
            return [&buckets.tcp, &[], &[]];
        }
        let by_path = match request.path {
            Some(path) => first_segment(path)
                .and_then(|segment| buckets.by_path.get(segment))
                .map_or(&[][..], |list| &list[..]),
            None if action == Action::Deny => &buckets.path_indexed[..],
            None => &[],
        };
        let by_host = match request.host {
            Some(host) => with_lowercase(host, |host| {
                buckets.by_host.get(host).map_or(&[][..], |list| &list[..])
            }),
            None if action == Action::Deny => &buckets.host_indexed[..],
            None => &[],
        };
        [by_path, by_host, &buckets.other]
    }
}

/// The buckets of one action.
#[derive(Debug, Default)]
struct Buckets {
    by_path: HashMap<Box<str>, Box<[usize]>>,
    by_host: HashMap<Box<str>, Box<[usize]>>,
    /// Every rule in `by_path`, ascending.
    path_indexed: Box<[usize]>,
    /// Every rule in `by_host`, ascending.
    host_indexed: Box<[usize]>,
    other: Box<[usize]>,
    /// The rules that can match a request without an HTTP part.
    tcp: Box<[usize]>,
}

#[derive(Default)]
struct Builder {
    by_path: HashMap<Box<str>, Vec<usize>>,
    by_host: HashMap<Box<str>, Vec<usize>>,
    path_indexed: Vec<usize>,
    host_indexed: Vec<usize>,
    other: Vec<usize>,
    tcp: Vec<usize>,
}

impl Builder {
    /// Adds rule `i`; rules come in ascending order, so every list stays ascending.
    fn add(&mut self, i: usize, rule: &Rule) {
        if rule.action == Action::Deny || !rule.http_fields {
            self.tcp.push(i);
        }
        let when = &rule.when;
        let segments: Option<Vec<&str>> = if when.paths.is_empty() {
            None
        } else {
            when.paths.iter().map(|p| p.first_segment()).collect()
        };
        if let Some(segments) = segments {
            for segment in segments {
                push_once(self.by_path.entry(segment.into()).or_default(), i);
            }
            self.path_indexed.push(i);
            return;
        }
        let hosts: Option<Vec<&str>> = if when.hosts.is_empty() {
            None
        } else {
            when.hosts.iter().map(|h| h.exact()).collect()
        };
        if let Some(hosts) = hosts {
            for host in hosts {
                push_once(self.by_host.entry(host.into()).or_default(), i);
            }
            self.host_indexed.push(i);
            return;
        }
        self.other.push(i);
    }

    fn build(self) -> Buckets {
        let boxed = |map: HashMap<Box<str>, Vec<usize>>| {
            map.into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect()
        };
        Buckets {
            by_path: boxed(self.by_path),
            by_host: boxed(self.by_host),
            path_indexed: self.path_indexed.into(),
            host_indexed: self.host_indexed.into(),
            other: self.other.into(),
            tcp: self.tcp.into(),
        }
    }
}

/// Two patterns of one rule can share a bucket (`/api/a`, `/api/b`): the rule goes in once.
fn push_once(list: &mut Vec<usize>, i: usize) {
    if list.last() != Some(&i) {
        list.push(i);
    }
}

/// Calls `f` with `host` in lowercase, without allocating (index keys are lowercase). A host
/// too long for the buffer is longer than any host a policy can name: it gets the empty
/// string, which is no key.
fn with_lowercase<'s>(host: &str, f: impl FnOnce(&str) -> &'s [usize]) -> &'s [usize] {
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(host);
    }
    let mut buf = [0u8; MAX_HOST_KEY];
    let Some(dst) = buf.get_mut(..host.len()) else {
        return f("");
    };
    dst.copy_from_slice(host.as_bytes());
    dst.make_ascii_lowercase();
    // ASCII lowercasing keeps UTF-8 valid.
    f(std::str::from_utf8(dst).unwrap_or(""))
}

/// Longer than any canonical host a policy accepts (253 bytes, or a bracketed IPv6 address).
const MAX_HOST_KEY: usize = 256;
