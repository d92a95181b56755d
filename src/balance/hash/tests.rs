use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use sha1::{Digest, Sha1};

use super::maglev::MaglevTable;
use super::placement::Name;
use super::*;
use crate::balance::pick::{EndpointView, Loads, Pick, PickRequest};
use crate::endpoint::{Endpoint, Weight};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses parse")
}

/// Reference values computed with coreutils' `sha1sum`, e.g.
/// `printf '%s' '10.0.0.1:8080-0' | sha1sum`.
#[test]
fn ring_points_match_the_documented_sha1_scheme() {
    let mut v4 = Name::new(addr("10.0.0.1:8080"));
    assert_eq!(v4.point(0), 0xe24b_5c1e_f71e_b321);
    assert_eq!(v4.point(1023), 0x3d61_f0ab_7a5a_1705);
    assert_eq!(
        v4.point(0),
        0xe24b_5c1e_f71e_b321,
        "reusable for any replica"
    );
    let mut v6 = Name::new(addr("[2001:db8::1]:443"));
    assert_eq!(v6.point(7), 0x270e_9bf3_9eac_e1bb);
    let scoped = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 3));
    assert_eq!(Name::new(scoped).point(0), 0x194b_75c7_4cc2_2f90);
}

#[test]
fn maglev_hashes_match_the_documented_sha1_scheme() {
    let (h1, h2) = Name::new(addr("10.0.0.1:8080")).digest_pair();
    assert_eq!((h1, h2), (0x1285_68a8_f9fb_2e7a, 0x8fc3_38e9_5786_9eb4));
}

#[test]
fn the_longest_address_and_replica_fit_the_name_buffer() {
    let ip = Ipv6Addr::new(
        0xffff, 0xfffe, 0xfffd, 0xfffc, 0xfffb, 0xfffa, 0xfff9, 0xfff8,
    );
    let a = SocketAddr::V6(SocketAddrV6::new(ip, 65535, u32::MAX, u32::MAX));
    let text = format!("{a}-{}", u32::MAX);
    assert_eq!(text.len(), 69);
    let digest = Sha1::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    assert_eq!(Name::new(a).point(u32::MAX), u64::from_be_bytes(first));
}

#[test]
fn key_hashes_are_xxh3_of_the_documented_bytes() {
    // XXH3_64bits of the empty input, from the xxHash test vectors.
    assert_eq!(KeyHash::of_bytes(b"").get(), 0x2d06_8005_38d3_94c2);
    assert_eq!(KeyHash::of("abc"), KeyHash::of_bytes(b"abc"));
    assert_eq!(KeyHash::of(&String::from("abc")), KeyHash::of_bytes(b"abc"));
    assert_eq!(KeyHash::of(&b"abc".to_vec()), KeyHash::of_bytes(b"abc"));
    assert_eq!(KeyHash::of(&0x0102u16), KeyHash::of_bytes(&[2, 1]));
    assert_eq!(KeyHash::of(&-1i32), KeyHash::of_bytes(&[0xff; 4]));
    assert_ne!(KeyHash::of(&7u32), KeyHash::of(&7u64));
    let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
    assert_eq!(KeyHash::of(&ip), KeyHash::of_bytes(&[10, 1, 2, 3]));
    assert_eq!(KeyHash::of(&KeyHash::from_u64(5)).get(), 5);
    assert_eq!(
        format!("{:?}", KeyHash::from_u64(255)),
        "KeyHash(0x00000000000000ff)"
    );
}

