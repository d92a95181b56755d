//! The immutable endpoint set the request path reads.

use std::collections::HashMap;
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

    /// Every endpoint: those in this snapshot, with the driver's `status` rows taking
    /// precedence (an ejected endpoint serving in panic mode is in both).
    pub(crate) fn stats(&self, status: &[StatusRow]) -> Vec<EndpointStats> {
        let by_addr: HashMap<_, &StatusRow> =
            status.iter().map(|r| (r.endpoint.addr(), r)).collect();
        let mut all: Vec<EndpointStats> = self
            .endpoints
            .iter()
            .zip(self.loads.iter())
            .filter(|(ep, _)| !by_addr.contains_key(&ep.addr()))
            .map(|(ep, load)| {
                EndpointStats::new(
                    Endpoint::clone(ep),
                    EndpointState::Ready,
                    Some(load),
                    0,
                    true,
                )
            })
            .collect();
        all.extend(status.iter().map(|r| {
            EndpointStats::new(
                Endpoint::clone(&r.endpoint),
                r.state.clone(),
                r.load.as_ref(),
                r.ejections,
                r.in_service,
            )
        }));
        all.sort_by_key(|s| s.endpoint().addr());
        all
    }
}

/// What the driver says about one endpoint that is not simply ready and healthy.
#[derive(Debug, Clone)]
pub(crate) struct StatusRow {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) state: EndpointState,
    pub(crate) load: Option<Load>,
    pub(crate) ejections: u64,
    pub(crate) in_service: bool,
}
