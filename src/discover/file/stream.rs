use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use super::builder::FileBuilder;
use super::error::{FileConfigError, FileError, ParseError};
use super::parse::{Format, not_utf8, parse_endpoints};
use crate::discover::Update;
use crate::endpoint::Endpoint;

/// A discovery source that reads endpoints from a JSON or TOML file and follows its changes.
///
/// A [`Stream`] of `Result<`[`Update`]`, `[`FileError`]`>`: it reads the file when first polled
/// and then once every poll interval, and yields an [`Update::Reset`] with the file's endpoints
/// (in file order) whenever they differ, as a set, from the last ones it yielded. A file that
/// cannot be read or parsed yields one `Err` naming the file (with line and column for a parse
/// error), and the balancer keeps the last good set; polling goes on, and the next valid
/// version is picked up. The stream never ends.
///
/// See the [module docs](super) for the file format and how changes are detected.
///
/// Dropping the stream stops all its work: there is no background task. A read already handed
/// to Tokio's blocking pool finishes (it is bounded by the size limit) and its result is
/// dropped.
#[derive(Debug)]
pub struct File {
    config: Config,
    rng: SmallRng,
    state: State,
    /// What the last successful read saw; cleared when a read fails, so the file is read and
    /// parsed afresh once it is back.
    last_read: Option<LastRead>,
    /// The last set yielded, sorted by address, to compare the next one with.
    emitted: Option<Vec<Endpoint>>,
    /// The last failure yielded (its message with its causes), until a valid read clears it.
    reported: Option<String>,
}

impl File {
    /// A builder for a source reading `path`; see [`FileBuilder`] for the settings and defaults.
    pub fn builder(path: impl Into<PathBuf>) -> FileBuilder {
        FileBuilder::new(path.into())
    }

    /// A source reading `path` with the default settings, the format chosen by its extension.
    ///
    /// # Errors
    ///
    /// As [`FileBuilder::build`].
    pub fn new(path: impl Into<PathBuf>) -> Result<File, FileConfigError> {
        File::builder(path).build()
    }

    pub(super) fn from_config(config: Config, seed: u64) -> Self {
        File {
            config,
            rng: SmallRng::seed_from_u64(seed),
            state: State::Due,
            last_read: None,
            emitted: None,
            reported: None,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.config.format
    }

    /// The endpoints last yielded, sorted by address; `None` before the first valid read.
    pub fn endpoints(&self) -> Option<&[Endpoint]> {
        self.emitted.as_deref()
    }

    fn next_delay(&mut self) -> Duration {
        let jitter = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
        if jitter == 0 {
            return self.config.interval;
        }
        use rand::RngExt;
        let extra = Duration::from_nanos(self.rng.random_range(0..=jitter));
        self.config.interval.saturating_add(extra)
    }

    /// Folds one observation into the state, returning what to yield, if anything.
    fn apply(
        &mut self,
        observed: Result<Observation, FileError>,
    ) -> Option<Result<Update, FileError>> {
        let (read, parsed) = match observed {
            Err(e) => {
                self.last_read = None;
                return self.report(e);
            }
            Ok(Observation::Unchanged(read)) => {
                self.last_read = Some(read);
                return None;
            }
            Ok(Observation::Changed(read, parsed)) => (read, parsed),
        };
        self.last_read = Some(read);
        let endpoints = match parsed {
            Ok(endpoints) => endpoints,
            Err(error) => {
                let path = self.config.path.to_path_buf();
                return self.report(FileError::Parse { path, error });
            }
        };
        if self.reported.take().is_some() {
            tracing::info!(path = %self.config.path.display(), "endpoint file is valid again");
        }
        let mut sorted = endpoints.clone();
        sorted.sort_unstable_by_key(Endpoint::addr);
        if self.emitted.as_ref() == Some(&sorted) {
            tracing::trace!(path = %self.config.path.display(), "endpoint file rewritten, same set");
            return None;
        }
        tracing::debug!(
            path = %self.config.path.display(),
            endpoints = endpoints.len(),
            "endpoint file changed"
        );
        self.emitted = Some(sorted);
        Some(Ok(Update::Reset(endpoints)))
    }

    /// Yields a failure unless the same one was the last yielded.
    fn report(&mut self, e: FileError) -> Option<Result<Update, FileError>> {
        let mut key = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            key.push_str(": ");
            key.push_str(&s.to_string());
            source = s.source();
        }
        if self.reported.as_ref() == Some(&key) {
            return None;
        }
        self.reported = Some(key);
        Some(Err(e))
    }
}

