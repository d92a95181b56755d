//! The normalized form of a request-target.

use std::fmt;

use http::uri::PathAndQuery;

/// A request path in its normalized form, with the query as received: what a policy matches
/// ([`as_str`](NormalizedPath::as_str)) and what is forwarded
/// ([`path_and_query`](NormalizedPath::path_and_query)).
///
/// Only [`Normalizer::normalize`](super::Normalizer::normalize) builds one, so it is always
/// ASCII, starts with `/`, fits an [`http::uri::PathAndQuery`] and normalizes to itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath {
    /// The path, then `?` and the query if there was one.
    buf: String,
    /// Where the path ends in `buf`.
    path_len: usize,
}

impl NormalizedPath {
    pub(crate) fn new(buf: String, path_len: usize) -> Self {
        debug_assert!(buf.is_ascii() && path_len <= buf.len());
        NormalizedPath { buf, path_len }
    }

    /// The normalized path, without the query: what policies match.
    pub fn as_str(&self) -> &str {
        // `path_len <= buf.len()` and `buf` is ASCII, so this is a char boundary.
        &self.buf[..self.path_len]
    }

    /// The query as received, without the `?` (`Some("")` for a bare `?`); never matched by
    /// policies, forwarded unchanged.
    pub fn query(&self) -> Option<&str> {
        self.buf.get(self.path_len + 1..)
    }

    /// The normalized path and the query: the request-target to forward.
    pub fn path_and_query(&self) -> &str {
        &self.buf
    }

    /// The request-target to forward, as `http` holds it (no copy).
    pub fn into_path_and_query(self) -> PathAndQuery {
        PathAndQuery::from(self)
    }
}

impl From<NormalizedPath> for PathAndQuery {
    fn from(path: NormalizedPath) -> Self {
        // The normalizer only produces ASCII that starts with `/`, at most 65,534 bytes long,
        // whose path bytes are pchars, `/` or escapes and whose query bytes are ones `http`
        // accepts in a query; `http` accepts every such string (tested, and fuzzed).
        PathAndQuery::try_from(path.buf).expect("a normalized path is a valid PathAndQuery")
    }
}

impl fmt::Debug for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NormalizedPath")
            .field("path", &self.as_str())
            .field("query", &self.query())
            .finish()
    }
}

impl fmt::Display for NormalizedPath {
    /// The request-target to forward, `path?query`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.buf)
    }
}
