use std::time::Duration;

use tokio::time::{Instant, advance};

use super::*;

const MS: f64 = 1e6;

fn decay(secs: f64) -> Decay {
    Decay::from_secs_f64(secs).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn guard_counts_start_finish_and_errors() {
    let load = Load::new();
    let a = load.start();
    let b = load.start();
    assert_eq!((load.in_flight(), load.requests()), (2, 2));
    b.failed();
    drop(b);
    assert_eq!(
        (load.in_flight(), load.requests(), load.errors()),
        (1, 2, 1)
    );
    drop(a);
    assert_eq!(
        (load.in_flight(), load.requests(), load.errors()),
        (0, 2, 1)
    );
}

#[test]
fn loads_do_not_share_cache_lines() {
    assert!(std::mem::align_of::<arena::Slot>() >= 128);
}

#[test]
fn invalid_durations_are_refused_naming_the_value() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = Decay::from_secs_f64(bad).unwrap_err();
        assert!(err.to_string().contains(&format!("{bad}")), "{err}");
        assert!(Rtt::from_secs_f64(bad).is_err());
    }
    assert!(Decay::new(Duration::ZERO).is_err());
    assert!(Rtt::new(Duration::ZERO).is_err());
    assert_eq!(Decay::default().as_duration(), Duration::from_secs(10));
    assert_eq!(Rtt::default().as_duration(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn first_sample_sets_the_estimate_and_a_slower_one_replaces_it_at_once() {
    let load = Load::new();
    let d = decay(10.0);
    assert_eq!(load.rtt_estimate(Instant::now(), d), None);
    load.record_rtt(Duration::from_millis(10), Instant::now(), d);
    assert_eq!(load.rtt_estimate(Instant::now(), d), Some(10.0 * MS));
    load.record_rtt(Duration::from_millis(50), Instant::now(), d);
    assert_eq!(load.rtt_estimate(Instant::now(), d), Some(50.0 * MS));
}

#[tokio::test(start_paused = true)]
async fn faster_samples_decay_the_estimate_at_the_configured_rate() {
    let load = Load::new();
    let d = decay(10.0);
    load.record_rtt(Duration::from_millis(50), Instant::now(), d);
    advance(Duration::from_secs(1)).await;
    load.record_rtt(Duration::from_millis(10), Instant::now(), d);
    let keep = (-1.0f64 / 10.0).exp();
    let expected = 50.0 * MS * keep + 10.0 * MS * (1.0 - keep);
    let got = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(got, expected), "{got} != {expected}");

    // Read between samples, it decays towards zero at the same rate.
    advance(Duration::from_secs(2)).await;
    let read = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(read, expected * (-0.2f64).exp()), "{read}");

    // Samples pull towards themselves by the time elapsed, not by their number: a burst of
    // fast samples at one instant moves the estimate once.
    load.record_rtt(Duration::from_millis(1), Instant::now(), d);
    let keep2 = (-0.2f64).exp();
    let once = expected * keep2 + 1.0 * MS * (1.0 - keep2);
    for _ in 0..100 {
        load.record_rtt(Duration::from_millis(1), Instant::now(), d);
    }
    let got = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(got, once), "{got} != {once}");
}