#[test]
fn point_counts_follow_the_documented_rule() {
    let ring = RingHash::new(|_: &()| None::<u64>);
    // Unclamped: the lightest gets R, the others R·w/w_min rounded down.
    assert_eq!(ring.point_counts(&[2, 3, 4]), [1024, 1536, 2048]);
    assert_eq!(ring.point_counts(&[7; 5]), [1024; 5]);
    // Grown to the minimum ring size: ⌈lo·w/W⌉.
    let small = ring.clone().replicas(10).unwrap();
    assert_eq!(small.point_counts(&[1, 2]), [342, 683]);
    // Shrunk to the maximum: max(1, ⌊hi·w/W⌋).
    let capped = ring.clone().ring_size(1, 1000).unwrap();
    assert_eq!(capped.point_counts(&[1, 1]), [500, 500]);
    assert_eq!(capped.point_counts(&[1, 100_000]), [1, 999]);
    assert!(ring.point_counts(&[]).is_empty());
    assert_eq!(ring.point_counts(&[0, 0]), [0, 0]);
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_value() {
    let ring = RingHash::new(|_: &()| None::<u64>);
    assert_eq!(
        ring.clone().replicas(0).unwrap_err(),
        HashConfigError::ZeroReplicas
    );
    for (min, max) in [(0, 10), (11, 10), (1, RingHash::RING_SIZE_LIMIT + 1)] {
        let err = ring.clone().ring_size(min, max).unwrap_err();
        assert_eq!(err, HashConfigError::InvalidRingSize { min, max });
        assert!(
            err.to_string()
                .contains(&format!("min {min} and max {max}"))
        );
    }
    assert!(ring.ring_size(1, RingHash::RING_SIZE_LIMIT).is_ok());

    let maglev = Maglev::new(|_: &()| None::<u64>);
    for m in [0, 1, 4, 9, 65_536, 65_535, 1_000_001] {
        let err = maglev.clone().table_size(m).unwrap_err();
        assert_eq!(err, HashConfigError::TableSizeNotPrime(m));
        assert_eq!(
            err.to_string(),
            format!("maglev table size must be prime, got {m}")
        );
    }
    assert_eq!(
        maglev.clone().table_size(16_777_259).unwrap_err(),
        HashConfigError::TableSizeTooLarge(16_777_259)
    );
    for m in [2, 3, 7, 251, 65_537, 655_373, Maglev::MAX_TABLE_SIZE] {
        assert!(maglev.clone().table_size(m).is_ok(), "{m} is prime");
    }

    for eps in [0.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = LoadBound::new(eps).unwrap_err();
        assert!(matches!(err, HashConfigError::InvalidEpsilon(e) if e.to_bits() == eps.to_bits()));
        assert!(err.to_string().starts_with("bounded-load epsilon must be"));
    }
    assert_eq!(LoadBound::new(1e-9).unwrap().epsilon(), 1e-9);
}

fn endpoints(addrs: &[&str]) -> Vec<Endpoint> {
    addrs.iter().map(|a| Endpoint::new(addr(a))).collect()
}

#[test]
fn ring_lookup_wraps_and_handles_the_empty_ring() {
    let ring = RingHash::new(|_: &()| None::<u64>).replicas(3).unwrap();
    let empty = ring.ring(&[]);
    assert!(empty.is_empty());
    assert_eq!(empty.lookup(KeyHash::from_u64(1)), None);
    assert_eq!(empty.points().count(), 0);

    let eps = endpoints(&["10.0.0.1:1", "10.0.0.2:1"]);
    let views: Vec<_> = eps.iter().map(EndpointView::new).collect();
    let table = ring.ring(&views);
    let points: Vec<(u64, usize)> = table.points().collect();
    assert_eq!(points.len(), table.point_count());
    assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
    let (first, last) = (points[0], points[points.len() - 1]);
    assert_eq!(table.lookup(KeyHash::from_u64(last.0 + 1)), Some(first.1));
    assert_eq!(table.lookup(KeyHash::from_u64(u64::MAX)), Some(first.1));
    assert_eq!(table.lookup(KeyHash::from_u64(0)), Some(first.1));
    for &(p, owner) in &points {
        assert_eq!(table.lookup(KeyHash::from_u64(p)), Some(owner));
    }
    assert!(format!("{table:?}").contains("points"));
}

#[test]
fn maglev_fills_every_entry_even_with_more_endpoints_than_entries() {
    let maglev = Maglev::new(|_: &()| None::<u64>).table_size(7).unwrap();
    let addrs: Vec<String> = (1..=10).map(|i| format!("10.0.0.{i}:80")).collect();
    let eps = endpoints(&addrs.iter().map(String::as_str).collect::<Vec<_>>());
    let views: Vec<_> = eps.iter().map(EndpointView::new).collect();
    for n in [1, 2, 7, 10] {
        let table: MaglevTable = maglev.table(&views[..n]);
        assert_eq!(table.entries().len(), 7);
        assert!(table.entries().iter().all(|&e| (e as usize) < n));
    }
    assert_eq!(maglev.table(&[]).lookup(KeyHash::from_u64(3)), None);
}

#[test]
fn a_table_built_for_another_set_picks_nothing() {
    let eps = endpoints(&["10.0.0.1:1", "10.0.0.2:1"]);
    let views: Vec<_> = eps.iter().map(EndpointView::new).collect();
    let loads: Vec<_> = (0..3).map(|_| crate::load::Load::new()).collect();
    let ring = RingHash::new(|k: &u64| Some(*k));
    let table = ring.build(&views);
    let mut cursor = ring.cursor(0);
    assert_eq!(
        ring.pick(&table, &mut cursor, &Loads::new(&loads), &1),
        None
    );
    assert!(
        ring.pick(&table, &mut cursor, &Loads::new(&loads[..2]), &1)
            .is_some()
    );
    let maglev = Maglev::new(|k: &u64| Some(*k));
    let table = maglev.build(&views);
    assert_eq!(
        maglev.pick(&table, &mut cursor, &Loads::new(&loads), &1),
        None
    );
}

#[test]
fn weights_scale_point_counts() {
    let eps = [
        Endpoint::new(addr("10.0.0.1:1")),
        Endpoint::new(addr("10.0.0.2:1")).with_weight(Weight::new(3).unwrap()),
    ];
    let views: Vec<_> = eps.iter().map(EndpointView::new).collect();
    let table = RingHash::new(|_: &()| None::<u64>).ring(&views);
    let mut counts = [0; 2];
    for (_, owner) in table.points() {
        counts[owner] += 1;
    }
    assert_eq!(counts, [1024, 3072]);
}
