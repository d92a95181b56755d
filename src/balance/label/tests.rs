use std::net::SocketAddr;

use super::table::SCAN_MAX;
use super::*;
use crate::balance::{EndpointView, LeastRequest, Loads, Pick, PickRequest, RoundRobin};
use crate::endpoint::Endpoint;
use crate::load::Load;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 1000 + u16::try_from(i).unwrap()))
}

/// Endpoints with these values of label `version` (`None`: no label).
fn endpoints(values: &[Option<&str>]) -> Vec<Endpoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ep = Endpoint::new(addr(i)).with_label("zone", "a");
            match v {
                Some(v) => ep.with_label("version", *v),
                None => ep,
            }
        })
        .collect()
}

fn views(eps: &[Endpoint]) -> Vec<EndpointView<'_>> {
    eps.iter().map(EndpointView::new).collect()
}

fn loads(n: usize) -> Vec<Load> {
    (0..n).map(|_| Load::new()).collect()
}

struct Req(Option<&'static str>);

type ByVersion = fn(&Req) -> Option<&str>;

fn by_version(req: &Req) -> Option<&str> {
    req.0
}

fn route<P>(inner: P) -> LabelRoute<P, ByVersion> {
    LabelRoute::new(inner, "version", by_version as ByVersion).unwrap()
}

/// A picker recording what its tables were built from.
#[derive(Debug)]
struct Recorder;

impl Pick for Recorder {
    /// (ready addresses, unready addresses)
    type Table = (Vec<SocketAddr>, Vec<SocketAddr>);
    type Cursor = ();

    fn build(&self, ready: &[EndpointView<'_>]) -> Self::Table {
        (ready.iter().map(|v| v.addr()).collect(), Vec::new())
    }

    fn wants_unready(&self) -> bool {
        true
    }

    fn build_with_unready(
        &self,
        ready: &[EndpointView<'_>],
        unready: &[EndpointView<'_>],
    ) -> Self::Table {
        (
            ready.iter().map(|v| v.addr()).collect(),
            unready.iter().map(|v| v.addr()).collect(),
        )
    }

    fn cursor(&self, _: u64) {}
}

#[test]
fn table_groups_endpoints_by_value_in_slot_order() {
    let eps = endpoints(&[
        Some("stable"),
        Some("canary"),
        None,
        Some("stable"),
        Some("canary"),
        Some(""),
    ]);
    let table = route(RoundRobin::new()).build(&views(&eps));
    assert_eq!(table.len(), 3);
    assert_eq!(
        table.values().collect::<Vec<_>>(),
        ["", "canary", "stable"],
        "sorted by value; the empty value is a value"
    );
    assert_eq!(table.members("stable"), Some(&[0, 3][..]));
    assert_eq!(table.members("canary"), Some(&[1, 4][..]));
    assert_eq!(table.members(""), Some(&[5][..]));
    assert_eq!(table.members("beta"), None);
    assert_eq!(table.members("Stable"), None, "values are case-sensitive");
}

#[test]
fn inner_tables_are_built_per_group_and_for_all() {
    let eps = endpoints(&[Some("b"), None, Some("a"), Some("b")]);
    let picker = LabelRoute::new(Recorder, "version", by_version as ByVersion).unwrap();
    let (ready, unready) = eps.split_at(3);
    let table = picker.build_with_unready(&views(ready), &views(unready));
    assert_eq!(table.all().0, [addr(0), addr(1), addr(2)]);
    assert_eq!(table.all().1, [addr(3)]);
    assert_eq!(table.table("b").unwrap().0, [addr(0)]);
    assert_eq!(
        table.table("b").unwrap().1,
        [addr(3)],
        "a group's inner table sees its own unready endpoints"
    );
    assert_eq!(table.table("a").unwrap().0, [addr(2)]);
    assert!(table.table("a").unwrap().1.is_empty());

    // A value only unready endpoints carry has no group.
    let table = picker.build_with_unready(&views(&eps[..2]), &views(&eps[2..3]));
    assert_eq!(table.values().collect::<Vec<_>>(), ["b"]);
    assert!(picker.wants_unready());
    assert!(!route(RoundRobin::new()).wants_unready());
}

#[test]
fn many_groups_are_found_by_hash_like_by_scan() {
    for groups in [1, SCAN_MAX, SCAN_MAX + 1, 300] {
        let names: Vec<String> = (0..groups).map(|g| format!("v{g}")).collect();
        let values: Vec<Option<&str>> = (0..groups * 2)
            .map(|i| Some(names[i % groups].as_str()))
            .collect();
        let eps = endpoints(&values);
        let table = route(RoundRobin::new()).build(&views(&eps));
        assert_eq!(table.len(), groups);
        for (g, name) in names.iter().enumerate() {
            let want = [g as u32, (g + groups) as u32];
            assert_eq!(table.members(name), Some(&want[..]), "{groups} groups");
        }
        assert_eq!(table.members("v"), None);
        assert_eq!(table.members(&format!("v{groups}")), None);
    }
}

#[test]
fn values_with_equal_fingerprints_are_told_apart() {
    // Same length, same first, middle and last bytes: the scan must compare the values.
    let eps = endpoints(&[Some("ax-z-yb"), Some("ay-z-xb"), Some("a--z--b")]);
    let table = route(RoundRobin::new()).build(&views(&eps));
    assert_eq!(table.members("ax-z-yb"), Some(&[0][..]));
    assert_eq!(table.members("ay-z-xb"), Some(&[1][..]));
    assert_eq!(table.members("a--z--b"), Some(&[2][..]));
    assert_eq!(table.members("aa-z-ab"), None);
}

#[test]
fn round_robin_within_each_group_survives_interleaving() {
    let eps = endpoints(&[
        Some("s"),
        Some("c"),
        Some("s"),
        Some("s"),
        Some("c"),
        Some("s"),
    ]);
    let picker = route(RoundRobin::with_seed(3));
    let table = picker.build(&views(&eps));
    let loads = loads(eps.len());
    let mut cursor = picker.cursor(5);
    let mut counts = [0u32; 6];
    // An interleaving that would starve endpoints with a cursor shared by both groups.
    for k in 0..1200 {
        let req = Req(Some(if k % 2 == 0 { "c" } else { "s" }));
        let i = picker
            .pick(&table, &mut cursor, &Loads::new(&loads), &req)
            .unwrap();
        let want = if k % 2 == 0 { "c" } else { "s" };
        assert_eq!(eps[i].label("version"), Some(want));
        counts[i] += 1;
    }
    assert_eq!(counts, [150, 300, 150, 150, 300, 150]);
}

#[test]
fn fallbacks_route_misses_and_no_selector_goes_everywhere() {
    let eps = endpoints(&[Some("stable"), Some("canary"), None]);
    let loads = loads(eps.len());
    let pick_all = |picker: &LabelRoute<RoundRobin, ByVersion>, req: Req, n: usize| {
        let table = picker.build(&views(&eps));
        let mut cursor = picker.cursor(0);
        let mut seen: Vec<usize> = (0..n)
            .filter_map(|_| picker.pick(&table, &mut cursor, &Loads::new(&loads), &req))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    let fail = route(RoundRobin::new());
    assert_eq!(fail.fallback_policy(), &Fallback::Fail);
    assert_eq!(pick_all(&fail, Req(Some("beta")), 10), Vec::<usize>::new());
    assert_eq!(pick_all(&fail, Req(None), 10), [0, 1, 2]);
    let any = route(RoundRobin::new()).fallback(Fallback::Any);
    assert_eq!(pick_all(&any, Req(Some("beta")), 10), [0, 1, 2]);
    let stable = route(RoundRobin::new()).fallback(Fallback::value("stable"));
    assert_eq!(pick_all(&stable, Req(Some("beta")), 10), [0]);
    assert_eq!(pick_all(&stable, Req(Some("canary")), 10), [1]);
    let defaulted = route(RoundRobin::new()).default_value("stable");
    assert_eq!(pick_all(&defaulted, Req(None), 10), [0]);
    assert_eq!(pick_all(&defaulted, Req(Some("canary")), 10), [1]);
}

#[test]
fn refusal_names_the_key_the_value_and_the_fallback() {
    let eps = endpoints(&[Some("stable")]);
    let picker = route(RoundRobin::new());
    let table = picker.build(&views(&eps));
    let err = picker.refusal(&table, &Req(Some("canary")));
    let err = err.downcast_ref::<NoMatchingEndpoints>().unwrap();
    assert_eq!(
        (err.key(), err.value(), err.fallback()),
        ("version", "canary", None)
    );
    assert_eq!(
        err.to_string(),
        r#"no endpoints with label version="canary""#
    );

    let picker = route(RoundRobin::new()).fallback(Fallback::value("old"));
    let table = picker.build(&views(&eps));
    let err = picker.refusal(&table, &Req(Some("canary")));
    let err = err.downcast_ref::<NoMatchingEndpoints>().unwrap();
    assert_eq!(err.fallback(), Some("old"));
    assert_eq!(
        err.to_string(),
        r#"no endpoints with label version="canary" or fallback version="old""#
    );

    // Routed to a group or to all, the refusal is the inner picker's.
    let empty = picker.build(&[]);
    let err = picker.refusal(&empty, &Req(None));
    assert!(err.is::<crate::error::NoEndpoints>(), "{err}");
    assert!(
        picker
            .pick(&empty, &mut picker.cursor(0), &Loads::new(&[]), &Req(None))
            .is_none()
    );
}

#[test]
fn load_aware_inner_picker_sees_the_group_loads() {
    let eps = endpoints(&[Some("c"), Some("s"), Some("c"), Some("s")]);
    let picker = route(LeastRequest::with_seed(1));
    let table = picker.build(&views(&eps));
    let loads = loads(eps.len());
    // Endpoint 0 is busy, 3 (other group) idle: canary requests go to 2.
    let _busy: Vec<_> = (0..5).map(|_| loads[0].start()).collect();
    let mut cursor = picker.cursor(0);
    for _ in 0..50 {
        let i = picker.pick(&table, &mut cursor, &Loads::new(&loads), &Req(Some("c")));
        assert_eq!(i, Some(2));
    }
}

#[test]
fn invalid_keys_are_refused_naming_the_key() {
    for key in ["", "  ", "\t"] {
        let err = LabelRoute::new(RoundRobin::new(), key, by_version as ByVersion).unwrap_err();
        assert_eq!(err, LabelRouteError::InvalidKey(key.to_owned()));
        assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
    }
    let ok = LabelRoute::from_fn(RoundRobin::new(), "version", |r: &Req| r.0).unwrap();
    assert_eq!(ok.key(), "version");
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LabelRoute<RoundRobin, ByVersion>>();
    check::<LabelTable<()>>();
    check::<LabelCursor<crate::balance::Position>>();
    check::<Fallback>();
    check::<NoMatchingEndpoints>();
    check::<LabelRouteError>();
    #[cfg(feature = "http")]
    check::<Header>();
}