#[tokio::test(start_paused = true)]
async fn timed_guards_sample_completions_fully_and_cancellations_as_lower_bounds() {
    let load = Load::new();
    let d = decay(10.0);
    // A completed request: a full sample.
    let mut g = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(20)).await;
    g.completed();
    drop(g);
    assert_eq!(load.rtt_estimate(Instant::now(), d), Some(20.0 * MS));

    // A cancelled request shorter than the estimate: no change (it only says "at least 5 ms").
    let g = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(5)).await;
    drop(g);
    let est = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(est, 20.0 * MS * (-0.005f64 / 10.0).exp()), "{est}");

    // A cancelled request longer than the estimate raises it: a timeout is evidence.
    let g = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(80)).await;
    drop(g);
    assert_eq!(load.rtt_estimate(Instant::now(), d), Some(80.0 * MS));
    assert_eq!(load.in_flight(), 0);
    assert_eq!(load.requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn overlapping_requests_each_count_whichever_path_records_them() {
    // The first to finish has company in flight (compare-and-swap); the second is alone
    // (plain store). Both samples must land, by the same formula.
    let load = Load::new();
    let d = decay(10.0);
    load.record_rtt(Duration::from_millis(40), Instant::now(), d);
    let mut a = load.start_timed(Instant::now(), d);
    let mut b = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(10)).await;
    a.completed();
    drop(a);
    let keep = (-0.010f64 / 10.0).exp();
    let after_a = 40.0 * MS * keep + 10.0 * MS * (1.0 - keep);
    let got = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(got, after_a), "{got} != {after_a}");
    advance(Duration::from_millis(5)).await;
    b.completed();
    drop(b);
    let keep = (-0.005f64 / 10.0).exp();
    let after_b = after_a * keep + 15.0 * MS * (1.0 - keep);
    let got = load.rtt_estimate(Instant::now(), d).unwrap();
    assert!(close(got, after_b), "{got} != {after_b}");
    assert_eq!(load.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn stall_is_the_time_busy_without_progress() {
    let load = Load::new();
    let d = decay(10.0);
    assert_eq!(load.stall(Instant::now()), 0.0);
    advance(Duration::from_millis(500)).await;
    // Busy from here: the idle time before does not count.
    let a = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(100)).await;
    assert_eq!(load.stall(Instant::now()), 100.0 * MS);
    let b = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(10)).await;
    // Still nothing finished since the endpoint became busy: the oldest request's age.
    assert_eq!(load.stall(Instant::now()), 110.0 * MS);
    drop(a);
    // Progress: counted from the finish.
    assert_eq!(load.stall(Instant::now()), 0.0);
    advance(Duration::from_millis(30)).await;
    assert_eq!(load.stall(Instant::now()), 30.0 * MS);
    drop(b);
    assert_eq!(load.stall(Instant::now()), 0.0);
    advance(Duration::from_millis(50)).await;
    let _c = load.start_timed(Instant::now(), d);
    advance(Duration::from_millis(5)).await;
    // Idle in between: busy again only since `c` started.
    assert_eq!(load.stall(Instant::now()), 5.0 * MS);
}

