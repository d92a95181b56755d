//! Path normalization benchmarks: what the authorization layer pays per request to read the
//! path once, the way policy and backend will both see it.
//!
//! Groups:
//!
//! - `normalize_path/typical`: already-canonical paths, the fast path (one scan, one
//!   allocation): `/`, a REST path, a gRPC method, and a REST path with a query.
//! - `normalize_path/hostile`: paths that take the rewriting path: dot segments and `//`,
//!   heavy percent-encoding, and a 2 KiB path of mixed segments.
//! - `normalize_path/rejected`: paths refused early (`%2F`, above root) and late (a fault at
//!   the end of 2 KiB), including building the error.
//! - `normalize_host`: a `Host` header with port, and an IPv6 authority.
//!
//! Run with `cargo bench --features authz --bench authz_normalize`; medians are in
//! `target/criterion/normalize_path/<group>/<bench>/new/estimates.json`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_mesh::authz::{Normalizer, normalize_host};

fn long_path() -> String {
    let mut s = String::new();
    let segments = [
        "api", "v1", ".", "users", "%2e%2e", "users", "42", "", "%7Ea", "b%c3%a9",
    ];
    let mut i = 0;
    while s.len() < 2048 {
        s.push('/');
        s.push_str(segments[i % segments.len()]);
        i += 1;
    }
    s
}

fn paths(c: &mut Criterion) {
    let strict = Normalizer::new();
    let long = long_path();
    let long_canonical = "/abcdefghij".repeat(2048 / 11 + 1);
    let long_rejected = format!("{long}/%2F");

    let mut g = c.benchmark_group("normalize_path/typical");
    for (name, p) in [
        ("root", "/"),
        ("rest", "/api/v1/users/42"),
        ("grpc", "/pkg.Service/Method"),
        ("rest_query", "/api/v1/users?limit=10&offset=20"),
        ("canonical_2k", long_canonical.as_str()),
    ] {
        g.bench_function(name, |b| b.iter(|| strict.normalize(black_box(p))));
    }
    g.finish();

    let mut g = c.benchmark_group("normalize_path/hostile");
    for (name, p) in [
        ("dots_and_slashes", "/a/./b/../../c//d"),
        (
            "percent_heavy",
            "/%61%70%69/%76%31/%75%73%65%72%73/%34%32/%c3%a9%e2%82%ac",
        ),
        ("mixed_2k", long.as_str()),
    ] {
        g.bench_function(name, |b| b.iter(|| strict.normalize(black_box(p))));
    }
    g.finish();

    let mut g = c.benchmark_group("normalize_path/rejected");
    for (name, p) in [
        ("escaped_slash", "/public%2F..%2Fadmin"),
        ("above_root", "/../../admin"),
        ("late_2k", long_rejected.as_str()),
    ] {
        g.bench_function(name, |b| b.iter(|| strict.normalize(black_box(p))));
    }
    g.finish();
}

fn hosts(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize_host");
    for (name, h) in [
        ("dns_port", "API.Example.com:8443"),
        ("ipv6", "[2001:db8::1]:443"),
    ] {
        g.bench_function(name, |b| b.iter(|| normalize_host(black_box(h))));
    }
    g.finish();
}

criterion_group!(benches, paths, hosts);
criterion_main!(benches);
