use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::builder::{Backoff, key_prefix, prefix_end};
use super::error::InvalidValueReason;
use super::liveness::{Liveness, alive};
use super::tracker::Tracker;
use super::*;
use crate::discover::Update;
use crate::endpoint::{Endpoint, Weight};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn reason(key: &[u8], value: &str) -> InvalidValueReason {
    let err = decode_value(key, value.as_bytes()).unwrap_err();
    assert_eq!(err.key(), String::from_utf8_lossy(key));
    assert_eq!(err.value(), value);
    err.reason().clone()
}

#[test]
fn decodes_what_the_go_endpoints_manager_writes() {
    // json.Marshal(internal.Update{Op: Add, Addr: ..., Metadata: nil})
    let ep = decode_value(
        b"svc/1.2.3.4:80",
        br#"{"Op":0,"Addr":"1.2.3.4:80","Metadata":null}"#,
    )
    .unwrap();
    assert_eq!(ep, Endpoint::new(addr("1.2.3.4:80")));
    // The grpc naming guide's example stores a string as metadata.
    let ep = decode_value(b"k", br#"{"Addr":"[::1]:9000","Metadata":"..."}"#).unwrap();
    assert_eq!(ep, Endpoint::new(addr("[::1]:9000")));
    // Lower-case field names, as Go's decoder accepts; Op is ignored like etcd's resolver does.
    let ep = decode_value(b"k", br#"{"Op":1,"addr":"10.0.0.1:1"}"#).unwrap();
    assert_eq!(ep.addr(), addr("10.0.0.1:1"));
}

#[test]
fn metadata_weight_zone_and_string_labels() {
    let ep = decode_value(
        b"k",
        br#"{"Addr":"10.0.0.1:80","Metadata":{"weight":7,"zone":"z1","version":"v2","port":8080,"tags":["a"]}}"#,
    )
    .unwrap();
    assert_eq!(ep.weight(), Weight::new(7).unwrap());
    assert_eq!(ep.zone(), Some("z1"));
    assert_eq!(ep.labels().collect::<Vec<_>>(), vec![("version", "v2")]);
    let ep = decode_value(
        b"k",
        br#"{"Addr":"10.0.0.1:80","Metadata":{"weight":"4294967295","zone":null}}"#,
    )
    .unwrap();
    assert_eq!(ep.weight().get(), u32::MAX);
    assert_eq!(ep.zone(), None);
}

#[test]
fn bad_values_are_refused_naming_key_and_value() {
    assert!(matches!(
        reason(b"k", "not json"),
        InvalidValueReason::Json(_)
    ));
    assert!(matches!(
        reason(b"k", r#"{"Metadata":{}}"#),
        InvalidValueReason::Json(_)
    ));
    assert!(matches!(
        reason(b"k", r#"{"Addr":80}"#),
        InvalidValueReason::Json(_)
    ));
    assert_eq!(
        reason(b"svc/db", r#"{"Addr":"db.local:5432"}"#),
        InvalidValueReason::HostName("db.local:5432".into())
    );
    assert_eq!(
        reason(b"svc/db", r#"{"Addr":"db.local"}"#),
        InvalidValueReason::Addr("db.local".into())
    );
    assert_eq!(
        reason(b"svc/db", r#"{"Addr":"db.local:99999"}"#),
        InvalidValueReason::Addr("db.local:99999".into())
    );
    assert_eq!(
        reason(b"svc/db", r#"{"Addr":"::1:80"}"#),
        InvalidValueReason::Addr("::1:80".into())
    );
    assert_eq!(
        reason(b"k", r#"{"Addr":"10.0.0.1"}"#),
        InvalidValueReason::Addr("10.0.0.1".into())
    );
    for (w, shown) in [
        ("0", "0"),
        ("-1", "-1"),
        ("1.5", "1.5"),
        ("4294967296", "4294967296"),
        (r#""zero""#, r#""zero""#),
        ("true", "true"),
    ] {
        let value = format!(r#"{{"Addr":"10.0.0.1:1","Metadata":{{"weight":{w}}}}}"#);
        assert_eq!(
            reason(b"k", &value),
            InvalidValueReason::Weight(shown.into()),
            "{w}"
        );
    }
    assert_eq!(
        reason(b"k", r#"{"Addr":"10.0.0.1:1","Metadata":{"zone":3}}"#),
        InvalidValueReason::Zone("3".into())
    );
    let err = decode_value(b"svc/x", br#"{"Addr":"h:1"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid endpoint at etcd key "svc/x", value "{\"Addr\":\"h:1\"}": Addr "h:1" names a host; only ip:port addresses are accepted (host names are not resolved)"#
    );
}

#[test]
fn long_or_binary_values_are_cut_in_errors() {
    let value = vec![0xffu8; 2000];
    let err = decode_value(b"k\xff", &value).unwrap_err();
    assert_eq!(err.key(), "k\u{fffd}");
    assert!(err.value().ends_with('…'));
    assert!(err.value().chars().count() <= 513);
}

#[test]
fn encode_round_trips() {
    let ep = Endpoint::new(addr("[2001:db8::1]:443"))
        .with_weight(Weight::new(9).unwrap())
        .with_zone("eu")
        .with_label("version", "v\"3")
        .with_label("weight", "ignored");
    let json = encode_value(&ep);
    let back = decode_value(b"k", &json).unwrap();
    assert_eq!(
        back,
        Endpoint::new(ep.addr())
            .with_weight(ep.weight())
            .with_zone("eu")
            .with_label("version", "v\"3")
    );
    let text = String::from_utf8(json).unwrap();
    assert!(
        text.starts_with(r#"{"Op":0,"Addr":"[2001:db8::1]:443","Metadata":{"#),
        "{text}"
    );
}

#[test]
fn prefix_and_range_end() {
    assert_eq!(key_prefix("svc").unwrap(), b"svc/");
    assert_eq!(key_prefix("svc/").unwrap(), b"svc/");
    assert_eq!(key_prefix("/"), Err(ConfigError::EmptyPrefix));
    assert_eq!(key_prefix(""), Err(ConfigError::EmptyPrefix));
    assert_eq!(prefix_end(b"svc/"), b"svc0");
    assert_eq!(prefix_end(b"a\xff"), b"b");
    assert_eq!(prefix_end(b"\xff\xff"), b"\0");
}

#[test]
fn tracker_maps_key_events_to_address_updates() {
    let v =
        |a: &str, w: u32| format!(r#"{{"Addr":"{a}","Metadata":{{"weight":{w}}}}}"#).into_bytes();
    let ep = |a: &str, w: u32| Endpoint::new(addr(a)).with_weight(Weight::new(w).unwrap());
    let d = |k: &[u8], value: &[u8]| decode_value(k, value);
    let mut t = Tracker::default();
    let out = t.reset(
        [
            (b"s/a".to_vec(), v("10.0.0.1:1", 1)),
            (b"s/bad".to_vec(), b"{".to_vec()),
            (b"s/b".to_vec(), v("10.0.0.2:1", 2)),
        ]
        .map(|(k, value)| {
            let e = d(&k, &value);
            (k, e)
        }),
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].is_err());
    assert_eq!(
        out[1],
        Ok(Update::Reset(vec![
            ep("10.0.0.1:1", 1),
            ep("10.0.0.2:1", 2)
        ]))
    );

    let mut out = Vec::new();
    // A delete carries only the key; the address comes from the map.
    t.delete(b"s/a", &mut out);
    // Deleting an unknown (or never valid) key does nothing.
    t.delete(b"s/bad", &mut out);
    // A second key naming an existing address; its removal re-asserts the first key's entry.
    t.put(b"s/b2".to_vec(), d(b"s/b2", &v("10.0.0.2:1", 5)), &mut out);
    t.delete(b"s/b2", &mut out);
    // A key moving to a new address removes the old one.
    t.put(b"s/b".to_vec(), d(b"s/b", &v("10.0.0.3:1", 2)), &mut out);
    // A bad value keeps the key's last good endpoint.
    t.put(b"s/b".to_vec(), d(b"s/b", b"[]"), &mut out);
    t.delete(b"s/b", &mut out);
    let out: Vec<_> = out
        .into_iter()
        .map(|u| u.map_err(|e| e.key().to_owned()))
        .collect();
    assert_eq!(
        out,
        vec![
            Ok(Update::Remove(addr("10.0.0.1:1"))),
            Ok(Update::Insert(ep("10.0.0.2:1", 5))),
            Ok(Update::Insert(ep("10.0.0.2:1", 2))),
            Ok(Update::Remove(addr("10.0.0.2:1"))),
            Ok(Update::Insert(ep("10.0.0.3:1", 2))),
            Err("s/b".to_owned()),
            Ok(Update::Remove(addr("10.0.0.3:1"))),
        ]
    );
}

#[test]
fn configuration_is_validated() {
    assert_eq!(
        Cluster::new(Vec::<String>::new()).unwrap_err(),
        ConfigError::NoUrls
    );
    for (url, why) in [
        (
            "https://127.0.0.1:2379",
            "https is not supported; use http://host:port",
        ),
        ("127.0.0.1:2379", "scheme must be http"),
        ("http://127.0.0.1", "no port"),
        ("http://127.0.0.1:2379/v3", "must not have a path or query"),
        ("http://u@127.0.0.1:2379", "user info is not supported"),
        ("http:// bad", "not a URL"),
    ] {
        assert_eq!(
            Cluster::new([url]).unwrap_err(),
            ConfigError::InvalidUrl {
                url: url.into(),
                reason: why
            },
            "{url}"
        );
    }
    let cluster = Cluster::new(["http://[::1]:2379", "http://localhost:2379/"]).unwrap();
    assert_eq!(
        cluster.urls().collect::<Vec<_>>(),
        ["http://[::1]:2379", "http://localhost:2379/"]
    );
    assert_eq!(
        cluster.clone().request_timeout(Duration::ZERO).unwrap_err(),
        ConfigError::ZeroRequestTimeout(Duration::ZERO)
    );
    let s = Duration::from_secs(1);
    for (min, max) in [(Duration::ZERO, s), (2 * s, s)] {
        assert_eq!(
            Etcd::builder(cluster.clone(), "svc")
                .backoff(min, max)
                .build()
                .unwrap_err(),
            ConfigError::InvalidBackoff { min, max }
        );
    }
    for (idle, max_silence) in [(Duration::ZERO, s), (2 * s, s)] {
        let err = Etcd::builder(cluster.clone(), "svc")
            .watch_liveness(idle, max_silence)
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::InvalidWatchLiveness { idle, max_silence });
        assert!(err.to_string().contains(&format!("{idle:?}")), "{err}");
    }
    assert!(
        Etcd::builder(cluster.clone(), "svc")
            .watch_liveness(s, s)
            .build()
            .is_ok()
    );
    assert_eq!(
        Etcd::builder(cluster, "/").build().unwrap_err(),
        ConfigError::EmptyPrefix
    );
}

#[tokio::test]
async fn registration_ttl_is_validated_before_anything_is_sent() {
    // Nothing listens on port 1: a request would fail with Connect, not Config.
    let cluster = Cluster::new(["http://127.0.0.1:1"]).unwrap();
    let ep = Endpoint::new(addr("10.0.0.1:80"));
    for ttl in [
        Duration::from_millis(999),
        Registration::MAX_TTL + Duration::from_secs(1),
    ] {
        let err = Registration::register(&cluster, "svc", ep.clone(), ttl)
            .await
            .unwrap_err();
        assert!(
            matches!(err, EtcdError::Config(ConfigError::InvalidTtl(t)) if t == ttl),
            "{err:?}"
        );
    }
    let err = Registration::register(&cluster, "svc", ep, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EtcdError::Connect { url, .. } if url == "http://127.0.0.1:1"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unreachable_cluster_yields_errors_naming_each_url() {
    use futures_util::StreamExt;
    let cluster = Cluster::new(["http://127.0.0.1:1", "http://127.0.0.1:2"]).unwrap();
    let mut etcd = Etcd::builder(cluster, "svc").seed(1).build().unwrap();
    // The error names the last member tried; both are tried in one attempt.
    let err = etcd.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, EtcdError::Connect { url, .. } if url == "http://127.0.0.1:2"),
        "{err:?}"
    );
    let err = etcd.next().await.unwrap().unwrap_err();
    assert!(matches!(err, EtcdError::Connect { .. }), "{err:?}");
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let b = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    let mut rng = SmallRng::seed_from_u64(7);
    for (failures, full) in [
        (1, 100),
        (2, 200),
        (3, 400),
        (4, 800),
        (5, 1000),
        (40, 1000),
    ] {
        let d = b.delay(failures, &mut rng);
        let full = Duration::from_millis(full);
        assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Etcd>();
    check::<Builder>();
    check::<Cluster>();
    check::<Registration>();
    check::<EtcdError>();
    check::<InvalidValue>();
    // The futures too, so they can be spawned.
    fn send<T: Send>(_: &T) {}
    let cluster = Cluster::new(["http://127.0.0.1:1"]).unwrap();
    let register = Registration::register(
        &cluster,
        "svc",
        Endpoint::new(addr("10.0.0.1:1")),
        Duration::from_secs(1),
    );
    send(&register);
    fn withdraw(r: Registration) {
        send(&r.withdraw());
    }
    let _ = withdraw;
}

// --- the watch: decoding responses, liveness ---

fn watcher() -> super::watcher::Watcher {
    let cluster = Cluster::new(["http://127.0.0.1:1"]).unwrap();
    let backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    let liveness = Liveness {
        idle: Duration::from_secs(10),
        max_silence: Duration::from_secs(60),
    };
    let rng = SmallRng::seed_from_u64(1);
    super::watcher::Watcher::new(cluster, b"s/".to_vec(), backoff, liveness, rng)
}

/// A watch response line as the gateway writes it; `None` as a value marks a delete.
fn watch_line(events: &[(&str, Option<&str>, i64)]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|(key, value, revision)| {
            let key = key.strip_prefix('!').map_or_else(|| b64(key), str::to_owned);
            match value {
                Some(v) => {
                    let v = v.strip_prefix('!').map_or_else(|| b64(v), str::to_owned);
                    serde_json::json!({"kv": {"key": key, "value": v, "mod_revision": revision.to_string()}})
                }
                None => serde_json::json!({"type": "DELETE", "kv": {"key": key, "mod_revision": revision.to_string()}}),
            }
        })
        .collect();
    serde_json::json!({"result": {"header": {"revision": "99"}, "events": events}})
        .to_string()
        .into_bytes()
}

fn endpoint_value(a: &str) -> String {
    format!(r#"{{"Addr":"{a}"}}"#)
}

#[test]
fn a_watch_response_with_an_unreadable_key_is_applied_not_at_all() {
    let mut w = watcher();
    w.next_revision = Some(5);
    let a = endpoint_value("10.0.0.1:1");
    // "!" marks text sent as it is, not base64-encoded: "%%" is not base64.
    let line = watch_line(&[("s/a", Some(&a), 5), ("!%%", Some("!e30="), 6)]);
    let err = w.on_line(&line, "http://m:1").unwrap_err();
    let EtcdError::Response { url, path, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((url.as_str(), *path), ("http://m:1", "/v3/watch"));
    assert!(
        reason.contains(r#"key "%%""#) && reason.contains(r#"value "e30=""#),
        "names the key and the value: {reason}"
    );
    assert_eq!(w.next_revision, Some(5), "the revision did not move");
    // Nothing of that response was applied: deleting s/a now removes nothing.
    let out = w
        .on_line(&watch_line(&[("s/a", None, 7)]), "http://m:1")
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(w.next_revision, Some(8));

    // The response delivered again, readable this time, is applied whole.
    let b = endpoint_value("10.0.0.2:1");
    let out = w
        .on_line(
            &watch_line(&[("s/a", Some(&a), 9), ("s/b", Some(&b), 10)]),
            "http://m:1",
        )
        .unwrap();
    assert_eq!(
        out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [
            Update::Insert(Endpoint::new(addr("10.0.0.1:1"))),
            Update::Insert(Endpoint::new(addr("10.0.0.2:1")))
        ]
    );
    assert_eq!(w.next_revision, Some(11));
}

#[test]
fn a_value_that_is_not_base64_is_an_invalid_value_of_its_key_only() {
    let mut w = watcher();
    w.next_revision = Some(1);
    let a = endpoint_value("10.0.0.1:1");
    let b = endpoint_value("10.0.0.2:1");
    let out = w
        .on_line(&watch_line(&[("s/a", Some(&a), 3)]), "http://m:1")
        .unwrap();
    assert_eq!(out.len(), 1);
    let out = w
        .on_line(
            &watch_line(&[("s/a", Some("!not base64"), 4), ("s/b", Some(&b), 4)]),
            "http://m:1",
        )
        .unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    let Err(EtcdError::Value(bad)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!((bad.key(), bad.value()), ("s/a", "not base64"));
    assert!(
        matches!(bad.reason(), InvalidValueReason::Base64(_)),
        "{bad}"
    );
    assert_eq!(
        out[1].as_ref().unwrap(),
        &Update::Insert(Endpoint::new(addr("10.0.0.2:1")))
    );
    assert_eq!(
        w.next_revision,
        Some(5),
        "the good events moved the revision"
    );
    // The bad value left s/a with its last good endpoint: deleting it removes that.
    let out = w
        .on_line(&watch_line(&[("s/a", None, 5)]), "http://m:1")
        .unwrap();
    assert_eq!(
        out.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [Update::Remove(addr("10.0.0.1:1"))]
    );
}

#[test]
fn the_watch_asks_for_progress_notifications_from_the_next_revision() {
    let request = super::watcher::watch_request(b"svc/", b"svc0", 42);
    assert_eq!(
        request,
        serde_json::json!({"create_request": {
            "key": "c3ZjLw==",
            "range_end": "c3ZjMA==",
            "start_revision": "42",
            "progress_notify": true,
        }})
    );
}

/// What the liveness loop did, at which time since it started.
#[derive(Debug, Default)]
struct Probes(std::cell::RefCell<Vec<Duration>>);

impl Probes {
    fn at(&self) -> Vec<u64> {
        self.0.borrow().iter().map(Duration::as_secs).collect()
    }
}

fn live(idle: u64, max_silence: u64) -> Liveness {
    Liveness {
        idle: Duration::from_secs(idle),
        max_silence: Duration::from_secs(max_silence),
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_watch_is_checked_every_idle_and_dropped_after_max_silence() {
    let start = tokio::time::Instant::now();
    let probes = Probes::default();
    // Each check takes 2 s, as a round trip to a loaded member might.
    let check = || {
        probes.0.borrow_mut().push(start.elapsed());
        async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        }
    };
    let never = std::future::pending::<Result<(), EtcdError>>();
    let err = alive(never, check, live(10, 35), "http://m:1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EtcdError::WatchSilent { url, silent_for }
            if url == "http://m:1" && *silent_for == Duration::from_secs(35)),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(35));
    // The next check is an idle time after the last one ended.
    assert_eq!(probes.at(), [10, 22, 34]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_drops_the_watch_when_it_fails() {
    let start = tokio::time::Instant::now();
    let probes = Probes::default();
    let check = || {
        probes.0.borrow_mut().push(start.elapsed());
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Err(EtcdError::Timeout {
                url: "http://m:1".into(),
                path: "/v3/kv/range",
                timeout: Duration::from_secs(5),
            })
        }
    };
    let never = std::future::pending::<Result<(), EtcdError>>();
    let err = alive(never, check, live(10, 600), "http://m:1")
        .await
        .unwrap_err();
    let EtcdError::WatchProbeFailed { url, idle, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (url.as_str(), *idle),
        ("http://m:1", Duration::from_secs(10))
    );
    assert!(matches!(**source, EtcdError::Timeout { .. }), "{source:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    assert_eq!(probes.at(), [10]);
}

#[tokio::test(start_paused = true)]
async fn a_line_ends_the_wait_even_during_a_check() {
    let start = tokio::time::Instant::now();
    let probes = Probes::default();
    let check = || {
        probes.0.borrow_mut().push(start.elapsed());
        async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
    };
    let line = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Ok::<_, EtcdError>("line")
    };
    let got = alive(line, check, live(10, 600), "http://m:1").await;
    assert_eq!(got.unwrap(), "line");
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    assert_eq!(probes.at(), [10]);

    // A line before the idle time: no check at all. An error from the stream passes through.
    let probes = Probes::default();
    let check = || {
        probes.0.borrow_mut().push(Duration::ZERO);
        async { Ok(()) }
    };
    let line = async {
        tokio::time::sleep(Duration::from_secs(9)).await;
        Err::<(), _>(EtcdError::WatchEnded {
            url: "http://m:1".into(),
        })
    };
    let got = alive(line, check, live(10, 600), "http://m:1").await;
    assert!(matches!(got, Err(EtcdError::WatchEnded { .. })), "{got:?}");
    assert!(probes.at().is_empty());
}
