use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;

use futures_util::StreamExt;
use tower::discover::Change;

use super::*;
use crate::endpoint::Weight;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ep(port: u16) -> Endpoint {
    Endpoint::new(addr(port))
}

async fn collect<S: futures_core::Stream + Unpin>(s: S) -> Vec<S::Item> {
    s.collect().await
}

#[tokio::test]
async fn static_delivers_one_reset_then_ends() {
    let list = Static::from_addrs([addr(1), addr(2)]);
    assert_eq!(list.endpoints().len(), 2);
    let items = collect(list.clone()).await;
    assert_eq!(items, [Ok(Update::Reset(vec![ep(1), ep(2)]))]);
    let empty: Vec<Result<Update, Infallible>> = collect(Static::default()).await;
    assert_eq!(empty, [Ok(Update::Reset(vec![]))]);
}

#[tokio::test]
async fn watch_delivers_in_order_and_ends_when_every_handle_drops() {
    let (watch, updates) = Watch::new();
    let other = watch.clone();
    watch.insert(ep(1)).unwrap();
    other.remove(addr(1)).unwrap();
    watch.reset([ep(2)]).unwrap();
    drop(watch);
    other.send(Update::Insert(ep(3))).unwrap();
    drop(other);
    let items = collect(updates).await;
    assert_eq!(
        items,
        [
            Ok(Update::Insert(ep(1))),
            Ok(Update::Remove(addr(1))),
            Ok(Update::Reset(vec![ep(2)])),
            Ok(Update::Insert(ep(3))),
        ]
    );
}

#[tokio::test]
async fn watch_reports_a_dropped_receiver() {
    let (watch, updates) = Watch::new();
    assert!(!watch.is_closed());
    drop(updates);
    assert!(watch.is_closed());
    assert_eq!(watch.insert(ep(1)), Err(crate::WatchClosed(())));
}

#[tokio::test]
async fn to_tower_turns_resets_into_minimal_changes() {
    let (watch, updates) = Watch::new();
    let heavy = ep(2).with_weight(Weight::new(5).unwrap());
    watch.reset([ep(1), ep(2)]).unwrap();
    watch.insert(ep(1)).unwrap(); // no change: not passed on
    watch.reset([heavy.clone(), ep(3)]).unwrap(); // 1 gone, 2 changed, 3 new
    watch.remove(addr(9)).unwrap(); // unknown: not passed on
    watch.remove(addr(3)).unwrap();
    drop(watch);
    let changes: Vec<Change<SocketAddr, u16>> =
        ToTower::new(updates, |e: Endpoint| e.addr().port())
            .map(|c| c.unwrap())
            .collect()
            .await;
    let described: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Insert(a, port) => format!("+{}={port}", a.port()),
            Change::Remove(a) => format!("-{}", a.port()),
        })
        .collect();
    assert_eq!(described, ["+1=1", "+2=2", "-1", "+2=2", "+3=3", "-3"]);
}

#[tokio::test]
async fn from_tower_maps_keys_to_addresses() {
    let (tx, rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Change<&str, Endpoint>, Infallible>>();
    let changes = tokio_stream_from(rx);
    tx.send(Ok(Change::Insert("a", ep(1)))).unwrap();
    tx.send(Ok(Change::Insert("b", ep(1)))).unwrap(); // a second key for the same address
    tx.send(Ok(Change::Insert("a", ep(1).with_zone("z"))))
        .unwrap(); // metadata only
    tx.send(Ok(Change::Remove("a"))).unwrap(); // b still names addr 1
    tx.send(Ok(Change::Insert("c", ep(2)))).unwrap();
    tx.send(Ok(Change::Insert("c", ep(3)))).unwrap(); // key c moves: 2 goes
    tx.send(Ok(Change::Remove("b"))).unwrap();
    tx.send(Ok(Change::Remove("zzz"))).unwrap(); // unknown key
    drop(tx);
    let updates: Vec<Update> = FromTower::new(changes).map(|u| u.unwrap()).collect().await;
    assert_eq!(
        updates,
        [
            Update::Insert(ep(1)),
            Update::Insert(ep(1)),
            Update::Insert(ep(1).with_zone("z")),
            Update::Insert(ep(2)),
            Update::Remove(addr(2)),
            Update::Insert(ep(3)),
            Update::Remove(addr(1)),
        ]
    );
}

#[tokio::test]
async fn our_sources_feed_tower_p2c_and_tower_discoverers_feed_ours() {
    use tower::{Service, ServiceExt};

    // Ours → tower's p2c balancer.
    let discover = ToTower::new(Static::from_addrs([addr(1), addr(2)]), |e: Endpoint| {
        let a = e.addr();
        tower::load::PendingRequests::new(
            tower::service_fn(move |()| async move { Ok::<_, Infallible>(a) }),
            tower::load::CompleteOnResponse::default(),
        )
    });
    let mut p2c = tower::balance::p2c::Balance::new(discover);
    let served = p2c.ready().await.unwrap().call(()).await.unwrap();
    assert!([addr(1), addr(2)].contains(&served));

    // A tower discoverer → ours.
    let changes = futures_util::stream::iter([
        Ok::<_, Infallible>(Change::Insert(5u8, ep(5))),
        Ok(Change::Insert(6u8, ep(6))),
    ]);
    let mut updates = pin!(FromTower::new(changes));
    let mut got = Vec::new();
    while let Some(u) = updates.next().await {
        got.push(u.unwrap());
    }
    assert_eq!(got, [Update::Insert(ep(5)), Update::Insert(ep(6))]);
}

/// A receiver as a stream, without pulling in tokio-stream.
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_core::Stream<Item = T> + Unpin {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
