//! Helpers for session scenario tests: build packets, drive a Connection in
//! virtual time (a fixed base `Instant` plus offsets), collect its output.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use bytestring::ByteString;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tern_codec::*;
use tern_session::*;

/// The virtual clock's origin; tests only ever add offsets to it.
pub fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// `t0() + ms` milliseconds.
pub fn at_ms(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub fn connect(protocol: ProtocolVersion, client_id: &str, clean_start: bool) -> Connect {
    Connect {
        protocol,
        clean_start,
        keep_alive: 0,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

pub fn v311(client_id: &str, clean: bool) -> Connect {
    connect(ProtocolVersion::V311, client_id, clean)
}

/// A v5 CONNECT with a Session Expiry Interval (`None` = absent).
pub fn v5(client_id: &str, clean: bool, expiry: Option<u32>) -> Connect {
    let mut c = connect(ProtocolVersion::V5, client_id, clean);
    c.properties.session_expiry_interval = expiry;
    c
}

pub fn will(topic: &str) -> LastWill {
    LastWill {
        topic: ByteString::from(topic),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    }
}

/// check_connect + Connection::new at `now`; panics if the check fails.
pub fn open_at(
    now: Instant,
    c: Connect,
    existing: Option<Session>,
    cfg: SessionConfig,
) -> Connection {
    let check = Connection::check_connect(&c, &cfg).expect("connect accepted");
    Connection::new(now, c, existing, check, cfg)
}

/// Opens at t0 and returns the connection plus its CONNACK (other transmits stay queued).
pub fn open(c: Connect, existing: Option<Session>, cfg: SessionConfig) -> (Connection, ConnAck) {
    let mut conn = open_at(t0(), c, existing, cfg);
    let ack = match conn.poll_transmit() {
        Some(Transmit::Packet(Packet::ConnAck(a))) => a,
        other => panic!("expected CONNACK first, got {other:?}"),
    };
    (conn, ack)
}

/// A fresh v3.1.1 connection with default limits, CONNACK consumed.
pub fn open_v311(client_id: &str) -> Connection {
    open(v311(client_id, true), None, SessionConfig::default()).0
}

/// A fresh v5 connection with default limits, CONNACK consumed.
pub fn open_v5(client_id: &str) -> Connection {
    open(v5(client_id, true, None), None, SessionConfig::default()).0
}

/// A routed application message.
pub fn msg(topic: &str, payload: &'static [u8]) -> Arc<Publish> {
    Arc::new(Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: ByteString::from(topic),
        packet_id: None,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(payload),
    })
}

/// An inbound PUBLISH from the client.
pub fn publish(qos: QoS, id: Option<u16>, topic: &str) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from(topic),
        packet_id: id.map(pid),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"payload"),
    })
}

pub fn puback(n: u16) -> Packet {
    Packet::PubAck(PubResp::new(pid(n)))
}
pub fn pubrec(n: u16) -> Packet {
    Packet::PubRec(PubResp::new(pid(n)))
}
pub fn pubrel(n: u16) -> Packet {
    Packet::PubRel(PubResp::new(pid(n)))
}
pub fn pubcomp(n: u16) -> Packet {
    Packet::PubComp(PubResp::new(pid(n)))
}

pub fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        filters: filters
            .iter()
            .map(|(f, q)| {
                (
                    ByteString::from(*f),
                    SubscriptionOptions {
                        qos: *q,
                        ..Default::default()
                    },
                )
            })
            .collect(),
        properties: SubscribeProperties::default(),
    })
}

pub fn drain(conn: &mut Connection) -> Vec<Transmit> {
    std::iter::from_fn(|| conn.poll_transmit()).collect()
}

pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Transmitted PUBLISHes as (packet id, dup, payload) and control packets as their name.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Pub(Option<u16>, bool, &'static str),
    Ctl(&'static str, Option<u16>),
}

pub fn out(conn: &mut Connection) -> Vec<Out> {
    drain(conn)
        .into_iter()
        .map(|t| match t {
            Transmit::Publish(p) => Out::Pub(
                p.packet_id.map(PacketId::get),
                p.dup,
                payload_name(&p.msg.payload),
            ),
            Transmit::Packet(p) => {
                let id = match &p {
                    Packet::PubAck(r)
                    | Packet::PubRec(r)
                    | Packet::PubRel(r)
                    | Packet::PubComp(r) => Some(r.packet_id.get()),
                    Packet::SubAck(s) => Some(s.packet_id.get()),
                    Packet::UnsubAck(s) => Some(s.packet_id.get()),
                    _ => None,
                };
                Out::Ctl(p.name(), id)
            }
        })
        .collect()
}

/// Payloads used by tests are static names like b"m1".
fn payload_name(b: &Bytes) -> &'static str {
    const NAMES: &[&str] = &[
        "m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "x", "payload", "",
    ];
    NAMES
        .iter()
        .find(|n| n.as_bytes() == &b[..])
        .copied()
        .unwrap_or("?")
}

pub fn pub_(id: Option<u16>, dup: bool, name: &'static str) -> Out {
    Out::Pub(id, dup, name)
}
pub fn ctl(name: &'static str, id: Option<u16>) -> Out {
    Out::Ctl(name, id)
}

/// The single DISCONNECT transmitted, if any.
pub fn disconnect_code(ts: &[Transmit]) -> Option<ReasonCode> {
    ts.iter().find_map(|t| match t {
        Transmit::Packet(Packet::Disconnect(d)) => Some(d.reason),
        _ => None,
    })
}

pub fn close_event(conn: &mut Connection) -> Option<CloseReason> {
    events(conn).into_iter().find_map(|e| match e {
        Event::Close(r) => Some(r),
        _ => None,
    })
}

/// Messages named m0..m9 for ordering tests.
pub fn m(i: usize) -> Arc<Publish> {
    const P: [&[u8]; 10] = [
        b"m0", b"m1", b"m2", b"m3", b"m4", b"m5", b"m6", b"m7", b"m8", b"m9",
    ];
    msg("t", P[i])
}
