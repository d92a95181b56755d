//! Request bodies that can be sent more than once.
//!
//! A retry needs the request again after the first attempt consumed it. A cloneable body is
//! simply cloned ([`ReplayableBody`]); a streaming body is wrapped in a [`ReplayBody`], which
//! forwards each frame to the attempt as it arrives and records it, up to a byte limit, for the
//! next attempt. This is the design of linkerd2-proxy's `ReplayBody`, extended so that copies
//! may be polled at the same time (a hedged request): the wrapped body is read by whichever copy
//! is furthest ahead, and the others read the recording behind it.

use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty, Full};

use crate::error::BoxError;

/// A request body that can produce a fresh copy of itself for another attempt.
///
/// The [`Http`](super::Http) retry policy replays a request only when its body implements
/// this trait and [`replay`](ReplayableBody::replay) returns `Some`.
///
/// For a plain cloneable body (`Full`, `Empty`, `String`, `Either` of such) the copy is a
/// clone of the body's *current* state: keep an unpolled original and send copies, as the
/// retry layer does. A [`ReplayBody`] copy always starts from the first byte, whichever handle
/// it is taken from.
pub trait ReplayableBody: Body {
    /// A body that yields the same frames from the start, or `None` when this body cannot be
    /// replayed (a [`ReplayBody`] that grew past its limit, or whose source failed).
    fn replay(&self) -> Option<Self>
    where
        Self: Sized;
}

/// A streaming body that can be replayed: frames are passed on as they arrive and recorded, up
/// to a byte limit, so that another attempt can send them again.
///
/// Every copy ([`replay`](ReplayBody::replay)) yields the whole body from its first byte: first
/// the recorded frames, then, when it has caught up with the copies before it, the rest of the
/// wrapped body, read from wherever they stopped. Nothing is buffered before the first attempt
/// sends it, so the first byte is not delayed.
///
/// Once more than `limit` data bytes have been read, the recording is dropped and
/// [`is_capped`](ReplayBody::is_capped) becomes true: [`replay`](ReplayBody::replay) returns
/// `None`, the copy that read past the limit carries on with the rest of the body, and a copy
/// that was still behind it fails with [`ReplayBodyError::Capped`]. Trailers are recorded but do
/// not count towards the limit.
///
/// An error of the wrapped body goes, boxed, to the copy that read it; after it the body cannot
/// be replayed, and other copies fail with [`ReplayBodyError::Failed`] where the error was.
///
/// `ReplayBody<B>` is `Send + Sync` when `B: Send`.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower_mesh::retry::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mesh::BoxError> {
/// let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64 * 1024);
/// let again = body.replay().expect("nothing read yet");
///
/// assert_eq!(body.collect().await?.to_bytes(), "hello"); // the first attempt
/// assert_eq!(again.collect().await?.to_bytes(), "hello"); // the retry, from the recording
/// # Ok(())
/// # }
/// ```
pub struct ReplayBody<B> {
    shared: Arc<Shared<B>>,
    /// The index, counted from the start of the body, of the next frame this copy yields.
    next: usize,
    /// The data bytes this copy has yielded.
    yielded: u64,
}

/// Why a copy of a [`ReplayBody`] could not yield the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayBodyError {
    /// Another copy read the body past the replay limit while this one was behind it, so the
    /// frames this copy needed were not kept.
    #[error("request body is larger than its replay limit of {limit} bytes")]
    Capped {
        /// The replay limit, in bytes.
        limit: usize,
    },
    /// The wrapped body failed while another copy was reading it; that copy got its error.
    #[error("request body failed on another attempt")]
    Failed,
}