impl Stream for File {
    type Item = Result<Update, FileError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Due => {
                    let config = this.config.clone();
                    let last = this.last_read.clone();
                    let read = this
                        .config
                        .runtime
                        .spawn_blocking(move || observe(&config, last));
                    this.state = State::Reading(read);
                }
                State::Reading(read) => {
                    let result = ready!(Pin::new(read).poll(cx));
                    let delay = this.next_delay();
                    let sleep = {
                        let _runtime = this.config.runtime.enter();
                        tokio::time::sleep(delay)
                    };
                    this.state = State::Waiting(Box::pin(sleep));
                    let observed = result.unwrap_or_else(|e| {
                        Err(FileError::Read {
                            path: this.config.path.to_path_buf(),
                            source: io::Error::other(e),
                        })
                    });
                    if let Some(item) = this.apply(observed) {
                        return Poll::Ready(Some(item));
                    }
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Due;
                }
            }
        }
    }
}

/// The settings a [`File`] runs with, validated by its builder.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) path: Arc<Path>,
    pub(super) format: Format,
    pub(super) interval: Duration,
    pub(super) jitter: Duration,
    pub(super) max_len: u64,
    /// How much older than a read a file's last change must be for its metadata alone to vouch
    /// for its content.
    pub(super) settle: Duration,
    pub(super) runtime: Handle,
}

#[derive(Debug)]
enum State {
    /// Read the file now.
    Due,
    /// A read is running on the blocking pool.
    Reading(JoinHandle<Result<Observation, FileError>>),
    /// Waiting out the interval.
    Waiting(Pin<Box<Sleep>>),
}

#[derive(Debug)]
pub(super) enum Observation {
    /// Same content as last time (or same metadata, long enough after the last read).
    Unchanged(LastRead),
    /// New content, and what it parses to.
    Changed(LastRead, Result<Vec<Endpoint>, ParseError>),
}

#[derive(Debug, Clone)]
pub(super) struct LastRead {
    fingerprint: Fingerprint,
    /// When the read started, by the system clock file times are written with.
    at: SystemTime,
    pub(super) content: Arc<[u8]>,
}

impl LastRead {
    /// Whether a file with this read's fingerprint now can be trusted to hold the same content
    /// without reading it. A write landing in the same timestamp tick as the read, after it,
    /// could leave the metadata as it was: so only a file whose last change is at least `settle`
    /// older than the read is trusted (git's "racily clean" rule).
    fn trusts(&self, now: &Fingerprint, settle: Duration) -> bool {
        *now == self.fingerprint
            && self.fingerprint.last_change().is_some_and(|changed| {
                self.at
                    .duration_since(changed)
                    .is_ok_and(|age| age >= settle)
            })
    }
}

/// What the metadata says about a file's version: size, modification time and, on Unix, the
/// inode and its change time (which every write moves and no user can set back, unlike the
/// modification time that `cp -p`, `rsync -t` or `touch -d` restore).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    changed: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            changed: u64::try_from(meta.ctime()).ok().and_then(|secs| {
                let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
                SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            }),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }

    /// The latest time the file is known to have changed.
    fn last_change(&self) -> Option<SystemTime> {
        #[cfg(unix)]
        return self.modified.max(self.changed);
        #[cfg(not(unix))]
        return self.modified;
    }
}

/// One look at the file, on the blocking pool.
pub(super) fn observe(config: &Config, last: Option<LastRead>) -> Result<Observation, FileError> {
    let path = &config.path;
    let read_error = |e: io::Error| FileError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let at = SystemTime::now();
    // Stat before opening: opening a FIFO would block until a writer appears.
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(FileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if let Some(last) = &last
        && last.trusts(&Fingerprint::of(&meta), config.settle)
    {
        return Ok(Observation::Unchanged(last.clone()));
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let too_large = |len| FileError::TooLarge {
        path: path.to_path_buf(),
        len,
        limit: config.max_len,
    };
    if meta.len() > config.max_len {
        return Err(too_large(meta.len()));
    }
    let mut content = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(config.max_len.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(read_error)?;
    let len = content.len() as u64;
    if len > config.max_len {
        return Err(too_large(len));
    }
    let read = LastRead {
        fingerprint: Fingerprint::of(&meta),
        at,
        content: content.into(),
    };
    if last.is_some_and(|last| last.content == read.content) {
        return Ok(Observation::Unchanged(read));
    }
    let parsed = match std::str::from_utf8(&read.content) {
        Ok(text) => parse_endpoints(text, config.format),
        Err(e) => Err(not_utf8(&read.content, e.valid_up_to())),
    };
    Ok(Observation::Changed(read, parsed))
}

/// The default [`Config::settle`]: above the coarsest common timestamp granularity (FAT's 2 s).
pub(super) const SETTLE: Duration = Duration::from_secs(3);
