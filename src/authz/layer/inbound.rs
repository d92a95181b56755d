//! The inbound layer: around the application's server, every request is read one way, its
//! caller authenticated and its access judged before the application sees it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::request::{self, ReadOptions};
use super::response::{Rejection, is_grpc};
use crate::authz::jwt::JwtAuthenticator;
use crate::authz::policy::{Decision, RuleName, SharedPolicy, Verdict};
use crate::authz::{Attributes, HttpAttributes, Normalizer, RequestPrincipal};
use crate::identity::PeerIdentity;

/// Authorizes every request to the service it wraps, by a [`SharedPolicy`]: the inbound
/// layer, around the application's server.
///
/// A cheap `Clone` (one `Arc`) holding configuration only; [`Authz`] is its service.
///
/// # Inbound, per request, in order
///
/// (a) **Read the request line one way** (SECURITY D15–D18), or answer 400:
/// - the method must not contain a lowercase letter: `http` parses `get` as an extension
///   method distinct from `GET`, policies name methods in uppercase, and a backend that
///   folds case would serve `get` as the `GET` a DENY rule refused;
/// - `CONNECT` and `OPTIONS *` are refused unless allowed
///   ([`allow_connect`](AuthzLayer::allow_connect),
///   [`allow_asterisk_form`](AuthzLayer::allow_asterisk_form)); authority-form on another
///   method is refused;
/// - the host is taken from the request-target's authority (absolute-form, or HTTP/2
///   `:authority`) if it has one, else from `Host`. When both are present they must name the
///   same host and port, or the request is refused (RFC 9112 §3.2.2 lets the target win; we
///   do not guess). Two `Host` headers, an invalid host (see
///   [`normalize_host`](crate::authz::normalize_host)), and an HTTP/1.1 request with no host at
///   all are refused too.
///
/// (b) **Normalize the path** with the configured [`Normalizer`](crate::authz::Normalizer);
/// a path it refuses is answered 400. (The `http` crate drops a `#fragment` while parsing the
/// request-target, so `/admin#x` is judged, and forwarded, as `/admin`; hyper answers 400 to
/// raw spaces and control characters before any service runs.)
///
/// (c) **Strip identity headers from outside**: `x-forwarded-client-cert` and the others of
/// the [defaults](AuthzLayer#defaults), before the policy sees the headers. Malformed header
/// syntax (whitespace before the colon, obs-fold, bare CR, conflicting
/// `Content-Length`s, too many or too large headers) never reaches a service: hyper's server
/// answers 400 or 431 first.
///
/// (d) **Authenticate.** The peer identity is the
/// [`PeerIdentity`](crate::identity::PeerIdentity) request extension, which only this crate
/// can create (from a verified certificate) and which the application copies from
/// `TlsStream::peer_identity` (feature `tls`) into each request, most simply with
/// [`ConnectionInfoLayer`](crate::authz::ConnectionInfoLayer). The source address is a
/// [`std::net::SocketAddr`] request extension, the remote address `accept` returned (also set
/// by `ConnectionInfoLayer`); a forwarded-for header is never read. With
/// [`jwt`](AuthzLayer::jwt), the `Authorization` header is verified: a valid token is the
/// request's [`RequestPrincipal`](crate::authz::RequestPrincipal), an **invalid token is
/// answered 401** with `WWW-Authenticate` (whatever the policy says), and **no token is an
/// anonymous caller** for the policy to judge (SECURITY F18). The `Authorization` header is
/// forwarded unchanged.
///
/// (e) **Evaluate the policy** ([`SharedPolicy`](crate::authz::policy::SharedPolicy), the
/// current version for every request, so a policy change applies to the next request of a
/// long-lived connection). A denial is answered **403**, also when the policy wanted a
/// principal the caller did not present (Istio's semantics: missing credentials are an
/// anonymous caller who is forbidden, not a failed authentication). A policy in audit mode
/// logs the denial and forwards the request.
///
/// (f) **Forward** with the request-target's path and query replaced by exactly the
/// normalized form (scheme and authority kept), so the application receives the path that
/// was authorized (SECURITY principle 3), and with these request extensions: the
/// [`PeerIdentity`](crate::identity::PeerIdentity) as it was, the
/// [`RequestPrincipal`](crate::authz::RequestPrincipal) this layer verified (any other value is
/// removed), and an [`AuthzDecision`] naming the rule that allowed the request.
///
/// Refusals in (a), (b) and (d) happen in every policy mode: audit mode concerns the policy
/// only. The body and trailers of a refused request are never read by the application.
///
/// # Responses
///
/// A refusal is answered with an **empty body of the inner service's own body type**:
/// `Authz<S>` needs `S::Response = http::Response<ResBody>` with `ResBody: Default`, and its
/// response type is that same `http::Response<ResBody>`. hyper's server accepts any
/// `http_body::Body`, and the usual ones have an empty `Default`: `Full<Bytes>`,
/// `Empty<Bytes>`, `String`, `BoxBody` and `UnsyncBoxBody` of http-body-util. An application
/// that answers with a body lacking one (a proxy passing hyper's `Incoming` through) maps it to
/// a `BoxBody` first. This keeps the application's response type, needs no body type of ours,
/// and is what a gRPC trailers-only response is anyway. A refusal's reason is logged at
/// `debug` (target `tower_mesh::authz`), never sent.
///
/// | refusal | HTTP | gRPC (`content-type: application/grpc*`) |
/// |---|---|---|
/// | (a), (b): request read two ways | `400`, `connection: close` on HTTP/1 | `grpc-status: 3` `INVALID_ARGUMENT` |
/// | (d): invalid bearer token | `401`, `WWW-Authenticate` | `grpc-status: 16` `UNAUTHENTICATED` |
/// | (e): the policy denied | `403` | `grpc-status: 7` `PERMISSION_DENIED` |
///
/// gRPC refusals are trailers-only responses: HTTP 200 with `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the headers and no body. A malformed gRPC path is
/// `INVALID_ARGUMENT`, not `PERMISSION_DENIED`: the request was not judged at all, and the
/// client must not retry it as it is (unlike `INTERNAL` or `UNAVAILABLE`).
///
/// # HTTP/2
///
/// The layer reads HTTP/2 requests the same way (`:authority` is the URI's authority). It
/// does not compare `:authority` with the TLS SNI or the server's identity, so a server that
/// serves several names on one certificate should route by the authority it was given and
/// write host rules for each name (SECURITY E6, connection coalescing).
///
/// # Examples
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_mesh::authz::policy::{Policy, SharedPolicy};
/// use tower_mesh::authz::{AuthzDecision, AuthzLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let policy = Policy::from_toml_str(
///     r#"
///     [[rules]]
///     name = "public"
///     action = "allow"
///     to.paths = ["/public/**"]
///     "#,
/// )?;
/// // The application: answers with the path it was given and the rule that allowed it.
/// let app = tower::service_fn(|req: http::Request<()>| async move {
///     let rule = req.extensions().get::<AuthzDecision>().and_then(|d| d.rule()).cloned();
///     let body = format!("{} by {}", req.uri(), rule.map(|r| r.to_string()).unwrap_or_default());
///     Ok::<_, std::convert::Infallible>(http::Response::new(body))
/// });
/// let server = AuthzLayer::new(SharedPolicy::new(policy)).layer(app);
/// let get = |target: &str| http::Request::get(target).header("host", "api").body(());
///
/// let ok = server.clone().oneshot(get("/public//docs/%7Eguide?x=1")?).await?;
/// assert_eq!(ok.into_body(), "/public/docs/~guide?x=1 by public");
///
/// let denied = server.clone().oneshot(get("/public/../admin")?).await?;
/// assert_eq!(denied.status(), http::StatusCode::FORBIDDEN);
///
/// let malformed = server.oneshot(get("/public%2F..%2Fadmin")?).await?;
/// assert_eq!(malformed.status(), http::StatusCode::BAD_REQUEST);
/// # Ok(())
/// # }
/// ```
///
///
/// # Defaults
///
/// - The strict [`Normalizer::new`]: ambiguous paths are answered 400.
/// - No JWT authenticator: callers are identified by their mTLS [`PeerIdentity`] only, and
///   `request_principals` rules never match.
/// - Stripped from every request: `x-forwarded-client-cert` (Envoy/Istio), `l5d-client-id`
///   (Linkerd), `x-spiffe-id` and `x-remote-user`, the identity headers that proxies set and
///   that an application might believe; add more with
///   [`strip_header`](AuthzLayer::strip_header). None can be un-stripped: an identity header
///   from outside is never trusted (SECURITY principle 6).
/// - `OPTIONS *` and `CONNECT` are refused with 400 (SECURITY D16).
/// - No local port: policies' `ports` rules see no port (an ALLOW rule with `ports` does not
///   match, a DENY rule does). Set [`local_port`](AuthzLayer::local_port) to the listener's.
#[derive(Clone, Debug)]
pub struct AuthzLayer {
    config: Arc<Config>,
}

