use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::InvalidWeight;

/// An endpoint file's text that is not a valid endpoint list, with the place (1-based line and
/// column) where the problem was found.
///
/// Returned by [`parse_endpoints`](super::parse_endpoints) and carried by
/// [`FileError::Parse`]. Columns count characters (Unicode scalar values), not bytes, in both
/// formats, so they match what an editor shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    line: usize,
    column: usize,
    kind: ParseErrorKind,
}

/// What is wrong with an endpoint file's text.
///
/// Entries are named by their 0-based position in the `endpoints` array, as `endpoints[i]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Not valid JSON or TOML, or not the documented shape: a missing `endpoints` key or `addr`,
    /// an unknown or repeated field, a value of the wrong type. The message is the parser's.
    #[error("{0}")]
    Malformed(String),
    /// The file is not UTF-8 text; the position is that of the first invalid byte.
    #[error("file is not valid UTF-8")]
    NotUtf8,
    /// An `addr` that is not an IP address and port.
    #[error(
        "endpoints[{index}]: invalid address {value:?}: expected an IP address and port, such \
         as 10.0.0.1:8080 or [2001:db8::1]:8080"
    )]
    InvalidAddr {
        /// The entry's position in the `endpoints` array, from 0.
        index: usize,
        /// The address as written.
        value: String,
    },
    /// A `weight` of zero.
    #[error("endpoints[{index}]: {weight}")]
    InvalidWeight {
        /// The entry's position in the `endpoints` array, from 0.
        index: usize,
        /// The refused weight.
        weight: InvalidWeight,
    },
    /// Two entries with the same address. Endpoints are keyed by address, so a repeated address
    /// is almost always an editing mistake; it is refused rather than resolved silently.
    #[error("endpoints[{index}]: duplicate address {addr}, already listed at endpoints[{first}]")]
    DuplicateAddr {
        /// The later entry's position in the `endpoints` array, from 0.
        index: usize,
        /// The earlier entry's position.
        first: usize,
        /// The repeated address.
        addr: SocketAddr,
    },
}

impl ParseError {
    pub(super) fn new(line: usize, column: usize, kind: ParseErrorKind) -> Self {
        ParseError { line, column, kind }
    }

    /// The line of the problem, from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column of the problem, from 1, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

/// A failure of a [`File`](super::File) source to produce an endpoint set, naming the file.
///
/// The source keeps polling after every failure, and the balancer reading it keeps its last good
/// set. Each distinct failure is reported once; it is reported again only after the file changed
/// or was valid in between.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read: missing, no permission, an I/O error.
    #[error("cannot read endpoint file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The path names something other than a regular file (a directory, a FIFO, a device).
    #[error("endpoint file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than the configured limit.
    #[error("endpoint file {} is {len} bytes, more than the limit of {limit}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes, as far as it was read.
        len: u64,
        /// The limit ([`FileBuilder::max_len`](super::FileBuilder::max_len)).
        limit: u64,
    },
    /// The file's text is not a valid endpoint list. The line, column and reason are part of
    /// this error's message, so a log line alone says where to look.
    #[error("invalid endpoint file {}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        error: ParseError,
    },
}

impl FileError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Read { path, .. }
            | FileError::NotAFile { path }
            | FileError::TooLarge { path, .. }
            | FileError::Parse { path, .. } => path,
        }
    }

    /// The parse error, when the file was read but its text is invalid.
    pub fn parse_error(&self) -> Option<&ParseError> {
        match self {
            FileError::Parse { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A [`FileBuilder`](super::FileBuilder) setting that cannot work, naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileConfigError {
    /// No format was set and the path's extension is neither `.json` nor `.toml`.
    #[error(
        "cannot tell the format of endpoint file {}: name it *.json or *.toml, or set the format \
         on the builder",
        path.display()
    )]
    UnknownFormat {
        /// The path.
        path: PathBuf,
    },
    /// A poll interval of zero would read the file in a busy loop.
    #[error("poll interval must be greater than zero, got {0:?}")]
    InvalidInterval(Duration),
    /// A size limit of zero would refuse every file.
    #[error("maximum file size must be greater than zero, got {0}")]
    InvalidMaxLen(u64),
    /// The source was built outside a Tokio runtime, which it needs for its timer and its
    /// blocking reads.
    #[error("endpoint file source built outside a tokio runtime; call build from within one")]
    NoRuntime,
}
