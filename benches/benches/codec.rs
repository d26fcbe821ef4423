//! Decode and encode cost per packet type and protocol version.
//!
//! Groups `codec_decode` and `codec_encode`; ids are `{packet}/{version}`,
//! where version is `v311`, `v5` (no properties) or `v5_props`. Throughput is
//! the frame size in bytes, so criterion also prints MiB/s.
//!
//! Decode: frames are decoded from a read buffer holding 64 of them, as a
//! connection reads them (filling the buffer is not timed); each decoded
//! packet is dropped inside the timed loop. Encode: into a reused buffer,
//! cleared each time. Reported times are per packet.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};
use tern_codec::{
    encode, AckProperties, Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, PubResp,
    Publish, PublishProperties, QoS, Subscribe, SubscribeProperties, SubscriptionOptions,
};

const MAX_PACKET: u32 = 1 << 20;
const PAYLOADS: [usize; 3] = [16, 100, 1024];
/// Frames per read buffer in the decode benchmarks.
const READ_BATCH: usize = 64;

/// A protocol version, and whether v5 optional properties are filled in.
#[derive(Clone, Copy)]
enum Flavour {
    V311,
    V5,
    V5Props,
}

impl Flavour {
    const ALL: [Self; 3] = [Self::V311, Self::V5, Self::V5Props];

    fn name(self) -> &'static str {
        match self {
            Self::V311 => "v311",
            Self::V5 => "v5",
            Self::V5Props => "v5_props",
        }
    }

    fn version(self) -> ProtocolVersion {
        match self {
            Self::V311 => ProtocolVersion::V311,
            Self::V5 | Self::V5Props => ProtocolVersion::V5,
        }
    }

    fn props(self) -> bool {
        matches!(self, Self::V5Props)
    }
}

fn s(text: &str) -> ByteString {
    ByteString::from(text)
}

fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

fn user_props() -> Vec<(ByteString, ByteString)> {
    vec![(s("trace-id"), s("4bf92f3577b34da6"))]
}

fn connect(f: Flavour) -> Packet {
    let properties = if f.props() {
        ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(100),
            maximum_packet_size: Some(MAX_PACKET),
            topic_alias_maximum: Some(10),
            user_properties: user_props(),
            ..ConnectProperties::default()
        }
    } else {
        ConnectProperties::default()
    };
    Packet::Connect(Box::new(Connect {
        protocol: f.version(),
        clean_start: true,
        keep_alive: 60,
        client_id: s("sensor-0000123"),
        will: None,
        username: Some(s("device")),
        password: Some(Bytes::from_static(b"s3cr3t-token")),
        properties,
    }))
}

fn publish(f: Flavour, qos: QoS, payload: usize) -> Packet {
    let properties = if f.props() {
        PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some(s("application/json")),
            user_properties: user_props(),
            ..PublishProperties::default()
        }
    } else {
        PublishProperties::default()
    };
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: s("site/42/device/17/temp"),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(4711)),
        properties,
        payload: Bytes::from(vec![b'x'; payload]),
    })
}

fn puback(f: Flavour) -> Packet {
    let mut ack = PubResp::new(pid(4711));
    if f.props() {
        ack.properties = AckProperties {
            reason_string: Some(s("accepted")),
            user_properties: user_props(),
        };
    }
    Packet::PubAck(ack)
}

fn subscribe(f: Flavour) -> Packet {
    let filters = [
        "site/42/device/17/temp",
        "site/42/device/+/temp",
        "site/42/#",
        "site/+/device/17/temp",
        "alerts/site/42",
    ]
    .iter()
    .map(|t| {
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        };
        (s(t), options)
    })
    .collect();
    let properties = if f.props() {
        SubscribeProperties {
            subscription_identifier: Some(42),
            user_properties: user_props(),
        }
    } else {
        SubscribeProperties::default()
    };
    Packet::Subscribe(Subscribe {
        packet_id: pid(4711),
        filters,
        properties,
    })
}

/// Every benchmarked packet as `(name, flavour, packet)`.
fn cases() -> Vec<(String, Flavour, Packet)> {
    let mut out = Vec::new();
    for f in Flavour::ALL {
        out.push(("connect".to_owned(), f, connect(f)));
        for (qos, q) in [(QoS::AtMostOnce, 0), (QoS::AtLeastOnce, 1)] {
            for n in PAYLOADS {
                out.push((format!("publish_q{q}_{n}B"), f, publish(f, qos, n)));
            }
        }
        out.push(("puback".to_owned(), f, puback(f)));
        out.push(("subscribe_5".to_owned(), f, subscribe(f)));
    }
    out
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    if let Err(e) = encode(packet, version, &mut buf) {
        panic!("cannot encode {}: {e}", packet.name());
    }
    buf.freeze()
}

/// The decoder for `packet`: a fresh server decoder for CONNECT (which fixes
/// the version), a decoder of `version` otherwise.
fn decoder(packet: &Packet, version: ProtocolVersion) -> Decoder {
    match packet {
        Packet::Connect(_) => Decoder::new(MAX_PACKET),
        _ => Decoder::with_version(version, MAX_PACKET),
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_decode");
    group.measurement_time(Duration::from_secs(1));
    for (name, f, packet) in cases() {
        let frame = encoded(&packet, f.version());
        // Outside the timed loop: the frame decodes back to the same packet.
        let mut check = BytesMut::from(&frame[..]);
        match decoder(&packet, f.version()).decode(&mut check) {
            Ok(Some(p)) if p == packet && check.is_empty() => {}
            other => panic!("{name}/{}: decode gave {other:?}", f.name()),
        }
        let stream = frame.repeat(READ_BATCH);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(BenchmarkId::new(&name, f.name()), |b| {
            b.iter_custom(|iters| decode_timed(&packet, f.version(), &stream, frame.len(), iters));
        });
    }
    group.finish();
}

/// Decodes `iters` frames, `READ_BATCH` at a time from one read buffer (as a
/// connection reads them); only the decoding is timed, not filling the buffer.
fn decode_timed(
    packet: &Packet,
    version: ProtocolVersion,
    stream: &[u8],
    frame_len: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(READ_BATCH as u64);
        let mut buf = BytesMut::from(&stream[..frame_len * n as usize]);
        let start = Instant::now();
        for _ in 0..n {
            let _ = black_box(decoder(packet, version).decode(&mut buf));
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_encode");
    group.measurement_time(Duration::from_secs(1));
    for (name, f, packet) in cases() {
        let len = encoded(&packet, f.version()).len();
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = BytesMut::with_capacity(len);
        group.bench_function(BenchmarkId::new(&name, f.name()), |b| {
            b.iter(|| {
                buf.clear();
                black_box(encode(black_box(&packet), f.version(), &mut buf))
            });
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
    targets = bench_decode, bench_encode
}
criterion_main!(benches);
