//! DNS discovery against a real DNS server: dnsmasq, spawned on a loopback port, serving A and
//! AAAA records from a hosts file and forwarding rules from a servers file (both reloaded on
//! SIGHUP), and SRV records from its command line (changed by a restart on the same port).
//! Records carry a 30 s TTL, so a change seen within the tests' 1 s TTL bound shows the bound
//! at work.
//!
//! dnsmasq is `DNSMASQ_BIN` if set, else `dnsmasq` on `PATH`, else `/usr/sbin/dnsmasq`.
//! Without one, each test skips with a loud message, or fails when
//! `TOWER_MESH_REQUIRE_SERVERS` is set (as CI does, after installing Debian's `dnsmasq`).
//! Every server and temporary directory is removed by a drop guard, so also when a test fails.

#![cfg(feature = "dns")]

#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tower::service_fn;
use tower_mesh::balance::{Balance, RoundRobin};
use tower_mesh::discover::Update;
use tower_mesh::discover::dns::{
    Dns, DnsBuilder, DnsError, DnsTarget, LookupFailure, NxDomainPolicy,
};
use tower_mesh::endpoint::Endpoint;

/// How long any expected event may take on a loaded machine, before a test gives up.
const DEADLINE: Duration = Duration::from_secs(20);
/// The TTL clamp used in these tests: every answer is looked up again within a second.
const TTL_MAX: Duration = Duration::from_secs(1);
/// The per-query timeout used in these tests.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// The TTL dnsmasq gives its records: far above `TTL_MAX`, so only the clamp explains a change
/// seen sooner.
const RECORD_TTL: u32 = 30;
/// How soon after the server changes a source must see it: the next lookup comes within
/// `TTL_MAX` (or the retry backoff, shorter) of the last, and takes at most a query timeout;
/// the rest is room for a loaded machine.
const CHANGE_BOUND: Duration =
    Duration::from_millis(TTL_MAX.as_millis() as u64 + QUERY_TIMEOUT.as_millis() as u64 + 1500);