impl<B> ReplayBody<B> {
    /// Wraps `body`, recording up to `limit` data bytes of it for replays.
    pub fn new(body: B, limit: usize) -> Self {
        let waiters = Arc::new(Waiters::default());
        ReplayBody {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    source: Source::Streaming(Box::pin(body)),
                    recorded: Vec::new(),
                    recorded_bytes: 0,
                    read: 0,
                    capped: false,
                }),
                waker: Waker::from(Arc::clone(&waiters)),
                waiters,
                limit,
            }),
            next: 0,
            yielded: 0,
        }
    }

    /// A copy of the body from its first byte, or `None` when the body cannot be replayed: it
    /// grew past its limit ([`is_capped`](ReplayBody::is_capped)), or it failed.
    pub fn replay(&self) -> Option<Self> {
        let state = self.shared.lock();
        if state.capped || matches!(state.source, Source::Failed) {
            return None;
        }
        Some(ReplayBody {
            shared: Arc::clone(&self.shared),
            next: 0,
            yielded: 0,
        })
    }

    /// Whether more than [`limit`](ReplayBody::limit) bytes have been read, so the body can no
    /// longer be replayed.
    pub fn is_capped(&self) -> bool {
        self.shared.lock().capped
    }

    /// The most data bytes recorded for replays.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let shared = &*this.shared;
        let mut state = shared.lock();

        if let Some(recorded) = state.recorded.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(match recorded {
                Recorded::Data(data) => {
                    this.yielded += data.len() as u64;
                    Frame::data(data.clone())
                }
                Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
            })));
        }
        if this.next < state.read {
            // Behind the copy that read past the limit, and the recording is gone.
            return Poll::Ready(Some(Err(ReplayBodyError::Capped {
                limit: shared.limit,
            }
            .into())));
        }

        // This copy is the furthest ahead: it reads the wrapped body.
        let body = match &mut state.source {
            Source::Streaming(body) => body,
            Source::Ended => return Poll::Ready(None),
            Source::Failed => return Poll::Ready(Some(Err(ReplayBodyError::Failed.into()))),
        };
        // Registered before polling so that a wake-up racing with this poll is not lost. The
        // wrapped body keeps the fan-out waker, which wakes every copy waiting here.
        shared.waiters.register(cx.waker());
        let polled = body
            .as_mut()
            .poll_frame(&mut Context::from_waker(&shared.waker));
        // Every copy waiting here was registered with the fan-out waker, which the wrapped body
        // wakes before it has anything more: none needs waking by hand.
        Poll::Ready(match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                state.source = Source::Ended;
                None
            }
            Poll::Ready(Some(Err(error))) => {
                state.source = Source::Failed;
                Some(Err(error.into()))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                if let Some(data) = frame.data_ref() {
                    this.yielded += data.len() as u64;
                }
                state.read += 1;
                this.next += 1;
                state.record(&frame, shared.limit);
                Some(Ok(frame))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        let state = self.shared.lock();
        if self.next < state.recorded.len() || self.next < state.read {
            return false;
        }
        match &state.source {
            Source::Streaming(body) => body.is_end_stream(),
            Source::Ended => true,
            Source::Failed => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let state = self.shared.lock();
        if state.capped && self.next < state.read {
            return SizeHint::default(); // an error comes next
        }
        // When not capped every frame read so far was recorded, and this copy has yielded a
        // prefix of them; when capped this copy is the one at the front and yielded them all.
        let recorded_rest = if state.capped {
            0
        } else {
            state.recorded_bytes.saturating_sub(self.yielded)
        };
        let source = match &state.source {
            Source::Streaming(body) => body.size_hint(),
            Source::Ended => SizeHint::with_exact(0),
            Source::Failed => return SizeHint::default(),
        };
        let mut hint = SizeHint::new();
        if let Some(upper) = source
            .upper()
            .and_then(|upper| upper.checked_add(recorded_rest))
        {
            hint.set_upper(upper);
        }
        // Cannot exceed the upper bound: the source's lower bound is at most its upper bound.
        hint.set_lower(
            source
                .lower()
                .saturating_add(recorded_rest)
                .min(hint.upper().unwrap_or(u64::MAX)),
        );
        hint
    }
}

impl<B> ReplayableBody for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn replay(&self) -> Option<Self> {
        ReplayBody::replay(self)
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayBody")
            .field("limit", &self.shared.limit)
            .field("next_frame", &self.next)
            .field("yielded_bytes", &self.yielded)
            .finish_non_exhaustive()
    }
}