mod props {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Complete { after_ns: u64, rtt_ns: u64 },
        Cancel { after_ns: u64, held_ns: u64 },
        Read { after_ns: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        let t = prop_oneof![0..1_000u64, 0..10_000_000_000u64, Just(u64::MAX / 4)];
        prop_oneof![
            (t.clone(), t.clone())
                .prop_map(|(after_ns, rtt_ns)| Step::Complete { after_ns, rtt_ns }),
            (t.clone(), t.clone())
                .prop_map(|(after_ns, held_ns)| Step::Cancel { after_ns, held_ns }),
            t.prop_map(|after_ns| Step::Read { after_ns }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// For any sequence of samples and clock readings (including readings that go
        /// backwards), the estimate is never NaN, infinite, zero or negative.
        #[test]
        fn estimate_is_always_finite_and_positive(
            steps in proptest::collection::vec(step(), 1..60),
            decay_secs in prop_oneof![Just(1e-9), 0.001f64..1e6],
        ) {
            let d = Decay::from_secs_f64(decay_secs).unwrap();
            let load = Load::new();
            let base = Instant::now();
            let mut now: Instant;
            for s in steps {
                match s {
                    Step::Complete { after_ns, rtt_ns } => {
                        now = base + Duration::from_nanos(after_ns);
                        load.record_rtt(Duration::from_nanos(rtt_ns), now, d);
                    }
                    Step::Cancel { after_ns, held_ns } => {
                        let start = base + Duration::from_nanos(after_ns);
                        let g = load.start_timed(start, d);
                        now = start + Duration::from_nanos(held_ns);
                        prop_assert!(load.stall(now).is_finite());
                        prop_assert!(load.stall(now) >= 0.0);
                        drop(g);
                    }
                    Step::Read { after_ns } => now = base + Duration::from_nanos(after_ns),
                }
                if let Some(est) = load.rtt_estimate(now, d) {
                    prop_assert!(est.is_finite() && est >= 0.0, "estimate {est}");
                }
                prop_assert_eq!(load.in_flight(), 0);
            }
        }

        /// The update rule itself: the result lies between the sample and the prior (or is the
        /// sample, when it is higher), for any finite inputs.
        #[test]
        fn update_stays_between_prior_and_sample(
            prior in proptest::option::of(1e-3f64..1e15),
            sample in 0f64..1e15,
            elapsed in 0f64..1e15,
            lower in any::<bool>(),
        ) {
            let d = Decay::default();
            if let Some(next) = rtt::update(prior, sample, elapsed, d, lower) {
                prop_assert!(next.is_finite() && next >= 0.0);
                match prior {
                    None => prop_assert_eq!(next, sample),
                    Some(p) if sample > p => prop_assert_eq!(next, sample),
                    Some(p) => prop_assert!(next <= p * (1.0 + 1e-12) && next >= sample * (1.0 - 1e-12)),
                }
            }
        }
    }
}

#[test]
fn keep_equals_exp_to_rounding_on_both_sides_of_the_polynomial_cutoff() {
    let d = decay(10.0);
    for x in [
        0.0f64, 1e-12, 1e-9, 1e-6, 1e-4, 5e-4, 9.99e-4, 1e-3, 1.01e-3, 0.1, 1.0, 30.0,
    ] {
        let elapsed = x * 10e9;
        let want = (-x).exp();
        let got = d.keep(elapsed);
        assert!(
            (got - want).abs() <= 2.0 * f64::EPSILON * want,
            "x = {x}: {got} against exp {want}"
        );
    }
    // Negative elapsed times (a racing update) keep everything.
    assert_eq!(d.keep(-5.0), 1.0);
}

#[test]
fn the_eighths_table_is_exp2_to_rounding() {
    for (j, &c) in crate::load::rtt::EXP2_NEG_EIGHTHS.iter().enumerate() {
        let want = (-(j as f64) / 8.0).exp2();
        assert!(
            (c - want).abs() <= f64::EPSILON * want,
            "j = {j}: {c} against {want}"
        );
    }
}

#[test]
fn keep_approx_is_exp_to_a_billionth_at_every_table_boundary() {
    let d = decay(10.0);
    // Just below, at and above each point where `k` or `j` changes.
    for k in 0..12 {
        for j in 0..8 {
            let t = f64::from(k) + f64::from(j) / 8.0;
            for t in [t - 1e-12, t, t + 1e-12] {
                let x = t / std::f64::consts::LOG2_E;
                if !(1e-3..700.0).contains(&x) {
                    continue;
                }
                let (want, got) = ((-x).exp(), d.keep_approx(x * 10e9));
                assert!(
                    (got - want).abs() <= 1e-9 * want,
                    "x = {x}: {got} against {want}"
                );
            }
        }
    }
}

proptest::proptest! {
    /// The comparison-only decay is `exp` to 1e-9 relative everywhere it matters, and 0 only
    /// where `exp` is below 1e-300.
    #[test]
    fn keep_approx_is_exp_to_a_billionth(x in 0.0f64..800.0) {
        let d = decay(10.0);
        let want = (-x).exp();
        let got = d.keep_approx(x * 10e9);
        proptest::prop_assert!(
            (got - want).abs() <= 1e-9 * want || (got == 0.0 && want < 1e-300),
            "x = {x}: {got} against exp {want}"
        );
    }
}

#[cfg(feature = "http")]
mod body {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;
    use tower::{ServiceExt, service_fn};

    use crate::balance::{Balance, PeakEwma};
    use crate::discover::Static;
    use crate::endpoint::Endpoint;
    use crate::error::BoxError;
    use crate::health::HttpStatus;
    use crate::load::TrackBody;

    type Frames = mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>;

    fn stream(
        rx: Frames,
    ) -> StreamBody<impl futures_core::Stream<Item = Result<Frame<Bytes>, BoxError>>> {
        StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_body_keeps_its_request_in_flight_and_times_it_to_the_end() {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
        let make = service_fn(move |_: Endpoint| {
            let rx = rx.clone();
            async move {
                Ok::<_, Infallible>(service_fn(move |()| {
                    let rx: Frames = rx.lock().unwrap().take().expect("one request");
                    async move { Ok::<_, Infallible>(http::Response::new(stream(rx))) }
                }))
            }
        });
        let balance = Balance::builder(PeakEwma::with_seed(1))
            .classify(TrackBody::new(HttpStatus))
            .build(Static::from_addrs(["127.0.0.1:1".parse().unwrap()]), make)
            .unwrap();
        while balance.ready_len() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let response = balance.clone().oneshot(()).await.unwrap();
        // The head has arrived; the body is still streaming: one in flight.
        assert_eq!(balance.endpoints()[0].in_flight(), 1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"a")))).unwrap();
        let mut body = Box::pin(response.into_body());
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(balance.endpoints()[0].in_flight(), 1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"b")))).unwrap();
        drop(tx);
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "b");
        let stats = &balance.endpoints()[0];
        assert_eq!((stats.in_flight(), stats.errors()), (0, 0));
        // The RTT sample ran to the body's end: the 100 ms the body took.
        let rtt = stats.rtt().expect("one sample");
        assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_failing_mid_stream_counts_as_a_failure() {
        let make = service_fn(|_: Endpoint| async {
            Ok::<_, Infallible>(service_fn(|()| async {
                let (tx, rx) = mpsc::unbounded_channel();
                tx.send(Ok(Frame::data(Bytes::from_static(b"partial"))))
                    .unwrap();
                tx.send(Err::<Frame<Bytes>, BoxError>("reset mid-body".into()))
                    .unwrap();
                Ok::<_, Infallible>(http::Response::new(stream(rx)))
            }))
        });
        let balance = Balance::builder(PeakEwma::with_seed(1))
            .classify(TrackBody::new(HttpStatus))
            .build(Static::from_addrs(["127.0.0.1:1".parse().unwrap()]), make)
            .unwrap();
        while balance.ready_len() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let response = balance.clone().oneshot(()).await.unwrap();
        let err = response.into_body().collect().await.unwrap_err();
        assert_eq!(err.to_string(), "reset mid-body");
        let stats = &balance.endpoints()[0];
        assert_eq!((stats.in_flight(), stats.errors()), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_head_and_a_failing_body_count_once() {
        let make = service_fn(|_: Endpoint| async {
            Ok::<_, Infallible>(service_fn(|()| async {
                let (tx, rx) = mpsc::unbounded_channel();
                tx.send(Err::<Frame<Bytes>, BoxError>("reset mid-body".into()))
                    .unwrap();
                let mut response = http::Response::new(stream(rx));
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, Infallible>(response)
            }))
        });
        let balance = Balance::builder(PeakEwma::with_seed(1))
            .classify(TrackBody::new(HttpStatus))
            .build(Static::from_addrs(["127.0.0.1:1".parse().unwrap()]), make)
            .unwrap();
        while balance.ready_len() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let response = balance.clone().oneshot(()).await.unwrap();
        assert_eq!(response.status(), 503);
        response.into_body().collect().await.unwrap_err();
        let stats = &balance.endpoints()[0];
        assert_eq!(
            (stats.in_flight(), stats.errors()),
            (0, 1),
            "one request, one failure"
        );
    }
}
