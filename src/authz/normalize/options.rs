//! The normalizer's options: one enum per relaxation of strict mode.

/// What [`Normalizer`](super::Normalizer) does with an escaped slash or backslash, `%2F` or `%5C` (either hex
/// case), after Envoy's `path_with_escaped_slashes_action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EscapedSlashes {
    /// Refuse the request (Envoy's `REJECT_REQUEST`). The default.
    #[default]
    Reject,
    /// Decode both to `/` and treat them as segment separators, so they take part in slash
    /// merging and dot-segment removal: `/a%2F..%2Fb` is `/b` (Envoy's
    /// `UNESCAPE_AND_FORWARD`, Istio's `DECODE_AND_MERGE_SLASHES`). The backend receives the
    /// decoded path, so a backend that gives `%2F` a meaning of its own (an object key with a
    /// `/` in it) breaks.
    Decode,
}

/// What [`Normalizer`](super::Normalizer) does with a raw backslash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backslashes {
    /// Refuse the request. The default.
    #[default]
    Reject,
    /// Read `\` as `/` (as Envoy's `normalize_path` does): `\admin` is `/admin`.
    TreatAsSlash,
}

/// What [`Normalizer`](super::Normalizer) does with an empty segment (`//`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DuplicateSlashes {
    /// Drop empty segments: `//a///b` is `/a/b` (Istio's `MERGE_SLASHES`). The default.
    #[default]
    Merge,
    /// Refuse the request.
    Reject,
}

/// Whether [`Normalizer`](super::Normalizer) changes the case of a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathCase {
    /// Keep the case: paths are case-sensitive. The default.
    #[default]
    Preserve,
    /// Lowercase ASCII letters, raw or decoded from an escape (`/%41DMIN` is `/admin`). Escapes
    /// left encoded keep uppercase hex digits, and their bytes are not case-folded.
    Lowercase,
}

/// What [`Normalizer`](super::Normalizer) does with a raw `;` in the path (RFC 3986 §3.3 path
/// parameters, "matrix parameters").
///
/// Servlet containers (Tomcat, Jetty, Spring) strip `;params` from each segment before
/// routing, so `/admin;x/secret` is served as `/admin/secret` while a policy reading the path
/// as sent sees a segment `admin;x`, and a DENY rule for `/admin/**` does not match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathParameters {
    /// Refuse any path holding a raw `;`. The default.
    #[default]
    Reject,
    /// Keep `;` as an ordinary character of its segment (for backends that give it no
    /// meaning). Dot segments with parameters (`..;`) are refused even then.
    Keep,
}
