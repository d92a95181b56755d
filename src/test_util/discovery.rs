//! [`MockDiscovery`]: a discovery source a test drives by hand, built on [`Watch`].

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use tokio::sync::watch;

use super::error::MockDiscoveryError;
use crate::discover::{Update, Watch, WatchUpdates};
use crate::endpoint::Endpoint;
use crate::error::BoxError;

/// A discovery source for tests: a cloneable handle that inserts, updates and removes
/// endpoints, injects discovery errors, and waits until the consumer (a
/// [`Balance`](crate::balance::Balance)) has applied everything sent so far.
///
/// Created in a pair with its [`MockUpdates`] stream by [`MockDiscovery::new`]; give the stream
/// to the balancer. Updates travel through a [`Watch`], so they behave exactly as a
/// production `Watch` does; errors injected with [`fail`](MockDiscovery::fail) arrive in order
/// between them, as an `Err` item (the balancer logs it and keeps its last good set). The
/// stream ends when every handle has been dropped.
///
/// The handle also keeps the set it has sent ([`endpoints`](MockDiscovery::endpoints)), so
/// [`update`](MockDiscovery::update) can change one endpoint's metadata in place.
///
/// # Waiting for the balancer
///
/// [`synced`](MockDiscovery::synced) resolves once the consumer has taken every item sent
/// before the call, found the stream empty, and then come back for more. A `Balance` drains
/// its discovery source until it finds it empty, publishes the endpoint set built from what
/// it took, and only then polls the source again, so after `synced`
/// the balancer's [`endpoints`](crate::balance::Balance::endpoints) and its routing reflect the
/// changes, without sleeping and under paused time. One limit: an endpoint whose client is
/// still being created (a `MakeService` future that has not finished) is known but not ready
/// yet; wait for it by polling [`Balance::endpoints`](crate::balance::Balance::endpoints).
///
/// # Examples
///
/// ```
/// use tower::ServiceExt;
/// use tower_mesh::balance::{Balance, RoundRobin};
/// use tower_mesh::endpoint::Endpoint;
/// use tower_mesh::test_util::{FixedLatency, MockDiscovery};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// let (discovery, updates) = MockDiscovery::new();
/// let endpoints = FixedLatency::new(std::time::Duration::ZERO);
/// let balance = Balance::builder(RoundRobin::new()).build(updates, endpoints.clone())?;
///
/// let a: std::net::SocketAddr = "127.0.0.1:9001".parse()?;
/// discovery.insert(Endpoint::new(a))?;
/// discovery.synced().await?;
/// assert_eq!(balance.ready_len(), 1);
/// assert_eq!(balance.clone().oneshot(()).await?, a); // served by `a`
///
/// discovery.fail("registry unreachable")?; // logged; the set is kept
/// discovery.synced().await?;
/// assert_eq!(balance.ready_len(), 1);
///
/// discovery.remove(a)?;
/// discovery.synced().await?;
/// assert_eq!(balance.ready_len(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MockDiscovery {
    watch: Watch,
    shared: Arc<Shared>,
}

/// The stream half of a [`MockDiscovery`]; give it to a balancer as its discovery source.
#[derive(Debug)]
pub struct MockUpdates {
    updates: WatchUpdates,
    shared: Arc<Shared>,
    /// Updates (not errors) taken from `updates` so far.
    updates_taken: u64,
}

