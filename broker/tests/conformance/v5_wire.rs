//! MQTT 5.0 wire helpers for the v5 conformance tests: property lists built
//! by hand, CONNECT/PUBLISH/SUBSCRIBE/DISCONNECT with properties, and a
//! parser for the properties of what the broker sends. Independent of
//! `tern-codec`, like the rest of the test helpers.

use crate::common::*;
use std::net::SocketAddr;

/// Property identifiers (MQTT 5.0, 2.2.2.2).
pub const PAYLOAD_FORMAT: u8 = 0x01;
pub const MESSAGE_EXPIRY: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_ID: u8 = 0x0B;
pub const SESSION_EXPIRY: u8 = 0x11;
pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const WILDCARD_SUB_AVAILABLE: u8 = 0x28;
pub const SUB_ID_AVAILABLE: u8 = 0x29;
pub const SHARED_SUB_AVAILABLE: u8 = 0x2A;

/// Subscription option bits (3.8.3.1).
pub const NO_LOCAL: u8 = 0x04;
pub const RETAIN_AS_PUBLISHED: u8 = 0x08;
/// Retain Handling 1: send retained messages only for a new subscription.
pub const RH_NEW_ONLY: u8 = 0x10;
/// Retain Handling 2: never send retained messages on subscribe.
pub const RH_NEVER: u8 = 0x20;

/// One decoded property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    Varint(usize),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

/// A property list under construction, in the order the test wants it.
#[derive(Clone, Debug, Default)]
pub struct Props(pub Vec<u8>);

impl Props {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn byte(mut self, id: u8, v: u8) -> Self {
        self.0.extend([id, v]);
        self
    }

    pub fn u16(mut self, id: u8, v: u16) -> Self {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }

    pub fn u32(mut self, id: u8, v: u32) -> Self {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }

    pub fn varint(mut self, id: u8, v: usize) -> Self {
        self.0.push(id);
        self.0.extend(remaining_length(v));
        self
    }

    pub fn string(mut self, id: u8, s: &str) -> Self {
        self.0.push(id);
        self.0.extend(string(s));
        self
    }

    pub fn binary(mut self, id: u8, b: &[u8]) -> Self {
        self.0.push(id);
        self.0.extend(binary(b));
        self
    }

    pub fn user(mut self, k: &str, v: &str) -> Self {
        self.0.push(USER_PROPERTY);
        self.0.extend(string(k));
        self.0.extend(string(v));
        self
    }

    /// Property Length followed by the properties.
    pub fn encoded(&self) -> Vec<u8> {
        let mut out = remaining_length(self.0.len());
        out.extend_from_slice(&self.0);
        out
    }
}

/// Parses a property list (without its length prefix); panics on bytes a
/// conformant broker must never send.
pub fn parse_props(mut b: &[u8]) -> Vec<(u8, Value)> {
    let mut out = Vec::new();
    let str_at = |b: &[u8]| -> (Vec<u8>, usize) {
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        (b[2..2 + n].to_vec(), 2 + n)
    };
    while let Some((&id, rest)) = b.split_first() {
        b = rest;
        let (value, used) = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => (Value::Byte(b[0]), 1),
            0x13 | 0x21 | 0x22 | 0x23 => (Value::U16(u16::from_be_bytes([b[0], b[1]])), 2),
            0x02 | 0x11 | 0x18 | 0x27 => {
                (Value::U32(u32::from_be_bytes([b[0], b[1], b[2], b[3]])), 4)
            }
            0x0B => {
                let (v, n) = read_varint(b).expect("subscription identifier varint");
                (Value::Varint(v), n)
            }
            0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => {
                let (s, n) = str_at(b);
                (Value::Str(String::from_utf8(s).expect("UTF-8")), n)
            }
            0x09 | 0x16 => {
                let (s, n) = str_at(b);
                (Value::Bin(s), n)
            }
            0x26 => {
                let (k, n1) = str_at(b);
                let (v, n2) = str_at(&b[n1..]);
                let k = String::from_utf8(k).expect("UTF-8");
                (
                    Value::Pair(k, String::from_utf8(v).expect("UTF-8")),
                    n1 + n2,
                )
            }
            other => panic!("broker sent unknown property 0x{other:02X}"),
        };
        out.push((id, value));
        b = &b[used..];
    }
    out
}

