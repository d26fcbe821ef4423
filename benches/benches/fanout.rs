//! Per-subscriber PUBLISH preparation for fan-out.
//!
//! `fanout_template`: one `PublishTemplate::new` per message, then
//! `write_header` per receiver into that receiver's buffer, plus a clone of
//! the payload `Bytes` into its chunk queue (what the broker's writer does).
//! `fanout_naive`: the baseline, a full `encode` of the PUBLISH (payload
//! copied) per receiver. Ids are `{version}_{payload}B/{receivers}` with
//! version `v311`, `v5` (no per-receiver property: the fast path) or
//! `v5_subid` (one subscription identifier per receiver), payloads of 100 and
//! 1024 bytes. Every delivery is QoS 1 with its own packet id. Throughput is
//! in receivers, so criterion's "elem/s" is receivers per second (time per
//! receiver = time / receivers).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::num::NonZeroU16;
use std::time::Duration;
use tern_codec::{
    encode, Delivery, Packet, ProtocolVersion, Publish, PublishProperties, PublishTemplate, QoS,
};

const RECEIVERS: [usize; 3] = [1, 100, 1000];
const PAYLOADS: [usize; 2] = [100, 1024];

/// A subscriber's outgoing state: its header buffer and its chunk queue.
#[derive(Default)]
struct Receiver {
    buf: BytesMut,
    chunks: Vec<Bytes>,
}

impl Receiver {
    fn clear(&mut self) {
        self.buf.clear();
        self.chunks.clear();
    }
}

#[derive(Clone, Copy)]
enum Case {
    V311,
    V5,
    V5SubId,
}

impl Case {
    const ALL: [Self; 3] = [Self::V311, Self::V5, Self::V5SubId];

    fn name(self) -> &'static str {
        match self {
            Self::V311 => "v311",
            Self::V5 => "v5",
            Self::V5SubId => "v5_subid",
        }
    }

    fn version(self) -> ProtocolVersion {
        match self {
            Self::V311 => ProtocolVersion::V311,
            Self::V5 | Self::V5SubId => ProtocolVersion::V5,
        }
    }

    /// The subscription identifiers of receiver `i` (`ids[i] == i + 1`).
    fn sub_ids(self, ids: &[u32], i: usize) -> &[u32] {
        match self {
            Self::V5SubId => &ids[i..=i],
            Self::V311 | Self::V5 => &[],
        }
    }
}

/// The incoming message, as decoded from its publisher (QoS 1).
fn message(payload: usize) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteString::from("site/42/device/17/temp"),
        packet_id: NonZeroU16::new(9),
        properties: PublishProperties::default(),
        payload: Bytes::from(vec![b'x'; payload]),
    }
}

/// Every (version, payload size) pair.
fn cases() -> impl Iterator<Item = (Case, usize)> {
    Case::ALL
        .into_iter()
        .flat_map(|case| PAYLOADS.into_iter().map(move |p| (case, p)))
}

/// Receiver `i`'s packet identifier.
fn pid(i: usize) -> Option<NonZeroU16> {
    NonZeroU16::new((i % 65_535) as u16 + 1)
}

fn delivery(case: Case, ids: &[u32], i: usize) -> Delivery<'_> {
    Delivery {
        subscription_identifiers: case.sub_ids(ids, i),
        ..Delivery::simple(QoS::AtLeastOnce, pid(i), false, false)
    }
}

/// Outside the timed loop: the template hands out the original payload (same
/// pointer, no copy), and header + payload equal a full `encode`.
fn check(case: Case, msg: &Publish, ids: &[u32]) {
    let template = PublishTemplate::new(msg, case.version());
    let mut rx = Receiver::default();
    let d = delivery(case, ids, 0);
    let total = match template.write_header(msg, &d, &mut rx.buf) {
        Ok(n) => n,
        Err(e) => panic!("{}: write_header: {e}", case.name()),
    };
    rx.chunks.push(msg.payload.clone());
    assert!(
        std::ptr::eq(rx.chunks[0].as_ptr(), msg.payload.as_ptr()),
        "payload was copied"
    );
    let naive = naive_publish(msg, case, ids, 0);
    let mut full = BytesMut::new();
    if let Err(e) = encode(&Packet::Publish(naive), case.version(), &mut full) {
        panic!("{}: encode: {e}", case.name());
    }
    assert_eq!(total, full.len(), "{}: packet length", case.name());
    assert_eq!(
        [&rx.buf[..], &rx.chunks[0][..]].concat(),
        &full[..],
        "{}: template bytes differ from encode",
        case.name()
    );
}

/// The naive per-receiver PUBLISH: the message with receiver `i`'s fields.
fn naive_publish(msg: &Publish, case: Case, ids: &[u32], i: usize) -> Publish {
    let mut p = msg.clone();
    p.packet_id = pid(i);
    p.properties.subscription_identifiers = case.sub_ids(ids, i).to_vec();
    p
}

/// The benchmark id: `{version}_{payload}B/{receivers}`.
fn id(case: Case, payload: usize, receivers: usize) -> BenchmarkId {
    BenchmarkId::new(format!("{}_{payload}B", case.name()), receivers)
}

fn bench_template(c: &mut Criterion) {
    let ids: Vec<u32> = (1..=*RECEIVERS.iter().max().unwrap_or(&1) as u32).collect();
    let mut group = c.benchmark_group("fanout_template");
    group.measurement_time(Duration::from_secs(1));
    for (case, payload) in cases() {
        let msg = message(payload);
        check(case, &msg, &ids);
        for n in RECEIVERS {
            let mut receivers: Vec<Receiver> = (0..n).map(|_| Receiver::default()).collect();
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(id(case, payload, n), |b| {
                b.iter(|| {
                    let template = PublishTemplate::new(black_box(&msg), case.version());
                    for (i, rx) in receivers.iter_mut().enumerate() {
                        rx.clear();
                        let d = delivery(case, &ids, i);
                        let _ = black_box(template.write_header(&msg, &d, &mut rx.buf));
                        rx.chunks.push(msg.payload.clone());
                    }
                });
            });
        }
    }
    group.finish();
}

fn bench_naive(c: &mut Criterion) {
    let ids: Vec<u32> = (1..=*RECEIVERS.iter().max().unwrap_or(&1) as u32).collect();
    let mut group = c.benchmark_group("fanout_naive");
    group.measurement_time(Duration::from_secs(1));
    for (case, payload) in cases() {
        let msg = message(payload);
        for n in RECEIVERS {
            let mut receivers: Vec<Receiver> = (0..n).map(|_| Receiver::default()).collect();
            let mut packet = Packet::Publish(msg.clone());
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(id(case, payload, n), |b| {
                b.iter(|| {
                    for (i, rx) in receivers.iter_mut().enumerate() {
                        rx.clear();
                        // Reuse one packet: only the per-receiver fields change.
                        if let Packet::Publish(p) = &mut packet {
                            p.packet_id = pid(i);
                            let sub_ids = &mut p.properties.subscription_identifiers;
                            sub_ids.clear();
                            sub_ids.extend_from_slice(case.sub_ids(&ids, i));
                        }
                        let _ = black_box(encode(&packet, case.version(), &mut rx.buf));
                    }
                });
            });
        }
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
    targets = bench_template, bench_naive
}
criterion_main!(benches);
