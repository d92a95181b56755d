//! Label subsets: route a request to the endpoints whose label matches a value the request
//! selects (`version=canary` from an `x-version` header), and pick among them with any picker.
//!
//! # How it works
//!
//! A [`LabelRoute`] routes by one label key. When the endpoint set changes it groups the ready
//! endpoints by their value of that label and builds its inner picker's table once per value,
//! over that group alone, plus once over every endpoint; each group keeps the map from its own
//! indices to the set's. Per request it takes the value from the request with a
//! [`SelectLabel`] (a closure, or with the `http` feature a `Header`), finds the group, and
//! lets the inner picker pick within it through
//! [`Loads::subset`](crate::balance::Loads::subset), so load-aware inner pickers see the
//! group's live loads. The pick costs the selector, a scan of up to eight values (beyond,
//! an XXH3 hash and a probe of an open-addressed table), and the inner pick: no allocation, no
//! lock.
//!
//! Endpoints without the label belong to no group; requests that select no value go to every
//! endpoint (or, with [`LabelRoute::default_value`], to one value's group).
//!
//! # When no endpoint matches
//!
//! As in Envoy's subset load balancer
//! ([docs](https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/subsets),
//! whose `fallback_policy` has the same three choices and the same default), a request whose
//! value no ready endpoint carries follows the [`Fallback`]:
//!
//! | fallback | Envoy | the request goes to |
//! |---|---|---|
//! | [`Fallback::Fail`] (default) | `NO_FALLBACK` | nowhere: it fails with [`NoMatchingEndpoints`], naming the key and value |
//! | [`Fallback::Any`] | `ANY_ENDPOINT` | every ready endpoint |
//! | [`Fallback::Value`] | `DEFAULT_SUBSET` | the group of another value (`"stable"`); if that is empty too, it fails |
//!
//! The group follows discovery: an endpoint whose labels change moves to its new group at the
//! next table build.
//!
//! # Cursors
//!
//! Each group has its own inner cursor per balancer clone, so the inner picker's guarantees
//! hold within each group: [`RoundRobin`](crate::balance::RoundRobin) counts within a group
//! differ by at most one however requests for different groups interleave.
//!
//! # Choosing it
//!
//! Use it for canaries, versions, tenants or shards that requests name explicitly. To prefer
//! nearby endpoints without excluding the others, use [`Locality`](crate::balance::Locality).
//! Every value's group has its own inner table, so an inner picker with a large table
//! ([`Maglev`](crate::balance::hash::Maglev)) costs that table once per value.
//!
//! # Examples
//!
//! ```
//! use tower_mesh::balance::label::{Fallback, LabelRoute};
//! use tower_mesh::balance::{EndpointView, Loads, Pick, PickRequest, RoundRobin};
//! use tower_mesh::endpoint::Endpoint;
//! use tower_mesh::load::Load;
//!
//! struct Request { version: Option<String> }
//!
//! let route = LabelRoute::from_fn(RoundRobin::new(), "version", |r: &Request| {
//!     r.version.as_deref()
//! })?
//! .fallback(Fallback::Any);
//!
//! let endpoints: Vec<Endpoint> = ["stable", "canary", "stable"]
//!     .iter()
//!     .enumerate()
//!     .map(|(i, v)| {
//!         Endpoint::new(([10, 0, 0, i as u8], 80).into()).with_label("version", *v)
//!     })
//!     .collect();
//! let views: Vec<_> = endpoints.iter().map(EndpointView::new).collect();
//! let table = route.build(&views);
//! let loads: Vec<Load> = endpoints.iter().map(|_| Load::new()).collect();
//! let mut cursor = route.cursor(0);
//! let mut pick = |version: Option<&str>| {
//!     let req = Request { version: version.map(String::from) };
//!     route.pick(&table, &mut cursor, &Loads::new(&loads), &req)
//! };
//!
//! assert_eq!(pick(Some("canary")), Some(1)); // only the canary
//! assert_eq!(pick(Some("canary")), Some(1));
//! let mut stable = [pick(Some("stable")), pick(Some("stable"))];
//! stable.sort();
//! assert_eq!(stable, [Some(0), Some(2)]); // round-robin within the stable group
//! assert!(pick(Some("beta")).is_some()); // no beta endpoint: any endpoint
//! # Ok::<(), tower_mesh::balance::label::LabelRouteError>(())
//! ```

mod error;
#[cfg(feature = "http")]
mod http;
mod route;
mod select;
mod table;

pub use self::error::{LabelRouteError, NoMatchingEndpoints};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::http::Header;
pub use self::route::{Fallback, LabelCursor, LabelRoute};
pub use self::select::SelectLabel;
pub use self::table::LabelTable;

#[cfg(test)]
mod tests;
