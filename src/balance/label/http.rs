//! A label selector for HTTP requests (`http` feature).

use http::header::HeaderName;
use http::request::Parts;
use http::{HeaderMap, Request};

use super::SelectLabel;

/// Selects the label value named by one request header (the first, if it appears more than
/// once), as sent: no case folding, no trimming beyond what HTTP parsing did. Header names are
/// case-insensitive, as HTTP says. A value that is not UTF-8 cannot equal a label, and selects
/// nothing, like an absent header. Works on an `http::Request<B>` of any body type and on
/// `http::request::Parts`.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::label::{Header, SelectLabel};
///
/// let version = Header::new(http::HeaderName::from_static("x-version"));
/// let req = http::Request::builder().header("X-Version", "canary").body(()).unwrap();
/// assert_eq!(version.select(&req), Some("canary"));
/// ```
#[derive(Debug, Clone)]
pub struct Header(HeaderName);

impl Header {
    /// Selects by header `name`.
    pub fn new(name: HeaderName) -> Self {
        Header(name)
    }

    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.0
    }

    #[inline]
    fn value_in<'r>(&self, headers: &'r HeaderMap) -> Option<&'r str> {
        std::str::from_utf8(headers.get(&self.0)?.as_bytes()).ok()
    }
}

impl<B> SelectLabel<Request<B>> for Header {
    #[inline]
    fn select<'r>(&self, req: &'r Request<B>) -> Option<&'r str> {
        self.value_in(req.headers())
    }
}

impl SelectLabel<Parts> for Header {
    #[inline]
    fn select<'r>(&self, parts: &'r Parts) -> Option<&'r str> {
        self.value_in(&parts.headers)
    }
}
