//! The errors of loading a policy: its text, its file, and the file watcher.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lint::Lint;

/// A policy text that is not a valid policy, with the place (1-based line and column) of the
/// problem.
///
/// Columns count characters (Unicode scalar values), not bytes, so they match what an editor
/// shows. The whole policy is refused: nothing of an invalid text is ever used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct PolicyError {
    line: usize,
    column: usize,
    kind: PolicyErrorKind,
}

impl PolicyError {
    pub(super) fn new(line: usize, column: usize, kind: PolicyErrorKind) -> Self {
        PolicyError { line, column, kind }
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
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.kind
    }
}

/// What is wrong with a policy text.
///
/// Values are quoted as written, cut to 256 bytes (marked with `…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// Not valid TOML, or not the documented shape: an unknown or repeated key, a missing
    /// `name` or `action`, a value of the wrong type. The message is the TOML parser's.
    #[error("{0}")]
    Malformed(String),
    /// The text is not UTF-8; the position is that of the first invalid byte.
    #[error("policy is not valid UTF-8")]
    NotUtf8,
    /// A value that is not valid for its field: a malformed SPIFFE ID, a lowercase method, a
    /// path with a dot segment, a CIDR with host bits set, ...
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The field, as written in the file (`principals`, `paths`, `headers`, ...).
        field: &'static str,
        /// The value as written.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An empty list, or an empty `headers` or `claims` table. Istio reads an empty list as
    /// "field not set", which matches everything; that reading is too easy to reach by
    /// accident (a set emptied in an edit), so an empty list is refused: remove the field to
    /// leave it unconstrained.
    #[error("{field}: empty list; remove the field to leave it unconstrained")]
    EmptyList {
        /// The field.
        field: &'static str,
    },
    /// Two rules with the same name: decisions name the rule that decided, so names are
    /// unique.
    #[error("duplicate rule name {name:?}, first used at line {first_line}")]
    DuplicateRule {
        /// The repeated name.
        name: String,
        /// The line of the first rule with this name.
        first_line: usize,
    },
    /// A reference to a set that the file does not define. The whole policy is refused: a
    /// dangling reference never reads as "no requirement".
    #[error("{field}: no {kind} named {name:?} is defined")]
    UnknownSet {
        /// The referencing field (`principal_sets`, `network_sets`, ...).
        field: &'static str,
        /// The kind of set (`principal set` or `network set`).
        kind: &'static str,
        /// The undefined name.
        name: String,
    },
    /// A lint, refused because the policy was loaded with [`LintLevel::Deny`].
    ///
    /// [`LintLevel::Deny`]: super::LintLevel::Deny
    #[error("{0}")]
    Lint(Lint),
}

/// A failure to load a policy file, naming the file.
///
/// The line, column and reason of an invalid text are part of this error's message, so a log
/// line alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// The file could not be read: missing, no permission, an I/O error.
    #[error("cannot read policy file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The path names something other than a regular file (a directory, a FIFO, a device).
    #[error("policy file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than the limit.
    #[error("policy file {} is {len} bytes, more than the limit of {limit}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes, as far as it was read.
        len: u64,
        /// The limit ([`LoadOptions::max_file_len`](super::LoadOptions::max_file_len)).
        limit: u64,
    },
    /// The file's text is not a valid policy.
    #[error("invalid policy file {}: {error}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what.
        error: PolicyError,
    },
}

impl PolicyFileError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            PolicyFileError::Read { path, .. }
            | PolicyFileError::NotAFile { path }
            | PolicyFileError::TooLarge { path, .. }
            | PolicyFileError::Invalid { path, .. } => path,
        }
    }

    /// The policy error, when the file was read but its text is not a valid policy.
    pub fn policy_error(&self) -> Option<&PolicyError> {
        match self {
            PolicyFileError::Invalid { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A failure to start watching a policy file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The first load failed: nothing would be enforced, so nothing is served (fail closed).
    #[error("cannot load the initial policy")]
    Load(#[source] PolicyFileError),
    /// A poll interval of zero would read the file in a busy loop.
    #[error("poll interval must be greater than zero, got {0:?}")]
    InvalidInterval(Duration),
    /// Called outside a Tokio runtime, which the watcher needs for its timer and its reads.
    #[error("policy file watcher started outside a tokio runtime")]
    NoRuntime,
}

impl WatchError {
    /// The load error, when the first load failed.
    pub fn load_error(&self) -> Option<&PolicyFileError> {
        match self {
            WatchError::Load(e) => Some(e),
            _ => None,
        }
    }
}

/// `value` as an error shows it: whole up to 256 bytes, cut (on a character boundary) beyond.
pub(super) fn shown(value: &str) -> String {
    if value.len() <= SHOWN {
        return value.to_owned();
    }
    let mut end = SHOWN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

const SHOWN: usize = 256;
