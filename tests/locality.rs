//! Locality-aware routing over a paused-time fleet of three zones (issue 10's tests).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceExt, service_fn};
use tower_mesh::BoxError;
use tower_mesh::balance::{Balance, Locality, RoundRobin};
use tower_mesh::discover::Static;
use tower_mesh::endpoint::Endpoint;
use tower_mesh::health::HealthCheck;

/// Endpoints whose health probes fail.
#[derive(Clone, Default)]
struct Sick(Arc<Mutex<HashSet<SocketAddr>>>);

impl Sick {
    fn set(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut sick = self.0.lock().unwrap();
        sick.clear();
        sick.extend(addrs);
    }

    fn contains(&self, a: SocketAddr) -> bool {
        self.0.lock().unwrap().contains(&a)
    }
}

fn addr(zone: u8, i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, zone, i], 80))
}

const ZONES: [&str; 3] = ["a", "b", "c"];

/// Four endpoints in each of zones a, b and c; all in region `r1` unless `regions` says.
fn fleet(regions: [&str; 3]) -> Vec<Endpoint> {
    let mut eps = Vec::new();
    for (z, (zone, region)) in ZONES.iter().zip(regions).enumerate() {
        for i in 1..=4 {
            eps.push(
                Endpoint::new(addr(z as u8, i))
                    .with_zone(*zone)
                    .with_region(region),
            );
        }
    }
    eps
}

type Client = tower::util::BoxCloneSyncService<(), SocketAddr, BoxError>;

