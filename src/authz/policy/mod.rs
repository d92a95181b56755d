//! Authorization policy: rules that allow or deny a request by who calls (peer identity, JWT
//! caller, source address) and what is called (method, path, host, port, headers, claims).
//!
//! # Semantics
//!
//! The model is Istio's [AuthorizationPolicy] (ALLOW and DENY actions, `from`/`to`/`when`,
//! positive and `not*` fields), with the defaults and refusals of Linkerd's [policy
//! resources][linkerd]: a server with no authorization allows nothing, and a reference to an
//! authentication that does not exist never reads as "no requirement".
//!
//! - **Order.** The first DENY rule (in file order) that matches denies; otherwise the first
//!   ALLOW rule that matches allows; otherwise the request is **denied**. An empty policy,
//!   or one with only DENY rules, allows nothing (SECURITY.md principle 2, H5). A
//!   [`Decision`] names the rule that decided, or the default.
//! - **AND / OR.** Within a rule, fields are ANDed; the values of a field are ORed (Istio:
//!   "the fields are ANDed, the values of a field are ORed"). A rule with no fields matches
//!   every request; a policy with no rules matches none (Istio's `rules: [{}]` vs
//!   `rules: []`). To OR two sources or two operations, write two rules.
//! - **Negative fields** (`not_principals`, `not_paths`, ...) hold when the value is none of
//!   the listed ones. With a positive field on the same attribute, both must hold. Istio's
//!   security best practices recommend ALLOW with positive fields and DENY with negative
//!   ones; the other uses are [lints](LintKind), warned at load (or refused with
//!   [`LintLevel::Deny`]).
//! - **Missing attributes.** The HTTP fields (`methods`, `paths`, `hosts`, `headers`,
//!   `request_principals`, `claims` and their negatives) on a TCP connection (no `http` in
//!   [`Attributes`]), like `hosts` on a request without a host, `source_blocks` without a
//!   source address and `ports` without a local port: in a DENY rule they **match** (so a DENY
//!   `methods = ["POST"]` denies all TCP on its listener, as Istio does), in an ALLOW rule they
//!   do not. A policy never allows on what it could not see, and nothing escapes a denial by
//!   hiding an attribute.
//! - **Anonymous callers.** With no peer identity, `principals` does not match and
//!   `not_principals` does (so DENY `not_principals = ["*"]` denies unauthenticated peers);
//!   likewise `request_principals`/`claims` and `not_request_principals` without a JWT. A
//!   denial that turned on such an absence says so ([`Decision::needs_authentication`]), so a
//!   layer can tell "authenticate" from "forbidden".
//!
//! # Matching, on boundaries (SECURITY.md principle 4)
//!
//! | Field | Values |
//! |---|---|
//! | `principals` | `*` (any verified peer); a SPIFFE ID, exact and case-sensitive; `spiffe://td/ns/x/*` (IDs of `td` *below* `/ns/x`, on whole segments: never `/ns/xy`, nor `/ns/x` itself); a DNS name, case-insensitive; `*.svc.cluster.local` (names with at least one label before it: never `evilsvc.cluster.local`, nor `svc.cluster.local` itself) |
//! | `request_principals` | `*` (any JWT caller); `iss/sub`; `iss/*` (any subject of `iss`) |
//! | `paths` | `*`; an exact path (case-sensitive); `/p/*` or `/p/**`, the same: `/p` and every path below it, on segment boundaries (`/admin/**` matches `/admin` and `/admin/x`, never `/administrator`); gRPC `/pkg.Service/*`. Paths are compared with the normalized path byte for byte: a policy path that no normalized path can equal (`//`, dot segments, `%2F`, an escaped unreserved character) is refused, and percent-escapes are compared in uppercase |
//! | `hosts` | `*`; a host; `*.example.com` (label suffix). Case-insensitive; a port and a trailing dot in the policy are dropped at load; IPv6 literals are bracketed |
//! | `methods` | uppercase tokens (`GET`, `POST`); a lowercase method is refused |
//! | `ports` | the **local listener's** port (the one the connection arrived on), 1–65535; not the port a client addressed, which a port mapping may change (ISTIO-SECURITY-2021-002) |
//! | `source_blocks` | CIDRs (`10.0.0.0/8`, host bits clear) or addresses, matched against the socket's remote address only (never a forwarded-for header); an IPv4-mapped IPv6 source is read as IPv4 |
//! | `headers` | header name (lowercased at load) → values: exact, or `prefix*`, `*` (present). A repeated header matches a DENY rule if any value matches, an ALLOW rule only if all do |
//! | `claims` | claim name → values: a string claim equal to one, or an array claim containing one |
//!
//! # File format
//!
//! TOML; every table refuses unknown keys, every list accepts a single value too, and an
//! empty list is refused (remove the field instead). `mode` is `"enforce"` (the default) or
//! `"audit"` (evaluate and log, never deny). Named sets (`principal_sets`, `network_sets`)
//! are referenced from rules (`principal_sets`, `not_principal_sets`, `network_sets`,
//! `not_network_sets`) and expand into `principals` / `source_blocks`; a reference to an
//! undefined set refuses the whole file. Rule names are unique. Every error names its line
//! and column (and, from a file, the file).
//!
//! ```toml
//! mode = "enforce"
//!
//! [principal_sets]
//! frontend = ["spiffe://prod.example/ns/web/*", "*.web.svc.cluster.local"]
//!
//! [network_sets]
//! internal = ["10.0.0.0/8", "fd00::/8"]
//!
//! [[rules]]
//! name = "deny-debug-from-outside"
//! action = "deny"
//! from.not_network_sets = ["internal"]
//! to.paths = ["/debug/**"]
//!
//! [[rules]]
//! name = "frontend-reads-api"
//! action = "allow"
//! [rules.from]
//! principal_sets = ["frontend"]
//! [rules.to]
//! methods = ["GET", "HEAD"]
//! paths = ["/api/**", "/pkg.Catalog/*"]
//! hosts = ["api.example.com"]
//! ports = [8080]
//! [rules.when]
//! headers."x-tenant" = ["acme", "beta-*"]
//!
//! [[rules]]
//! name = "admins"
//! action = "allow"
//! from.request_principals = ["https://idp.example/*"]
//! when.claims.groups = ["admins"]
//! ```
//!
//! # Reload
//!
//! [`SharedPolicy`] holds the policy in force behind an atomic swap;
//! [`SharedPolicy::watch_file`] polls a file and swaps in each valid change, keeps the last
//! good policy on an invalid one (reporting it on [`PolicyReloadHandle::subscribe`]), and
//! refuses to start on a file that does not load.
//!
//! # Performance
//!
//! Evaluation never allocates. Rules are indexed by the first segment of their `paths`, or
//! else by their exact `hosts`; a request consults only its bucket and the unindexed rules,
//! and the result is the one a scan of every rule in file order gives (a property test holds
//! the two equal on random policies).
//!
//! # Examples
//!
//! ```
//! use http::{HeaderMap, Method};
//! use tower_mesh::authz::policy::{DecidedBy, Policy, Verdict};
//! use tower_mesh::authz::{Attributes, HttpAttributes};
//! use tower_mesh::identity::Identity;
//!
//! let policy = Policy::from_toml_str(
//!     r#"
//!     [[rules]]
//!     name = "web-reads-api"
//!     action = "allow"
//!     from.principals = ["spiffe://prod.example/ns/web/*"]
//!     to.methods = ["GET"]
//!     to.paths = ["/api/**"]
//!     "#,
//! )?;
//!
//! let web = Identity::parse("spiffe://prod.example/ns/web/sa/frontend")?;
//! let headers = HeaderMap::new();
//! let request = |path| Attributes {
//!     peer: Some(&web),
//!     http: Some(HttpAttributes {
//!         method: &Method::GET,
//!         path,
//!         host: Some("api.example.com"),
//!         headers: &headers,
//!     }),
//!     ..Attributes::default()
//! };
//!
//! let allowed = policy.evaluate(&request("/api/items"));
//! assert!(allowed.is_allowed());
//! assert_eq!(allowed.rule().map(|r| r.as_str()), Some("web-reads-api"));
//!
//! // Segment boundaries: `/api/**` is not `/apis`.
//! let denied = policy.evaluate(&request("/apis"));
//! assert_eq!(denied.verdict(), Verdict::Deny);
//! assert_eq!(denied.decided_by(), &DecidedBy::Default);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [AuthorizationPolicy]: https://istio.io/latest/docs/reference/config/security/authorization-policy/
//! [linkerd]: https://linkerd.io/2-edge/reference/authorization-policy/
//! [`Attributes`]: crate::authz::Attributes

mod compile;
mod decision;
mod error;
mod eval;
mod file;
mod index;
mod lint;
mod matcher;
mod model;
mod path;
mod principal;
mod reload;

pub use self::decision::{DecidedBy, Decision, Verdict};
pub use self::error::{PolicyError, PolicyErrorKind, PolicyFileError, WatchError};
pub use self::lint::{Lint, LintKind, LintLevel};
pub use self::model::{Action, LoadOptions, Mode, Policy, Rule, RuleName};
pub use self::reload::{PolicyReloadHandle, ReloadStatus, SharedPolicy};

#[cfg(test)]
mod tests;
