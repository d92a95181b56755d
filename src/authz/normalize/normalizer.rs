//! The normalizer and its one-pass algorithm.

use super::error::{PathRejectReason, PathRejected};
use super::options::{Backslashes, DuplicateSlashes, EscapedSlashes, PathCase, PathParameters};
use super::path::NormalizedPath;

/// Normalizes request paths: the one place the crate decides what a path means. A cheap
/// `Copy` value holding options only.
///
/// Every path-based bypass of a mesh's authorization came from two parties reading one request
/// two ways: Istio's CVE-2021-31920 (ISTIO-SECURITY-2021-005: `//admin` and `/admin%2F..` did
/// not match a DENY rule for `/admin`, but the backend merged slashes and served `/admin`) and
/// CVE-2021-39156 (a `#fragment` in the request path let a request past a path rule). The fix is
/// the project's principle 3: **normalize once, authorize the normalized form, forward exactly
/// that form, or reject.** [`Normalizer::normalize`] produces a [`NormalizedPath`]; the
/// authorization layer matches policies against [`NormalizedPath::as_str`] and rewrites the
/// forwarded request-target to [`NormalizedPath::path_and_query`], so a backend that merges
/// slashes, resolves dots or decodes `%41` sees nothing left to merge, resolve or decode.
///
/// # The algorithm
///
/// The input is the request-target in origin form as received, what
/// [`http::Uri::path_and_query`] returns: `/path?query`. The query is split off at the first
/// `?`, checked for characters the `http` crate refuses, and kept verbatim (it is never
/// matched). The path is read once, left to right, into one output buffer:
///
/// 1. **Refuse what is ambiguous or invalid** (the request gets a 400): a path that does not
///    start with `/`; a raw `#` (a fragment never belongs in a request-target, RFC 9112 §3.2,
///    and CVE-2021-39156 shows what happens when one side strips it and the other does not);
///    NUL, control characters, space and DEL, raw or percent-encoded (`%00` is always refused,
///    as in Istio); raw non-ASCII bytes; characters RFC 3986 never allows raw in a path
///    (`"` `<` `>` `[` `]` `^` `` ` `` `{` `|` `}`: send them percent-encoded); a `%` not
///    followed by two hex digits; and, by default, a raw backslash and an encoded slash or
///    backslash (`%2F`, `%5C`, in either hex case).
/// 2. **Percent-decode the unreserved characters, exactly once** (RFC 3986 §2.3: ALPHA, DIGIT,
///    `-`, `.`, `_`, `~`; §6.2.2.2 says their escapes are equivalent to the characters), so
///    `/%61dmin` is `/admin`, and write every other escape with uppercase hex digits
///    (§6.2.2.1): `%c3%a9` becomes `%C3%A9`. `%252e` stays `%252e`: a decoded `%` is never
///    decoded again.
/// 3. **Remove dot segments** (RFC 3986 §5.2.4, §6.2.2.3), on the decoded segments, so
///    `/public/%2e%2e/admin` is `/admin`. A `..` that would climb above the root is refused
///    (SECURITY D4), never clamped silently. So is a dot segment with path parameters,
///    `/public/..;x/admin`: an ordinary segment to RFC 3986, but `..` to servlet containers,
///    which drop `;` parameters before resolving dots.
/// 4. **Merge slashes**: an empty segment is dropped, so `//admin` and `/public//../admin`
///    are both `/admin` (Istio's `MERGE_SLASHES`; merged before dots are resolved, as a backend
///    that merges slashes reads it). A trailing `/` is kept: `/a/` and `/a` are different
///    resources.
///
/// Steps 2 to 4 happen in the same pass: each segment is decoded into the buffer, then kept,
/// dropped (`.`, empty) or dropped with its parent (`..`). The output is never longer than the
/// input, is ASCII, and is a fixed point: normalizing it again returns it unchanged. It never
/// contains `//`, a `.` or `..` segment, an escaped slash or backslash, or an escape of an
/// unreserved character. An already-canonical path (no `%`, no dot segment, no `//`) is
/// recognized by one scan and copied with a single allocation.
///
/// Only unreserved escapes are decoded, as RFC 3986 §6.2.2.2 allows: `%3B` and `;` stay
/// distinct, because reserved characters may delimit data in the backend's eyes. So write
/// policies in the normalized form, and prefer ALLOW rules naming what is public over DENY
/// rules naming what is secret: a spelling the policy did not foresee then fails closed.
///
/// # Options
///
/// [`Normalizer::new`] is strict. Each relaxation is a builder method with its own enum:
///
/// - [`EscapedSlashes::Decode`]: `%2F` and `%5C` become `/` separators, so
///   `/public%2F..%2Fadmin` is `/admin` (Istio's `DECODE_AND_MERGE_SLASHES`; Envoy's
///   `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`).
/// - [`Backslashes::TreatAsSlash`]: a raw `\` is a separator, as Envoy's `normalize_path` and
///   many Windows-hosted servers read it. The default refuses it.
/// - [`DuplicateSlashes::Reject`]: `//` is refused instead of merged, for services that want
///   only canonical input.
/// - [`PathCase::Lowercase`]: ASCII letters are lowercased (SECURITY D7). Paths are
///   case-sensitive (RFC 3986 §6.2.2.1), so by default `/ADMIN` does not match a DENY rule for
///   `/admin`: a vulnerable DENY policy lets it through, and that is only safe if the backend
///   is case-sensitive too; an ALLOW-only policy refuses it either way. Lowercasing closes the
///   DENY gap for case-insensitive backends, at a price: the forwarded path is lowercased too
///   (we forward what we authorized), which breaks any backend with mixed-case routes (every
///   gRPC method, `/pkg.Service/Method`), and policies must be written in lowercase.
///
/// [`normalize_host`](crate::authz::normalize_host) does the same for the `Host` header or `:authority`: lowercase, without
/// port or trailing dot (SECURITY principle 4).
///
/// # Defaults
///
/// [`Normalizer::new`] (and `Default`) is strict, so that no request is read two ways:
///
/// - [`EscapedSlashes::Reject`] (Envoy's `REJECT_REQUEST`): `%2F` and `%5C` are refused,
///   because backends disagree on whether they separate segments (CVE-2021-31920), so the
///   request is refused rather than guessed at.
/// - [`Backslashes::Reject`]: `\` is refused, because some servers read it as `/`.
/// - [`DuplicateSlashes::Merge`]: `//` is read as `/`, as most backends do (Istio's
///   `MERGE_SLASHES`); the merged form is what is forwarded.
/// - [`PathCase::Preserve`]: paths are case-sensitive (RFC 3986 §6.2.2.1).
/// - [`PathParameters::Reject`]: a raw `;` is refused, because servlet containers strip
///   `;params` from segments before routing (`/admin;x/secret` is their `/admin/secret`).
///
/// # Examples
///
/// ```
/// use tower_mesh::authz::{EscapedSlashes, Normalizer, PathRejectReason};
///
/// let strict = Normalizer::new();
/// let path = strict.normalize("/public/%2e%2e//%61dmin/?x=%2e%2e")?;
/// assert_eq!(path.as_str(), "/admin/");
/// assert_eq!(path.query(), Some("x=%2e%2e"));
/// assert_eq!(path.path_and_query(), "/admin/?x=%2e%2e");
///
/// let err = strict.normalize("/public%2F..%2Fadmin").unwrap_err();
/// assert_eq!(err.reason(), PathRejectReason::EscapedSlash);
/// assert_eq!(err.to_string(), r#"rejected path "/public%2F..%2Fadmin": escaped slash or backslash"#);
///
/// let decode = Normalizer::new().escaped_slashes(EscapedSlashes::Decode);
/// assert_eq!(decode.normalize("/public%2F..%2Fadmin")?.as_str(), "/admin");
///
/// // What to forward: always parses.
/// let forward = http::uri::PathAndQuery::from(path);
/// assert_eq!(forward.path(), "/admin/");
/// # Ok::<(), tower_mesh::authz::PathRejected>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Normalizer {
    escaped_slashes: EscapedSlashes,
    backslashes: Backslashes,
    duplicate_slashes: DuplicateSlashes,
    case: PathCase,
    path_parameters: PathParameters,
}

