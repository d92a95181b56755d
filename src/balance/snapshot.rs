//! The immutable endpoint set the request path reads.

use std::sync::Arc;

use tokio::time::Instant;

use super::chunked::Chunked;
use super::stats::{EndpointState, EndpointStats};
use crate::endpoint::Endpoint;
use crate::load::Load;

/// One published endpoint set. Parallel sequences indexed by the picker's indices, so a pick
/// touches only the data it needs; chunked, so the next set shares every chunk that did not
/// change.
pub(crate) struct Snapshot<T, S> {
    pub(crate) table: T,
    pub(crate) clients: Chunked<S>,
    pub(crate) loads: Chunked<Load>,
    pub(crate) endpoints: Chunked<Arc<Endpoint>>,
    /// When the set last became empty; `None` while it has endpoints.
    pub(crate) empty_since: Option<Instant>,
}

impl<T, S> Snapshot<T, S> {
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub(crate) fn stats(&self, pending: &[(Arc<Endpoint>, EndpointState)]) -> Vec<EndpointStats> {
        let ready = self
            .endpoints
            .iter()
            .zip(self.loads.iter())
            .map(|(ep, load)| EndpointStats::new(Endpoint::clone(ep), EndpointState::Ready, load));
        let pending = pending
            .iter()
            .map(|(ep, state)| EndpointStats::pending(Endpoint::clone(ep), state.clone()));
        let mut all: Vec<EndpointStats> = ready.chain(pending).collect();
        all.sort_by_key(|s| s.endpoint().addr());
        all
    }
}
