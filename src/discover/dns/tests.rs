use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::schedule::{LastSet, Timing, clamp_ttl, jittered};
use super::srv::{self, SrvRecord, ZERO_WEIGHT_SCALE};
use super::*;
use crate::endpoint::{Endpoint, Weight};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn ep(last: u8, port: u16, weight: u32) -> Endpoint {
    Endpoint::new(SocketAddr::new(ip(last), port)).with_weight(Weight::new(weight).unwrap())
}

fn invalid_reason(result: Result<impl std::fmt::Debug, DnsError>, input: &str) -> String {
    match result {
        Err(DnsError::InvalidTarget { input: i, reason }) => {
            assert_eq!(i, input, "the error names the input");
            reason
        }
        other => panic!("expected InvalidTarget for {input:?}, got {other:?}"),
    }
}

// --- targets ---

#[test]
fn parses_host_and_srv_targets() {
    let host: DnsTarget = "api.internal:8080".parse().unwrap();
    assert_eq!(host.name(), "api.internal");
    assert_eq!(host.port(), Some(8080));
    assert!(!host.is_srv());

    let fqdn: DnsTarget = "api.internal.:1".parse().unwrap();
    assert_eq!(fqdn.name(), "api.internal.");

    let srv: DnsTarget = "_http._tcp.api.internal".parse().unwrap();
    assert_eq!(srv.name(), "_http._tcp.api.internal");
    assert_eq!(srv.port(), None);
    assert!(srv.is_srv());

    let single_label: DnsTarget = "localhost:65535".parse().unwrap();
    assert_eq!(single_label.port(), Some(65535));

    assert_eq!(DnsTarget::host("db", 5432).unwrap().to_string(), "db:5432");
    assert_eq!(
        DnsTarget::srv("_pg._tcp.db.").unwrap().to_string(),
        "_pg._tcp.db."
    );
}

#[test]
fn refuses_bad_targets_naming_them() {
    let cases = [
        ("api.internal", "missing port"),
        ("api.internal:", "port \"\""),
        ("api.internal:0", "port 0"),
        ("api.internal:65536", "port \"65536\""),
        ("api.internal:+80", "port \"+80\""),
        ("api.internal:http", "port \"http\""),
        ("api..internal:80", "empty label"),
        (".api:80", "empty label"),
        (":80", "empty"),
        ("", "empty"),
        ("api internal:80", "character ' '"),
        ("ápi.internal:80", "xn--"),
        ("-api.internal:80", "hyphen"),
        ("api-.internal:80", "hyphen"),
        ("127.0.0.1:80", "IP address"),
        ("[::1]:80", "IP address"),
        ("::1", "IP address"),
        ("_http._tcp.api.internal:80", "SRV name takes no port"),
        ("_http._tcp", "needs a domain"),
        ("_http.tcp.api", "_proto label"),
        ("_._tcp.api", "_service label"),
        (".:80", "root name"),
    ];
    for (input, expected) in cases {
        let reason = invalid_reason(input.parse::<DnsTarget>(), input);
        assert!(
            reason.contains(expected),
            "{input:?}: reason {reason:?} should mention {expected:?}"
        );
    }
    let long_label = format!("{}.example:80", "a".repeat(64));
    let reason = invalid_reason(long_label.parse::<DnsTarget>(), &long_label);
    assert!(reason.contains("64 characters"), "{reason}");
    let long_name = format!("{}a:80", "abcdefghi.".repeat(26));
    let reason = invalid_reason(long_name.parse::<DnsTarget>(), &long_name);
    assert!(reason.contains("more than 253"), "{reason}");

    invalid_reason(DnsTarget::host("api.internal", 0), "api.internal:0");
    invalid_reason(DnsTarget::srv("api.internal"), "api.internal");
    let err = "bad name:80".parse::<DnsTarget>().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid dns target \"bad name:80\": "),
        "{err}"
    );
}

#[test]
fn longest_valid_names_are_accepted() {
    let label = "a".repeat(63);
    let name = format!("{label}.{label}.{label}.{}", "b".repeat(61)); // 253 characters
    assert_eq!(name.len(), 253);
    assert!(DnsTarget::host(&name, 1).is_ok());
    assert!(DnsTarget::host(&format!("{name}."), 1).is_ok());
}

