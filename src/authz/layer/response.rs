//! The answers of the inbound layer to a request it refuses: HTTP 400, 401 and 403, or their
//! gRPC trailers-only equivalents.

use http::header::{CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};

use crate::authz::jwt::JwtError;

/// Why a request was refused: it is answered, never forwarded.
#[derive(Debug)]
pub(super) enum Rejection {
    /// The request line or host can be read more than one way: 400 / `INVALID_ARGUMENT`.
    Invalid,
    /// A bearer credential was presented and is not valid: 401 / `UNAUTHENTICATED`.
    Unauthenticated(JwtError),
    /// The policy denied the request: 403 / `PERMISSION_DENIED`.
    Denied,
}

impl Rejection {
    /// The answer, with an empty body of the inner service's body type.
    ///
    /// A gRPC request (`content-type: application/grpc*`) gets a trailers-only response: HTTP
    /// 200, `content-type: application/grpc`, and `grpc-status` and `grpc-message` in the
    /// headers (gRPC over HTTP/2 spec, "Responses"), since a gRPC client reads the status from
    /// there and not from the HTTP status.
    pub(super) fn into_response<B: Default>(self, grpc: bool, version: Version) -> Response<B> {
        let (status, code, message) = match &self {
            Rejection::Invalid => (
                StatusCode::BAD_REQUEST,
                GRPC_INVALID_ARGUMENT,
                "invalid request",
            ),
            Rejection::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                GRPC_UNAUTHENTICATED,
                "unauthenticated",
            ),
            Rejection::Denied => (
                StatusCode::FORBIDDEN,
                GRPC_PERMISSION_DENIED,
                "permission denied",
            ),
        };
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        if let Rejection::Unauthenticated(error) = &self {
            headers.insert(WWW_AUTHENTICATE, error.www_authenticate());
        }
        if grpc {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(GRPC_STATUS, HeaderValue::from_static(code));
            headers.insert(GRPC_MESSAGE, HeaderValue::from_static(message));
        } else {
            *response.status_mut() = status;
            // A request that could be read two ways may have been framed two ways too: do not
            // read another one from the same HTTP/1 connection. (HTTP/2 forbids the header.)
            if matches!(self, Rejection::Invalid) && version <= Version::HTTP_11 {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        response
    }
}

/// Whether the request is gRPC: `content-type` is `application/grpc`, optionally followed by
/// `+format` or `;parameters` (gRPC over HTTP/2 spec), compared case-insensitively.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let prefix = b"application/grpc";
    bytes.len() >= prefix.len()
        && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(bytes.get(prefix.len()), None | Some(b'+' | b';'))
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `INVALID_ARGUMENT`: the request is malformed and must not be retried as is.
const GRPC_INVALID_ARGUMENT: &str = "3";
/// `PERMISSION_DENIED`.
const GRPC_PERMISSION_DENIED: &str = "7";
/// `UNAUTHENTICATED`.
const GRPC_UNAUTHENTICATED: &str = "16";