/// The first value of property `id`, if any.
pub fn prop(props: &[(u8, Value)], id: u8) -> Option<Value> {
    props.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone())
}

/// Splits a length-prefixed property list off `b`: (properties, bytes used).
pub fn props_at(b: &[u8]) -> (Vec<(u8, Value)>, usize) {
    let (len, used) = read_varint(b).expect("property length");
    (parse_props(&b[used..used + len]), used + len)
}

/// A v5 CONNECT with `props` (Clean Start as given, keep-alive 60 unless set).
pub fn connect5(client_id: &str, clean: bool, keep_alive: u16, props: &Props) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(V5);
    body.push(if clean { 0x02 } else { 0 });
    body.extend(keep_alive.to_be_bytes());
    body.extend(props.encoded());
    body.extend(string(client_id));
    packet(CONNECT << 4, &body)
}

/// Sends `connect` on a new connection; returns the client and the CONNACK
/// (reason code, session present, properties).
pub fn open(addr: SocketAddr, connect: &[u8]) -> (Client, ConnAck5) {
    let mut c = Client::tcp(addr);
    c.version = V5;
    c.send(connect);
    let p = c.read();
    let ack = ConnAck5::parse(&p);
    (c, ack)
}

/// Connects a clean v5 client with `props`; asserts success.
pub fn open_ok(addr: SocketAddr, props: &Props) -> (Client, ConnAck5) {
    let (c, ack) = open(addr, &connect5(&client_id(), true, 60, props));
    assert_eq!(ack.code, 0, "CONNACK refused: {ack:?}");
    (c, ack)
}

/// A parsed v5 CONNACK.
#[derive(Clone, Debug)]
pub struct ConnAck5 {
    pub session_present: bool,
    pub code: u8,
    pub props: Vec<(u8, Value)>,
}

impl ConnAck5 {
    pub fn parse(p: &RawPacket) -> Self {
        assert_eq!(p.kind(), CONNACK, "expected CONNACK, got {p:?}");
        assert_eq!(p.body[0] & 0xFE, 0, "[MQTT5-3.2.2-1] reserved bits: {p:?}");
        let (props, used) = props_at(&p.body[2..]);
        assert_eq!(2 + used, p.body.len(), "trailing bytes in {p:?}");
        Self {
            session_present: p.body[0] & 1 == 1,
            code: p.body[1],
            props,
        }
    }

    pub fn prop(&self, id: u8) -> Option<Value> {
        prop(&self.props, id)
    }
}

/// A v5 PUBLISH with properties.
pub fn publish5(
    topic: &str,
    qos: u8,
    pid: u16,
    retain: bool,
    props: &Props,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend(pid.to_be_bytes());
    }
    body.extend(props.encoded());
    body.extend_from_slice(payload);
    packet((PUBLISH << 4) | (qos << 1) | u8::from(retain), &body)
}

/// A parsed v5 PUBLISH with its properties.
#[derive(Clone, Debug)]
pub struct Publish5 {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pid: Option<u16>,
    pub props: Vec<(u8, Value)>,
    pub payload: Vec<u8>,
}

impl Publish5 {
    pub fn parse(p: &RawPacket) -> Self {
        assert_eq!(p.kind(), PUBLISH, "expected PUBLISH, got {p:?}");
        let qos = (p.header >> 1) & 3;
        let b = &p.body;
        let tlen = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let topic = String::from_utf8(b[2..2 + tlen].to_vec()).expect("topic is UTF-8");
        let mut at = 2 + tlen;
        let pid = (qos > 0).then(|| {
            at += 2;
            u16::from_be_bytes([b[at - 2], b[at - 1]])
        });
        let (props, used) = props_at(&b[at..]);
        Self {
            topic,
            qos,
            retain: p.header & 1 == 1,
            dup: p.header & 8 == 8,
            pid,
            props,
            payload: b[at + used..].to_vec(),
        }
    }