proptest! {
    #[test]
    fn a_parsed_target_round_trips_through_text(input in "[-_a-z0-9.:\\[\\]]{0,40}") {
        if let Ok(target) = input.parse::<DnsTarget>() {
            let again: DnsTarget = target.to_string().parse().unwrap();
            prop_assert_eq!(again, target);
        }
    }

    #[test]
    fn valid_host_names_parse(
        labels in proptest::collection::vec("[a-z0-9]([a-z0-9_-]{0,20}[a-z0-9])?", 1..5),
        port in 1u16..,
    ) {
        let name = labels.join(".");
        prop_assume!(name.parse::<IpAddr>().is_err());
        let target: DnsTarget = format!("{name}:{port}").parse().unwrap();
        prop_assert_eq!(target.name(), name.as_str());
        prop_assert_eq!(target.port(), Some(port));
    }
}

// --- SRV selection and weights ---

fn rec(priority: u16, weight: u16, port: u16, target: u8) -> SrvRecord<u8> {
    SrvRecord {
        priority,
        weight,
        port,
        target,
    }
}

#[test]
fn groups_are_ordered_by_priority_number() {
    let groups = srv::priority_groups(vec![
        rec(20, 1, 80, 1),
        rec(10, 5, 80, 2),
        rec(20, 2, 80, 3),
        rec(10, 0, 81, 4),
        rec(0, 0, 82, 5),
    ]);
    let targets: Vec<Vec<u8>> = groups
        .iter()
        .map(|g| g.iter().map(|r| r.target).collect())
        .collect();
    assert_eq!(targets, [vec![5], vec![2, 4], vec![1, 3]]);
    assert!(srv::priority_groups::<u8>(Vec::new()).is_empty());
}

#[test]
fn srv_weights_follow_rfc_2782() {
    let get = |ws: &[u16]| -> Vec<u32> {
        srv::endpoint_weights(ws)
            .into_iter()
            .map(Weight::get)
            .collect()
    };
    assert_eq!(get(&[10, 20, 70]), [10, 20, 70]);
    assert_eq!(get(&[0, 0, 0]), [1, 1, 1]);
    assert_eq!(get(&[0, 1, 3]), [1, 100, 300]);
    assert_eq!(get(&[u16::MAX, 0]), [u32::from(u16::MAX) * 100, 1]);
    assert_eq!(get(&[0]), [1]);
    assert!(get(&[]).is_empty());
}

proptest! {
    #[test]
    fn srv_weight_mapping_keeps_shares(ws in proptest::collection::vec(any::<u16>(), 1..20)) {
        let mapped: Vec<u32> = srv::endpoint_weights(&ws).into_iter().map(Weight::get).collect();
        prop_assert_eq!(mapped.len(), ws.len());
        let zeros = ws.iter().filter(|w| **w == 0).count();
        if zeros == ws.len() {
            // All zero: equal chance.
            prop_assert!(mapped.iter().all(|m| *m == 1));
        } else {
            // Nonzero weights keep their exact ratios.
            let nonzero: Vec<(u16, u32)> =
                ws.iter().zip(&mapped).filter(|(w, _)| **w > 0).map(|(w, m)| (*w, *m)).collect();
            let (w0, m0) = nonzero[0];
            for (w, m) in &nonzero {
                prop_assert_eq!(u64::from(*m) * u64::from(w0), u64::from(m0) * u64::from(*w));
            }
            // Zero weights: a very small chance, 1/100 of the lightest nonzero record's.
            let lightest = nonzero.iter().map(|(_, m)| *m).min().unwrap();
            for (w, m) in ws.iter().zip(&mapped) {
                if *w == 0 {
                    prop_assert_eq!(*m, 1);
                    prop_assert!(lightest >= ZERO_WEIGHT_SCALE);
                }
            }
        }
    }
}

#[test]
fn merge_dedupes_addresses_and_sums_weights_of_repeated_records() {
    let w = |n| Weight::new(n).unwrap();
    let set = srv::merge([
        (w(3), 80, vec![ip(2), ip(1), ip(2)]), // a duplicated address in one answer counts once
        (w(5), 80, vec![ip(1)]),               // the same host and port in a second record
        (w(7), 81, vec![ip(1)]),               // the same host on another port
    ]);
    assert_eq!(set, [ep(1, 80, 8), ep(1, 81, 7), ep(2, 80, 3)]);
    let saturated = srv::merge([(w(u32::MAX), 80, vec![ip(1)]), (w(9), 80, vec![ip(1)])]);
    assert_eq!(saturated, [ep(1, 80, u32::MAX)]);
    assert!(srv::merge([(w(1), 80, Vec::new())]).is_empty());
}