impl MockDiscovery {
    /// A new handle and the stream its updates arrive on.
    pub fn new() -> (MockDiscovery, MockUpdates) {
        let (watch, updates) = Watch::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            progress: watch::Sender::new(Progress::default()),
        });
        let stream = MockUpdates {
            updates,
            shared: Arc::clone(&shared),
            updates_taken: 0,
        };
        (MockDiscovery { watch, shared }, stream)
    }

    /// Adds an endpoint, or replaces the metadata of the endpoint with the same address.
    pub fn insert(&self, endpoint: Endpoint) -> Result<(), MockDiscoveryError> {
        let mut state = self.shared.lock();
        state.set.insert(endpoint.addr(), endpoint.clone());
        self.send(&mut state, Update::Insert(endpoint))
    }

    /// Changes the endpoint at `addr` (its weight, zone, labels, identity) with `change`, and
    /// sends the result as an insert.
    ///
    /// # Errors
    ///
    /// [`MockDiscoveryError::UnknownEndpoint`] when no endpoint with this address was sent
    /// (or it was removed since), [`MockDiscoveryError::AddressChanged`] when `change` returns
    /// an endpoint with another address (remove and insert instead), and
    /// [`MockDiscoveryError::Closed`].
    pub fn update(
        &self,
        addr: SocketAddr,
        change: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<(), MockDiscoveryError> {
        let current = self.shared.lock().set.get(&addr).cloned();
        let Some(current) = current else {
            return Err(MockDiscoveryError::UnknownEndpoint(addr));
        };
        // `change` runs without the lock held, so it may use the handle itself.
        let changed = change(current);
        if changed.addr() != addr {
            return Err(MockDiscoveryError::AddressChanged {
                from: addr,
                to: changed.addr(),
            });
        }
        let mut state = self.shared.lock();
        if !state.set.contains_key(&addr) {
            // Removed by another handle meanwhile.
            return Err(MockDiscoveryError::UnknownEndpoint(addr));
        }
        state.set.insert(addr, changed.clone());
        self.send(&mut state, Update::Insert(changed))
    }

    /// Removes the endpoint with this address (an unknown address is sent all the same: the
    /// balancer ignores it).
    pub fn remove(&self, addr: SocketAddr) -> Result<(), MockDiscoveryError> {
        let mut state = self.shared.lock();
        state.set.remove(&addr);
        self.send(&mut state, Update::Remove(addr))
    }

    /// Replaces the whole set.
    pub fn reset(
        &self,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> Result<(), MockDiscoveryError> {
        let endpoints: Vec<Endpoint> = endpoints.into_iter().collect();
        let mut state = self.shared.lock();
        state.set = endpoints.iter().map(|e| (e.addr(), e.clone())).collect();
        self.send(&mut state, Update::Reset(endpoints))
    }

    /// Makes the source yield `error` after the updates sent so far, as a failing registry
    /// would. The set is unchanged.
    pub fn fail(&self, error: impl Into<BoxError>) -> Result<(), MockDiscoveryError> {
        let mut state = self.shared.lock();
        if self.watch.is_closed() {
            return Err(MockDiscoveryError::Closed);
        }
        let position = state.updates_sent;
        state.errors.push_back((position, error.into()));
        state.sent += 1;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The endpoints as this handle (and its clones) last sent them, sorted by address.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.shared.lock().set.values().cloned().collect()
    }

    /// Waits until the consumer has taken every update and error sent before this call, found
    /// the stream empty, and polled it again. For a [`Balance`](crate::balance::Balance) that means the changes
    /// are published (see [Waiting for the balancer](MockDiscovery#waiting-for-the-balancer)).
    ///
    /// # Errors
    ///
    /// [`MockDiscoveryError::Closed`] when the stream is dropped (the balancer is gone) before
    /// that.
    pub async fn synced(&self) -> Result<(), MockDiscoveryError> {
        let target = self.shared.lock().sent;
        if target == 0 {
            // Nothing to apply. (A consumer that found the stream empty polls it again only
            // when woken, so waiting for a second poll here could wait forever.)
            return Ok(());
        }
        let mut progress = self.shared.progress.subscribe();
        let seen = progress
            .wait_for(|p| p.dropped || p.synced(target))
            .await
            .map_err(|_| MockDiscoveryError::Closed)?;
        if seen.synced(target) {
            Ok(())
        } else {
            Err(MockDiscoveryError::Closed)
        }
    }

    /// Whether the stream half has been dropped, so updates go nowhere.
    pub fn is_closed(&self) -> bool {
        self.watch.is_closed()
    }

    fn send(&self, state: &mut State, update: Update) -> Result<(), MockDiscoveryError> {
        self.watch
            .send(update)
            .map_err(|_| MockDiscoveryError::Closed)?;
        state.updates_sent += 1;
        state.sent += 1;
        Ok(())
    }
}

impl Stream for MockUpdates {
    type Item = Result<Update, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Held from the look at the errors to the waker's registration, so an error injected
        // in between cannot be missed.
        let mut state = this.shared.lock();
        let error = match state.errors.front() {
            Some((position, _)) if *position == this.updates_taken => {
                state.errors.pop_front().map(|(_, e)| e)
            }
            _ => None,
        };
        let poll = match error {
            Some(e) => Poll::Ready(Some(Err(e))),
            None => match Pin::new(&mut this.updates).poll_next(cx) {
                Poll::Ready(Some(Ok(update))) => {
                    this.updates_taken += 1;
                    Poll::Ready(Some(Ok(update)))
                }
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
        };
        drop(state);
        let (taken, idle) = match &poll {
            Poll::Ready(Some(_)) => (true, false),
            Poll::Ready(None) => (false, false),
            Poll::Pending => (false, true),
        };
        this.shared.progress.send_modify(|p| p.polled(taken, idle));
        poll
    }
}

impl Drop for MockUpdates {
    fn drop(&mut self) {
        self.shared.progress.send_modify(|p| p.dropped = true);
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every write is one step).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
struct State {
    /// The set as sent.
    set: BTreeMap<SocketAddr, Endpoint>,
    /// Items (updates and errors) sent.
    sent: u64,
    /// Updates sent through the watch.
    updates_sent: u64,
    /// Injected errors, each with the number of updates that come before it.
    errors: VecDeque<(u64, BoxError)>,
    /// The consumer's waker from its last poll that found nothing: an injected error travels
    /// outside the watch channel, so [`MockDiscovery::fail`] must wake it itself.
    waker: Option<Waker>,
}

/// What the consumer has done with the stream.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Polls of the stream.
    polls: u64,
    /// Items taken.
    taken: u64,
    /// `taken` at the first poll that found nothing more, and that poll's number.
    idle: Option<(u64, u64)>,
    dropped: bool,
}

impl Progress {
    fn polled(&mut self, taken: bool, idle: bool) {
        self.polls += 1;
        if taken {
            self.taken += 1;
        }
        if idle && self.idle.is_none_or(|(at, _)| at != self.taken) {
            self.idle = Some((self.taken, self.polls));
        }
    }

    /// Whether `target` items were taken, the stream then found nothing more, and it was
    /// polled again after that: the consumer finished handling the items in between.
    fn synced(&self, target: u64) -> bool {
        self.idle
            .is_some_and(|(taken, poll)| taken >= target && self.polls > poll)
    }
}