    pub fn prop(&self, id: u8) -> Option<Value> {
        prop(&self.props, id)
    }

    /// Every Subscription Identifier, in order.
    pub fn sub_ids(&self) -> Vec<usize> {
        self.props
            .iter()
            .filter_map(|(id, v)| match (id, v) {
                (&SUBSCRIPTION_ID, Value::Varint(n)) => Some(*n),
                _ => None,
            })
            .collect()
    }
}

/// Reads the next packet, which must be a PUBLISH; acknowledges it.
pub fn recv5(c: &mut Client) -> Publish5 {
    let p = c.read();
    let msg = Publish5::parse(&p);
    match (msg.qos, msg.pid) {
        (1, Some(pid)) => c.send(&ack(PUBACK, pid)),
        (2, Some(pid)) => {
            c.send(&ack(PUBREC, pid));
            let rel = c.read_until("PUBREL", |p| p.kind() == PUBREL);
            assert_eq!(rel.pid(), pid, "{rel:?}");
            c.send(&ack(PUBCOMP, pid));
        }
        _ => {}
    }
    msg
}

/// A v5 SUBSCRIBE with properties and `(filter, options)` pairs.
pub fn subscribe5(pid: u16, props: &Props, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(props.encoded());
    for (filter, options) in filters {
        body.extend(string(filter));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// Subscribes with `props`; returns the SUBACK reason codes.
pub fn sub5(c: &mut Client, props: &Props, filters: &[(&str, u8)]) -> Vec<u8> {
    let pid = c.next_pid();
    c.send(&subscribe5(pid, props, filters));
    let suback = c.read_until("SUBACK", |p| p.kind() == SUBACK);
    assert_eq!(suback.pid(), pid, "[MQTT5-3.8.4-2] SUBACK packet id");
    suback.suback_codes(V5)
}

/// A parsed v5 acknowledgement (PUBACK…PUBCOMP, UNSUBACK without its
/// codes): packet id and reason code (0 when the short form was used).
pub fn ack5(p: &RawPacket) -> (u16, u8) {
    let code = p.body.get(2).copied().unwrap_or(0);
    (p.pid(), code)
}

/// The reason code of a DISCONNECT (0 when the short form was used).
pub fn disconnect_code(p: &RawPacket) -> u8 {
    assert_eq!(p.kind(), DISCONNECT, "expected DISCONNECT, got {p:?}");
    p.body.first().copied().unwrap_or(0)
}

/// A v5 DISCONNECT with `reason` and `props`.
pub fn disconnect5(reason: u8, props: &Props) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props.encoded());
    packet(DISCONNECT << 4, &body)
}

/// Asserts the broker sends DISCONNECT with `code` as its last packet
/// ([MQTT5-3.14.4-1]), without a Session Expiry Interval ([MQTT5-3.14.2-2]),
/// then closes ([MQTT5-3.14.4-2]); `why` names the case for the message.
pub fn expect_disconnect(c: &mut Client, code: u8, why: &str) {
    let before = c.expect_closed(WAIT);
    let codes: Vec<u8> = before
        .iter()
        .filter(|p| p.kind() == DISCONNECT)
        .map(disconnect_code)
        .collect();
    assert_eq!(
        codes,
        vec![code],
        "{why}: packets before the close: {before:?}"
    );
    let last = before.last().expect("a DISCONNECT");
    assert_eq!(
        last.kind(),
        DISCONNECT,
        "{why}: sent after the DISCONNECT: {before:?}"
    );
    if last.body.len() > 1 {
        let (props, _) = props_at(&last.body[1..]);
        assert_eq!(prop(&props, SESSION_EXPIRY), None, "{why}: {last:?}");
    }
}
