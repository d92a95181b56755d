use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tower::discover::{Change, Discover};

use super::Update;
use crate::endpoint::Endpoint;

pin_project! {
    /// Turns a [`tower::discover::Discover`] whose services are [`Endpoint`]s into one of our
    /// discovery sources, so any tower discoverer can feed a [`Balance`](crate::balance::Balance).
    ///
    /// tower keys changes by its own key type; this adapter remembers which address each key
    /// named, so a `Change::Remove(key)` removes the right endpoint. When two live keys name the
    /// same address, the address stays until both are removed, with the metadata of the most
    /// recent insert.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::discover::Change;
    /// use tower_mesh::discover::FromTower;
    /// use tower_mesh::endpoint::Endpoint;
    ///
    /// // Any `TryStream` of `Change<K, Endpoint>` is a tower `Discover`.
    /// let changes = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
    ///     Change::Insert("api-1", Endpoint::new("127.0.0.1:1".parse().unwrap())),
    /// )]);
    /// let source = FromTower::new(changes);
    /// # drop(source);
    /// ```
    pub struct FromTower<D: Discover> {
        #[pin]
        inner: D,
        keys: HashMap<D::Key, SocketAddr>,
        live: HashMap<SocketAddr, usize>,
        queue: VecDeque<Update>,
    }
}

impl<D: Discover> FromTower<D> {
    /// Adapts a tower discoverer.
    pub fn new(inner: D) -> Self {
        FromTower {
            inner,
            keys: HashMap::new(),
            live: HashMap::new(),
            queue: VecDeque::new(),
        }
    }
}

impl<D: Discover + std::fmt::Debug> std::fmt::Debug for FromTower<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromTower")
            .field("inner", &self.inner)
            .field("endpoints", &self.live.len())
            .finish()
    }
}

impl<D> Stream for FromTower<D>
where
    D: Discover<Service = Endpoint>,
    D::Key: Hash + Clone,
{
    type Item = Result<Update, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(update) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(update)));
            }
            let change = match this.inner.as_mut().poll_discover(cx) {
                Poll::Ready(Some(Ok(change))) => change,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match change {
                Change::Insert(key, ep) => {
                    let addr = ep.addr();
                    match this.keys.insert(key, addr) {
                        // The key already named this address: only the metadata changes.
                        Some(old) if old == addr => {}
                        old => {
                            if let Some(old) = old {
                                release(this.live, this.queue, old);
                            }
                            *this.live.entry(addr).or_insert(0) += 1;
                        }
                    }
                    this.queue.push_back(Update::Insert(ep));
                }
                Change::Remove(key) => {
                    if let Some(addr) = this.keys.remove(&key) {
                        release(this.live, this.queue, addr);
                    }
                }
            }
        }
    }
}

fn release(live: &mut HashMap<SocketAddr, usize>, queue: &mut VecDeque<Update>, addr: SocketAddr) {
    if let Some(n) = live.get_mut(&addr) {
        *n -= 1;
        if *n == 0 {
            live.remove(&addr);
            queue.push_back(Update::Remove(addr));
        }
    }
}
