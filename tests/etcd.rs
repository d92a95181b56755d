//! `discover::etcd` against a real etcd (3.4+), spawned per test with a temporary data dir on
//! loopback ports. The binary is `ETCD_BIN` if set, else `etcd` on `PATH`, else `/usr/bin/etcd`
//! or `/usr/local/bin/etcd`. Without one, each test skips with a loud message, or fails when
//! `TOWER_MESH_REQUIRE_SERVERS` is set (as CI does, after installing Debian's `etcd-server`).
#![cfg(feature = "etcd")]

#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt, service_fn};
use tower_mesh::balance::{Balance, RoundRobin};
use tower_mesh::discover::Update;
use tower_mesh::discover::etcd::{Cluster, Etcd, EtcdError, Registration, decode_value};
use tower_mesh::endpoint::{Endpoint, Weight};

const DEADLINE: Duration = Duration::from_secs(20);
/// Room for a loaded machine in a timing bound.
const SLACK: Duration = Duration::from_secs(2);
const PREFIX: &str = "services/api";

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_appear_and_deleted_or_withdrawn_keys_disappear() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let cluster = etcd.cluster();
    // The first member is dead: the watcher goes on to the next.
    let members = Cluster::new([format!("http://127.0.0.1:{}", free_port()), etcd.url()]).unwrap();
    let mirror = Mirror::spawn(Etcd::builder(members, PREFIX).build().unwrap());
    mirror
        .wait("the initial empty listing", |m| m.resets == 1)
        .await;

    let ttl = Duration::from_secs(10);
    let a = Registration::register(&cluster, PREFIX, ep(1).with_weight(w(3)), ttl)
        .await
        .unwrap();
    let b = Registration::register(&cluster, PREFIX, ep(2).with_zone("z2"), ttl)
        .await
        .unwrap();
    let c = Registration::register(&cluster, PREFIX, ep(3).with_label("v", "2"), ttl)
        .await
        .unwrap();
    assert_eq!(a.key(), format!("{PREFIX}/127.0.0.1:9001"));
    mirror
        .wait("three registrations", |m| {
            m.set.values().cloned().collect::<Vec<_>>()
                == [
                    ep(1).with_weight(w(3)),
                    ep(2).with_zone("z2"),
                    ep(3).with_label("v", "2"),
                ]
        })
        .await;

    // A Go service registered with etcd's endpoints manager (value written byte for byte as
    // Go's json.Marshal of internal.Update does), and a value that is not an endpoint.
    etcd.put(
        "services/api/127.0.0.1:9004",
        r#"{"Op":0,"Addr":"127.0.0.1:9004","Metadata":null}"#,
    )
    .await;
    etcd.put("services/api/broken", r#"{"Addr":"api.internal:80"}"#)
        .await;
    // Outside the prefix, including the prefix without its slash: never seen.
    etcd.put("services/api2/x", r#"{"Addr":"127.0.0.1:9099"}"#)
        .await;
    etcd.put("services/apix", r#"{"Addr":"127.0.0.1:9098"}"#)
        .await;
    mirror
        .wait("the Go-format entry", |m| m.set.contains_key(&addr(4)))
        .await;
    mirror
        .wait("the broken value reported by key", |m| {
            m.errors
                .iter()
                .any(|e| e.contains("services/api/broken") && e.contains("api.internal:80"))
        })
        .await;

    etcd.delete("services/api/127.0.0.1:9002").await;
    mirror
        .wait("the deleted key gone", |m| !m.set.contains_key(&addr(2)))
        .await;
    drop(b); // its lease is revoked by a spawned task; the key is already gone: no error

    a.withdraw().await.unwrap();
    mirror
        .wait("the withdrawn registration gone", |m| {
            !m.set.contains_key(&addr(1))
        })
        .await;
    drop(c);
    mirror
        .wait("the dropped registration gone", |m| {
            !m.set.contains_key(&addr(3))
        })
        .await;

    let expected = etcd.endpoints().await;
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), [addr(4)]);
    mirror
        .wait("the set equal to the store", |m| m.set == expected)
        .await;
    assert_eq!(mirror.get().resets, 1, "no resync was needed");
    assert_eq!(etcd.watchers().await, 1);

    // Dropping the stream stops its work: etcd sees the watch go away.
    drop(mirror);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while etcd.watchers().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch outlived its stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_keep_alive_stops_disappears_when_its_lease_expires() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let cluster = etcd.cluster();
    let mirror = Mirror::spawn(Etcd::builder(cluster.clone(), PREFIX).build().unwrap());

    // etcd 3.4 grants at least its minimum TTL (1.5 election timeouts, rounded up).
    let ttl = Duration::from_secs(1);
    let kept = Registration::register(&cluster, PREFIX, ep(1), ttl)
        .await
        .unwrap();
    let abandoned = Registration::register(&cluster, PREFIX, ep(2), ttl)
        .await
        .unwrap();
    assert!(kept.ttl() >= ttl, "granted {:?}", kept.ttl());
    let granted = abandoned.ttl();
    let lease = abandoned.lease_id();
    mirror
        .wait("both registrations", |m| m.set.len() == 2)
        .await;

    abandoned.abandon();
    mirror
        .wait("the abandoned registration expired", |m| {
            !m.set.contains_key(&addr(2))
        })
        .await;
    // Expired by itself, not revoked: etcd no longer knows the lease.
    let answer = etcd
        .post("/v3/lease/timetolive", json!({ "ID": lease.to_string() }))
        .await;
    assert_eq!(answer["TTL"], "-1", "{answer} (granted {granted:?})");

    // The other one has lived past its TTL on keep-alives alone.
    let answer = etcd
        .post(
            "/v3/lease/timetolive",
            json!({ "ID": kept.lease_id().to_string() }),
        )
        .await;
    let left: i64 = answer["TTL"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1);
    assert!(left > 0, "{answer}");
    assert!(mirror.get().set.contains_key(&addr(1)));
    assert_eq!(
        etcd.endpoints().await.keys().copied().collect::<Vec<_>>(),
        [addr(1)]
    );
    kept.withdraw().await.unwrap();
    mirror
        .wait("the kept registration withdrawn", |m| m.set.is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_watch_converges_with_no_lost_update() {
    let Some(mut etcd) = EtcdServer::start() else {
        return;
    };
    // The watcher reaches etcd through a proxy the test can cut, so it stays disconnected
    // while the store changes; registrations talk to etcd directly.
    let proxy = Proxy::start(etcd.client).await;
    let watched = Cluster::new([proxy.url()])
        .unwrap()
        .request_timeout(Duration::from_secs(2))
        .unwrap();
    let source = Etcd::builder(watched, PREFIX)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let mirror = Mirror::spawn(source);
    mirror
        .wait("the initial empty listing", |m| m.resets == 1)
        .await;
    for i in 1..=3 {
        etcd.put(&format!("{PREFIX}/{i}"), &value(i, 1)).await;
    }
    let registered =
        Registration::register(&etcd.cluster(), PREFIX, ep(9), Duration::from_secs(30))
            .await
            .unwrap();
    mirror.wait("four endpoints", |m| m.set.len() == 4).await;

    etcd.kill();
    mirror
        .wait("the watch broken by the kill", |m| !m.errors.is_empty())
        .await;
    assert_eq!(
        mirror.get().set.len(),
        4,
        "the last good set is kept while etcd is down"
    );
    let errors_at_kill = mirror.get().errors.len();
    proxy.set_up(false);
    // While nothing answers, the source keeps retrying and says so.
    mirror
        .wait("more errors while etcd is down", |m| {
            m.errors.len() > errors_at_kill
        })
        .await;
    etcd.restart();

    // Changes the watcher cannot see as they happen.
    etcd.delete(&format!("{PREFIX}/1")).await;
    etcd.put(&format!("{PREFIX}/2"), &value(2, 5)).await;
    etcd.put(&format!("{PREFIX}/5"), &value(5, 1)).await;
    etcd.put(&format!("{PREFIX}/6"), &value(6, 1)).await;
    etcd.delete(&format!("{PREFIX}/6")).await;
    etcd.put(&format!("{PREFIX}/3"), &value(7, 1)).await; // key 3 moves to another address
    let expected = etcd.endpoints().await;
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [addr(2), addr(5), addr(7), addr(9)],
        "the registration survived the restart"
    );
    assert_eq!(expected[&addr(2)].weight(), w(5));
    proxy.set_up(true);

    mirror
        .wait("the store's exact content", |m| m.set == expected)
        .await;
    let m = mirror.get();
    assert_eq!(
        m.resets, 1,
        "resumed from the last revision, not re-listed: {:?}",
        m.errors
    );
    // Every error reported was the connection failing, named by the URL used; none was about
    // what etcd sent.
    let url = proxy.url();
    for e in &m.errors {
        assert!(
            is_connection_error(e, &url),
            "not a connection error: {e} (all: {:#?})",
            m.errors
        );
    }
    // Each change arrived as its own update, in order, none skipped or repeated: the whole log. (Updates for
    // the registration are left out: had its lease been lost, re-registering would add one.)
    let log: Vec<_> = m
        .log
        .iter()
        .filter(|u| !matches!(u, Update::Insert(e) if e.addr() == addr(9)))
        .cloned()
        .collect();
    assert_eq!(
        log,
        [
            Update::Reset(vec![]),
            Update::Insert(ep(1)),
            Update::Insert(ep(2)),
            Update::Insert(ep(3)),
            Update::Remove(addr(1)),
            Update::Insert(ep(2).with_weight(w(5))),
            Update::Insert(ep(5)),
            Update::Insert(ep(6)),
            Update::Remove(addr(6)),
            // key 3 moved: its old address goes, the new one comes
            Update::Remove(addr(3)),
            Update::Insert(ep(7)),
        ]
    );
    drop(registered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_while_disconnected_resyncs_with_a_full_listing() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let proxy = Proxy::start(etcd.client).await;
    let source = Etcd::builder(Cluster::new([proxy.url()]).unwrap(), PREFIX)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
    let mirror = Mirror::spawn(source);
    for i in 1..=3 {
        etcd.put(&format!("{PREFIX}/{i}"), &value(i, 1)).await;
    }
    mirror.wait("three endpoints", |m| m.set.len() == 3).await;

    proxy.set_up(false);
    mirror.wait("the watch cut", |m| !m.errors.is_empty()).await;
    etcd.delete(&format!("{PREFIX}/2")).await;
    etcd.put(&format!("{PREFIX}/4"), &value(4, 2)).await;
    let revision = etcd
        .post("/v3/kv/range", json!({ "key": B64.encode("x") }))
        .await["header"]["revision"]
        .as_str()
        .unwrap()
        .to_owned();
    etcd.post(
        "/v3/kv/compaction",
        json!({ "revision": revision, "physical": true }),
    )
    .await;
    let expected = etcd.endpoints().await;
    proxy.set_up(true);

    mirror
        .wait("the store's exact content", |m| m.set == expected)
        .await;
    let m = mirror.get();
    assert_eq!(m.resets, 2, "a second full listing after the compaction");
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [addr(1), addr(3), addr(4)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_etcd_is_down_the_last_good_set_keeps_serving_requests() {
    let Some(mut etcd) = EtcdServer::start() else {
        return;
    };
    for i in 1..=3 {
        etcd.put(&format!("{PREFIX}/{i}"), &value(i, 1)).await;
    }
    let errors = Arc::new(AtomicUsize::new(0));
    let seen = errors.clone();
    let source = Etcd::builder(etcd.cluster(), PREFIX)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap()
        .inspect(move |item| {
            if item.is_err() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
    // One tiny client per endpoint: answers with the address it was built for.
    let make = service_fn(|ep: Endpoint| async move {
        let a = ep.addr();
        Ok::<_, Infallible>(service_fn(move |()| async move { Ok::<_, Infallible>(a) }))
    });
    let mut balance = Balance::builder(RoundRobin::with_seed(1))
        .build(source, make)
        .unwrap();
    poll_until("three ready endpoints", || balance.ready_len() == 3).await;

    etcd.kill();
    poll_until("the source reporting etcd down, twice", || {
        errors.load(Ordering::SeqCst) >= 2
    })
    .await;
    let mut served = BTreeMap::new();
    for _ in 0..30 {
        let a = balance
            .ready()
            .await
            .expect("ready")
            .call(())
            .await
            .expect("served");
        *served.entry(a).or_insert(0) += 1;
    }
    assert_eq!(
        served,
        BTreeMap::from([(addr(1), 10), (addr(2), 10), (addr(3), 10)])
    );

    // etcd comes back with a change: the balancer follows it again.
    etcd.restart();
    etcd.delete(&format!("{PREFIX}/1")).await;
    poll_until("two ready endpoints after the restart", || {
        balance.ready_len() == 2
    })
    .await;
    let mut served = BTreeMap::new();
    for _ in 0..10 {
        let a = balance.ready().await.expect("ready").call(()).await;
        *served.entry(a.expect("served")).or_insert(0) += 1;
    }
    assert_eq!(served, BTreeMap::from([(addr(2), 5), (addr(3), 5)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_watch_is_detected_and_resumed_without_loss() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let proxy = Proxy::start(etcd.client).await;
    let request_timeout = Duration::from_secs(1);
    let idle = Duration::from_millis(300);
    let watched = Cluster::new([proxy.url()])
        .unwrap()
        .request_timeout(request_timeout)
        .unwrap();
    let source = Etcd::builder(watched, PREFIX)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .watch_liveness(idle, Duration::from_secs(600))
        .build()
        .unwrap();
    let mirror = Mirror::spawn(source);
    mirror
        .wait("the initial empty listing", |m| m.resets == 1)
        .await;
    etcd.put(&format!("{PREFIX}/1"), &value(1, 1)).await;
    mirror
        .wait("the first endpoint", |m| m.set.len() == 1)
        .await;
    // Quiet and healthy: the liveness checks, one per idle time, all succeed against etcd.
    tokio::time::sleep(5 * idle).await;
    assert_eq!(mirror.get().errors, Vec::<String>::new());

    // etcd vanishes without a FIN or RST: the open watch and every new connection hang.
    proxy.blackhole();
    let cut_at = Instant::now();
    mirror
        .wait("the dead watch detected", |m| !m.errors.is_empty())
        .await;
    let detected = cut_at.elapsed();
    let m = mirror.get();
    let expected = format!(
        "watch stream from etcd at {} was quiet for {idle:?} and its liveness check failed: \
         etcd at {} did not answer /v3/kv/range within {request_timeout:?}",
        proxy.url(),
        proxy.url()
    );
    assert_eq!(m.errors[0], expected);
    assert!(
        detected <= idle + request_timeout + SLACK,
        "detected {detected:?} after the connection died"
    );

    // Changes the watcher cannot see as they happen; then the way to etcd is back.
    etcd.delete(&format!("{PREFIX}/1")).await;
    etcd.put(&format!("{PREFIX}/2"), &value(2, 1)).await;
    let expected = etcd.endpoints().await;
    proxy.set_up(true);
    mirror
        .wait("the store's exact content", |m| m.set == expected)
        .await;
    let m = mirror.get();
    assert_eq!(
        m.log,
        [
            Update::Reset(vec![]),
            Update::Insert(ep(1)),
            Update::Remove(addr(1)),
            Update::Insert(ep(2)),
        ],
        "resumed after the last revision seen: nothing lost, nothing repeated"
    );
    let url = proxy.url();
    for e in &m.errors {
        assert!(is_connection_error(e, &url), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_keep_a_quiet_watch_alive_and_a_silent_one_is_reopened() {
    // etcd sends a quiet watch a progress notification every 200 ms (instead of 10 min).
    let Some(etcd) =
        EtcdServer::start_with(&["--experimental-watch-progress-notify-interval=200ms"])
    else {
        return;
    };
    let proxy = Proxy::start(etcd.client).await;
    let max_silence = Duration::from_secs(2);
    let source = Etcd::builder(Cluster::new([proxy.url()]).unwrap(), PREFIX)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .watch_liveness(Duration::from_secs(1), max_silence)
        .build()
        .unwrap();
    let mirror = Mirror::spawn(source);
    mirror
        .wait("the initial empty listing", |m| m.resets == 1)
        .await;
    etcd.put(&format!("{PREFIX}/1"), &value(1, 1)).await;
    mirror
        .wait("the first endpoint", |m| m.set.len() == 1)
        .await;
    #[cfg(target_os = "linux")]
    assert_keepalive_on_connections_to(proxy.port);

    // Quiet for twice the silence bound: only the progress notifications the watch asked for
    // arrive, and they are enough.
    tokio::time::sleep(2 * max_silence).await;
    assert_eq!(mirror.get().errors, Vec::<String>::new());

    // The watch connection stops delivering, while new connections (the liveness checks)
    // still work: only the silence bound can tell.
    proxy.freeze_open();
    let frozen_at = Instant::now();
    etcd.put(&format!("{PREFIX}/2"), &value(2, 1)).await;
    mirror
        .wait("the silent watch reopened", |m| !m.errors.is_empty())
        .await;
    let after = frozen_at.elapsed();
    let m = mirror.get();
    assert_eq!(
        m.errors[0],
        format!(
            "watch stream from etcd at {} sent nothing for {max_silence:?}",
            proxy.url()
        )
    );
    // The silence is counted from the last notification, at most ~0.5 s before the freeze.
    assert!(
        after >= max_silence - Duration::from_millis(700) && after <= max_silence + SLACK,
        "reopened {after:?} after the freeze"
    );
    mirror
        .wait("the write made while frozen", |m| m.set.len() == 2)
        .await;
    let m = mirror.get();
    assert_eq!(
        m.log,
        [
            Update::Reset(vec![]),
            Update::Insert(ep(1)),
            Update::Insert(ep(2))
        ]
    );
    assert_eq!(
        m.errors.len(),
        1,
        "one reopening was enough: {:?}",
        m.errors
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000 + i))
}

fn ep(i: u16) -> Endpoint {
    Endpoint::new(addr(i))
}

fn w(n: u32) -> Weight {
    Weight::new(n).unwrap()
}

fn value(i: u16, weight: u32) -> String {
    format!(
        r#"{{"Op":0,"Addr":"{}","Metadata":{{"weight":{weight}}}}}"#,
        addr(i)
    )
}

async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a discovery stream has said so far, applied the way a balancer applies it.
#[derive(Debug, Default, Clone)]
struct Seen {
    set: BTreeMap<SocketAddr, Endpoint>,
    resets: usize,
    errors: Vec<String>,
    /// Every update after the first reset, in order.
    log: Vec<Update>,
}

struct Mirror {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mirror {
    fn spawn(mut source: Etcd) -> Mirror {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(item) = source.next().await {
                let mut s = shared.lock().unwrap();
                match item {
                    Ok(update) => {
                        match &update {
                            Update::Insert(e) => {
                                s.set.insert(e.addr(), e.clone());
                            }
                            Update::Remove(a) => {
                                s.set.remove(a);
                            }
                            Update::Reset(all) => {
                                s.set = all.iter().map(|e| (e.addr(), e.clone())).collect();
                                s.resets += 1;
                            }
                        }
                        s.log.push(update);
                    }
                    Err(e) => s.errors.push(error_chain(&e)),
                }
            }
        });
        Mirror { seen, task }
    }

    fn get(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    async fn wait(&self, what: &str, mut cond: impl FnMut(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let seen = self.get();
            if cond(&seen) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; saw {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error_chain(e: &EtcdError) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// One etcd member on loopback ports with its own data dir; killed and its dir removed on drop.
struct EtcdServer {
    bin: PathBuf,
    dir: PathBuf,
    client: u16,
    peer: u16,
    /// Flags added to every start.
    extra: Vec<String>,
    child: Option<Child>,
}

impl EtcdServer {
    /// A running, healthy etcd; `None` (after a loud message) when no binary is installed.
    fn start() -> Option<EtcdServer> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with these extra flags.
    fn start_with(extra: &[&str]) -> Option<EtcdServer> {
        let bin = match etcd_binary() {
            Ok(bin) => bin,
            Err(why) => return skip(&why),
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-mesh-etcd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = EtcdServer {
            bin,
            dir,
            client: free_port(),
            peer: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.restart();
        Some(server)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn cluster(&self) -> Cluster {
        Cluster::new([self.url()]).unwrap()
    }

    /// Starts (again) on the same data dir and ports and waits until it is healthy.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--name", "default", "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + DEADLINE;
        while !self.healthy() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("etcd exited with {status}; see {}", self.dir.display());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "etcd never became healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.client)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A unary v3 gateway call straight to etcd; panics on anything but 200.
    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = http(self.client, "POST", path, &body.to_string()).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// How many watchers etcd has open, from its Prometheus metrics.
    async fn watchers(&self) -> u64 {
        let (status, body) = http(self.client, "GET", "/metrics", "").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
            .and_then(|n| n.trim().parse().ok())
            .expect("etcd_debugging_mvcc_watcher_total in /metrics")
    }

    async fn put(&self, key: &str, value: &str) {
        self.post(
            "/v3/kv/put",
            json!({ "key": B64.encode(key), "value": B64.encode(value) }),
        )
        .await;
    }

    async fn delete(&self, key: &str) {
        let answer = self
            .post("/v3/kv/deleterange", json!({ "key": B64.encode(key) }))
            .await;
        assert_eq!(answer["deleted"], "1", "delete {key}: {answer}");
    }

    /// The endpoints the store holds under the prefix right now, decoded independently.
    async fn endpoints(&self) -> BTreeMap<SocketAddr, Endpoint> {
        let answer = self
            .post(
                "/v3/kv/range",
                json!({ "key": B64.encode(format!("{PREFIX}/")), "range_end": B64.encode(format!("{PREFIX}0")) }),
            )
            .await;
        let mut out = BTreeMap::new();
        for kv in answer["kvs"].as_array().cloned().unwrap_or_default() {
            let key = B64.decode(kv["key"].as_str().unwrap()).unwrap();
            let value = B64.decode(kv["value"].as_str().unwrap_or("")).unwrap();
            if let Ok(e) = decode_value(&key, &value) {
                out.insert(e.addr(), e);
            }
        }
        out
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(15).collect();
            eprintln!(
                "etcd log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every established connection to 127.0.0.1:`port` (in this test, only the client's) has the
/// kernel's keepalive timer armed (`tr` 2 in `/proc/net/tcp`), due within the client's 30 s
/// keepalive idle time rather than the system default of two hours.
#[cfg(target_os = "linux")]
fn assert_keepalive_on_connections_to(port: u16) {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    let mut seen = 0;
    for line in table.lines().skip(1) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields[2] != remote || fields[3] != "01" {
            continue;
        }
        let (timer, when) = fields[5].split_once(':').expect("tr:tm->when");
        // In clock ticks: USER_HZ, 100 per second.
        let when = u64::from_str_radix(when, 16).expect("hex");
        assert_eq!(timer, "02", "no keepalive timer: {line}");
        assert!(when <= 30 * 100, "keepalive not due within 30 s: {line}");
        seen += 1;
    }
    assert!(
        seen > 0,
        "no established connection to port {port}:\n{table}"
    );
}

/// The etcd binary to run: `ETCD_BIN`, else `etcd` on `PATH`, else the usual install paths;
/// `Err` says why there is none.
fn etcd_binary() -> Result<PathBuf, String> {
    servers::server_binary(
        "ETCD_BIN",
        "etcd",
        &["/usr/bin/etcd", "/usr/local/bin/etcd"],
        "install Debian's etcd-server",
    )
}

fn skip<T>(why: &str) -> Option<T> {
    servers::skip("etcd discovery", why)
}

/// Whether `error` (an error chain as text) is the connection to `url` failing, rather than a
/// complaint about what etcd sent.
fn is_connection_error(error: &str, url: &str) -> bool {
    [
        format!("cannot connect to etcd at {url}"),
        format!("http exchange with etcd at {url} failed"),
        format!("etcd at {url} did not answer"),
        format!("watch stream from etcd at {url} ended"),
        format!("watch stream from etcd at {url} was quiet"),
        format!("watch stream from etcd at {url} sent nothing"),
    ]
    .iter()
    .any(|start| error.starts_with(start.as_str()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.0 request (the test's own client, independent of the one under test).
async fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to etcd");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, s.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// A TCP proxy to etcd that the test can cut, or make half-open.
///
/// Cut (`set_up(false)`), it closes every open connection and every new one at once: what a
/// peer that restarts looks like. Frozen (`freeze_open`), the connections open so far stay
/// open but carry nothing more either way: a peer, or a middlebox, gone without a FIN or RST.
/// Blackholed (`blackhole`), new connections are frozen from the start as well.
struct Proxy {
    port: u16,
    mode: Arc<AtomicUsize>,
    cut: tokio::sync::watch::Sender<u64>,
    freeze: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

const UP: usize = 0;
const DOWN: usize = 1;
const BLACKHOLE: usize = 2;

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicUsize::new(UP));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (freeze, _) = tokio::sync::watch::channel(0u64);
        let (modes, cuts, freezes) = (mode.clone(), cut.clone(), freeze.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = cuts.subscribe();
                let mut freeze = freezes.subscribe();
                match modes.load(Ordering::SeqCst) {
                    DOWN => continue, // dropped: closed at once
                    BLACKHOLE => {
                        // Accepted, then never answered.
                        tokio::spawn(async move {
                            let _ = cut.changed().await;
                            drop(inbound);
                        });
                        continue;
                    }
                    _ => {}
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                        _ = cut.changed() => return,
                        _ = freeze.changed() => {}
                    }
                    // Frozen: both ends stay open and silent until the proxy is cut.
                    let _ = cut.changed().await;
                    drop((inbound, outbound));
                });
            }
        });
        Proxy {
            port,
            mode,
            cut,
            freeze,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Up: forwards new connections. Down: closes every connection, open or new.
    fn set_up(&self, up: bool) {
        self.mode
            .store(if up { UP } else { DOWN }, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }

    /// Freezes every open connection; new ones are still forwarded.
    fn freeze_open(&self) {
        self.freeze.send_modify(|n| *n += 1);
    }

    /// Freezes every open connection and every new one.
    fn blackhole(&self) {
        self.mode.store(BLACKHOLE, Ordering::SeqCst);
        self.freeze_open();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.set_up(false);
    }
}
