//! Taking a label value from a request.

/// Takes from a request the label value it asks for, borrowed from the request, or `None` when
/// it asks for none.
///
/// Implement it for a named extractor type. A closure `Fn(&Req) -> Option<&str>` is a
/// selector too; pass it to [`LabelRoute::from_fn`](super::LabelRoute::from_fn), whose bound
/// tells the compiler that the returned value borrows from the request. With the `http`
/// feature, `Header` reads a header.
///
/// # Examples
///
/// ```
/// use tower_mesh::balance::label::SelectLabel;
///
/// struct Request { version: Option<String> }
///
/// struct ByVersion;
/// impl SelectLabel<Request> for ByVersion {
///     fn select<'r>(&self, req: &'r Request) -> Option<&'r str> {
///         req.version.as_deref()
///     }
/// }
///
/// let req = Request { version: Some("canary".into()) };
/// assert_eq!(ByVersion.select(&req), Some("canary"));
/// ```
pub trait SelectLabel<Req>: Send + Sync + 'static {
    /// The label value `req` selects, or `None` if it selects none.
    fn select<'r>(&self, req: &'r Req) -> Option<&'r str>;
}

impl<Req, F> SelectLabel<Req> for F
where
    F: Fn(&Req) -> Option<&str> + Send + Sync + 'static,
{
    #[inline]
    fn select<'r>(&self, req: &'r Req) -> Option<&'r str> {
        self(req)
    }
}