/// The service of [`AuthzLayer`].
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    config: Arc<Config>,
}

pin_project! {
    /// The response future of [`Authz`]: the inner service's, or a refusal answered at once.
    pub struct AuthzFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Called { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

/// The decision that let a request through: a request extension the application reads.
///
/// Only [`Authz`] creates one, after the policy judged the request with the peer identity,
/// the JWT caller and the normalized path the application now sees; any value the request
/// carried before is replaced.
#[derive(Clone, Debug)]
pub struct AuthzDecision {
    decision: Decision,
}

#[derive(Clone, Debug)]
struct Config {
    policy: SharedPolicy,
    normalizer: Normalizer,
    jwt: Option<JwtAuthenticator>,
    strip: Vec<HeaderName>,
    local_port: Option<u16>,
    read: ReadOptions,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::AuthzMetrics,
}

impl AuthzLayer {
    /// A layer judging every request by `policy` (see the [defaults](AuthzLayer#defaults)).
    pub fn new(policy: SharedPolicy) -> Self {
        AuthzLayer {
            config: Arc::new(Config {
                policy,
                normalizer: Normalizer::new(),
                jwt: None,
                // The names are lowercase tokens, which `from_static` accepts.
                strip: STRIPPED
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect(),
                local_port: None,
                read: ReadOptions {
                    asterisk: false,
                    connect: false,
                    require_host: true,
                },
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::AuthzMetrics::unnamed("inbound"),
            }),
        }
    }

    /// The path normalizer: what the policy judges and the application receives.
    pub fn normalizer(mut self, normalizer: Normalizer) -> Self {
        Arc::make_mut(&mut self.config).normalizer = normalizer;
        self
    }

    /// Authenticates bearer JWTs: a valid token makes the request's [`RequestPrincipal`], an
    /// invalid one is answered 401, none leaves the caller anonymous for the policy to judge.
    pub fn jwt(mut self, authenticator: JwtAuthenticator) -> Self {
        Arc::make_mut(&mut self.config).jwt = Some(authenticator);
        self
    }

    /// Also strips `name` from every request, before the policy judges it.
    pub fn strip_header(mut self, name: HeaderName) -> Self {
        let config = Arc::make_mut(&mut self.config);
        if !config.strip.contains(&name) {
            config.strip.push(name);
        }
        self
    }

    /// The port of the listener the server accepts on, which policies' `ports` match
    /// (SECURITY C19: the local listener's port, not the one a client addressed).
    pub fn local_port(mut self, port: u16) -> Self {
        Arc::make_mut(&mut self.config).local_port = Some(port);
        self
    }

    /// Lets `OPTIONS *` through to the policy. It has no path, so only rules without `paths`
    /// can allow it, and it is forwarded unchanged.
    pub fn allow_asterisk_form(mut self) -> Self {
        Arc::make_mut(&mut self.config).read.asterisk = true;
        self
    }

    /// Lets `CONNECT host:port` through to the policy, judged by its host. It has no path, so
    /// only rules without `paths` can allow it, and it is forwarded unchanged.
    pub fn allow_connect(mut self) -> Self {
        Arc::make_mut(&mut self.config).read.connect = true;
        self
    }

    /// Names the layer: the `layer` label of its
    /// [decision counters](crate::metrics#names) (default `"default"`), registered when the
    /// layer is first applied.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.config).metrics =
            crate::metrics::AuthzMetrics::new("inbound", name.into());
        self
    }

    /// The policy requests are judged by.
    pub fn policy(&self) -> &SharedPolicy {
        &self.config.policy
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Self::Service {
        #[cfg(feature = "metrics")]
        self.config.metrics.register();
        Authz {
            inner,
            config: self.config.clone(),
        }
    }
}

impl<S> Authz<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for Authz<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = AuthzFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let version = request.version();
        let state = match self.config.authorize(request) {
            Ok(request) => State::Called {
                future: self.inner.call(request),
            },
            Err(rejection) => State::Refused {
                response: Some(rejection.into_response(grpc, version)),
            },
        };
        AuthzFuture { state }
    }
}

