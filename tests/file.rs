//! `discover::file::File` on real files in a temporary directory, under paused time: write,
//! change, corrupt, fix, delete and recreate, in both formats, alone and feeding a real
//! `Balance`; and a property test that any endpoint list written as JSON or TOML parses back to
//! itself.
#![cfg(feature = "file")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use proptest::prelude::*;
use tower::{Service, ServiceExt, service_fn};
use tower_mesh::balance::{Balance, RoundRobin};
use tower_mesh::discover::Update;
use tower_mesh::discover::file::{
    File, FileConfigError, FileError, Format, ParseErrorKind, parse_endpoints,
};
use tower_mesh::endpoint::{Endpoint, Weight};

/// Virtual time allowed for an expected item (paused time makes waiting free).
const DEADLINE: Duration = Duration::from_secs(60);
/// Virtual time during which nothing must be yielded: ten poll intervals.
const QUIET: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the system temp dir, removed with everything in it on drop (also
/// when the test fails). Std only: `tempfile` would add a dependency for ten lines.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("tower-mesh-file-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces `path` atomically (write a sibling, rename over), as configuration tools do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn render(endpoints: &[Endpoint], format: Format) -> String {
    match format {
        Format::Json => render_json(endpoints),
        Format::Toml => render_toml(endpoints),
        _ => unreachable!("no other format exists"),
    }
}

fn render_json(endpoints: &[Endpoint]) -> String {
    let list: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|ep| {
            let mut entry = serde_json::Map::new();
            entry.insert("addr".into(), ep.addr().to_string().into());
            if ep.weight() != Weight::ONE {
                entry.insert("weight".into(), ep.weight().get().into());
            }
            if let Some(zone) = ep.zone() {
                entry.insert("zone".into(), zone.into());
            }
            if ep.labels().len() > 0 {
                let labels: serde_json::Map<_, _> =
                    ep.labels().map(|(k, v)| (k.to_owned(), v.into())).collect();
                entry.insert("labels".into(), labels.into());
            }
            if let Some(identity) = ep.identity() {
                entry.insert("identity".into(), identity.into());
            }
            entry.into()
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "endpoints": list })).expect("json")
}

fn render_toml(endpoints: &[Endpoint]) -> String {
    let list: Vec<toml::Value> = endpoints
        .iter()
        .map(|ep| {
            let mut entry = toml::Table::new();
            entry.insert("addr".into(), ep.addr().to_string().into());
            if ep.weight() != Weight::ONE {
                entry.insert("weight".into(), i64::from(ep.weight().get()).into());
            }
            if let Some(zone) = ep.zone() {
                entry.insert("zone".into(), zone.into());
            }
            if ep.labels().len() > 0 {
                let labels: toml::Table =
                    ep.labels().map(|(k, v)| (k.to_owned(), v.into())).collect();
                entry.insert("labels".into(), labels.into());
            }
            if let Some(identity) = ep.identity() {
                entry.insert("identity".into(), identity.into());
            }
            entry.into()
        })
        .collect();
    let mut doc = toml::Table::new();
    doc.insert("endpoints".into(), list.into());
    toml::to_string(&doc).expect("toml")
}

fn set(endpoints: &[Endpoint]) -> BTreeMap<SocketAddr, Endpoint> {
    endpoints.iter().map(|ep| (ep.addr(), ep.clone())).collect()
}

fn v1() -> Vec<Endpoint> {
    vec![
        Endpoint::new(addr("10.0.0.1:8080"))
            .with_weight(Weight::new(3).unwrap())
            .with_zone("eu-west-1a")
            .with_label("version", "stable")
            .with_identity("spiffe://example.org/api"),
        Endpoint::new(addr("10.0.0.2:8080")),
    ]
}

fn v2() -> Vec<Endpoint> {
    vec![
        Endpoint::new(addr("10.0.0.2:8080")).with_weight(Weight::new(2).unwrap()),
        Endpoint::new(addr("[2001:db8::7]:8080")).with_label("version", "canary"),
        Endpoint::new(addr("10.0.0.3:8080")),
    ]
}

fn v3() -> Vec<Endpoint> {
    vec![Endpoint::new(addr("10.0.0.4:9090"))]
}

