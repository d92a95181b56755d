//! Fallbacks, extractors, trait bounds, and end-to-end routing through a real `Balance`.

use super::*;

#[test]
fn keyless_requests_go_to_the_fallback_picker() {
    let eps: Vec<Endpoint> = (1..=5)
        .map(|i| Endpoint::new(SocketAddr::from(([10, 0, 0, i], 80))))
        .collect();
    let loads: Vec<Load> = eps.iter().map(|_| Load::new()).collect();
    let loads = Loads::new(&loads);
    let key = |k: &Option<u64>| *k;
    let ring = RingHash::new(key).fallback(RoundRobin::with_seed(0));
    let table = ring.build(&views(&eps));
    let mut cursor = ring.cursor(0);
    let picks: Vec<_> = (0..7)
        .map(|_| ring.pick(&table, &mut cursor, &loads, &None).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 2, 3, 4, 0, 1]);
    let keyed = ring.pick(&table, &mut cursor, &loads, &Some(9)).unwrap();
    assert_eq!(Some(keyed), table.table().lookup(KeyHash::of(&9u64)));

    let maglev = Maglev::new(key).fallback(Random::with_seed(3));
    let random = Random::with_seed(3);
    let (table, mut cursor, mut plain) = (
        maglev.build(&views(&eps)),
        maglev.cursor(1),
        random.cursor(1),
    );
    for _ in 0..20 {
        assert_eq!(
            maglev.pick(&table, &mut cursor, &loads, &None),
            PickRequest::<Option<u64>>::pick(&random, &(), &mut plain, &loads, &None)
        );
    }
    assert_eq!(
        maglev.pick(&table, &mut cursor, &loads, &Some(9)),
        table.table().lookup(KeyHash::of(&9u64))
    );
}

#[test]
fn borrowing_extractors_and_closures_agree() {
    struct Req {
        user: String,
    }
    struct ByUser;
    impl ExtractKey<Req> for ByUser {
        fn key_hash(&self, req: &Req) -> Option<KeyHash> {
            Some(KeyHash::of_bytes(req.user.as_bytes()))
        }
    }
    let req = Req { user: "ada".into() };
    let closure = |r: &Req| Some(r.user.clone());
    assert_eq!(ByUser.key_hash(&req), closure.key_hash(&req));
    assert_eq!(ByUser.key_hash(&req), Some("ada".key_hash()));
    let eps: Vec<Endpoint> = (1..=3)
        .map(|i| Endpoint::new(SocketAddr::from(([10, 0, 0, i], 80))))
        .collect();
    let loads: Vec<Load> = eps.iter().map(|_| Load::new()).collect();
    let (a, b) = (Maglev::new(ByUser), Maglev::new(closure));
    let (ta, tb) = (a.build(&views(&eps)), b.build(&views(&eps)));
    assert_eq!(
        a.pick(&ta, &mut a.cursor(0), &Loads::new(&loads), &req),
        b.pick(&tb, &mut b.cursor(0), &Loads::new(&loads), &req)
    );
}

#[test]
fn public_types_are_send_sync_and_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<RingHash<Key>>();
    check::<Maglev<Key>>();
    check::<RingTable>();
    check::<MaglevTable>();
    check::<WithFallback<RingTable, ()>>();
    check::<LoadBound>();
    check::<KeyHash>();
    check::<HashConfigError>();
    let ring = ring().bounded_loads(LoadBound::default());
    let text = format!("{ring:?}");
    assert!(text.contains("RingHash") && text.contains("replicas: 1024") && text.contains("0.25"));
    assert!(format!("{:?}", maglev()).contains("table_size: 65537"));
    assert_eq!(RingHash::DEFAULT_REPLICAS, 1024);
    assert_eq!(Maglev::DEFAULT_TABLE_SIZE, 65_537);
}

/// A client answering every request with its endpoint's address.
fn make_echo() -> impl Service<
    Endpoint,
    Response = impl Service<u64, Response = SocketAddr, Error = Infallible, Future = impl Send>
               + Clone
               + Send
               + Sync
               + 'static,
    Error = Infallible,
    Future = impl Send,
