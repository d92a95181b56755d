//! Arbitrary update sequences through `Watch` and `ToTower`: the adapter never panics, and
//! replaying the tower changes it emits yields exactly the set the updates describe.
#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use libfuzzer_sys::fuzz_target;
use tower::discover::Change;
use tower_mesh::discover::{ToTower, Update, Watch};
use tower_mesh::endpoint::{Endpoint, Weight};

fn endpoint(port: u8, weight: u8) -> Endpoint {
    let addr = SocketAddr::from(([127, 0, 0, 1], u16::from(port % 16)));
    let w = Weight::new(u32::from(weight % 4) + 1).expect("1..=4 is a valid weight");
    Endpoint::new(addr).with_weight(w)
}

fuzz_target!(|data: &[u8]| {
    let (watch, updates) = Watch::new();
    let mut model: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    let mut ops = data.chunks_exact(3);
    for op in &mut ops {
        let update = match op[0] % 3 {
            0 => Update::Insert(endpoint(op[1], op[2])),
            1 => Update::Remove(endpoint(op[1], 0).addr()),
            _ => Update::Reset(
                (0..op[1] % 8)
                    .map(|i| endpoint(op[2].wrapping_add(i * 3), i))
                    .collect(),
            ),
        };
        match &update {
            Update::Insert(e) => {
                model.insert(e.addr(), e.clone());
            }
            Update::Remove(a) => {
                model.remove(a);
            }
            Update::Reset(list) => {
                model = list.iter().map(|e| (e.addr(), e.clone())).collect();
            }
        }
        watch.send(update).expect("receiver alive");
    }
    drop(watch);

    let mut stream = pin!(ToTower::new(updates, |e: Endpoint| e));
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let mut replayed: BTreeMap<SocketAddr, Endpoint> = BTreeMap::new();
    loop {
        match stream.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(Change::Insert(a, e)))) => {
                assert_eq!(a, e.addr());
                assert_ne!(replayed.get(&a), Some(&e), "an insert that changes nothing");
                replayed.insert(a, e);
            }
            Poll::Ready(Some(Ok(Change::Remove(a)))) => {
                assert!(
                    replayed.remove(&a).is_some(),
                    "removed an address never inserted"
                );
            }
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Ready(None) => break,
            Poll::Pending => panic!("a closed watch never pends"),
        }
    }
    assert_eq!(replayed, model);
});
