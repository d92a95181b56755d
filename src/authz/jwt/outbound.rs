use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::error::{InvalidBearerToken, TokenFileError};
use super::verify::MAX_AUTHORIZATION_BYTES;

/// Where an outbound request's bearer credential comes from.
///
/// Called once per request, synchronously: keep it cheap (a clone of a value prepared
/// beforehand, as [`StaticToken`] and [`FileTokenSource`] do). Build values with
/// [`bearer_value`], which refuses anything that is not a clean token.
pub trait TokenSource {
    /// The `Authorization` header value to send, `Bearer <token>`, marked sensitive. An error
    /// fails the request before it is sent.
    fn authorization(&self) -> Result<HeaderValue, BoxError>;
}

/// The `Authorization` header value `Bearer <token>`, marked sensitive (so HTTP/2 never
/// indexes it in HPACK and `Debug` does not show it).
///
/// # Errors
///
/// A token that is empty, longer than 8 KiB less the scheme, or not an RFC 6750 `b64token`
/// (`A-Z a-z 0-9 - . _ ~ + /`, then optional `=` padding): a CR, LF or space could split or
/// extend the header (E9), so such a token is refused, never sent.
pub fn bearer_value(token: &str) -> Result<HeaderValue, InvalidBearerToken> {
    let max = MAX_AUTHORIZATION_BYTES - SCHEME.len();
    if token.is_empty() {
        return Err(InvalidBearerToken::Empty);
    }
    if token.len() > max {
        return Err(InvalidBearerToken::TooLarge {
            len: token.len(),
            max,
        });
    }
    let body = token.trim_end_matches('=');
    let bad = body
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
    if let Some(index) = bad {
        return Err(InvalidBearerToken::InvalidByte { index });
    }
    if body.is_empty() {
        return Err(InvalidBearerToken::InvalidByte { index: 0 });
    }
    let mut value = HeaderValue::from_str(&format!("{SCHEME}{token}"))
        .map_err(|_| InvalidBearerToken::HeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A token that never changes.
#[derive(Clone)]
pub struct StaticToken {
    value: HeaderValue,
}

/// A token read from a file and re-read on an interval: a Kubernetes projected
/// service-account token, which the kubelet rotates in place, or any token a sidecar renews.
///
/// A re-read that finds the file missing, empty, too large or holding something that is not a
/// token is logged and the last good token kept, so a rotation caught half-way never fails a
/// request; the file must hold a valid token at construction. The refresh task runs on the
/// Tokio runtime and ends once every clone is dropped.
///
/// # Defaults
///
/// - interval: 60 seconds. The kubelet renews a projected token when 80% of its lifetime
///   (at least 10 minutes) has passed, so a minute leaves ample margin.
#[derive(Clone)]
pub struct FileTokenSource {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    current: ArcSwap<HeaderValue>,
}

/// Sets `Authorization: Bearer <token>` from a [`TokenSource`] on every request.
///
/// Any `Authorization` headers the request already has are replaced, so the credential sent
/// is always the source's.
#[derive(Clone, Debug)]
pub struct BearerLayer<T> {
    source: T,
}

/// The service of [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct Bearer<S, T> {
    inner: S,
    source: T,
}

pin_project! {
    /// The response future of [`Bearer`].
    pub struct BearerFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Failed { error: Option<BoxError> },
    }
}

impl StaticToken {
    /// A fixed token.
    ///
    /// # Errors
    ///
    /// As [`bearer_value`].
    pub fn new(token: &str) -> Result<Self, InvalidBearerToken> {
        Ok(StaticToken {
            value: bearer_value(token)?,
        })
    }
}

impl TokenSource for StaticToken {
    fn authorization(&self) -> Result<HeaderValue, BoxError> {
        Ok(self.value.clone())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken").finish_non_exhaustive()
    }
}

