//! The error of path normalization.

use std::fmt;

/// A request path the [`Normalizer`](super::Normalizer) refused: the request is answered 400
/// and never forwarded.
///
/// It names the path as received, without its query (a query may carry credentials, such as
/// an `access_token`), kept whole up to 256 bytes and cut beyond on a character boundary
/// (marked with `…`), so an attacker's 64 KiB path does not travel through logs. `Display`
/// quotes it with Rust's escapes, so control characters cannot forge log lines.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub struct PathRejected {
    path: String,
    reason: PathRejectReason,
    in_query: bool,
}

impl PathRejected {
    pub(crate) fn new(path_and_query: &str, reason: PathRejectReason, in_query: bool) -> Self {
        let path = match path_and_query.find('?') {
            Some(q) => &path_and_query[..q],
            None => path_and_query,
        };
        let path = if path.len() <= SHOWN {
            path.to_owned()
        } else {
            let mut end = SHOWN;
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &path[..end])
        };
        PathRejected {
            path,
            reason,
            in_query,
        }
    }

    /// The refused path, without its query, cut to 256 bytes.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The rule the request-target broke.
    pub fn reason(&self) -> PathRejectReason {
        self.reason
    }

    /// Whether the fault was in the query rather than the path.
    pub fn in_query(&self) -> bool {
        self.in_query
    }
}

impl fmt::Debug for PathRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathRejected")
            .field("path", &self.path)
            .field("reason", &self.reason)
            .field("in_query", &self.in_query)
            .finish()
    }
}

impl fmt::Display for PathRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected path {:?}: {}", self.path, self.reason)?;
        if self.in_query {
            f.write_str(" in the query")?;
        }
        Ok(())
    }
}

/// Which rule a request-target broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathRejectReason {
    /// The path does not start with `/` (empty, `*`, absolute-form, a bare query ...).
    #[error("not an absolute path")]
    NotAbsolute,
    /// Longer than 65,534 bytes, the most an `http::uri::PathAndQuery` holds.
    #[error("too long")]
    TooLong,
    /// `%2F` or `%5C` (either hex case), refused by [`EscapedSlashes::Reject`](super::EscapedSlashes::Reject).
    #[error("escaped slash or backslash")]
    EscapedSlash,
    /// A raw `\`, refused by [`Backslashes::Reject`](super::Backslashes::Reject).
    #[error("backslash")]
    Backslash,
    /// `//` (an empty segment), refused by
    /// [`DuplicateSlashes::Reject`](super::DuplicateSlashes::Reject).
    #[error("empty segment")]
    DuplicateSlash,
    /// A NUL byte, raw or as `%00`.
    #[error("nul byte")]
    NulByte,
    /// A control character (U+0001 to U+001F, or DEL), raw or percent-encoded.
    #[error("control character")]
    ControlCharacter,
    /// A raw `#`: a fragment has no place in a request-target.
    #[error("fragment")]
    Fragment,
    /// A `%` not followed by two hex digits (`%zz`, a truncated `%4`).
    #[error("invalid percent-escape")]
    InvalidEscape,
    /// A raw byte above 0x7F.
    #[error("non-ASCII character")]
    NonAscii,
    /// A raw space, or a character RFC 3986 never allows raw there (`"` `<` `>` `[` `]` `^`
    /// `` ` `` `{` `|` `}` in a path; `"` `<` `>` in a query).
    #[error("invalid character")]
    InvalidCharacter,
    /// A `..` segment that would climb above the root.
    #[error("dot segment above the root")]
    AboveRoot,
    /// A `.` or `..` segment with path parameters (`/public/..;x/admin`): RFC 3986 reads it as
    /// an ordinary segment, but servlet containers (Tomcat, Jetty) drop the parameters first
    /// and resolve it as a dot segment.
    #[error("dot segment with parameters")]
    DotSegmentParameters,
    /// A raw `;` (path parameters), refused by default: see
    /// [`PathParameters`](super::PathParameters).
    #[error("path parameters (raw ';')")]
    PathParameters,
}

const SHOWN: usize = 256;