impl Normalizer {
    /// The strict normalizer (see [Defaults](Normalizer#defaults)).
    pub fn new() -> Self {
        Normalizer::default()
    }

    /// What to do with `%2F` and `%5C`.
    pub fn escaped_slashes(mut self, action: EscapedSlashes) -> Self {
        self.escaped_slashes = action;
        self
    }

    /// What to do with a raw `\`.
    pub fn backslashes(mut self, action: Backslashes) -> Self {
        self.backslashes = action;
        self
    }

    /// What to do with `//`.
    pub fn duplicate_slashes(mut self, action: DuplicateSlashes) -> Self {
        self.duplicate_slashes = action;
        self
    }

    /// What to do with a raw `;` (path parameters).
    pub fn path_parameters(mut self, action: PathParameters) -> Self {
        self.path_parameters = action;
        self
    }

    /// Whether to lowercase the path (SECURITY D7; read the trade-off in the
    /// [options](Normalizer#options) first).
    pub fn case(mut self, case: PathCase) -> Self {
        self.case = case;
        self
    }

    /// Normalizes a request-target in origin form, `/path?query`, as received (what
    /// [`http::Uri::path_and_query`] returns), or says which rule it broke.
    ///
    /// The path is decoded, resolved and merged as the [type docs](Normalizer) describe; the
    /// query is checked and kept verbatim.
    pub fn normalize(&self, path_and_query: &str) -> Result<NormalizedPath, PathRejected> {
        self.run(path_and_query)
            .map_err(|(reason, in_query)| PathRejected::new(path_and_query, reason, in_query))
    }

