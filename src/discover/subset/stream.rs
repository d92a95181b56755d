use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::{SubsetError, Subsetting};
use crate::discover::Update;
use crate::endpoint::Endpoint;

pin_project! {
    /// A discovery source that passes on only this client's subset of another source's
    /// endpoints.
    ///
    /// `Subset` keeps the full set its source `D` describes, and emits [`Update`]s that keep its
    /// consumer (a [`Balance`](crate::balance::Balance), usually) holding exactly the
    /// [`Subsetting`]'s choice of that set:
    ///
    /// - The subset is recomputed once per burst: every update the source has ready is applied
    ///   to the full set first (up to 1,024 at a time), so a rolling deploy costs one
    ///   recomputation, and no intermediate state is ever emitted.
    /// - The changes go out as the minimal diff: an [`Update::Insert`] for each endpoint that
    ///   entered the subset or whose metadata changed, an [`Update::Remove`] for each that left.
    ///   The first emission, and any change whose diff would be longer than the subset itself,
    ///   is one [`Update::Reset`] instead. Updates to endpoints outside the subset that do not
    ///   move the window emit nothing.
    /// - Errors from the source pass through unchanged, after the updates that preceded them.
    /// - The subsetting can be replaced at run time through a [`SubsetHandle`] (a new client
    ///   count after the client fleet was resized, say); the next poll recomputes.
    /// - The stream ends once the source has ended and no [`SubsetHandle`] is left.
    ///
    /// Each recomputation costs O(n) in the size n of the full set (a walk of the sorted set)
    /// plus O(k) for the diff.
    pub struct Subset<D>
    where
        D: Stream,
    {
        #[pin]
        inner: D,
        // An error from the source, held until the updates before it are out.
        held: Option<D::Item>,
        state: State,
    }
}

/// Replaces the [`Subsetting`] of a running [`Subset`] stream.
///
/// Cheap to clone and usable from any thread. While a handle exists the stream stays open even
/// after its source ended, so the subset can still change; dropping the last handle lets it end.
pub struct SubsetHandle {
    shared: Arc<Shared>,
}

struct State {
    subsetting: Subsetting,
    generation: u64,
    // The full set, sorted by address: the ring every client agrees on.
    full: BTreeMap<SocketAddr, Endpoint>,
    // The subset as last computed, sorted by address.
    chosen: Vec<Endpoint>,
    queue: VecDeque<Update>,
    dirty: bool,
    emitted: bool,
    inner_done: bool,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    control: Mutex<Control>,
}

#[derive(Debug)]
struct Control {
    subsetting: Subsetting,
    generation: u64,
    handles: usize,
    waker: Option<Waker>,
}

impl<D: Stream> Subset<D> {
    /// Wraps `discover`, passing on the subset `subsetting` chooses.
    pub fn new(discover: D, subsetting: Subsetting) -> Self {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control {
                subsetting,
                generation: 0,
                handles: 0,
                waker: None,
            }),
        });
        Subset {
            inner: discover,
            held: None,
            state: State {
                subsetting,
                generation: 0,
                full: BTreeMap::new(),
                chosen: Vec::new(),
                queue: VecDeque::new(),
                dirty: false,
                emitted: false,
                inner_done: false,
                shared,
            },
        }
    }

    /// A handle that can replace the subsetting while the stream runs.
    pub fn handle(&self) -> SubsetHandle {
        SubsetHandle::new(Arc::clone(&self.state.shared))
    }

    /// The subsetting the stream currently applies (a replacement through a handle takes
    /// effect at the next poll).
    pub fn subsetting(&self) -> Subsetting {
        self.state.subsetting
    }

    /// The subset as last computed, sorted by address.
    pub fn selected(&self) -> &[Endpoint] {
        &self.state.chosen
    }

    /// The number of endpoints in the full set the source describes.
    pub fn full_len(&self) -> usize {
        self.state.full.len()
    }

    /// The source.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The source, dropping the state.
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D, E> Stream for Subset<D>
where
    D: Stream<Item = Result<Update, E>>,
{
    type Item = Result<Update, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let state = this.state;
        loop {
            if let Some(update) = state.queue.pop_front() {
                return Poll::Ready(Some(Ok(update)));
            }
            if let Some(err) = this.held.take() {
                return Poll::Ready(Some(err));
            }

            let mut drained = 0;
            while !state.inner_done && drained < MAX_BURST {
                match this.inner.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(update))) => state.apply(update),
                    Poll::Ready(Some(Err(e))) => {
                        *this.held = Some(Err(e));
                        break;
                    }
                    Poll::Ready(None) => state.inner_done = true,
                    Poll::Pending => break,
                }
                drained += 1;
            }

            let ended = {
                let mut control = lock(&state.shared.control);
                if control.generation != state.generation {
                    state.generation = control.generation;
                    if control.subsetting != state.subsetting {
                        state.subsetting = control.subsetting;
                        state.dirty = true;
                    }
                }
                let ended = state.inner_done && control.handles == 0;
                if !ended {
                    match &mut control.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        w => *w = Some(cx.waker().clone()),
                    }
                }
                ended
            };

            if state.dirty {
                state.recompute();
            }
            if !state.queue.is_empty() || this.held.is_some() {
                continue;
            }
            if ended {
                return Poll::Ready(None);
            }
            if drained == MAX_BURST {
                // The source may have more ready; let other tasks run before draining it.
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
    }
}

