//! Reading a request line one way only: the method, the form of the request-target, the host
//! and the path. Shared by the inbound and the outbound layer, so both judge the same thing.

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Method, Request, Uri, Version};

use super::error::InvalidRequest;
use crate::authz::{NormalizedPath, Normalizer, normalize_host};

/// Which request-target forms besides origin and absolute form are let through, and whether a
/// host is required.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ReadOptions {
    pub(super) asterisk: bool,
    pub(super) connect: bool,
    /// Refuse an HTTP/1.1 request without a host (a server must, RFC 9112 §3.2).
    pub(super) require_host: bool,
}

/// What a request line says, read one way.
#[derive(Debug)]
pub(super) struct Target {
    /// The normalized path and the query; `None` for an allowed `OPTIONS *` or `CONNECT`,
    /// which have no path.
    pub(super) path: Option<NormalizedPath>,
    /// The canonical host: from the authority of the request-target if it has one (which the
    /// `Host` header, if any, must then agree with), else from the `Host` header.
    pub(super) host: Option<String>,
    /// The port the request addressed: explicit in the authority or `Host`, else the default
    /// of an `http` or `https` scheme.
    pub(super) port: Option<u16>,
}

/// Reads `request` in the order the checks are documented: the method, the form of the
/// request-target, the host, then the path.
pub(super) fn read<B>(
    request: &Request<B>,
    normalizer: &Normalizer,
    options: ReadOptions,
) -> Result<Target, InvalidRequest> {
    let method = request.method();
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(InvalidRequest::LowercaseMethod(method.clone()));
    }
    let uri = request.uri();
    if *method == Method::CONNECT {
        if !options.connect {
            return Err(InvalidRequest::Connect);
        }
        let (host, port) = host(request, options)?;
        return Ok(Target {
            path: None,
            host,
            port,
        });
    }
    if is_asterisk(uri) {
        if *method != Method::OPTIONS {
            return Err(InvalidRequest::TargetForm);
        }
        if !options.asterisk {
            return Err(InvalidRequest::AsteriskForm);
        }
        let (host, port) = host(request, options)?;
        return Ok(Target {
            path: None,
            host,
            port,
        });
    }
    let path_and_query = match (uri.path_and_query(), uri.scheme()) {
        (Some(pq), _) => pq.as_str(),
        // `http://host` is `http://host/` (RFC 9112 §3.2.2: an empty path is `/`).
        (None, Some(_)) => "/",
        // Authority-form on a method other than CONNECT.
        (None, None) => return Err(InvalidRequest::TargetForm),
    };
    let (host, port) = host(request, options)?;
    let path = normalizer
        .normalize(path_and_query)
        .map_err(InvalidRequest::Path)?;
    Ok(Target {
        path: Some(path),
        host,
        port,
    })
}

/// Replaces the path and query of `uri` by `path`, keeping its scheme and authority.
pub(super) fn rewrite(uri: &mut Uri, path: NormalizedPath) -> Result<(), InvalidRequest> {
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path.into_path_and_query());
    // Cannot fail: the parts came from a valid `Uri` and only the path changed. Were it ever
    // to, the request is refused rather than forwarded with a path nobody judged.
    *uri = Uri::from_parts(parts).map_err(|_| InvalidRequest::TargetForm)?;
    Ok(())
}

/// The asterisk-form target of `OPTIONS *`, as `http` parses it.
fn is_asterisk(uri: &Uri) -> bool {
    uri.scheme().is_none() && uri.authority().is_none() && uri.path() == "*"
}

/// The canonical host and the addressed port.
fn host<B>(
    request: &Request<B>,
    options: ReadOptions,
) -> Result<(Option<String>, Option<u16>), InvalidRequest> {
    let mut values = request.headers().get_all(HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(InvalidRequest::MultipleHosts);
    }
    let header = header
        .map(|value| {
            Authority::try_from(value.as_bytes())
                .map_err(|_| InvalidRequest::InvalidHost)
                .and_then(|a| Host::of(&a))
        })
        .transpose()?;
    let uri = request.uri();
    let target = uri.authority().map(Host::of).transpose()?;
    let chosen = match (target, header) {
        // Ports are compared as written: `a` and `a:80` conflict. Clients never send both
        // spellings; a request that does is not worth guessing about.
        (Some(target), Some(header)) if target != header => {
            return Err(InvalidRequest::HostConflict);
        }
        (Some(host), _) | (None, Some(host)) => host,
        (None, None) => {
            if options.require_host && request.version() == Version::HTTP_11 {
                return Err(InvalidRequest::MissingHost);
            }
            return Ok((None, None));
        }
    };
    let port = chosen.port.or_else(|| default_port(uri.scheme()));
    Ok((Some(chosen.name), port))
}

fn default_port(scheme: Option<&Scheme>) -> Option<u16> {
    match scheme {
        Some(s) if *s == Scheme::HTTP => Some(80),
        Some(s) if *s == Scheme::HTTPS => Some(443),
        _ => None,
    }
}

/// A host in canonical form, with the port as written.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    name: String,
    port: Option<u16>,
}

impl Host {
    fn of(authority: &Authority) -> Result<Host, InvalidRequest> {
        // `normalize_host` refuses user info (`user@host`), bad ports and bad names.
        let name = normalize_host(authority.as_str()).ok_or(InvalidRequest::InvalidHost)?;
        Ok(Host {
            name,
            port: authority.port_u16(),
        })
    }
}
