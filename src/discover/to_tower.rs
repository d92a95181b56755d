use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{Stream, TryStream};
use pin_project_lite::pin_project;
use tower::discover::Change;

use super::Update;
use crate::endpoint::Endpoint;

pin_project! {
    /// Turns one of our discovery sources into a [`tower::discover::Discover`], so tower's own
    /// balancers (for example `tower::balance::p2c::Balance`) can be fed from it.
    ///
    /// tower's model has only insert and remove, keyed here by address; an [`Update::Reset`] is
    /// turned into the removes and inserts that take tower's set to the new one, and an insert
    /// that changes nothing is not passed on. `make` turns each endpoint into the service tower
    /// holds (for example a client wrapped in `tower::load::PendingRequests`).
    ///
    /// # Examples
    ///
    /// ```
    /// use tower_mesh::discover::{Static, ToTower};
    /// use tower_mesh::endpoint::Endpoint;
    ///
    /// // A tower Discover whose services are the endpoints' addresses.
    /// let source = Static::from_addrs(["127.0.0.1:1".parse().unwrap()]);
    /// let discover = ToTower::new(source, |ep: Endpoint| ep.addr());
    /// # drop(discover);
    /// ```
    pub struct ToTower<D, F> {
        #[pin]
        source: D,
        make: F,
        current: HashMap<SocketAddr, Endpoint>,
        queue: VecDeque<Change<SocketAddr, Endpoint>>,
    }
}

impl<D, F> ToTower<D, F> {
    /// Adapts `source`, building each tower service with `make`.
    pub fn new(source: D, make: F) -> Self {
        ToTower {
            source,
            make,
            current: HashMap::new(),
            queue: VecDeque::new(),
        }
    }
}

impl<D: std::fmt::Debug, F> std::fmt::Debug for ToTower<D, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToTower")
            .field("source", &self.source)
            .field("endpoints", &self.current.len())
            .finish()
    }
}

fn apply(
    current: &mut HashMap<SocketAddr, Endpoint>,
    queue: &mut VecDeque<Change<SocketAddr, Endpoint>>,
    update: Update,
) {
    match update {
        Update::Insert(ep) => {
            if current.get(&ep.addr()) != Some(&ep) {
                current.insert(ep.addr(), ep.clone());
                queue.push_back(Change::Insert(ep.addr(), ep));
            }
        }
        Update::Remove(addr) => {
            if current.remove(&addr).is_some() {
                queue.push_back(Change::Remove(addr));
            }
        }
        Update::Reset(list) => {
            let mut next: HashMap<SocketAddr, Endpoint> = HashMap::with_capacity(list.len());
            for ep in list {
                next.insert(ep.addr(), ep);
            }
            let mut gone: Vec<SocketAddr> = current
                .keys()
                .filter(|a| !next.contains_key(a))
                .copied()
                .collect();
            gone.sort_unstable();
            for addr in gone {
                current.remove(&addr);
                queue.push_back(Change::Remove(addr));
            }
            let mut added: Vec<Endpoint> = next
                .into_values()
                .filter(|ep| current.get(&ep.addr()) != Some(ep))
                .collect();
            added.sort_unstable_by_key(Endpoint::addr);
            for ep in added {
                current.insert(ep.addr(), ep.clone());
                queue.push_back(Change::Insert(ep.addr(), ep));
            }
        }
    }
}

impl<D, F, S> Stream for ToTower<D, F>
where
    D: TryStream<Ok = Update>,
    F: FnMut(Endpoint) -> S,
{
    type Item = Result<Change<SocketAddr, S>, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(change) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(match change {
                    Change::Insert(addr, ep) => Change::Insert(addr, (this.make)(ep)),
                    Change::Remove(addr) => Change::Remove(addr),
                })));
            }
            match this.source.as_mut().try_poll_next(cx) {
                Poll::Ready(Some(Ok(update))) => apply(this.current, this.queue, update),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