// --- timing and change detection ---

fn timing() -> Timing {
    Timing {
        ttl_min: Duration::from_secs(5),
        ttl_max: Duration::from_secs(300),
        jitter: 0.1,
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
    }
}

#[test]
fn ttl_is_clamped_to_bounds() {
    let (min, max) = (Duration::from_secs(5), Duration::from_secs(300));
    assert_eq!(clamp_ttl(Duration::ZERO, min, max), min);
    assert_eq!(
        clamp_ttl(Duration::from_secs(60), min, max),
        Duration::from_secs(60)
    );
    assert_eq!(clamp_ttl(Duration::from_secs(86_400), min, max), max);

    let t = Timing {
        jitter: 0.0,
        ..timing()
    };
    assert_eq!(t.refresh_after(Some(0), 0.5), Duration::from_secs(5));
    assert_eq!(t.refresh_after(Some(30), 0.5), Duration::from_secs(30));
    assert_eq!(
        t.refresh_after(Some(u32::MAX), 0.5),
        Duration::from_secs(300)
    );
    assert_eq!(t.refresh_after(None, 0.5), Duration::from_secs(5));
}

#[test]
fn backoff_doubles_up_to_its_bound() {
    let t = Timing {
        jitter: 0.0,
        ..timing()
    };
    let delays: Vec<u64> = (1..=8).map(|n| t.retry_after(n, 0.0).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(t.retry_after(u32::MAX, 0.0), Duration::from_secs(30));
}

proptest! {
    #[test]
    fn jitter_only_shortens_and_by_at_most_its_fraction(
        ttl in any::<u32>(), failures in 1u32.., u in 0.0f64..1.0, jitter in 0.0f64..1.0,
    ) {
        let t = Timing { jitter, ..timing() };
        let full = clamp_ttl(Duration::from_secs(u64::from(ttl)), t.ttl_min, t.ttl_max);
        let d = t.refresh_after(Some(ttl), u);
        prop_assert!(d <= full);
        prop_assert!(d >= full.mul_f64(1.0 - jitter));
        prop_assert!(!d.is_zero());
        let r = t.retry_after(failures, u);
        prop_assert!(r <= t.backoff_max);
        prop_assert!(!r.is_zero());
        prop_assert_eq!(jittered(full, jitter, 0.0), full);
    }
}

#[test]
fn only_changes_are_reported_regardless_of_order() {
    let mut last = LastSet::default();
    // The first set is a change, even when empty.
    assert_eq!(last.replace(Vec::new()), Some(Vec::new()));
    assert_eq!(last.replace(Vec::new()), None);
    assert_eq!(
        last.replace(vec![ep(2, 80, 1), ep(1, 80, 1)]),
        Some(vec![ep(1, 80, 1), ep(2, 80, 1)]),
        "the reset is sorted by address"
    );
    assert_eq!(last.replace(vec![ep(1, 80, 1), ep(2, 80, 1)]), None);
    assert_eq!(last.replace(vec![ep(2, 80, 1), ep(1, 80, 1)]), None);
    assert_eq!(
        last.replace(vec![ep(2, 80, 1), ep(1, 80, 4)]),
        Some(vec![ep(1, 80, 4), ep(2, 80, 1)]),
        "a weight change is a change"
    );
    assert_eq!(
        last.replace(vec![ep(1, 81, 4), ep(2, 80, 1)]),
        Some(vec![ep(1, 81, 4), ep(2, 80, 1)]),
        "a port change is a change"
    );
    assert_eq!(last.replace(Vec::new()), Some(Vec::new()));
}

// --- builder validation ---

#[test]
fn builder_refuses_bad_settings_naming_them() {
    let s = Duration::from_secs;
    let ok = || Dns::host("api.internal", 80).name_servers(["127.0.0.1:53".parse().unwrap()]);
    assert!(ok().validate().is_ok());

    assert!(matches!(
        ok().ttl_bounds(Duration::ZERO, s(1)).validate(),
        Err(DnsError::InvalidTtlBounds { min, .. }) if min.is_zero()
    ));
    let err = ok().ttl_bounds(s(10), s(5)).validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "dns ttl bounds must satisfy 0 < min <= max, got min 10s and max 5s"
    );
    assert!(matches!(
        ok().backoff(s(2), s(1)).validate(),
        Err(DnsError::InvalidBackoff { .. })
    ));
    assert!(matches!(
        ok().backoff(Duration::ZERO, s(1)).validate(),
        Err(DnsError::InvalidBackoff { .. })
    ));
    for bad in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
        let err = ok().jitter(bad).validate().unwrap_err();
        assert!(matches!(err, DnsError::InvalidJitter(_)), "{bad}: {err:?}");
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    assert!(ok().jitter(0.0).validate().is_ok());
    assert!(matches!(
        ok().query_timeout(Duration::ZERO).validate(),
        Err(DnsError::InvalidTimeout(_))
    ));
    assert!(matches!(
        ok().name_servers([]).validate(),
        Err(DnsError::NoNameServers)
    ));
    invalid_reason(
        Dns::host("a..b", 80)
            .name_servers(["127.0.0.1:53".parse().unwrap()])
            .build(),
        "a..b:80",
    );
    invalid_reason(Dns::srv("a.b").build(), "a.b");
}

