//! Admission at accept: what `tern_transport::ConnectRate::check` (the
//! connect rate per source address and the flapping ban) costs the acceptor
//! per new connection.
//!
//! * `connect_rate/off`: limits off (the default): one lock, nothing else.
//! * `connect_rate/known`: rate and ban on, 1,024 known addresses checked in
//!   turn (a refill, a window count and a token per check).
//! * `connect_rate/flood`: rate and ban on, every check from a new address
//!   on a full table of 65,536 (the default `max_tracked_ips`): the cost of
//!   forgetting idle and least recently seen addresses, amortized.
//!
//! The clock is passed in: each iteration advances a made-up `now` by 1 µs,
//! so no check reads the system clock.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};
use tern_transport::{ConnectRate, RateLimits};

fn on(max_tracked: usize) -> RateLimits {
    RateLimits {
        per_minute: 600_000,
        burst: 1_000,
        flap_connects: 1_000_000,
        flap_window: Duration::from_secs(10),
        ban: Duration::from_secs(60),
        max_tracked,
        ipv6_prefix: 128,
    }
}

fn addr(i: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(u128::from(i) + 1))
}

fn bench_connect_rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("connect_rate");
    group.throughput(Throughput::Elements(1));
    let t0 = Instant::now();

    let rate = ConnectRate::new(RateLimits::OFF);
    let mut i = 0u64;
    group.bench_function("off", |b| {
        b.iter(|| {
            i += 1;
            black_box(rate.check(addr(i & 1023), t0 + Duration::from_micros(i)))
        })
    });

    let rate = ConnectRate::new(on(65_536));
    let mut i = 0u64;
    group.bench_function("known", |b| {
        b.iter(|| {
            i += 1;
            black_box(rate.check(addr(i & 1023), t0 + Duration::from_micros(i)))
        })
    });

    let rate = ConnectRate::new(on(65_536));
    for i in 0..65_536 {
        let _ = rate.check(addr(i), t0);
    }
    let mut i = 65_536u64;
    group.bench_function("flood", |b| {
        b.iter(|| {
            i += 1;
            black_box(rate.check(addr(i), t0 + Duration::from_micros(i)))
        })
    });
    eprintln!(
        "connect_rate/flood: table {} addresses after the run, {} forgotten",
        rate.stats(t0).tracked,
        rate.stats(t0).evicted
    );
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_connect_rate
}
criterion_main!(benches);