// --- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_follows_host_records_through_reload_outage_and_restart() {
    let Some(mut server) = Dnsmasq::start(
        &[
            "10.0.0.1 api.internal",
            "10.0.0.2 api.internal",
            "2001:db8::1 api.internal",
        ],
        &[],
    ) else {
        return;
    };
    let dns = fast(Dns::host("api.internal", 8080), server.addr)
        .build()
        .expect("valid configuration");
    let make = service_fn(|ep: Endpoint| async move {
        let addr = ep.addr();
        Ok::<_, Infallible>(service_fn(
            move |()| async move { Ok::<_, Infallible>(addr) },
        ))
    });
    let balance = Balance::builder(RoundRobin::new())
        .build(dns, make)
        .expect("valid configuration");
    let balance_set = || -> BTreeSet<SocketAddr> {
        balance
            .endpoints()
            .iter()
            .map(|s| s.endpoint().addr())
            .collect()
    };

    // The initial set: A and AAAA records (nothing connects to these addresses).
    wait_for("the initial set", || {
        balance_set() == addrs(&["10.0.0.1:8080", "10.0.0.2:8080", "[2001:db8::1]:8080"])
    })
    .await;

    // Records change: rewrite the hosts file and send SIGHUP.
    server.set_hosts(&[
        "10.0.0.2 api.internal",
        "10.0.0.3 api.internal",
        "2001:db8::2 api.internal",
    ]);
    let changed = server.reload();
    wait_within("the reloaded set", changed, || {
        balance_set() == addrs(&["10.0.0.2:8080", "10.0.0.3:8080", "[2001:db8::2]:8080"])
    })
    .await;

    // The server dies: the set is kept through several failed lookups.
    server.stop();
    tokio::time::sleep(3 * TTL_MAX).await;
    assert_eq!(
        balance_set(),
        addrs(&["10.0.0.2:8080", "10.0.0.3:8080", "[2001:db8::2]:8080"]),
        "the last good set is kept while the server is down"
    );

    // It comes back with a changed record: updates resume.
    server.set_hosts(&["10.0.0.4 api.internal"]);
    let back = server.restart(&[]);
    wait_within("the set after the restart", back, || {
        balance_set() == addrs(&["10.0.0.4:8080"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reports_failures_emits_only_changes_and_resumes() {
    let Some(mut server) = Dnsmasq::start(&["10.0.1.1 web.internal"], &[]) else {
        return;
    };
    let mut dns = fast(Dns::host("web.internal", 80), server.addr)
        .build()
        .unwrap();

    assert_eq!(next_reset(&mut dns).await, eps(&[("10.0.1.1:80", 1)]));

    // The same answer, looked up again several times, is not re-emitted.
    let quiet = tokio::time::timeout(3 * TTL_MAX, dns.next()).await;
    assert!(quiet.is_err(), "no churn on an unchanged answer: {quiet:?}");

    // Server down: each failed lookup is an Err item.
    server.stop();
    let err = next_error(&mut dns).await;
    assert_eq!(
        err.lookup_failure().map(LookupFailure::is_empty_answer),
        Some(false),
        "a failure to answer, not an empty answer: {err:?}"
    );
    let DnsError::Lookup { name, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(name, "web.internal");

    // Back with the same set: nothing to emit, only (perhaps) a few more errors from before.
    server.restart(&[]);
    let until = Instant::now() + 3 * TTL_MAX;
    while let Ok(Some(item)) = tokio::time::timeout_at(until.into(), dns.next()).await {
        assert!(
            item.is_err(),
            "the unchanged set is not re-emitted: {item:?}"
        );
    }

    // Then a change is emitted, within the TTL bound.
    server.set_hosts(&["10.0.1.1 web.internal", "10.0.1.2 web.internal"]);
    let changed = server.reload();
    assert_eq!(
        next_reset_within(&mut dns, changed).await,
        eps(&[("10.0.1.1:80", 1), ("10.0.1.2:80", 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_uses_the_lowest_priority_group_with_rfc_2782_weights() {
    let hosts = [
        "10.0.2.1 a.internal",
        "10.0.2.2 b.internal",
        "2001:db8::2:2 b.internal",
        "10.0.2.3 c.internal",
        "10.0.2.4 d.internal",
    ];
    // name,target,port,priority,weight
    let srv = [
        "_http._tcp.api.internal,a.internal,8001,10,5",
        "_http._tcp.api.internal,b.internal,8002,10,0",
        "_http._tcp.api.internal,c.internal,8003,20,7",
        "_http._tcp.api.internal,nowhere.internal,8004,5,1", // no address: skipped
    ];
    let Some(mut server) = Dnsmasq::start(&hosts, &srv) else {
        return;
    };
    let target: DnsTarget = "_http._tcp.api.internal".parse().unwrap();
    let mut dns = fast(Dns::builder(target), server.addr).build().unwrap();

    // Priority 10 wins (priority 5 has no address); weight 5 -> 500 and weight 0 -> 1, for
    // each address of a target, A or AAAA.
    assert_eq!(
        next_reset(&mut dns).await,
        eps(&[
            ("10.0.2.1:8001", 500),
            ("10.0.2.2:8002", 1),
            ("[2001:db8::2:2]:8002", 1)
        ])
    );

    // A target's address changes through the hosts file alone.
    let mut moved = hosts;
    moved[0] = "10.0.2.9 a.internal";
    server.set_hosts(&moved);
    let changed = server.reload();
    assert_eq!(
        next_reset_within(&mut dns, changed).await,
        eps(&[
            ("10.0.2.2:8002", 1),
            ("10.0.2.9:8001", 500),
            ("[2001:db8::2:2]:8002", 1)
        ])
    );

    // SRV records change (a restart: dnsmasq reloads no SRV record on SIGHUP): the priority-10
    // group is gone, so the backup group is used; an all-zero group gets equal weights.
    let back = server.restart(&[
        "_http._tcp.api.internal,c.internal,8003,20,0",
        "_http._tcp.api.internal,d.internal,8004,20,0",
        "_http._tcp.api.internal,d.internal,8005,20,0",
    ]);
    assert_eq!(
        next_reset_within(&mut dns, back).await,
        eps(&[
            ("10.0.2.3:8003", 1),
            ("10.0.2.4:8004", 1),
            ("10.0.2.4:8005", 1)
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_keeps_the_last_set_by_default_and_clears_it_when_asked() {
    let Some(server) = Dnsmasq::start(&["10.0.3.1 keep.internal", "10.0.3.2 clear.internal"], &[])
    else {
        return;
    };
    let mut keep = fast(Dns::host("keep.internal", 80), server.addr)
        .build()
        .unwrap();
    let mut clear = fast(Dns::host("clear.internal", 80), server.addr)
        .nx_domain(NxDomainPolicy::Clear)
        .build()
        .unwrap();
    let mut missing = fast(Dns::host("missing.internal", 80), server.addr)
        .build()
        .unwrap();

    assert_eq!(next_reset(&mut keep).await, eps(&[("10.0.3.1:80", 1)]));
    assert_eq!(next_reset(&mut clear).await, eps(&[("10.0.3.2:80", 1)]));
    let err = next_error(&mut missing).await;
    assert_eq!(
        err.lookup_failure(),
        Some(LookupFailure::NxDomain),
        "{err:?}"
    );

    // Both names vanish.
    server.set_hosts(&["10.0.3.9 other.internal"]);
    let vanished = server.reload();
    assert_eq!(
        next_reset_within(&mut clear, vanished).await,
        Vec::new(),
        "Clear empties the set"
    );
    let err = next_error(&mut keep).await;
    assert_eq!(
        err.lookup_failure(),
        Some(LookupFailure::NxDomain),
        "KeepLast reports the answer and keeps the set: {err:?}"
    );

    // The names come back.
    server.set_hosts(&["10.0.3.1 keep.internal", "10.0.3.3 clear.internal"]);
    let back = server.reload();
    assert_eq!(
        next_reset_within(&mut clear, back).await,
        eps(&[("10.0.3.3:80", 1)])
    );
    // `keep` never lost its set, and the answer is the same set: it emits nothing new.
    let until = Instant::now() + 3 * TTL_MAX;
    while let Ok(Some(item)) = tokio::time::timeout_at(until.into(), keep.next()).await {
        assert!(item.is_err(), "the kept set is not re-emitted: {item:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_and_a_dead_upstream_are_failures_that_keep_the_last_set() {
    // api.ext.test is first answered from the hosts file; then dnsmasq is told to forward
    // ext.test to an upstream that answers SERVFAIL, then to one that is not there at all.
    // (Both families come from the hosts file: a name dnsmasq neither knows nor may forward
    // is REFUSED, which would fail the refresh.)
    let Some(server) = Dnsmasq::start(
        &["10.0.5.1 api.ext.test", "2001:db8::5:1 api.ext.test"],
        &[],
    ) else {
        return;
    };
    let upstream = Servfail::start().await;
    let mut dns = fast(Dns::host("api.ext.test", 80), server.addr)
        .build()
        .unwrap();
    assert_eq!(
        next_reset(&mut dns).await,
        eps(&[("10.0.5.1:80", 1), ("[2001:db8::5:1]:80", 1)])
    );

    server.set_hosts(&[]);
    server.set_servers(&[&format!("server=/ext.test/127.0.0.1#{}", upstream.port)]);
    let broken = server.reload();
    let err = next_error(&mut dns).await;
    assert!(
        broken.elapsed() <= CHANGE_BOUND,
        "seen {:?} after the reload",
        broken.elapsed()
    );
    assert_failure_keeps_the_set(&mut dns, err, LookupFailure::ServerFailure).await;
    assert!(
        upstream.queries() > 0,
        "the SERVFAIL came from the upstream, through dnsmasq"
    );

    // An upstream that does not exist: dnsmasq forwards and never answers.
    server.set_servers(&[&format!("server=/ext.test/127.0.0.1#{}", closed_port())]);
    server.reload();
    let until = Instant::now() + DEADLINE;
    let err = loop {
        let err = next_error(&mut dns).await;
        if err.lookup_failure() != Some(LookupFailure::ServerFailure) {
            break err; // past the lookups that raced the reload
        }
        assert!(Instant::now() < until, "still SERVFAIL: {err:?}");
    };
    assert_failure_keeps_the_set(&mut dns, err, LookupFailure::Timeout).await;

    // Answered again, with a new address: the change is emitted.
    server.set_servers(&[]);
    server.set_hosts(&["10.0.5.2 api.ext.test", "2001:db8::5:1 api.ext.test"]);
    let fixed = server.reload();
    assert_eq!(
        next_reset_within(&mut dns, fixed).await,
        eps(&[("10.0.5.2:80", 1), ("[2001:db8::5:1]:80", 1)])
    );
}

// --- helpers ---

/// A builder set for tests: this server, quick refreshes, quick retries.
fn fast(builder: DnsBuilder, server: SocketAddr) -> DnsBuilder {
    builder
        .name_servers([server])
        .ttl_bounds(Duration::from_millis(100), TTL_MAX)
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .query_timeout(QUERY_TIMEOUT)
        .seed(7)
}

fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn eps(list: &[(&str, u32)]) -> Vec<Endpoint> {
    list.iter()
        .map(|(a, w)| {
            Endpoint::new(a.parse().unwrap())
                .with_weight(tower_mesh::endpoint::Weight::new(*w).unwrap())
        })
        .collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_for`], and the condition must have come true within [`CHANGE_BOUND`] of `since`.
async fn wait_within(what: &str, since: Instant, done: impl FnMut() -> bool) {
    wait_for(what, done).await;
    let took = since.elapsed();
    assert!(
        took <= CHANGE_BOUND,
        "{what} took {took:?}, more than the TTL bound allows ({CHANGE_BOUND:?})"
    );
}

/// [`next_reset`], which must have come within [`CHANGE_BOUND`] of `since`.
async fn next_reset_within(dns: &mut Dns, since: Instant) -> Vec<Endpoint> {
    let set = next_reset(dns).await;
    let took = since.elapsed();
    assert!(
        took <= CHANGE_BOUND,
        "the new set took {took:?}, more than the TTL bound allows ({CHANGE_BOUND:?}): {set:?}"
    );
    set
}

/// `first` is a `failure`, and for a few refreshes after it the stream yields only more of
/// them: no set, so a balancer keeps its last good one.
async fn assert_failure_keeps_the_set(dns: &mut Dns, first: DnsError, failure: LookupFailure) {
    assert_eq!(first.lookup_failure(), Some(failure), "{first:?}");
    assert_eq!(
        first.to_string(),
        format!("dns lookup of api.ext.test failed: {failure}")
    );
    let until = Instant::now() + 3 * TTL_MAX;
    while let Ok(Some(item)) = tokio::time::timeout_at(until.into(), dns.next()).await {
        match item {
            Err(e) => assert_eq!(e.lookup_failure(), Some(failure), "{e:?}"),
            Ok(update) => panic!("a failure must keep the last set, got {update:?}"),
        }
    }
}

/// The next reset, skipping errors (a reload can race a lookup).
async fn next_reset(dns: &mut Dns) -> Vec<Endpoint> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline.into(), dns.next()).await {
            Ok(Some(Ok(Update::Reset(set)))) => return set,
            Ok(Some(Ok(other))) => panic!("dns emits only resets, got {other:?}"),
            Ok(Some(Err(e))) => eprintln!("(lookup error while waiting for a set: {e})"),
            Ok(None) => panic!("the dns stream ended"),
            Err(_) => panic!("timed out waiting for a set"),
        }
    }
}

/// The next error; a set emitted meanwhile fails the test.
async fn next_error(dns: &mut Dns) -> DnsError {
    match tokio::time::timeout(DEADLINE, dns.next()).await {
        Ok(Some(Err(e))) => e,
        other => panic!("expected a lookup error, got {other:?}"),
    }
}

/// A dnsmasq serving a hosts file and SRV records on a loopback port, killed on drop.
struct Dnsmasq {
    bin: PathBuf,
    addr: SocketAddr,
    dir: TempDir,
    srv: Vec<String>,
    child: Option<Child>,
}

impl Dnsmasq {
    /// Starts a server, or returns `None` (after saying so loudly) when dnsmasq is missing.
    fn start(hosts: &[&str], srv: &[&str]) -> Option<Dnsmasq> {
        let bin = match dnsmasq_binary() {
            Ok(bin) => bin,
            Err(why) => return skip(&why),
        };
        for attempt in 1.. {
            let mut server = Dnsmasq {
                bin: bin.clone(),
                addr: free_port(),
                dir: TempDir::new(),
                srv: srv.iter().map(|s| s.to_string()).collect(),
                child: None,
            };
            server.set_hosts(hosts);
            server.set_servers(&[]);
            match server.spawn() {
                Ok(()) => return Some(server),
                // Another process took the port between our probe and dnsmasq's bind.
                Err(log) if attempt < 5 => eprintln!("dnsmasq did not start, retrying: {log}"),
                Err(log) => panic!("dnsmasq did not start: {log}"),
            }
        }
        unreachable!()
    }

    fn hosts_path(&self) -> PathBuf {
        self.dir.0.join("hosts")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.0.join("dnsmasq.log")
    }

    fn servers_path(&self) -> PathBuf {
        self.dir.0.join("servers")
    }

    /// Replaces the hosts file atomically (written aside, then renamed).
    fn set_hosts(&self, lines: &[&str]) {
        write_atomically(&self.hosts_path(), lines);
    }

    /// Replaces the servers file (`server=/domain/ip#port` lines: where to forward what).
    fn set_servers(&self, lines: &[&str]) {
        write_atomically(&self.servers_path(), lines);
    }

    /// SIGHUP: dnsmasq re-reads its --addn-hosts and --servers-file files. Returns when the
    /// signal was sent.
    fn reload(&self) -> Instant {
        let child = self.child.as_ref().expect("server running");
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
        Instant::now()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port with these SRV records (and the
    /// current hosts file). Returns when it answers again.
    fn restart(&mut self, srv: &[&str]) -> Instant {
        self.stop();
        self.srv = srv.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + DEADLINE;
        // The port may linger a moment after the old process is gone.
        while let Err(log) = self.spawn() {
            assert!(Instant::now() < deadline, "dnsmasq did not restart: {log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Instant::now()
    }

    /// Spawns dnsmasq and waits until it answers a query; on failure returns its log.
    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--keep-in-foreground")
            .arg("--conf-file=/dev/null")
            .arg(format!("--port={}", self.addr.port()))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--no-negcache")
            .arg(format!("--addn-hosts={}", self.hosts_path().display()))
            .arg(format!("--servers-file={}", self.servers_path().display()))
            .arg("--local=/internal/")
            .arg(format!("--local-ttl={RECORD_TTL}"))
            .arg("--pid-file=")
            .arg("--log-facility=-")
            .arg("--log-queries");
        for srv in &self.srv {
            cmd.arg(format!("--srv-host={srv}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if answers(self.addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no answer within {DEADLINE:?}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("DNSMASQ_LOG").is_some() {
            eprintln!("--- dnsmasq log ---\n{}", self.log());
        }
    }
}

/// Whether a DNS server answers at `addr`: one hand-made query (RFC 1035 §4.1) for the A
/// record of `probe.internal`, any reply counts.
fn answers(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "internal"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == [0x12, 0x34])
}

/// The dnsmasq to run: `DNSMASQ_BIN`, else `dnsmasq` on `PATH`, else `/usr/sbin/dnsmasq`
/// (outside most users' `PATH`); `Err` says why there is none.
fn dnsmasq_binary() -> Result<PathBuf, String> {
    servers::server_binary(
        "DNSMASQ_BIN",
        "dnsmasq",
        &["/usr/sbin/dnsmasq"],
        "apt-get install dnsmasq",
    )
}

fn skip<T>(why: &str) -> Option<T> {
    servers::skip("DNS discovery", why)
}

fn write_atomically(path: &Path, lines: &[&str]) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, lines.join("\n") + "\n").unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// An upstream name server on a loopback UDP port that answers every query with SERVFAIL.
struct Servfail {
    port: u16,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Servfail {
    async fn start() -> Servfail {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let queries = Arc::new(AtomicUsize::new(0));
        let count = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = servfail(&buf[..n]) {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Servfail {
            port,
            queries,
            task,
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Servfail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The SERVFAIL reply to a query (RFC 1035 §4.1): its ID and question, the QR bit, RCODE 2,
/// no records (the query's EDNS record, if any, is left out).
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let mut end = 12;
    loop {
        let len = usize::from(*query.get(end)?);
        end += 1;
        if len == 0 {
            break;
        }
        end += len;
    }
    let question = query.get(12..end + 4)?; // the name, QTYPE and QCLASS
    let rd = header[2] & 0x01;
    let mut reply = vec![
        header[0],
        header[1],
        0x80 | rd,
        0x80 | 2,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    reply.extend_from_slice(question);
    Some(reply)
}

/// A loopback UDP port nothing listens on (bound, read, and released).
fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tower-mesh-dns-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