#[test]
fn builds_without_a_runtime() {
    // Building spawns nothing (that would panic here, outside a runtime); that nothing is sent
    // before the first poll is checked against a name server in `server_tests`.
    let dns = Dns::srv("_http._tcp.api.internal")
        .name_servers(["127.0.0.1:53".parse().unwrap()])
        .build()
        .unwrap();
    assert!(dns.target().is_srv());
    assert!(format!("{dns:?}").contains("_http._tcp.api.internal"));
}

#[cfg(unix)]
#[test]
fn a_system_configuration_that_cannot_be_read_is_named() {
    let missing = std::env::temp_dir().join(format!(
        "tower-mesh-no-such-resolv-{}.conf",
        std::process::id()
    ));
    let err = lookup::read_resolv_conf(&missing).unwrap_err();
    let DnsError::SystemConfig { path, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path.as_deref(), Some(missing.as_path()));
    assert!(
        source.downcast_ref::<std::io::Error>().is_some(),
        "{source:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read the system dns configuration from {}",
            missing.display()
        )
    );
    // A file that is there is parsed as hickory would.
    let file = std::env::temp_dir().join(format!("tower-mesh-resolv-{}.conf", std::process::id()));
    std::fs::write(&file, "nameserver 127.0.0.1\n").unwrap();
    let parsed = lookup::read_resolv_conf(&file);
    let _ = std::fs::remove_file(&file);
    let (config, _) = parsed.unwrap();
    assert_eq!(
        config.name_servers()[0].socket_addr,
        "127.0.0.1:53".parse().unwrap()
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Dns>();
    assert_send_sync::<DnsBuilder>();
    assert_send_sync::<DnsTarget>();
    assert_send_sync::<DnsError>();
    assert_send_sync::<NxDomainPolicy>();
    assert_send_sync::<IpStrategy>();
    assert_send_sync::<LookupFailure>();
}

#[test]
fn lookup_failures_are_classified() {
    use hickory_resolver::ResolveError;
    use hickory_resolver::proto::op::{Query, ResponseCode};
    use hickory_resolver::proto::{ProtoError, ProtoErrorKind};

    let no_records = |code, negative_ttl| {
        ResolveError::from(ProtoError::from(ProtoErrorKind::NoRecordsFound {
            query: Box::new(Query::default()),
            soa: None,
            ns: None,
            negative_ttl,
            response_code: code,
            trusted: true,
            authorities: None,
        }))
    };
    let nx = answer::classify("a.example", no_records(ResponseCode::NXDomain, Some(30))).unwrap();
    assert_eq!((nx.failure, nx.ttl), (LookupFailure::NxDomain, Some(30)));
    let nodata = answer::classify("a.example", no_records(ResponseCode::NoError, None)).unwrap();
    assert_eq!(nodata.failure, LookupFailure::NoRecords);
    for code in [ResponseCode::ServFail, ResponseCode::Refused] {
        let err = answer::classify("a.example", no_records(code, None)).unwrap_err();
        assert_eq!(err.lookup_failure(), Some(LookupFailure::ServerFailure));
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            err.to_string(),
            "dns lookup of a.example failed: server failure"
        );
    }
    let timeout = ResolveError::from(ProtoError::from(ProtoErrorKind::Timeout));
    let err = answer::classify("a.example", timeout).unwrap_err();
    assert_eq!(err.lookup_failure(), Some(LookupFailure::Timeout));
}