    fn run(&self, input: &str) -> Result<NormalizedPath, (PathRejectReason, bool)> {
        if input.len() > MAX_LEN {
            return Err((PathRejectReason::TooLong, false));
        }
        let (path, query) = match input.find('?') {
            Some(q) => (&input[..q], Some(&input[q + 1..])),
            None => (input, None),
        };
        match path.as_bytes().first() {
            Some(b'/') => {}
            Some(b'\\') if self.backslashes == Backslashes::TreatAsSlash => {}
            Some(b'\\') => return Err((PathRejectReason::Backslash, false)),
            _ => return Err((PathRejectReason::NotAbsolute, false)),
        }
        let rewritten = if is_canonical(path.as_bytes(), self.case) {
            None
        } else {
            Some(self.rewrite(path, input.len()).map_err(|r| (r, false))?)
        };
        // After the rewrite, so that a dot segment with parameters is named as such.
        if self.path_parameters == PathParameters::Reject && path.as_bytes().contains(&b';') {
            return Err((PathRejectReason::PathParameters, false));
        }
        if let Some(query) = query {
            check_query(query.as_bytes()).map_err(|r| (r, true))?;
        }
        Ok(match rewritten {
            // The common case: the input is already canonical, one allocation.
            None => NormalizedPath::new(input.to_owned(), path.len()),
            Some(mut out) => {
                let path_len = out.len();
                if let Some(query) = query {
                    out.push('?');
                    out.push_str(query);
                }
                NormalizedPath::new(out, path_len)
            }
        })
    }