impl ReplayableBody for String {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D: Buf + Clone> ReplayableBody for Full<D> {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D: Buf> ReplayableBody for Empty<D> {
    fn replay(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl<L, R> ReplayableBody for Either<L, R>
where
    Either<L, R>: Body,
    L: ReplayableBody,
    R: ReplayableBody,
{
    fn replay(&self) -> Option<Self> {
        match self {
            Either::Left(left) => left.replay().map(Either::Left),
            Either::Right(right) => right.replay().map(Either::Right),
        }
    }
}

/// What every copy of one body shares.
struct Shared<B> {
    state: Mutex<State<B>>,
    /// The tasks of copies waiting for the wrapped body.
    waiters: Arc<Waiters>,
    /// `waiters` as a waker: the one the wrapped body is polled with.
    waker: Waker,
    limit: usize,
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panic while the lock was held (in the wrapped body's poll) leaves the state as it
        // was before that poll: every update happens after the poll returns.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State<B> {
    source: Source<B>,
    /// Frames `0..recorded.len()` of the body; emptied for good when capped.
    recorded: Vec<Recorded>,
    /// The data bytes in `recorded`.
    recorded_bytes: u64,
    /// How many frames have been read from the wrapped body.
    read: usize,
    capped: bool,
}

impl<B> State<B> {
    fn record(&mut self, frame: &Frame<Bytes>, limit: usize) {
        if self.capped {
            return;
        }
        if let Some(data) = frame.data_ref() {
            let total = self.recorded_bytes.saturating_add(data.len() as u64);
            if total > limit as u64 {
                self.cap();
            } else {
                self.recorded_bytes = total;
                self.recorded.push(Recorded::Data(data.clone()));
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            self.recorded.push(Recorded::Trailers(trailers.clone()));
        } else {
            // A kind of frame this version of http-body does not let us copy.
            self.cap();
        }
    }

    fn cap(&mut self) {
        self.capped = true;
        self.recorded = Vec::new();
        self.recorded_bytes = 0;
    }
}

enum Source<B> {
    Streaming(Pin<Box<B>>),
    Ended,
    Failed,
}

enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// The wakers of copies waiting for the wrapped body; as a waker, wakes them all.
#[derive(Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn register(&self, waker: &Waker) {
        let mut wakers = self.lock();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Waker>> {
        // A list of wakers cannot be left half-updated by a panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = mem::take(&mut *self.lock());
        for waker in wakers {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures_util::stream;
    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    use super::*;

    type Item = Result<Frame<Bytes>, io::Error>;

    /// What a body yielded, frame by frame, up to its end or first error.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Data(Bytes),
        Trailers(HeaderMap),
        Error(String),
    }

    fn seen(s: &'static str) -> Seen {
        Seen::Data(Bytes::from_static(s.as_bytes()))
    }

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    fn trailers() -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", "0".parse().unwrap());
        map
    }

    fn failure() -> Item {
        Err(io::Error::other("boom"))
    }

    fn frames(items: Vec<Item>) -> StreamBody<stream::Iter<std::vec::IntoIter<Item>>> {
        StreamBody::new(stream::iter(items))
    }

    /// A body fed by hand, frame by frame; it ends when the sender is dropped.
    fn channel() -> (
        mpsc::UnboundedSender<Item>,
        StreamBody<impl futures_core::Stream<Item = Item> + Send + Unpin>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        (
            tx,
            StreamBody::new(stream::poll_fn(move |cx| rx.poll_recv(cx))),
        )
    }

    /// The next frame, turned into something comparable; `None` at the end of the body.
    async fn next<B>(body: &mut ReplayBody<B>) -> Option<Seen>
    where
        B: Body + Send,
        B::Error: Into<BoxError>,
    {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the body made no progress")?;
        Some(match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => Seen::Data(data),
                Err(frame) => Seen::Trailers(frame.into_trailers().unwrap()),
            },
            Err(error) => Seen::Error(error.to_string()),
        })
    }

    async fn rest<B>(body: &mut ReplayBody<B>) -> Vec<Seen>
    where
        B: Body + Send,
        B::Error: Into<BoxError>,
    {
        let mut seen = Vec::new();
        while let Some(frame) = next(body).await {
            let failed = matches!(frame, Seen::Error(_));
            seen.push(frame);
            if failed {
                break;
            }
        }
        seen
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<CountWakes>, Waker) {
        let count = Arc::new(CountWakes::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn poll_once<B>(body: &mut ReplayBody<B>, waker: &Waker) -> Poll<Option<Seen>>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        Pin::new(body)
            .poll_frame(&mut Context::from_waker(waker))
            .map(|frame| {
                frame.map(|frame| match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => Seen::Data(data),
                        Err(frame) => Seen::Trailers(frame.into_trailers().unwrap()),
                    },
                    Err(error) => Seen::Error(error.to_string()),
                })
            })
    }