> + Send
+ 'static {
    tower::service_fn(|ep: Endpoint| async move {
        let addr = ep.addr();
        Ok::<_, Infallible>(tower::service_fn(move |_: u64| async move {
            Ok::<_, Infallible>(addr)
        }))
    })
}

async fn route<P: PickRequest<u64>, S>(
    balance: &mut Balance<P, S>,
    keys: std::ops::Range<u64>,
) -> Vec<SocketAddr>
where
    S: Service<u64, Response = SocketAddr, Error = Infallible> + Clone,
{
    let mut out = Vec::new();
    for key in keys {
        out.push(balance.ready().await.unwrap().call(key).await.unwrap());
    }
    out
}

async fn wait_for<P: Pick, S>(balance: &Balance<P, S>, ready: usize) {
    while balance.ready_len() != ready {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// End to end through a real `Balance`: the same key reaches the same endpoint on every call
/// and from every clone; removing an endpoint moves its keys, and (ring) only its keys.
#[tokio::test(start_paused = true)]
async fn balance_routes_keys_consistently_and_moves_only_removed_keys() {
    let addrs: Vec<SocketAddr> = (1..=6)
        .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
        .collect();
    let (watch, updates) = Watch::new();
    watch
        .reset(addrs.iter().copied().map(Endpoint::new))
        .unwrap();
    let mut balance = Balance::builder(ring())
        .build(updates, make_echo())
        .unwrap();
    wait_for(&balance, 6).await;

    let first = route(&mut balance, 0..300).await;
    assert_eq!(
        route(&mut balance, 0..300).await,
        first,
        "same key, same endpoint"
    );
    assert_eq!(
        route(&mut balance.clone(), 0..300).await,
        first,
        "in every clone"
    );
    let used: BTreeSet<_> = first.iter().collect();
    assert_eq!(used.len(), 6, "300 keys reach all six endpoints");

    let gone = addrs[2];
    watch.remove(gone).unwrap();
    wait_for(&balance, 5).await;
    let second = route(&mut balance, 0..300).await;
    for (key, (a, b)) in first.iter().zip(&second).enumerate() {
        assert_ne!(*b, gone, "key {key} still went to the removed endpoint");
        if *a != gone {
            assert_eq!(a, b, "key {key} moved although its endpoint stayed");
        }
    }
    assert!(
        first.iter().zip(&second).any(|(a, b)| a != b),
        "the removed endpoint's keys moved"
    );
}

#[tokio::test(start_paused = true)]
async fn maglev_balance_routes_keys_consistently() {
    let addrs: Vec<SocketAddr> = (1..=6)
        .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
        .collect();
    let (watch, updates) = Watch::new();
    watch
        .reset(addrs.iter().copied().map(Endpoint::new))
        .unwrap();
    let mut balance = Balance::builder(maglev())
        .build(updates, make_echo())
        .unwrap();
    wait_for(&balance, 6).await;
    let first = route(&mut balance, 0..300).await;
    assert_eq!(route(&mut balance.clone(), 0..300).await, first);

    let gone = addrs[4];
    watch.remove(gone).unwrap();
    wait_for(&balance, 5).await;
    let second = route(&mut balance, 0..300).await;
    assert!(second.iter().all(|&a| a != gone));
    let stayed = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| **a != gone && a == b)
        .count();
    let kept = first.iter().filter(|&&a| a != gone).count();
    // Maglev moves a little more than the removed share; with six endpoints, far less than 10%.
    assert!(stayed * 10 >= kept * 9, "{stayed} of {kept} keys stayed");
}

#[tokio::test]
async fn static_discovery_with_the_readme_shape() {
    let eps = Static::from_addrs((1..=3).map(|i| SocketAddr::from(([10, 0, 0, i], 80))));
    let balance = Balance::builder(maglev()).build(eps, make_echo()).unwrap();
    let a = balance.clone().oneshot(42).await.unwrap();
    let b = balance.oneshot(42).await.unwrap();
    assert_eq!(a, b);
}
