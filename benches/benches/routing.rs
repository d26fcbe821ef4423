//! Routing: trie matching, the global route snapshot, a worker's fan-out plan,
//! and route-table rebuilds under a subscribe storm.
//!
//! * `trie_match/{filters}`: `Trie::for_each_match` on 1k / 100k / 1M filters
//!   of a realistic mix (see [`filter`]), cycling through 1024 topics that
//!   each match 3–4 filters.
//! * `route_match/100000`: `RouteTable::load` + `RouteSnapshot::matches`.
//! * `local_collect/{single_filter,overlapping}/{subscribers}`:
//!   `LocalSubscriptions::collect` with 1 / 100 / 1000 subscribers on the
//!   topic, beside 10k unrelated filters. `overlapping`: every other
//!   subscriber also has a matching `#` filter, so targets are folded.
//!   Throughput is in subscribers.
//! * `route_apply/{batch}`: `RouteTable::apply` of 1 / 100 / 10k updates on a
//!   table of 100k filters, alternating an Add batch and the Remove batch of
//!   the same filters, each on a different site (the clone-modify-swap path
//!   copy cost). Throughput is in updates.
//!
//! Tables are built before timing; build times go to stderr. The 1M trie is
//! skipped, with a note, when building it takes more than 60 s.

use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tern_codec::{QoS, SubscriptionOptions};
use tern_routing::{LocalSubscriptions, RouteOp, RouteTable, RouteUpdate, SubEntry, Trie};

const TRIE_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const TABLE_SIZE: usize = 100_000;
const BUILD_LIMIT: Duration = Duration::from_secs(60);
const TOPICS: usize = 1024;

/// Filter `i` of the mix: 100 filters per site `s = i / 100`, of which 97 are
/// exact (`site/{s}/device/{d}/temp`), one is "device `s` on any site"
/// (`site/+/device/{s}/temp`), one is "any device of site `s`"
/// (`site/{s}/device/+/temp`) and one is "everything of site `s`" (`site/{s}/#`).
fn filter(i: usize) -> String {
    let (site, d) = (i / 100, i % 100);
    match d {
        97 => format!("site/+/device/{site}/temp"),
        98 => format!("site/{site}/device/+/temp"),
        99 => format!("site/{site}/#"),
        _ => format!("site/{site}/device/{d}/temp"),
    }
}

/// 1024 topics `site/{s}/device/{d}/temp` with `s` below `filters / 100` and
/// `d` below 97: each matches its exact filter and the site's two wildcards.
fn topics(filters: usize) -> Vec<String> {
    let sites = (filters / 100).max(1) as u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..TOPICS)
        .map(|_| {
            // xorshift64: deterministic and dependency-free.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("site/{}/device/{}/temp", x % sites, (x >> 32) % 97)
        })
        .collect()
}

/// Builds a trie of the first `n` filters of the mix, or `None` past `limit`.
fn build_trie(n: usize, limit: Duration) -> Option<Trie<u32>> {
    let start = Instant::now();
    let mut trie = Trie::new();
    for i in 0..n {
        trie.insert(&filter(i), i as u32);
        if i % 16_384 == 0 && start.elapsed() > limit {
            return None;
        }
    }
    eprintln!(
        "routing: built a trie of {n} filters in {:.2?} ({})",
        start.elapsed(),
        rss()
    );
    Some(trie)
}

/// The process's resident and peak memory, from /proc (Linux only).
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.trim_start_matches(name).trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    format!("RSS {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}

fn update(worker: u16, filter: String, op: RouteOp) -> RouteUpdate {
    RouteUpdate {
        worker,
        filter: ByteString::from(filter),
        op,
    }
}

/// A route table holding the first `n` filters of the mix on 4 workers.
fn build_table(n: usize) -> RouteTable {
    let start = Instant::now();
    let table = RouteTable::new();
    let updates: Vec<RouteUpdate> = (0..n)
        .map(|i| update((i % 4) as u16, filter(i), RouteOp::Add))
        .collect();
    table.apply(&updates);
    eprintln!(
        "routing: built a route table of {n} filters in {:.2?}",
        start.elapsed()
    );
    table
}

fn bench_trie(c: &mut Criterion) {
    let mut group = c.benchmark_group("trie_match");
    for n in TRIE_SIZES {
        let Some(trie) = build_trie(n, BUILD_LIMIT) else {
            eprintln!("routing: skipped trie_match/{n}: building took more than {BUILD_LIMIT:?}");
            continue;
        };
        let topics = topics(n);
        for t in &topics {
            let mut hits = 0;
            trie.for_each_match(t, |_| hits += 1);
            assert!(hits >= 3, "{t} matched {hits} filters");
        }
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut i = 0;
            b.iter(|| {
                let topic = &topics[i % TOPICS];
                i += 1;
                let mut hits = 0u32;
                trie.for_each_match(black_box(topic), |v| hits += v);
                hits
            });
        });
    }
    group.finish();
}