    /// The slow path: decodes, resolves and merges `path` (which starts with a separator)
    /// into a new buffer with room for the query too.
    fn rewrite(&self, path: &str, capacity: usize) -> Result<String, PathRejectReason> {
        let lowercase = self.case == PathCase::Lowercase;
        let bytes = path.as_bytes();
        let mut out = Output {
            buf: String::with_capacity(capacity),
            segment: 1,
            duplicate_slashes: self.duplicate_slashes,
        };
        out.buf.push('/');
        let mut i = 1;
        loop {
            // Copy a run of characters taken as they are in one go.
            let tail = bytes.get(i..).unwrap_or_default();
            let run = tail.iter().position(|&b| !PCHAR[usize::from(b)]);
            let end = run.map_or(bytes.len(), |n| i + n);
            if end > i {
                // The run is ASCII, so both ends are char boundaries.
                out.push_str(path.get(i..end).unwrap_or_default(), lowercase);
                i = end;
            }
            let Some(&b) = bytes.get(i) else {
                break;
            };
            i += 1;
            match b {
                b'/' => out.end_segment(false)?,
                b'\\' => match self.backslashes {
                    Backslashes::TreatAsSlash => out.end_segment(false)?,
                    Backslashes::Reject => return Err(PathRejectReason::Backslash),
                },
                b'%' => {
                    let (Some(hi), Some(lo)) = (
                        bytes.get(i).copied().and_then(hex_value),
                        bytes.get(i + 1).copied().and_then(hex_value),
                    ) else {
                        return Err(PathRejectReason::InvalidEscape);
                    };
                    i += 2;
                    let c = hi << 4 | lo;
                    match c {
                        0 => return Err(PathRejectReason::NulByte),
                        0x01..=0x1F | 0x7F => return Err(PathRejectReason::ControlCharacter),
                        b'/' | b'\\' => match self.escaped_slashes {
                            EscapedSlashes::Decode => out.end_segment(false)?,
                            EscapedSlashes::Reject => return Err(PathRejectReason::EscapedSlash),
                        },
                        _ if is_unreserved(c) => out.push(c, lowercase),
                        _ => {
                            out.buf.push('%');
                            out.buf.push(char::from(HEX_UPPER[usize::from(hi)]));
                            out.buf.push(char::from(HEX_UPPER[usize::from(lo)]));
                        }
                    }
                }
                _ => return Err(invalid_byte(b)),
            }
        }
        out.end_segment(true)?;
        Ok(out.buf)
    }
}

/// The output buffer of the slow path: always starts with `/`, and `buf[segment..]` is the
/// segment being decoded, so `buf[segment - 1]` is always `/`.
struct Output {
    buf: String,
    segment: usize,
    duplicate_slashes: DuplicateSlashes,
}

impl Output {
    fn push(&mut self, b: u8, lowercase: bool) {
        let b = if lowercase { b.to_ascii_lowercase() } else { b };
        self.buf.push(char::from(b));
    }

    fn push_str(&mut self, s: &str, lowercase: bool) {
        let start = self.buf.len();
        self.buf.push_str(s);
        if lowercase && let Some(pushed) = self.buf.get_mut(start..) {
            pushed.make_ascii_lowercase();
        }
    }

    /// Ends the current segment at a separator (`last == false`) or at the end of the path:
    /// keeps it, drops it (empty or `.`), or drops it with its parent (`..`), as RFC 3986
    /// §5.2.4 does. After a separator the buffer ends with `/`.
    fn end_segment(&mut self, last: bool) -> Result<(), PathRejectReason> {
        // `segment` is the buffer's length after the last separator and the buffer only grew
        // since, by ASCII: in range and on a char boundary.
        let segment = &self.buf[self.segment..];
        if let Some((".." | ".", _)) = segment.split_once(';') {
            return Err(PathRejectReason::DotSegmentParameters);
        }
        match segment {
            "" => {
                if !last && self.duplicate_slashes == DuplicateSlashes::Reject {
                    return Err(PathRejectReason::DuplicateSlash);
                }
            }
            "." => self.buf.truncate(self.segment),
            ".." => {
                if self.segment == 1 {
                    return Err(PathRejectReason::AboveRoot);
                }
                // Drop `..` and the `/` before it, then the parent segment after its `/`,
                // which exists: the buffer starts with `/`.
                self.buf.truncate(self.segment - 1);
                let parent = self.buf.rfind('/').map_or(1, |slash| slash + 1);
                self.buf.truncate(parent);
            }
            _ => {
                if !last {
                    self.buf.push('/');
                }
            }
        }
        self.segment = self.buf.len();
        Ok(())
    }
}