impl<F, B, E> Future for AuthzFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Refused { response } => Poll::Ready(
                response
                    .take()
                    .ok_or_else(|| "authz future polled after completion".into()),
            ),
        }
    }
}

impl<F, B> fmt::Debug for AuthzFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzFuture").finish_non_exhaustive()
    }
}

impl AuthzDecision {
    /// The policy's decision.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The ALLOW rule that let the request through; `None` when a policy in audit mode would
    /// have denied it.
    pub fn rule(&self) -> Option<&RuleName> {
        match self.decision.verdict() {
            Verdict::Allow => self.decision.rule(),
            Verdict::Deny => None,
        }
    }

    /// Whether the policy denied the request and it came through only because the policy is
    /// in audit mode.
    pub fn is_audited_denial(&self) -> bool {
        self.decision.verdict() == Verdict::Deny
    }
}

impl Config {
    /// Steps (a) to (f) of the module docs: the request to forward, or why not.
    fn authorize<B>(&self, mut request: Request<B>) -> Result<Request<B>, Rejection> {
        let target = request::read(&request, &self.normalizer, self.read).map_err(|error| {
            let cause = std::error::Error::source(&error).map(ToString::to_string);
            tracing::debug!(target: LOG, %error, cause, "request refused");
            #[cfg(feature = "metrics")]
            self.metrics.invalid();
            Rejection::Invalid
        })?;
        let headers = request.headers_mut();
        for name in &self.strip {
            // Removes every value of the header.
            headers.remove(name);
        }
        let principal = match &self.jwt {
            Some(jwt) => jwt.authenticate(request.headers()).map_err(|error| {
                tracing::debug!(target: LOG, %error, "bearer token refused");
                #[cfg(feature = "metrics")]
                self.metrics.unauthenticated();
                Rejection::Unauthenticated(error)
            })?,
            None => None,
        };
        let decision = {
            let peer = request.extensions().get::<PeerIdentity>();
            let path = match &target.path {
                Some(path) => path.as_str(),
                // No path, so one no rule's `paths` can match (`OPTIONS *`, `CONNECT`).
                None if request.method() == http::Method::CONNECT => "",
                None => "*",
            };
            let attrs = Attributes {
                peer: peer.map(PeerIdentity::identity),
                request_principal: principal.as_ref(),
                source: request.extensions().get::<SocketAddr>().map(SocketAddr::ip),
                port: self.local_port,
                http: Some(HttpAttributes {
                    method: request.method(),
                    path,
                    host: target.host.as_deref(),
                    headers: request.headers(),
                }),
            };
            let decision = self.policy.evaluate(&attrs);
            if !decision.is_allowed() {
                tracing::debug!(
                    target: LOG,
                    rule = decision.rule().map(RuleName::as_str),
                    peer = peer.map(|p| p.identity().as_str()),
                    principal = principal.as_ref().map(ToString::to_string),
                    method = %request.method(),
                    path,
                    "request denied",
                );
            }
            decision
        };
        if !decision.is_allowed() {
            #[cfg(feature = "metrics")]
            self.metrics.denied();
            return Err(Rejection::Denied);
        }
        if let Some(path) = target.path {
            request::rewrite(request.uri_mut(), path).map_err(|_| {
                #[cfg(feature = "metrics")]
                self.metrics.invalid();
                Rejection::Invalid
            })?;
        }
        #[cfg(feature = "metrics")]
        self.metrics.forwarded(&decision);
        let extensions = request.extensions_mut();
        match principal {
            Some(principal) => extensions.insert(principal),
            None => extensions.remove::<RequestPrincipal>(),
        };
        extensions.insert(AuthzDecision { decision });
        Ok(request)
    }
}

const LOG: &str = "tower_mesh::authz";

/// The identity headers stripped by default.
const STRIPPED: [&str; 4] = [
    "x-forwarded-client-cert",
    "l5d-client-id",
    "x-spiffe-id",
    "x-remote-user",
];
