//! The key → endpoint map behind the watch: turns etcd's key events into address updates.

use std::collections::HashMap;

use super::error::InvalidValue;
use crate::discover::Update;
use crate::endpoint::Endpoint;

/// The endpoints currently published under the prefix, by etcd key.
///
/// A delete event carries only the key, so the address it removes comes from here. Two keys
/// may name the same address; the address leaves the set only when the last of them goes.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    keys: HashMap<Vec<u8>, Endpoint>,
}

impl Tracker {
    /// Replaces everything with a full listing of keys and their decoded values. A key whose
    /// value did not decode is reported and keeps its last good endpoint, if it had one.
    pub(crate) fn reset<I>(&mut self, kvs: I) -> Vec<Result<Update, InvalidValue>>
    where
        I: IntoIterator<Item = (Vec<u8>, Result<Endpoint, InvalidValue>)>,
    {
        let mut out = Vec::new();
        let mut keys = HashMap::new();
        for (key, value) in kvs {
            match value {
                Ok(ep) => {
                    keys.insert(key, ep);
                }
                Err(e) => {
                    out.push(Err(e));
                    if let Some(old) = self.keys.remove(&key) {
                        keys.insert(key, old);
                    }
                }
            }
        }
        self.keys = keys;
        let mut endpoints: Vec<Endpoint> = self.keys.values().cloned().collect();
        // Deterministic order; equal addresses from two keys collapse to one.
        endpoints.sort_by_key(|e| e.addr());
        endpoints.dedup_by_key(|e| e.addr());
        out.push(Ok(Update::Reset(endpoints)));
        out
    }

    /// A key was written with this decoded value. A value that did not decode is reported and
    /// the key keeps its last good endpoint, if it had one.
    pub(crate) fn put(
        &mut self,
        key: Vec<u8>,
        value: Result<Endpoint, InvalidValue>,
        out: &mut Vec<Result<Update, InvalidValue>>,
    ) {
        let ep = match value {
            Ok(ep) => ep,
            Err(e) => return out.push(Err(e)),
        };
        let addr = ep.addr();
        let replaced = self.keys.insert(key, ep.clone());
        if let Some(old) = replaced.filter(|old| old.addr() != addr) {
            self.release(old, out);
        }
        out.push(Ok(Update::Insert(ep)));
    }

    /// A key was deleted.
    pub(crate) fn delete(&mut self, key: &[u8], out: &mut Vec<Result<Update, InvalidValue>>) {
        if let Some(old) = self.keys.remove(key) {
            self.release(old, out);
        }
    }

    /// `old` no longer comes from its key: remove its address, unless another key still
    /// publishes it, in which case that key's endpoint is current again.
    fn release(&self, old: Endpoint, out: &mut Vec<Result<Update, InvalidValue>>) {
        match self.keys.values().find(|e| e.addr() == old.addr()) {
            Some(other) => out.push(Ok(Update::Insert(other.clone()))),
            None => out.push(Ok(Update::Remove(old.addr()))),
        }
    }
}