/// Whether `path` (starting with `/`) is already its own normalized form: only characters
/// copied as they are (no uppercase letter when lowercasing), no empty segment, no `.` or `..`
/// segment, with or without `;` parameters.
fn is_canonical(path: &[u8], case: PathCase) -> bool {
    let Some((b'/', rest)) = path.split_first() else {
        return false;
    };
    let class = match case {
        PathCase::Preserve => &FAST_PRESERVE,
        PathCase::Lowercase => &FAST_LOWERCASE,
    };
    let mut segment = 0;
    let mut i = 0;
    // Skip runs of plain bytes in a tight loop; stop at `/`, `;` and anything else.
    while let Some(n) = rest
        .get(i..)
        .and_then(|tail| tail.iter().position(|&b| class[usize::from(b)] != PLAIN))
    {
        let at = i + n;
        let head = rest.get(segment..at).unwrap_or_default();
        match rest.get(at).map(|&b| class[usize::from(b)]) {
            Some(SLASH) if !head.is_empty() && !is_dots(head) => segment = at + 1,
            // A `;` after only dots: `.;x`, which the slow path refuses.
            Some(SEMICOLON) if !is_dots(head) => {}
            _ => return false,
        }
        i = at + 1;
    }
    !is_dots(rest.get(segment..).unwrap_or_default())
}

/// `.` or `..`.
fn is_dots(segment: &[u8]) -> bool {
    matches!(segment, b"." | b"..")
}

/// Checks a query for what `http::uri::PathAndQuery` refuses, and for a fragment.
fn check_query(query: &[u8]) -> Result<(), PathRejectReason> {
    match query.iter().find(|&&b| !is_query_char(b)) {
        None => Ok(()),
        Some(&b) => Err(invalid_byte(b)),
    }
}

/// Why a byte that is neither copied nor interpreted is refused.
fn invalid_byte(b: u8) -> PathRejectReason {
    match b {
        0 => PathRejectReason::NulByte,
        0x01..=0x1F | 0x7F => PathRejectReason::ControlCharacter,
        b'#' => PathRejectReason::Fragment,
        0x80.. => PathRejectReason::NonAscii,
        _ => PathRejectReason::InvalidCharacter,
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / `-` / `.` / `_` / `~`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What `http` 1.x accepts in a query (`0x21 / 0x24-0x3B / 0x3D / 0x3F-0x7E`), ASCII only.
fn is_query_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The longest request-target `http::uri::PathAndQuery` accepts (`u16::MAX - 1`).
pub(crate) const MAX_LEN: usize = 65_534;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

// Byte classes of the fast path: copied as they are, `/`, `;`, anything else.
const OTHER: u8 = 0;
const PLAIN: u8 = 1;
const SLASH: u8 = 2;
const SEMICOLON: u8 = 3;

const FAST_PRESERVE: [u8; 256] = fast_classes(PathCase::Preserve);
const FAST_LOWERCASE: [u8; 256] = fast_classes(PathCase::Lowercase);

const fn fast_classes(case: PathCase) -> [u8; 256] {
    let mut t = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'/' => SLASH,
            b';' => SEMICOLON,
            b'A'..=b'Z' if matches!(case, PathCase::Lowercase) => OTHER,
            _ if PCHAR[b] => PLAIN,
            _ => OTHER,
        };
        b += 1;
    }
    t
}

/// The bytes copied as they are: `pchar` other than a percent-escape (RFC 3986 §3.3),
/// unreserved, sub-delims, `:` and `@`.
const PCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        b += 1;
    }
    t
};
