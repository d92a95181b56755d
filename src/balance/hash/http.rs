//! Request-key extractors for HTTP requests (`http` feature).
//!
//! Each extractor hashes bytes borrowed from the request, so extracting a key never allocates.
//! Values are hashed exactly as they appear on the wire: no percent-decoding, no case folding of
//! values, no unquoting, so every client of the same service agrees on a key's bytes. Each
//! works on an `http::Request<B>` of any body type and on `http::request::Parts`.

use super::{ExtractKey, KeyHash};
use http::header::{COOKIE, HeaderName};
use http::request::Parts;
use http::{HeaderMap, Request, Uri};

/// The value of one header (the first, if it appears more than once). Header names are
/// case-insensitive, as HTTP says.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::hash::{ExtractKey, Header, KeyHash};
///
/// let by_user = Header::new(http::HeaderName::from_static("x-user-id"));
/// let req = http::Request::builder().header("X-User-Id", "42").body(()).unwrap();
/// assert_eq!(by_user.key_hash(&req), Some(KeyHash::of("42")));
/// ```
#[derive(Debug, Clone)]
pub struct Header(HeaderName);

impl Header {
    /// Keys requests by header `name`.
    pub fn new(name: HeaderName) -> Self {
        Header(name)
    }
}

/// The request path, without the query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path;

/// The value of one cookie from the `Cookie` header(s), matched by exact (case-sensitive)
/// name; the first occurrence wins.
#[derive(Debug, Clone)]
pub struct Cookie(String);

impl Cookie {
    /// Keys requests by cookie `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Cookie(name.into())
    }
}

/// The value of one query parameter, matched by exact name as sent (undecoded); the first
/// occurrence wins. A parameter present without `=` has the empty value.
#[derive(Debug, Clone)]
pub struct QueryParam(String);

impl QueryParam {
    /// Keys requests by query parameter `name`.
    pub fn new(name: impl Into<String>) -> Self {
        QueryParam(name.into())
    }
}

trait Head {
    fn headers(&self) -> &HeaderMap;
    fn uri(&self) -> &Uri;
}

impl<B> Head for Request<B> {
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn uri(&self) -> &Uri {
        self.uri()
    }
}

impl Head for Parts {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl Header {
    fn hash(&self, head: &impl Head) -> Option<KeyHash> {
        Some(KeyHash::of_bytes(head.headers().get(&self.0)?.as_bytes()))
    }
}

impl Path {
    fn hash(self, head: &impl Head) -> Option<KeyHash> {
        Some(KeyHash::of_bytes(head.uri().path().as_bytes()))
    }
}

impl Cookie {
    fn hash(&self, head: &impl Head) -> Option<KeyHash> {
        head.headers()
            .get_all(COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                (pair[..eq].trim_ascii() == self.0.as_bytes())
                    .then(|| KeyHash::of_bytes(pair[eq + 1..].trim_ascii()))
            })
    }
}

impl QueryParam {
    fn hash(&self, head: &impl Head) -> Option<KeyHash> {
        head.uri().query()?.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == self.0).then(|| KeyHash::of_bytes(value.as_bytes()))
        })
    }
}

macro_rules! extractors {
    ($($t:ty),*) => {$(
        impl<B> ExtractKey<Request<B>> for $t {
            #[inline]
            fn key_hash(&self, req: &Request<B>) -> Option<KeyHash> {
                self.hash(req)
            }
        }

        impl ExtractKey<Parts> for $t {
            #[inline]
            fn key_hash(&self, parts: &Parts) -> Option<KeyHash> {
                self.hash(parts)
            }
        }
    )*};
}

extractors!(Header, Path, Cookie, QueryParam);

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn extractors_hash_borrowed_bytes_as_sent() {
        let r = req(
            "http://h/a/b?x=1&user=ada%20l&flag",
            &[
                ("x-user", "7"),
                ("cookie", "a=1; sid=\"q\""),
                ("cookie", "sid=2"),
            ],
        );
        let header = Header::new(HeaderName::from_static("x-user"));
        assert_eq!(header.key_hash(&r), Some(KeyHash::of("7")));
        assert_eq!(
            Header::new(HeaderName::from_static("x-none")).key_hash(&r),
            None
        );
        assert_eq!(Path.key_hash(&r), Some(KeyHash::of("/a/b")));
        assert_eq!(Cookie::new("sid").key_hash(&r), Some(KeyHash::of("\"q\"")));
        assert_eq!(Cookie::new("a").key_hash(&r), Some(KeyHash::of("1")));
        assert_eq!(Cookie::new("SID").key_hash(&r), None);
        assert_eq!(
            QueryParam::new("user").key_hash(&r),
            Some(KeyHash::of("ada%20l"))
        );
        assert_eq!(QueryParam::new("flag").key_hash(&r), Some(KeyHash::of("")));
        assert_eq!(QueryParam::new("nope").key_hash(&r), None);
        let (parts, ()) = r.into_parts();
        assert_eq!(Path.key_hash(&parts), Some(KeyHash::of("/a/b")));
    }
}