impl<D> fmt::Debug for Subset<D>
where
    D: Stream + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subset")
            .field("inner", &self.inner)
            .field("subsetting", &self.state.subsetting)
            .field("full_len", &self.state.full.len())
            .field("selected", &self.state.chosen.len())
            .finish_non_exhaustive()
    }
}

impl SubsetHandle {
    fn new(shared: Arc<Shared>) -> Self {
        lock(&shared.control).handles += 1;
        SubsetHandle { shared }
    }

    /// Replaces the subsetting; the stream recomputes its subset at its next poll. Setting the
    /// subsetting already in force does nothing.
    pub fn set(&self, subsetting: Subsetting) {
        let waker = {
            let mut control = lock(&self.shared.control);
            if control.subsetting == subsetting {
                return;
            }
            control.subsetting = subsetting;
            control.generation += 1;
            control.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Makes this client `index` of `count`, keeping the current subset size: the call to make
    /// when the client fleet is resized.
    ///
    /// # Errors
    ///
    /// [`SubsetError::ZeroClients`] or [`SubsetError::IndexOutOfRange`], naming the value; the
    /// subsetting is then unchanged.
    pub fn set_clients(&self, index: usize, count: usize) -> Result<(), SubsetError> {
        let size = self.get().size();
        self.set(Subsetting::by_index(index, count, size)?);
        Ok(())
    }

    /// The subsetting most recently set (or the one the stream was built with).
    pub fn get(&self) -> Subsetting {
        lock(&self.shared.control).subsetting
    }
}

impl Clone for SubsetHandle {
    fn clone(&self) -> Self {
        SubsetHandle::new(Arc::clone(&self.shared))
    }
}

impl Drop for SubsetHandle {
    fn drop(&mut self) {
        let waker = {
            let mut control = lock(&self.shared.control);
            control.handles -= 1;
            if control.handles == 0 {
                control.waker.take()
            } else {
                None
            }
        };
        // The stream may be waiting only for handles to go away.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for SubsetHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubsetHandle")
            .field("subsetting", &self.get())
            .finish()
    }
}

impl State {
    fn apply(&mut self, update: Update) {
        match update {
            Update::Insert(ep) => {
                self.full.insert(ep.addr(), ep);
                self.dirty = true;
            }
            Update::Remove(addr) => {
                if self.full.remove(&addr).is_some() {
                    self.dirty = true;
                }
            }
            Update::Reset(list) => {
                self.full = list.into_iter().map(|ep| (ep.addr(), ep)).collect();
                self.dirty = true;
            }
        }
    }

    /// Computes the subset of the full set and queues the updates that turn the last one into
    /// it.
    fn recompute(&mut self) {
        self.dirty = false;
        let indices = self.subsetting.indices(self.full.len());
        let mut next: Vec<&Endpoint> = Vec::with_capacity(indices.len());
        let mut values = self.full.values();
        let mut at = 0;
        for i in indices {
            // Indices are ascending and below the set's length, so `nth` always finds one.
            if let Some(ep) = values.nth(i - at) {
                next.push(ep);
            }
            at = i + 1;
        }

        let mut old = std::mem::take(&mut self.chosen).into_iter().peekable();
        let mut chosen = Vec::with_capacity(next.len());
        let mut diff = Vec::new();
        for ep in next {
            while let Some(gone) = old.next_if(|o| o.addr() < ep.addr()) {
                diff.push(Update::Remove(gone.addr()));
            }
            match old.next_if(|o| o.addr() == ep.addr()) {
                Some(same) if same == *ep => chosen.push(same),
                _ => {
                    diff.push(Update::Insert(ep.clone()));
                    chosen.push(ep.clone());
                }
            }
        }
        diff.extend(old.map(|gone| Update::Remove(gone.addr())));

        if !self.emitted || diff.len() > chosen.len() {
            self.queue.push_back(Update::Reset(chosen.clone()));
        } else {
            self.queue.extend(diff);
        }
        self.emitted = true;
        self.chosen = chosen;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic: every critical section is a few
    // field assignments.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most source updates applied before one recomputation.
const MAX_BURST: usize = 1024;