fn bench_route_match(c: &mut Criterion) {
    let table = build_table(TABLE_SIZE);
    let topics = topics(TABLE_SIZE);
    let mut group = c.benchmark_group("route_match");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::from_parameter(TABLE_SIZE), |b| {
        let mut i = 0;
        b.iter(|| {
            let topic = &topics[i % TOPICS];
            i += 1;
            table.load().matches(black_box(topic))
        });
    });
    group.finish();
}

fn entry(id: u32) -> SubEntry {
    SubEntry {
        options: SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        subscription_identifier: Some(id),
    }
}

/// A worker with 10k unrelated filters and `n` subscribers on `topic`'s
/// exact filter; with `overlap`, every other one also on `plant/1/#`.
fn local(n: u32, overlap: bool) -> LocalSubscriptions<u32> {
    let mut subs = LocalSubscriptions::new();
    for i in 0..10_000 {
        subs.subscribe(1_000_000 + i as u32, &filter(i), entry(1));
    }
    for key in 0..n {
        subs.subscribe(key, "plant/1/line/2/temp", entry(1));
        if overlap && key % 2 == 0 {
            subs.subscribe(key, "plant/1/#", entry(2));
        }
    }
    subs
}

fn bench_collect(c: &mut Criterion) {
    let topic = "plant/1/line/2/temp";
    let mut group = c.benchmark_group("local_collect");
    for (name, overlap) in [("single_filter", false), ("overlapping", true)] {
        for n in [1u32, 100, 1000] {
            let subs = local(n, overlap);
            let mut out = Vec::new();
            subs.collect(topic, &mut out);
            assert_eq!(
                out.len(),
                n as usize,
                "{name}/{n}: one target per subscriber"
            );
            group.throughput(Throughput::Elements(u64::from(n)));
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    out.clear();
                    subs.collect(black_box(topic), &mut out);
                    out.len()
                });
            });
        }
    }
    group.finish();
}

fn bench_apply(c: &mut Criterion) {
    let table = build_table(TABLE_SIZE);
    let sites = TABLE_SIZE / 100;
    let mut group = c.benchmark_group("route_apply");
    for batch in [1usize, 100, 10_000] {
        // Update j is on site j % sites: consecutive updates copy different paths.
        let new_filter = |j: usize| format!("site/{}/device/{}/humidity", j % sites, j / sites);
        let adds: Vec<RouteUpdate> = (0..batch)
            .map(|j| update(1, new_filter(j), RouteOp::Add))
            .collect();
        let removes: Vec<RouteUpdate> = (0..batch)
            .map(|j| update(1, new_filter(j), RouteOp::Remove))
            .collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            let mut add = true;
            b.iter(|| {
                let updates = if add { &adds } else { &removes };
                add = !add;
                table.apply(updates)
            });
        });
        // Leave the table as it was for the next batch size.
        table.apply(&removes);
        assert_eq!(table.load().filter_count(), TABLE_SIZE);
    }
    group.finish();
}

/// 1,000,000 retained topics `a/<i>/<j>` (i < 1,000), of which `matching`
/// are `a/<i>/c` (the rest numbered): what `a/+/c/#` replays.
fn retained_store(matching: usize) -> tern_routing::RetainedStore {
    use std::sync::Arc;
    let mut store = tern_routing::RetainedStore::new(tern_routing::RetainedLimits::UNLIMITED);
    let payload = bytes::Bytes::from_static(b"retained payload");
    for i in 0..1000 {
        for j in 0..1000 {
            let last = if j == 0 && i < matching {
                "c".to_owned()
            } else {
                j.to_string()
            };
            let publish = tern_codec::Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: ByteString::from(format!("a/{i}/{last}")),
                packet_id: None,
                properties: Default::default(),
                payload: payload.clone(),
            };
            let _ = store.set(tern_routing::RetainedMessage {
                publish: Arc::new(publish),
                expires_at: None,
            });
        }
    }
    store
}

fn bench_retained(c: &mut Criterion) {
    let mut group = c.benchmark_group("retained_replay_1m");
    for matching in [1000, 10] {
        let store = retained_store(matching);
        let now = Instant::now();
        group.bench_function(BenchmarkId::new("a/+/c/#", matching), |b| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                let mut cursor = tern_routing::RetainedCursor::new("a/+/c/#");
                out.clear();
                while !cursor.is_done() {
                    store.next_matches(&mut cursor, now, 32, 256, &mut out);
                }
                assert_eq!(out.len(), matching);
                black_box(out.len())
            })
        });
    }
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
    targets = bench_trie, bench_route_match, bench_collect, bench_apply, bench_retained
}
criterion_main!(benches);
