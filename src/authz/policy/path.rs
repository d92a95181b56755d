//! Patterns on the request path, compared with the normalizer's output byte for byte, and
//! prefixes on whole segments (`/admin/**` never matches `/administrator`).

use crate::authz::Normalizer;

/// A pattern on the normalized request path (or gRPC `/package.Service/Method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PathPattern {
    /// `*`: any path.
    Any,
    /// This path, byte for byte.
    Exact(Box<str>),
    /// `/a/b/*` or `/a/b/**` (stored as `/a/b`; the root prefix `/*` as the empty string):
    /// `/a/b` itself and every path below it, on a segment boundary.
    Prefix(Box<str>),
}

impl PathPattern {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(PathPattern::Any);
        }
        if !s.starts_with('/') {
            return Err("a path starts with `/` (or is `*`)".to_owned());
        }
        let (stem, prefix) = match s.strip_suffix("/**").or_else(|| s.strip_suffix("/*")) {
            Some(stem) => (stem, true),
            None => (s, false),
        };
        let canonical = canonical_path(stem, prefix)?;
        if !canonical.is_empty() {
            // The one normalizer of the crate must read the path as written, or no request
            // can ever equal it.
            match Normalizer::new().normalize(&canonical) {
                Ok(normalized) if normalized.path_and_query() == canonical => {}
                Ok(normalized) => {
                    return Err(format!(
                        "not a normalized path: requests for it arrive as {:?}",
                        normalized.path_and_query()
                    ));
                }
                Err(e) => return Err(format!("normalization refuses it: {}", e.reason())),
            }
        }
        Ok(if prefix {
            PathPattern::Prefix(canonical.into())
        } else {
            PathPattern::Exact(canonical.into())
        })
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Any => true,
            PathPattern::Exact(p) => path == &**p,
            PathPattern::Prefix(p) => path
                .as_bytes()
                .strip_prefix(p.as_bytes())
                .is_some_and(|rest| rest.is_empty() || rest[0] == b'/'),
        }
    }

    /// The first segment every path this pattern matches starts with, when there is one.
    pub(super) fn first_segment(&self) -> Option<&str> {
        match self {
            PathPattern::Any => None,
            PathPattern::Prefix(p) if p.is_empty() => None,
            PathPattern::Exact(p) | PathPattern::Prefix(p) => first_segment(p),
        }
    }
}

/// Whether `path` has the normalizer's output form: absolute, ASCII without controls or
/// spaces, no `?` or `#`, no backslash, no empty or dot segment (a trailing `/` allowed), and
/// percent-escapes only of reserved or non-ASCII bytes, in uppercase. One pass, no allocation.
pub(super) fn is_normalized(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let mut segment_start = 1;
    let mut i = 1;
    while i <= bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(b'/');
        if b == b'/' {
            let segment = &bytes[segment_start..i];
            let last = i == bytes.len();
            // `..;x` is `..` to servlet containers, which drop `;` parameters first.
            let before_params = segment.split(|&b| b == b';').next().unwrap_or(segment);
            if matches!(before_params, b"." | b"..") || (segment.is_empty() && !last) {
                return false;
            }
            segment_start = i + 1;
        } else if b == b'%' {
            let escape = (bytes.get(i + 1).copied(), bytes.get(i + 2).copied());
            let (Some(hi), Some(lo)) = escape else {
                return false;
            };
            let digit = |h: u8| matches!(h, b'0'..=b'9' | b'A'..=b'F');
            if !digit(hi) || !digit(lo) {
                return false;
            }
            let decoded = (hex(hi) << 4) | hex(lo);
            if decoded.is_ascii_alphanumeric()
                || matches!(decoded, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | 0)
            {
                return false;
            }
            i += 2;
        } else if b <= b' ' || b >= 0x7f || matches!(b, b'?' | b'#' | b'\\') {
            return false;
        }
        i += 1;
    }
    true
}

fn hex(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        _ => h - b'A' + 10,
    }
}

/// The first segment of a path (`""` for `/`), or `None` when it does not start with `/`.
pub(super) fn first_segment(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Validates a policy path (without its `/*` suffix) and returns it with percent-escapes in
/// uppercase, the RFC 3986 §6.2.2.1 form normalized paths use.
fn canonical_path(stem: &str, prefix: bool) -> Result<String, String> {
    if stem.is_empty() {
        // "/*" or "/**": the root prefix.
        return Ok(String::new());
    }
    let body = stem.strip_prefix('/').ok_or("a path starts with `/`")?;
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            // A trailing `/` is a real path (`/admin/`); it cannot precede `/*`.
            "" if last && !prefix => {}
            "" => return Err("empty segment (`//`): normalized paths have none".to_owned()),
            "." | ".." => {
                return Err("dot segment: normalized paths have none".to_owned());
            }
            _ => {}
        }
    }
    let bytes = stem.as_bytes();
    let mut out = String::with_capacity(stem.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or("`%` not followed by two hex digits")?;
            let decoded = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("`%` not followed by two hex digits")?;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                return Err(format!(
                    "%{} is an escaped unreserved character, which normalization decodes: write \
                     {:?}",
                    std::str::from_utf8(hex).unwrap_or("??"),
                    char::from(decoded)
                ));
            }
            if matches!(decoded, b'/' | b'\\' | 0) {
                return Err(
                    "escaped `/`, `\\` or NUL: normalization rejects such requests".to_owned(),
                );
            }
            out.push('%');
            out.push_str(&format!("{decoded:02X}"));
            i += 3;
            continue;
        }
        if b == b'*' {
            return Err("`*` is allowed only as a final `/*` or `/**`".to_owned());
        }
        if !is_pchar(b) && b != b'/' {
            return Err(if b.is_ascii() {
                format!("{:?} is not allowed in a path", char::from(b))
            } else {
                "non-ASCII character: percent-encode it as UTF-8 (%C3%A9)".to_owned()
            });
        }
        out.push(char::from(b));
        i += 1;
    }
    Ok(out)
}

/// RFC 3986 `pchar` without `%` (handled by the caller): unreserved, sub-delims, `:` and `@`.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@".contains(&b)
}