/// A client in `zone` over `eps`: a balancer whose endpoints answer with their address, and
/// whose health checks fail for the endpoints in `sick`.
async fn client(
    zone: &str,
    region: &str,
    eps: Vec<Endpoint>,
    sick: &Sick,
    seed: u64,
    panic_threshold: u32,
) -> Balance<Locality<RoundRobin>, Client> {
    let make = service_fn(|ep: Endpoint| async move {
        let a = ep.addr();
        Ok::<_, BoxError>(Client::new(service_fn(move |()| async move {
            Ok::<_, BoxError>(a)
        })))
    });
    let sick = sick.clone();
    let probe = service_fn(move |ep: Endpoint| {
        let failing = sick.contains(ep.addr());
        async move {
            if failing {
                Err::<(), BoxError>("probe refused".into())
            } else {
                Ok(())
            }
        }
    });
    let check = HealthCheck::new(Duration::from_secs(1))
        .and_then(|c| c.unhealthy_threshold(1))
        .and_then(|c| c.healthy_threshold(1))
        .unwrap();
    let picker = Locality::new(RoundRobin::with_seed(seed), zone)
        .region(region)
        .seed(seed);
    let n = eps.len();
    let balance = Balance::builder(picker)
        .health_check(check, probe)
        .panic_threshold(panic_threshold)
        .build(Static::new(eps), make)
        .unwrap();
    for _ in 0..1000 {
        if balance.ready_len() == n {
            return balance;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never ready: {:?}", balance.endpoints());
}

/// Sends `n` requests from each client; returns the count per endpoint and per client zone the
/// local share.
async fn send(
    clients: &mut [Balance<Locality<RoundRobin>, Client>],
    n: usize,
) -> (BTreeMap<SocketAddr, usize>, Vec<f64>) {
    let mut counts = BTreeMap::new();
    let mut local = Vec::new();
    for (z, client) in clients.iter_mut().enumerate() {
        let mut here = 0;
        for _ in 0..n {
            let a = client.ready().await.unwrap().call(()).await.unwrap();
            *counts.entry(a).or_insert(0) += 1;
            if a.ip().to_string().split('.').nth(2) == Some(&z.to_string()) {
                here += 1;
            }
        }
        local.push(here as f64 / n as f64);
    }
    (counts, local)
}

/// Lets the probes run (interval 1 s, first within 0.1 s).
async fn probe_round() {
    tokio::time::sleep(Duration::from_millis(1_200)).await;
}

#[tokio::test(start_paused = true)]
async fn healthy_fleet_stays_local_and_a_half_zone_spills_evenly() {
    let sick = Sick::default();
    let eps = fleet(["r1"; 3]);
    let mut clients = Vec::new();
    for (z, zone) in ZONES.iter().enumerate() {
        clients.push(client(zone, "r1", eps.clone(), &sick, z as u64 + 1, 50).await);
    }
    probe_round().await;

    // Healthy: at least 95 % local (here: all of it).
    let (_, local) = send(&mut clients, 1_200).await;
    for (zone, share) in ZONES.iter().zip(&local) {
        assert!(*share >= 0.95, "zone {zone}: {share} local");
    }

    // Zone a loses half its endpoints: its clients keep 0.6 of their requests (2 of 10
    // endpoints in service against 4 of 12 of the clients), the rest spills to b and c, and
    // every endpoint in service carries about the fleet average.
    sick.set([addr(0, 1), addr(0, 2)]);
    probe_round().await;
    let (counts, local) = send(&mut clients, 3_000).await;
    assert!(!counts.contains_key(&addr(0, 1)) && !counts.contains_key(&addr(0, 2)));
    let average = 9_000.0 / 10.0;
    for (a, &count) in &counts {
        assert!(
            (count as f64) <= 1.2 * average,
            "{a} carried {count}, fleet average {average}: {counts:?}"
        );
    }
    assert!(
        (local[0] - 0.6).abs() < 0.05,
        "zone a kept {} local",
        local[0]
    );
    assert!(local[1] >= 0.95 && local[2] >= 0.95, "{local:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dead_zone_fails_over_to_its_region_then_a_dead_region_to_the_next() {
    let sick = Sick::default();
    // Zones a and b in region r1, zone c in region r2.
    let eps = fleet(["r1", "r1", "r2"]);
    // Panic mode off: with two thirds of the fleet out it would use every endpoint, and this
    // test is about the failover order.
    let mut clients = vec![client("a", "r1", eps, &sick, 7, 0).await];
    probe_round().await;
    let (counts, local) = send(&mut clients, 400).await;
    assert_eq!(local[0], 1.0, "{counts:?}");

    // Zone a dies: every request still succeeds (send unwraps each), none reaches zone a,
    // and with half of region r1 out (4 of 8, × 1.4 = 70 % capacity) the region keeps 70 % of
    // the traffic, in zone b, and the next priority, r2, takes the rest.
    sick.set((1..=4).map(|i| addr(0, i)));
    probe_round().await;
    let (counts, _) = send(&mut clients, 2_000).await;
    assert!(
        !counts
            .keys()
            .any(|a| a.ip().to_string().starts_with("10.0.0.")),
        "{counts:?}"
    );
    let in_b: usize = counts
        .iter()
        .filter(|(a, _)| a.ip().to_string().starts_with("10.0.1."))
        .map(|(_, c)| c)
        .sum();
    let share = in_b as f64 / 2_000.0;
    assert!(
        (share - 0.7).abs() < 0.05,
        "zone b took {share}: {counts:?}"
    );

    // Region r1 dies: everything goes to r2.
    sick.set((1..=4).flat_map(|i| [addr(0, i), addr(1, i)]));
    probe_round().await;
    let (counts, _) = send(&mut clients, 400).await;
    assert!(
        counts
            .keys()
            .all(|a| a.ip().to_string().starts_with("10.0.2.")),
        "{counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 400);

    // Partly back: with 3 of r1's 8 endpoints in service (37 %, × 1.4 = 52 %), r1 takes about
    // half the traffic and r2 the rest: an ordered, gradual failover.
    sick.set([addr(0, 1), addr(0, 2), addr(0, 3), addr(1, 1), addr(1, 2)]);
    probe_round().await;
    let (counts, _) = send(&mut clients, 2_000).await;
    let in_r1: usize = counts
        .iter()
        .filter(|(a, _)| !a.ip().to_string().starts_with("10.0.2."))
        .map(|(_, c)| c)
        .sum();
    let share = in_r1 as f64 / 2_000.0;
    assert!((share - 0.525).abs() < 0.05, "r1 took {share}: {counts:?}");
}