impl FileTokenSource {
    /// Reads the token at `path` and re-reads it every 60 seconds.
    ///
    /// # Errors
    ///
    /// The file cannot be read or holds no valid token; not within a Tokio runtime.
    pub async fn new(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        Self::with_interval(path, DEFAULT_INTERVAL).await
    }

    /// Reads the token at `path` and re-reads it every `interval`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and an interval of zero.
    pub async fn with_interval(
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> Result<Self, TokenFileError> {
        if interval.is_zero() {
            return Err(TokenFileError::ZeroInterval);
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TokenFileError::NoRuntime)?;
        let path = path.into();
        let value = read_token(path.clone()).await?;
        let shared = Arc::new(Shared {
            path,
            current: ArcSwap::from_pointee(value),
        });
        runtime.spawn(refresh(Arc::downgrade(&shared), interval));
        Ok(FileTokenSource { shared })
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl TokenSource for FileTokenSource {
    fn authorization(&self) -> Result<HeaderValue, BoxError> {
        Ok(HeaderValue::clone(&self.shared.current.load()))
    }
}

impl fmt::Debug for FileTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokenSource")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl<T> BearerLayer<T> {
    /// A layer taking tokens from `source`.
    pub fn new(source: T) -> Self {
        BearerLayer { source }
    }
}

impl<S, T: Clone> Layer<S> for BearerLayer<T> {
    type Service = Bearer<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer::new(inner, self.source.clone())
    }
}

impl<S, T> Bearer<S, T> {
    /// Wraps `inner`, taking tokens from `source`.
    pub fn new(inner: S, source: T) -> Self {
        Bearer { inner, source }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, B> Service<http::Request<B>> for Bearer<S, T>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    T: TokenSource,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BearerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let state = match self.source.authorization() {
            Ok(value) => {
                // `insert` removes every existing value of the header.
                request.headers_mut().insert(AUTHORIZATION, value);
                State::Called {
                    future: self.inner.call(request),
                }
            }
            Err(error) => State::Failed { error: Some(error) },
        };
        BearerFuture { state }
    }
}

impl<F, R, E> Future for BearerFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "bearer future polled after completion".into()))),
        }
    }
}

impl<F> fmt::Debug for BearerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerFuture").finish_non_exhaustive()
    }
}

async fn refresh(shared: Weak<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match read_token(shared.path.clone()).await {
            Ok(value) => shared.current.store(Arc::new(value)),
            Err(error) => tracing::warn!(
                error = %error,
                cause = ?std::error::Error::source(&error),
                "token file refresh failed; keeping the last good token"
            ),
        }
    }
}

/// Reads a token file (bounded, on the blocking pool) and checks its token.
pub(super) async fn read_token(path: PathBuf) -> Result<HeaderValue, TokenFileError> {
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_bounded(&path))
    };
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(source)) => return Err(TokenFileError::Read { path, source }),
        Err(join) => {
            return Err(TokenFileError::Read {
                path,
                source: std::io::Error::other(join),
            });
        }
    };
    token_value(&bytes).map_err(|source| TokenFileError::Invalid { path, source })
}

/// A token file's bytes as a header value: surrounding whitespace (a trailing newline) is
/// trimmed, the rest must be a token.
pub(super) fn token_value(bytes: &[u8]) -> Result<HeaderValue, InvalidBearerToken> {
    let leading = bytes.len() - bytes.trim_ascii_start().len();
    let trimmed = bytes.trim_ascii();
    let token = std::str::from_utf8(trimmed).map_err(|e| InvalidBearerToken::InvalidByte {
        index: leading + e.valid_up_to(),
    })?;
    bearer_value(token).map_err(|e| match e {
        InvalidBearerToken::InvalidByte { index } => InvalidBearerToken::InvalidByte {
            index: leading + index,
        },
        other => other,
    })
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_TOKEN_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

const SCHEME: &str = "Bearer ";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// More than any valid token plus whitespace; a larger file is read only this far and then
/// refused as too large.
const MAX_TOKEN_FILE_BYTES: u64 = 2 * MAX_AUTHORIZATION_BYTES as u64;
