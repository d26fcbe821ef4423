//! The per-PUBLISH ACL check with 1,000 rules that all apply to the
//! client (own rules and patterns), against a topic that the last grant
//! matches, one that a deny matches, and one that nothing matches.

#![allow(clippy::expect_used)] // a bench whose fixed input does not parse should stop

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write as _;
use std::hint::black_box;
use tern_access::{Access, AclFile};

fn thousand_rules() -> String {
    let mut s = String::from("user bench\n");
    for i in 0..600 {
        let _ = writeln!(s, "topic readwrite site/{i}/sensors/+/value");
    }
    for i in 0..100 {
        let _ = writeln!(s, "topic deny site/{i}/sensors/secret/#");
    }
    for i in 0..200 {
        let _ = writeln!(s, "topic read feeds/{i}/#");
    }
    for i in 0..99 {
        let _ = writeln!(s, "pattern readwrite clients/%c/{i}/#");
    }
    // What tern-bench publishes to (`bench/fan`), as in BENCHMARKS.md.
    s.push_str("topic readwrite bench/#\n");
    s
}

fn bench(c: &mut Criterion) {
    let file = AclFile::parse(&thousand_rules()).expect("bench ACL parses");
    assert_eq!(file.rules(), 1000);
    let acl = file.compile("client-42", Some("bench"));
    let mut g = c.benchmark_group("acl_check_1000_rules");
    g.bench_function("publish_allowed", |b| {
        b.iter(|| acl.allows(black_box("site/599/sensors/t1/value"), Access::Write))
    });
    g.bench_function("publish_denied_by_deny", |b| {
        b.iter(|| acl.allows(black_box("site/42/sensors/secret/x"), Access::Write))
    });
    g.bench_function("publish_no_match", |b| {
        b.iter(|| acl.allows(black_box("other/place/with/levels"), Access::Write))
    });
    g.bench_function("short_topic_allowed", |b| {
        b.iter(|| acl.allows(black_box("bench/fan"), Access::Write))
    });
    g.bench_function("pattern_allowed", |b| {
        b.iter(|| acl.allows(black_box("clients/client-42/98/x"), Access::Write))
    });
    g.bench_function("compile_at_connect", |b| {
        b.iter(|| file.compile(black_box("client-42"), Some("bench")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
