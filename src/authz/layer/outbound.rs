//! The outbound layer: an egress policy of which hosts, methods and paths this client may
//! call, checked before anything is sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::error::{EgressDenied, InvalidRequest};
use super::request::{self, ReadOptions};
use crate::authz::policy::SharedPolicy;
use crate::authz::{Attributes, HttpAttributes, Normalizer};

/// Checks every outbound request against an egress [`SharedPolicy`] before the inner
/// service (a [`Balance`](crate::balance::Balance), a hyper client) sees it.
///
/// A cheap `Clone` holding configuration only.
///
/// # What an egress policy matches
///
/// The destination, never a caller: the request is judged as [`Attributes`] with
/// - `http.method`: the method (a lowercase method is refused as
///   [`InvalidRequest::LowercaseMethod`], as inbound);
/// - `http.path`: the path as the [`Normalizer`] normalizes it; the request is sent with
///   exactly that path (and the query unchanged);
/// - `http.host`: the canonical host of the URI's authority, or else of the `Host` header (the
///   two must agree when both are present);
/// - `port`: the **destination** port: explicit in the authority or `Host`, else 80 for
///   `http` and 443 for `https` URIs. (Inbound, `ports` are the local listener's; in an
///   egress policy they are the port called);
/// - `http.headers`: the request's headers;
/// - no `peer`, `request_principal` or `source`: an egress policy is this client's own, so
///   `principals`, `request_principals`, `claims` and `source_blocks` never match in an ALLOW
///   rule (and always in a DENY rule). Write egress rules with `to` fields and `when.headers`
///   only.
///
/// # Errors
///
/// The inner service is not called, so nothing is sent, and the call fails with:
/// - [`EgressDenied`]: the policy denied the request;
/// - [`InvalidRequest`]: the request cannot be judged one way: a path the normalizer refuses,
///   an invalid or conflicting host, a lowercase method, `OPTIONS *` or `CONNECT`.
///
/// Both are downcastable from the [`BoxError`]; an error of the inner service is passed
/// through as it is. A policy in audit mode logs a denial and sends the request.
///
/// # Examples
///
/// ```
/// use tower::{Layer, ServiceExt};
/// use tower_mesh::authz::policy::{Policy, SharedPolicy};
/// use tower_mesh::authz::{EgressDenied, EgressLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let policy = Policy::from_toml_str(
///     r#"
///     [[rules]]
///     name = "read-catalog"
///     action = "allow"
///     to.hosts = ["catalog.svc"]
///     to.methods = ["GET"]
///     to.paths = ["/items/**"]
///     "#,
/// )?;
/// let client = tower::service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.uri().to_string())
/// });
/// let egress = EgressLayer::new(SharedPolicy::new(policy)).layer(client);
///
/// let request = http::Request::get("http://catalog.svc/items//1").body(())?;
/// let sent = egress.clone().oneshot(request).await?;
/// assert_eq!(sent, "http://catalog.svc/items/1");
///
/// let refused = egress
///     .oneshot(http::Request::delete("http://catalog.svc/items/1").body(())?)
///     .await
///     .unwrap_err();
/// let denied = refused.downcast_ref::<EgressDenied>().expect("a policy denial");
/// assert_eq!(denied.rule(), None); // no ALLOW rule matched
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EgressLayer {
    policy: SharedPolicy,
    normalizer: Normalizer,
    #[cfg(feature = "metrics")]
    metrics: std::sync::Arc<crate::metrics::AuthzMetrics>,
}

/// The service of [`EgressLayer`].
#[derive(Clone, Debug)]
pub struct Egress<S> {
    inner: S,
    policy: SharedPolicy,
    normalizer: Normalizer,
    #[cfg(feature = "metrics")]
    metrics: std::sync::Arc<crate::metrics::AuthzMetrics>,
}

pin_project! {
    /// The response future of [`Egress`].
    pub struct EgressFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Refused { error: Option<BoxError> },
    }
}

impl EgressLayer {
    /// A layer checking every request against `policy`, with the strict [`Normalizer::new`].
    pub fn new(policy: SharedPolicy) -> Self {
        EgressLayer {
            policy,
            normalizer: Normalizer::new(),
            #[cfg(feature = "metrics")]
            metrics: std::sync::Arc::new(crate::metrics::AuthzMetrics::unnamed("outbound")),
        }
    }

    /// Names the layer: the `layer` label of its
    /// [decision counters](crate::metrics#names) (default `"default"`), registered when the
    /// layer is first applied.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.metrics =
            std::sync::Arc::new(crate::metrics::AuthzMetrics::new("outbound", name.into()));
        self
    }

    /// Whether [`name`](Self::name) named the layer.
    #[cfg(feature = "metrics")]
    pub(crate) fn is_named(&self) -> bool {
        !self.metrics.is_unnamed()
    }

    /// The path normalizer.
    pub fn normalizer(mut self, normalizer: Normalizer) -> Self {
        self.normalizer = normalizer;
        self
    }

    /// The egress policy.
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for EgressLayer {
    type Service = Egress<S>;

    fn layer(&self, inner: S) -> Self::Service {
        #[cfg(feature = "metrics")]
        self.metrics.register();
        Egress {
            inner,
            policy: self.policy.clone(),
            normalizer: self.normalizer,
            #[cfg(feature = "metrics")]
            metrics: std::sync::Arc::clone(&self.metrics),
        }
    }
}

impl<S> Egress<S> {
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

    fn check<B>(&self, request: Request<B>) -> Result<Request<B>, BoxError> {
        let checked = self.judge(request);
        #[cfg(feature = "metrics")]
        match &checked {
            Ok((_, decision)) => self.metrics.forwarded(decision),
            Err(e) if e.is::<EgressDenied>() => self.metrics.denied(),
            Err(_) => self.metrics.invalid(),
        }
        checked.map(|(request, _)| request)
    }

    /// The request to send and the decision that let it through, or why not.
    fn judge<B>(
        &self,
        mut request: Request<B>,
    ) -> Result<(Request<B>, crate::authz::policy::Decision), BoxError> {
        let target = request::read(&request, &self.normalizer, ReadOptions::default())?;
        // `read` gives every request but `OPTIONS *` and `CONNECT` a path, and refuses those
        // two with these options; were it not to, the request is refused.
        let Some(path) = target.path else {
            return Err(InvalidRequest::TargetForm.into());
        };
        let decision = self.policy.evaluate(&Attributes {
            port: target.port,
            http: Some(HttpAttributes {
                method: request.method(),
                path: path.as_str(),
                host: target.host.as_deref(),
                headers: request.headers(),
            }),
            ..Attributes::default()
        });
        if !decision.is_allowed() {
            let denied = EgressDenied::new(
                request.method().clone(),
                target.host,
                path.as_str().to_owned(),
                decision.decided_by().clone(),
            );
            tracing::debug!(target: "tower_mesh::authz::egress", error = %denied, "call refused");
            return Err(denied.into());
        }
        request::rewrite(request.uri_mut(), path)?;
        Ok((request, decision))
    }
}

impl<S, B> Service<Request<B>> for Egress<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = EgressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = match self.check(request) {
            Ok(request) => State::Called {
                future: self.inner.call(request),
            },
            Err(error) => State::Refused { error: Some(error) },
        };
        EgressFuture { state }
    }
}

impl<F, R, E> Future for EgressFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "egress future polled after completion".into()))),
        }
    }
}

impl<F> fmt::Debug for EgressFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressFuture").finish_non_exhaustive()
    }
}