    #[tokio::test(start_paused = true)]
    async fn replays_exactly_the_bytes_and_trailers() {
        let body = frames(vec![
            data("hel"),
            data("lo"),
            Ok(Frame::trailers(trailers())),
        ]);
        let mut first = ReplayBody::new(body, 64);
        let mut second = first.replay().unwrap();
        let expected = vec![seen("hel"), seen("lo"), Seen::Trailers(trailers())];

        assert_eq!(rest(&mut first).await, expected);
        assert_eq!(rest(&mut second).await, expected);
        // A copy taken after the whole body was read, from a copy that read it.
        let mut third = second.replay().unwrap();
        assert_eq!(rest(&mut third).await, expected);
        assert!(!first.is_capped());
    }

    #[tokio::test(start_paused = true)]
    async fn continues_a_half_read_body() {
        let (tx, body) = channel();
        let original = ReplayBody::new(body, 64);
        tx.send(data("a")).unwrap();
        tx.send(data("b")).unwrap();

        let mut first = original.replay().unwrap();
        assert_eq!(next(&mut first).await, Some(seen("a")));
        drop(first); // the attempt failed after sending one frame

        let mut second = original.replay().unwrap();
        assert_eq!(next(&mut second).await, Some(seen("a"))); // recorded
        assert_eq!(next(&mut second).await, Some(seen("b"))); // read on from the source
        tx.send(Ok(Frame::trailers(trailers()))).unwrap();
        drop(tx);
        assert_eq!(rest(&mut second).await, vec![Seen::Trailers(trailers())]);

        let mut third = original.replay().unwrap();
        assert_eq!(
            rest(&mut third).await,
            vec![seen("a"), seen("b"), Seen::Trailers(trailers())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_of_exactly_the_limit_replays() {
        let mut body = ReplayBody::new(frames(vec![data("hel"), data("lo")]), 5);
        assert_eq!(rest(&mut body).await, vec![seen("hel"), seen("lo")]);
        assert!(!body.is_capped());
        let mut again = body.replay().expect("5 bytes fit a limit of 5");
        assert_eq!(rest(&mut again).await, vec![seen("hel"), seen("lo")]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_byte_over_the_limit_caps() {
        let body = frames(vec![
            data("hel"),
            data("lo!"),
            Ok(Frame::trailers(trailers())),
        ]);
        let mut body = ReplayBody::new(body, 5);
        assert_eq!(body.limit(), 5);
        assert_eq!(next(&mut body).await, Some(seen("hel")));
        assert!(!body.is_capped());
        assert!(body.replay().is_some());

        // The copy that reads past the limit still gets the whole body.
        assert_eq!(
            rest(&mut body).await,
            vec![seen("lo!"), Seen::Trailers(trailers())]
        );
        assert!(body.is_capped());
        assert!(body.replay().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_behind_the_capping_copy_fails() {
        let body = ReplayBody::new(frames(vec![data("hel"), data("lo!")]), 5);
        let mut behind = body.replay().unwrap();
        let mut ahead = body;
        assert_eq!(rest(&mut ahead).await, vec![seen("hel"), seen("lo!")]);

        assert_eq!(behind.size_hint().upper(), None);
        let error = Pin::new(&mut behind)
            .poll_frame(&mut Context::from_waker(Waker::noop()))
            .map(|frame| frame.unwrap().unwrap_err());
        let Poll::Ready(error) = error else {
            panic!("a copy behind a capped body must fail at once")
        };
        assert_eq!(
            error.downcast_ref::<ReplayBodyError>(),
            Some(&ReplayBodyError::Capped { limit: 5 })
        );
        assert!(!behind.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn errors_of_the_source_pass_through() {
        let body = ReplayBody::new(frames(vec![data("ab"), failure(), data("never")]), 64);
        let mut behind = body.replay().unwrap();
        let mut ahead = body;

        assert_eq!(next(&mut ahead).await, Some(seen("ab")));
        let error = ahead.frame().await.unwrap().unwrap_err();
        let io = error
            .downcast_ref::<io::Error>()
            .expect("the source's own error");
        assert_eq!(io.to_string(), "boom");
        assert!(ahead.replay().is_none(), "a failed body is not replayed");
        assert!(!ahead.is_capped());

        assert_eq!(
            rest(&mut behind).await,
            vec![seen("ab"), Seen::Error(ReplayBodyError::Failed.to_string())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn size_hint_counts_the_recording_and_the_source() {
        let mut body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let again = body.replay().unwrap();
        assert_eq!(rest(&mut body).await, vec![seen("hello")]);
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.is_end_stream());
        assert_eq!(again.size_hint().exact(), Some(5));
        assert!(!again.is_end_stream());

        // A source of unknown length: the recording is a lower bound.
        let mut body = ReplayBody::new(frames(vec![data("abc"), data("de")]), 64);
        assert_eq!(next(&mut body).await, Some(seen("abc")));
        let mut again = body.replay().unwrap();
        assert_eq!(again.size_hint().lower(), 3);
        assert_eq!(again.size_hint().upper(), None);
        assert_eq!(next(&mut again).await, Some(seen("abc")));
        assert_eq!(again.size_hint().lower(), 0);

        // A source with bounds: both move by the recorded bytes.
        let mut body = ReplayBody::new(Bounded(frames(vec![data("abc"), data("de")])), 64);
        assert_eq!(next(&mut body).await, Some(seen("abc")));
        let again = body.replay().unwrap();
        assert_eq!(body.size_hint().lower(), 1);
        assert_eq!(body.size_hint().upper(), Some(10));
        assert_eq!(again.size_hint().lower(), 4);
        assert_eq!(again.size_hint().upper(), Some(13));

        let empty = ReplayBody::new(Empty::<Bytes>::new(), 64);
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }

    /// A stream body with made-up bounds: lower 1, upper 10.
    struct Bounded<B>(B);

    impl<B: Body + Unpin> Body for Bounded<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }

        fn size_hint(&self) -> SizeHint {
            let mut hint = SizeHint::new();
            hint.set_upper(10);
            hint.set_lower(1);
            hint
        }
    }

    #[test]
    fn every_waiting_copy_is_woken() {
        let (tx, body) = channel();
        let mut first = ReplayBody::new(body, 64);
        let mut second = first.replay().unwrap();
        let (first_wakes, first_waker) = counting_waker();
        let (second_wakes, second_waker) = counting_waker();

        assert_eq!(poll_once(&mut first, &first_waker), Poll::Pending);
        assert_eq!(poll_once(&mut second, &second_waker), Poll::Pending);
        tx.send(data("x")).unwrap();
        assert_eq!(first_wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1);

        // Whichever is polled first reads the source; the other reads the recording.
        assert_eq!(
            poll_once(&mut second, &second_waker),
            Poll::Ready(Some(seen("x")))
        );
        assert_eq!(
            poll_once(&mut first, &first_waker),
            Poll::Ready(Some(seen("x")))
        );

        // A copy waiting while the other reads on is woken when a frame arrives for it.
        assert_eq!(poll_once(&mut first, &first_waker), Poll::Pending);
        assert_eq!(poll_once(&mut second, &second_waker), Poll::Pending);
        drop(second); // the copy holding the source's attention goes away
        drop(tx);
        assert_eq!(first_wakes.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll_once(&mut first, &first_waker), Poll::Ready(None));
    }

    #[tokio::test(start_paused = true)]
    async fn cloneable_bodies_replay() {
        let full = Full::new(Bytes::from_static(b"full"));
        let copy = full.replay().unwrap();
        assert_eq!(full.collect().await.unwrap().to_bytes(), "full");
        assert_eq!(copy.collect().await.unwrap().to_bytes(), "full");

        let string = String::from("string");
        assert_eq!(string.replay().as_deref(), Some("string"));

        let empty = Empty::<Bytes>::new().replay().unwrap();
        assert!(empty.is_end_stream());

        let either: Either<Full<Bytes>, Empty<Bytes>> =
            Either::Left(Full::new(Bytes::from_static(b"left")));
        let copy = either.replay().unwrap();
        assert_eq!(copy.collect().await.unwrap().to_bytes(), "left");

        let capped = ReplayBody::new(Full::new(Bytes::from_static(b"toolong")), 3);
        let _ = capped.replay().unwrap().collect().await.unwrap();
        let either: Either<ReplayBody<Full<Bytes>>, Empty<Bytes>> = Either::Left(capped);
        assert!(either.replay().is_none());
    }

    #[test]
    fn replay_body_is_send_and_sync_when_its_body_is_send() {
        fn assert_send_sync<T: Send + Sync>() {}
        // Send but not Sync.
        assert_send_sync::<ReplayBody<UnsyncBoxBody<Bytes, BoxError>>>();
        assert_send_sync::<ReplayBodyError>();
    }
}
