use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::FileConfigError;
use super::parse::Format;
use super::stream::{Config, File, SETTLE};

/// Configures a [`File`] source. Made by [`File::builder`].
///
/// # Defaults
///
/// - format: from the path's extension (`.json` or `.toml`); any other extension is an error
///   at [`build`](FileBuilder::build) unless [`format`](FileBuilder::format) is set.
/// - poll interval: 1 s. A changed file is seen within about one interval; an unchanged file
///   costs one `stat` per interval.
/// - jitter: none. Add some when many processes poll the same network file system, so their
///   reads spread out.
/// - size limit: 16 MiB, far above any real endpoint list (about 100 bytes an endpoint), so a
///   path pointed at the wrong file cannot make the process read gigabytes.
/// - jitter seed: from the operating system.
#[derive(Debug, Clone)]
pub struct FileBuilder {
    path: PathBuf,
    format: Option<Format>,
    interval: Duration,
    jitter: Duration,
    max_len: u64,
    seed: Option<u64>,
}

impl FileBuilder {
    pub(super) fn new(path: PathBuf) -> Self {
        FileBuilder {
            path,
            format: None,
            interval: DEFAULT_INTERVAL,
            jitter: Duration::ZERO,
            max_len: DEFAULT_MAX_LEN,
            seed: None,
        }
    }

    /// Sets the format, whatever the path's extension.
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets how long to wait after one read of the file before the next. Must be greater than
    /// zero.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Adds a uniformly random extra wait from zero to `jitter` to every interval.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the largest file, in bytes, the source reads; a larger one is a
    /// [`FileError::TooLarge`](super::FileError::TooLarge). Must be greater than zero.
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len;
        self
    }

    /// Seeds the jitter's random number generator, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds the source. It reads the file when first polled, then once every interval.
    ///
    /// # Errors
    ///
    /// [`FileConfigError`] when no format is set and the extension names none, when the interval
    /// or size limit is zero, or when called outside a Tokio runtime.
    pub fn build(self) -> Result<File, FileConfigError> {
        let format = match self.format {
            Some(format) => format,
            None => {
                Format::from_path(&self.path).ok_or_else(|| FileConfigError::UnknownFormat {
                    path: self.path.clone(),
                })?
            }
        };
        if self.interval.is_zero() {
            return Err(FileConfigError::InvalidInterval(self.interval));
        }
        if self.max_len == 0 {
            return Err(FileConfigError::InvalidMaxLen(self.max_len));
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| FileConfigError::NoRuntime)?;
        let seed = self.seed.unwrap_or_else(|| {
            use rand::RngExt;
            rand::rng().random()
        });
        let config = Config {
            path: Arc::from(self.path),
            format,
            interval: self.interval,
            jitter: self.jitter,
            max_len: self.max_len,
            settle: SETTLE,
            runtime,
        };
        Ok(File::from_config(config, seed))
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_MAX_LEN: u64 = 16 << 20;