/// The next item, which must come within the deadline.
async fn next(file: &mut File) -> Result<Update, FileError> {
    tokio::time::timeout(DEADLINE, file.next())
        .await
        .expect("an item within the deadline")
        .expect("the stream never ends")
}

async fn next_set(file: &mut File) -> BTreeMap<SocketAddr, Endpoint> {
    match next(file).await {
        Ok(Update::Reset(endpoints)) => set(&endpoints),
        other => panic!("expected a reset, got {other:?}"),
    }
}

async fn next_error(file: &mut File) -> FileError {
    match next(file).await {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Asserts that the source yields nothing for ten poll intervals.
async fn assert_quiet(file: &mut File) {
    if let Ok(item) = tokio::time::timeout(QUIET, file.next()).await {
        panic!("expected nothing, got {item:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario: write, change, corrupt, fix, in both formats.

/// A corrupt version of each format, and where its error is.
fn corrupt(format: Format) -> (&'static str, (usize, usize)) {
    match format {
        // Line 3: the `,` after the address is missing; serde_json stops at the `"` of `"weight"`.
        Format::Json => (
            "{\n  \"endpoints\": [\n    {\"addr\": \"10.0.0.9:80\" \"weight\": 2}\n  ]\n}\n",
            (3, 28),
        ),
        // Line 4: `weight` has no value.
        Format::Toml => (
            "[[endpoints]]\naddr = \"10.0.0.9:80\"\n\nweight =\n",
            (4, 9),
        ),
        _ => unreachable!("no other format exists"),
    }
}

async fn write_change_corrupt_fix(format: Format, name: &str) {
    let dir = TempDir::new(name);
    let path = dir.join(name);
    replace(&path, &render(&v1(), format));
    let mut file = File::builder(&path).interval(INTERVAL).build().unwrap();
    assert_eq!(file.format(), format);

    assert_eq!(next_set(&mut file).await, set(&v1()), "write");

    replace(&path, &render(&v2(), format));
    assert_eq!(next_set(&mut file).await, set(&v2()), "change");

    let (text, (line, column)) = corrupt(format);
    replace(&path, text);
    let e = next_error(&mut file).await;
    let FileError::Parse { path: p, error } = &e else {
        panic!("expected a parse error, got {e:?}")
    };
    assert_eq!(p, &path);
    assert_eq!((error.line(), error.column()), (line, column), "{e}");
    assert!(matches!(error.kind(), ParseErrorKind::Malformed(_)), "{e}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "invalid endpoint file {}: line {line}, column {column}: ",
            path.display()
        )),
        "{message}"
    );
    // Reported once, and the last good set stays the source's current set.
    assert_quiet(&mut file).await;
    assert_eq!(set(file.endpoints().unwrap()), set(&v2()));

    replace(&path, &render(&v3(), format));
    assert_eq!(next_set(&mut file).await, set(&v3()), "fix");
}

#[tokio::test(start_paused = true)]
async fn json_write_change_corrupt_fix() {
    write_change_corrupt_fix(Format::Json, "endpoints.json").await;
}

#[tokio::test(start_paused = true)]
async fn toml_write_change_corrupt_fix() {
    write_change_corrupt_fix(Format::Toml, "endpoints.toml").await;
}

#[tokio::test(start_paused = true)]
async fn semantic_errors_name_the_value_entry_and_place() {
    let dir = TempDir::new("semantic");
    let path = dir.join("endpoints.toml");
    replace(&path, &render(&v1(), Format::Toml));
    let mut file = File::builder(&path).build().unwrap();
    assert_eq!(next_set(&mut file).await, set(&v1()));

    replace(
        &path,
        "[[endpoints]]\naddr = \"10.0.0.1:80\"\n\n[[endpoints]]\naddr = \"10.0.0.1:80\"\n",
    );
    let e = next_error(&mut file).await;
    let error = e.parse_error().expect("a parse error");
    assert_eq!(
        *error.kind(),
        ParseErrorKind::DuplicateAddr {
            index: 1,
            first: 0,
            addr: addr("10.0.0.1:80")
        }
    );
    assert_eq!((error.line(), error.column()), (5, 8));

    replace(&path, "[[endpoints]]\naddr = \"10.0.0.1:80\"\nweight = 0\n");
    let e = next_error(&mut file).await;
    let error = e.parse_error().expect("a parse error");
    assert!(
        matches!(error.kind(), ParseErrorKind::InvalidWeight { index: 0, weight } if weight.value() == "0")
    );
    assert_eq!((error.line(), error.column()), (3, 10));
    assert_eq!(set(file.endpoints().unwrap()), set(&v1()));
}

// ---------------------------------------------------------------------------------------------
// Missing, deleted and recreated files; rewrites; half-written files.

#[tokio::test(start_paused = true)]
async fn a_missing_file_is_reported_once_then_picked_up_when_created() {
    let dir = TempDir::new("missing");
    let path = dir.join("endpoints.json");
    let mut file = File::new(&path).unwrap();

    let e = next_error(&mut file).await;
    assert!(matches!(&e, FileError::Read { .. }), "{e:?}");
    assert_eq!(e.path(), path);
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    let io = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("an io::Error source");
    assert_eq!(io.kind(), io::ErrorKind::NotFound);
    assert_eq!(file.endpoints(), None);
    assert_quiet(&mut file).await;

    replace(&path, &render(&v1(), Format::Json));
    assert_eq!(next_set(&mut file).await, set(&v1()));
}

#[tokio::test(start_paused = true)]
async fn a_deleted_file_is_reported_once_keeps_the_set_and_recovers() {
    let dir = TempDir::new("deleted");
    let path = dir.join("endpoints.toml");
    replace(&path, &render(&v1(), Format::Toml));
    let mut file = File::new(&path).unwrap();
    assert_eq!(next_set(&mut file).await, set(&v1()));

    std::fs::remove_file(&path).unwrap();
    let e = next_error(&mut file).await;
    assert!(
        matches!(&e, FileError::Read { path: p, .. } if *p == path),
        "{e:?}"
    );
    assert_quiet(&mut file).await;
    assert_eq!(set(file.endpoints().unwrap()), set(&v1()));

    // Recreated with the same endpoints: the set did not change, so nothing is yielded...
    replace(&path, &render(&v1(), Format::Toml));
    assert_quiet(&mut file).await;
    // ...but the source recovered, so the next deletion is reported again.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        next_error(&mut file).await,
        FileError::Read { .. }
    ));

    replace(&path, &render(&v2(), Format::Toml));
    assert_eq!(next_set(&mut file).await, set(&v2()));
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_rewrite_yields_nothing() {
    let dir = TempDir::new("rewrite");
    let path = dir.join("endpoints.json");
    let text = render(&v2(), Format::Json);
    replace(&path, &text);
    let mut file = File::new(&path).unwrap();
    assert_eq!(next_set(&mut file).await, set(&v2()));

    // The same bytes, in place and by rename.
    std::fs::write(&path, &text).unwrap();
    assert_quiet(&mut file).await;
    replace(&path, &text);
    assert_quiet(&mut file).await;
    // The same set in another order and layout.
    let mut reversed = v2();
    reversed.reverse();
    replace(&path, &render_json(&reversed).replace('\n', ""));
    assert_quiet(&mut file).await;
    // Metadata is part of the set: a weight change is a change.
    let mut reweighted = v2();
    reweighted[2] = reweighted[2].clone().with_weight(Weight::new(9).unwrap());
    replace(&path, &render(&reweighted, Format::Json));
    assert_eq!(next_set(&mut file).await, set(&reweighted));
}

#[tokio::test(start_paused = true)]
async fn a_half_written_file_keeps_the_last_set_until_the_write_completes() {
    let dir = TempDir::new("half");
    let path = dir.join("endpoints.json");
    replace(&path, &render(&v1(), Format::Json));
    let mut file = File::new(&path).unwrap();
    assert_eq!(next_set(&mut file).await, set(&v1()));

    // A writer truncated the file and has written half of the new version so far.
    let full = render(&v2(), Format::Json);
    let half = &full[..full.len() / 2];
    std::fs::write(&path, half).unwrap();
    let e = next_error(&mut file).await;
    let error = e.parse_error().expect("a parse error");
    let lines = half.lines().count();
    assert_eq!(error.line(), lines, "{e}");
    assert!(error.to_string().contains("EOF while parsing"), "{e}");
    assert_eq!(set(file.endpoints().unwrap()), set(&v1()));

    std::fs::write(&path, &full).unwrap();
    assert_eq!(next_set(&mut file).await, set(&v2()));
}

#[tokio::test(start_paused = true)]
async fn an_empty_or_cut_toml_file_is_refused_not_read_as_no_endpoints() {
    let dir = TempDir::new("empty");
    let path = dir.join("endpoints.toml");
    replace(&path, &render(&v1(), Format::Toml));
    let mut file = File::new(&path).unwrap();
    assert_eq!(next_set(&mut file).await, set(&v1()));

    std::fs::write(&path, "").unwrap();
    let e = next_error(&mut file).await;
    assert!(e.to_string().contains("missing field `endpoints`"), "{e}");
    assert_eq!(set(file.endpoints().unwrap()), set(&v1()));

    // An explicitly empty list is a valid (empty) set.
    replace(&path, "endpoints = []\n");
    assert_eq!(next_set(&mut file).await, BTreeMap::new());
}

#[tokio::test(start_paused = true)]
async fn files_over_the_limit_and_non_files_are_refused() {
    let dir = TempDir::new("limits");
    let path = dir.join("endpoints.json");
    let text = render(&v1(), Format::Json);
    replace(&path, &text);
    let mut file = File::builder(&path).max_len(16).build().unwrap();
    match next_error(&mut file).await {
        FileError::TooLarge { len, limit: 16, .. } => assert_eq!(len, text.len() as u64),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    let sub = dir.join("sub.json");
    std::fs::create_dir(&sub).unwrap();
    let mut file = File::new(&sub).unwrap();
    assert!(matches!(next_error(&mut file).await, FileError::NotAFile { path } if path == sub));
}

#[tokio::test(start_paused = true)]
async fn non_utf8_text_is_a_parse_error_at_the_bad_byte() {
    let dir = TempDir::new("utf8");
    let path = dir.join("endpoints.json");
    std::fs::write(&path, b"{\"endpoints\": [\n  {\"addr\": \"\xff\"}]}").unwrap();
    let mut file = File::new(&path).unwrap();
    let e = next_error(&mut file).await;
    let error = e.parse_error().expect("a parse error");
    assert_eq!(*error.kind(), ParseErrorKind::NotUtf8);
    assert_eq!((error.line(), error.column()), (2, 13));
}

#[tokio::test(start_paused = true)]
async fn changes_are_seen_within_interval_plus_jitter() {
    let dir = TempDir::new("jitter");
    let path = dir.join("endpoints.json");
    replace(&path, &render(&v1(), Format::Json));
    let mut file = File::builder(&path)
        .interval(Duration::from_secs(5))
        .jitter(Duration::from_secs(5))
        .seed(7)
        .build()
        .unwrap();
    assert_eq!(next_set(&mut file).await, set(&v1()));
    let mut sets = [v2(), v3(), v1(), v2(), v3()].into_iter();
    for _ in 0..5 {
        let next_version = sets.next().unwrap();
        replace(&path, &render(&next_version, Format::Json));
        let start = tokio::time::Instant::now();
        assert_eq!(next_set(&mut file).await, set(&next_version));
        // Virtual time: exact, whatever the machine's load.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited <= Duration::from_secs(10),
            "{waited:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Construction.

#[tokio::test]
async fn the_builder_refuses_what_cannot_work() {
    let path = PathBuf::from("/etc/mesh/endpoints.yaml");
    assert_eq!(
        File::new(&path).unwrap_err(),
        FileConfigError::UnknownFormat { path: path.clone() }
    );
    let e = File::new(&path).unwrap_err().to_string();
    assert!(e.contains("/etc/mesh/endpoints.yaml"), "{e}");
    let file = File::builder(&path).format(Format::Json).build().unwrap();
    assert_eq!(file.format(), Format::Json);
    assert_eq!(file.path(), path);
    assert_eq!(
        File::builder("a.json")
            .interval(Duration::ZERO)
            .build()
            .unwrap_err(),
        FileConfigError::InvalidInterval(Duration::ZERO)
    );
    assert_eq!(
        File::builder("a.json").max_len(0).build().unwrap_err(),
        FileConfigError::InvalidMaxLen(0)
    );
}

#[test]
fn building_outside_a_runtime_is_an_error() {
    assert_eq!(File::new("a.json").unwrap_err(), FileConfigError::NoRuntime);
}

#[tokio::test(start_paused = true)]
async fn an_explicit_format_overrides_the_extension() {
    let dir = TempDir::new("explicit");
    let path = dir.join("endpoints.conf");
    replace(&path, &render(&v2(), Format::Toml));
    let mut file = File::builder(&path).format(Format::Toml).build().unwrap();
    assert_eq!(next_set(&mut file).await, set(&v2()));
}

// ---------------------------------------------------------------------------------------------
// Through a real balancer.

#[tokio::test(start_paused = true)]
async fn a_balancer_follows_the_file() {
    let dir = TempDir::new("balance");
    let path = dir.join("endpoints.json");
    replace(&path, &render(&v1(), Format::Json));

    // Each endpoint's client answers with its address.
    let make = service_fn(|ep: Endpoint| async move {
        let a = ep.addr();
        Ok::<_, Infallible>(service_fn(move |()| async move { Ok::<_, Infallible>(a) }))
    });
    let source = File::builder(&path).interval(INTERVAL).build().unwrap();
    let mut balance = Balance::builder(RoundRobin::with_seed(1))
        .build(source, make)
        .expect("valid configuration");

    async fn settle<S>(balance: &Balance<RoundRobin, S>, expected: &[Endpoint]) {
        let expected = set(expected);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let now: BTreeMap<_, _> = balance
                .endpoints()
                .iter()
                .map(|s| (s.endpoint().addr(), s.endpoint().clone()))
                .collect();
            if now == expected && balance.ready_len() == expected.len() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "balancer has {now:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    async fn served<S>(balance: &mut Balance<RoundRobin, S>, n: usize) -> Vec<SocketAddr>
    where
        S: Service<(), Response = SocketAddr, Error = Infallible> + Clone + Send + Sync + 'static,
        S::Future: Send,
    {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(balance.ready().await.unwrap().call(()).await.unwrap());
        }
        out.sort();
        out.dedup();
        out
    }

    settle(&balance, &v1()).await;
    assert_eq!(
        served(&mut balance, 8).await,
        set(&v1()).into_keys().collect::<Vec<_>>()
    );

    replace(&path, &render(&v2(), Format::Json));
    settle(&balance, &v2()).await;
    assert_eq!(
        served(&mut balance, 12).await,
        set(&v2()).into_keys().collect::<Vec<_>>()
    );

    // A corrupt file: the balancer keeps serving the last good set.
    replace(&path, corrupt(Format::Json).0);
    tokio::time::sleep(QUIET).await;
    settle(&balance, &v2()).await;
    assert_eq!(
        served(&mut balance, 12).await,
        set(&v2()).into_keys().collect::<Vec<_>>()
    );

    replace(&path, &render(&v3(), Format::Json));
    settle(&balance, &v3()).await;
    assert_eq!(served(&mut balance, 4).await, vec![addr("10.0.0.4:9090")]);
}

// ---------------------------------------------------------------------------------------------
// Round trip.

fn endpoint_strategy() -> impl Strategy<Value = (SocketAddr, Endpoint)> {
    let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(SocketAddr::from);
    let v6 = (any::<[u16; 8]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)));
    (
        prop_oneof![v4, v6],
        1..=u32::MAX,
        proptest::option::of(any::<String>()),
        proptest::collection::btree_map(any::<String>(), any::<String>(), 0..4),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(addr, weight, zone, labels, identity)| {
            let mut ep = Endpoint::new(addr).with_weight(Weight::new(weight).unwrap());
            if let Some(zone) = zone {
                ep = ep.with_zone(zone);
            }
            for (k, v) in labels {
                ep = ep.with_label(k, v);
            }
            if let Some(identity) = identity {
                ep = ep.with_identity(identity);
            }
            (addr, ep)
        })
}

proptest! {
    #[test]
    fn any_endpoint_list_round_trips_through_both_formats(
        list in proptest::collection::vec(endpoint_strategy(), 0..12)
    ) {
        // Unique addresses, in generated order.
        let mut seen = std::collections::HashSet::new();
        let endpoints: Vec<Endpoint> = list
            .into_iter()
            .filter(|(a, _)| seen.insert(*a))
            .map(|(_, ep)| ep)
            .collect();
        for format in [Format::Json, Format::Toml] {
            let text = render(&endpoints, format);
            let parsed = parse_endpoints(&text, format);
            prop_assert_eq!(parsed.as_ref(), Ok(&endpoints), "{}:\n{}", format, text);
        }
    }
}
