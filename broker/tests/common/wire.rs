//! Hand-written MQTT wire format: builders for what the tests send and a
//! minimal parser for what the broker answers. Deliberately independent of
//! `tern-codec`.

use std::fmt;

/// Protocol level of MQTT 3.1 (`MQIsdp`).
pub const V31: u8 = 3;
/// Protocol level of MQTT 3.1.1.
pub const V311: u8 = 4;
/// Protocol level of MQTT 5.0.
pub const V5: u8 = 5;

/// Control packet types (high nibble of byte 1).
pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// A whole PINGREQ.
pub const PINGREQ_BYTES: [u8; 2] = [0xC0, 0x00];
/// A whole PINGRESP.
pub const PINGRESP_BYTES: [u8; 2] = [0xD0, 0x00];
/// A whole v3 DISCONNECT (also a valid v5 normal disconnection).
pub const DISCONNECT_BYTES: [u8; 2] = [0xE0, 0x00];

/// The variable byte integer encoding of a remaining length.
pub fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A whole packet: `first` byte, remaining length, `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed UTF-8 string (1.5.3).
pub fn string(s: &str) -> Vec<u8> {
    binary(s.as_bytes())
}

/// Length-prefixed binary data; also used to write deliberately invalid
/// "strings".
pub fn binary(b: &[u8]) -> Vec<u8> {
    let len = u16::try_from(b.len()).expect("field longer than 65535 bytes");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// A will message for [`Connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// v5 Will Delay Interval property.
    pub delay: Option<u32>,
}

/// A CONNECT packet under construction.
#[derive(Clone, Debug)]
pub struct Connect {
    pub version: u8,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// v5 Session Expiry Interval property.
    pub session_expiry: Option<u32>,
}

impl Connect {
    /// CONNECT of `version` (3, 4 or 5) with clean session and keep-alive 60 s.
    pub fn new(version: u8, client_id: &str) -> Self {
        Self {
            version,
            client_id: client_id.to_owned(),
            clean: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            session_expiry: None,
        }
    }

    /// MQTT 3.1 (`MQIsdp`, level 3).
    pub fn v31(client_id: &str) -> Self {
        Self::new(V31, client_id)
    }

    /// MQTT 3.1.1 (`MQTT`, level 4).
    pub fn v311(client_id: &str) -> Self {
        Self::new(V311, client_id)
    }

    /// MQTT 5.0 (`MQTT`, level 5).
    pub fn v5(client_id: &str) -> Self {
        Self::new(V5, client_id)
    }

    /// Sets Clean Session (Clean Start in v5).
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Sets the keep-alive in seconds.
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    /// Sets a will message.
    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some(Will {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos,
            retain,
            delay: None,
        });
        self
    }

    /// A v5 Will Delay Interval for the will (set `will` first).
    pub fn will_delay(mut self, secs: u32) -> Self {
        if let Some(w) = self.will.as_mut() {
            w.delay = Some(secs);
        }
        self
    }

    /// Sets the v5 session expiry interval.
    pub fn session_expiry(mut self, secs: u32) -> Self {
        self.session_expiry = Some(secs);
        self
    }

    /// The connect flags byte this CONNECT encodes.
    pub fn flags(&self) -> u8 {
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | (will.qos << 3);
            if will.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        flags
    }

    /// The whole packet, with the flags byte this builder computes.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_with_flags(self.flags())
    }

    /// The whole packet, with the connect flags byte replaced by `flags`
    /// (for malformed-CONNECT tests; the payload still follows the builder).
    pub fn bytes_with_flags(&self, flags: u8) -> Vec<u8> {
        let mut body = match self.version {
            V31 => string("MQIsdp"),
            _ => string("MQTT"),
        };
        body.push(self.version);
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        if self.version == V5 {
            let mut props = Vec::new();
            if let Some(secs) = self.session_expiry {
                props.push(0x11);
                props.extend(secs.to_be_bytes());
            }
            body.extend(remaining_length(props.len()));
            body.extend(props);
        }
        body.extend(string(&self.client_id));
        if let Some(will) = &self.will {
            if self.version == V5 {
                match will.delay {
                    // Will properties: Will Delay Interval (0x18).
                    Some(secs) => {
                        body.push(5);
                        body.push(0x18);
                        body.extend(secs.to_be_bytes());
                    }
                    None => body.push(0),
                }
            }
            body.extend(string(&will.topic));
            body.extend(binary(&will.payload));
        }
        if let Some(user) = &self.username {
            body.extend(string(user));
        }
        if let Some(password) = &self.password {
            body.extend(binary(password));
        }
        packet(CONNECT << 4, &body)
    }
}

/// An application message: built to be published, or parsed from a
/// PUBLISH the broker sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pid: Option<u16>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.payload.len() <= 64 {
            String::from_utf8_lossy(&self.payload).into_owned()
        } else {
            format!("<{} bytes>", self.payload.len())
        };
        write!(
            f,
            "PUBLISH(topic={:?} qos={} retain={} dup={} pid={:?} payload={:?})",
            self.topic, self.qos, self.retain, self.dup, self.pid, shown
        )
    }
}

impl Message {
    /// A QoS 0, non-retained message.
    pub fn new(topic: &str, payload: impl AsRef<[u8]>) -> Self {
        Self {
            topic: topic.to_owned(),
            payload: payload.as_ref().to_vec(),
            qos: 0,
            retain: false,
            dup: false,
            pid: None,
        }
    }

    /// Sets QoS and packet identifier (ignored for QoS 0).
    pub fn qos(mut self, qos: u8, pid: u16) -> Self {
        self.qos = qos;
        self.pid = (qos > 0).then_some(pid);
        self
    }

    /// Sets RETAIN.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets DUP.
    pub fn dup(mut self, dup: bool) -> Self {
        self.dup = dup;
        self
    }

    /// The fixed-header byte 1 of this message.
    pub fn first_byte(&self) -> u8 {
        (PUBLISH << 4) | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain)
    }

    /// The whole PUBLISH packet for `version`.
    pub fn encode(&self, version: u8) -> Vec<u8> {
        let mut body = string(&self.topic);
        if let Some(pid) = self.pid {
            body.extend(pid.to_be_bytes());
        }
        if version == V5 {
            body.push(0);
        }
        body.extend_from_slice(&self.payload);
        packet(self.first_byte(), &body)
    }

    /// Parses a PUBLISH the broker sent; `None` for another packet type.
    /// Panics on a malformed PUBLISH (the broker must never send one).
    pub fn decode(p: &RawPacket, version: u8) -> Option<Self> {
        if p.kind() != PUBLISH {
            return None;
        }
        let qos = (p.header >> 1) & 3;
        assert!(qos < 3, "broker sent a PUBLISH with QoS 3: {p:?}");
        let body = &p.body;
        assert!(body.len() >= 2, "PUBLISH too short: {p:?}");
        let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let mut at = 2 + tlen;
        assert!(body.len() >= at, "PUBLISH topic truncated: {p:?}");
        let topic = String::from_utf8(body[2..at].to_vec()).expect("topic is UTF-8");
        let pid = if qos > 0 {
            assert!(body.len() >= at + 2, "PUBLISH packet id truncated: {p:?}");
            let pid = u16::from_be_bytes([body[at], body[at + 1]]);
            at += 2;
            assert_ne!(pid, 0, "[MQTT-2.3.1-1] broker sent packet id 0");
            Some(pid)
        } else {
            None
        };
        if version == V5 {
            let (len, used) = read_varint(&body[at..]).expect("v5 property length");
            at += used + len;
        }
        Some(Self {
            topic,
            payload: body[at..].to_vec(),
            qos,
            retain: p.header & 1 == 1,
            dup: p.header & 8 == 8,
            pid,
        })
    }
}

/// Decodes a variable byte integer: (value, bytes used).
pub fn read_varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// SUBSCRIBE with `(filter, options byte)` pairs; v3 options are the QoS.
pub fn subscribe(version: u8, pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if version == V5 {
        body.push(0);
    }
    for (filter, options) in filters {
        body.extend(string(filter));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// UNSUBSCRIBE of `filters`.
pub fn unsubscribe(version: u8, pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if version == V5 {
        body.push(0);
    }
    for filter in filters {
        body.extend(string(filter));
    }
    packet(0xA2, &body)
}

/// A two-byte acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK) of
/// `kind` for `pid`, with the fixed-header flags the spec requires.
pub fn ack(kind: u8, pid: u16) -> Vec<u8> {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    let [hi, lo] = pid.to_be_bytes();
    vec![(kind << 4) | flags, 2, hi, lo]
}

/// Exact v3 SUBACK bytes for `pid` and `codes`.
pub fn suback_v3(pid: u16, codes: &[u8]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(codes);
    packet(0x90, &body)
}

/// Exact v3 CONNACK bytes.
pub fn connack_v3(session_present: bool, code: u8) -> Vec<u8> {
    vec![0x20, 0x02, u8::from(session_present), code]
}

/// One packet as read from the socket: byte 1 and the body.
#[derive(Clone, PartialEq, Eq)]
pub struct RawPacket {
    pub header: u8,
    pub body: Vec<u8>,
}

impl fmt::Debug for RawPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .bytes()
            .iter()
            .take(48)
            .map(|b| format!("{b:02X}"))
            .collect();
        let more = if self.body.len() > 44 { " …" } else { "" };
        write!(f, "{}[{}{more}]", kind_name(self.kind()), shown.join(" "))
    }
}

/// The name of a packet type, for messages.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        15 => "AUTH",
        _ => "RESERVED",
    }
}

impl RawPacket {
    /// Splits one whole packet off the front of `buf`: `Ok(None)` when more
    /// bytes are needed, `Err` when the remaining length is malformed.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, String> {
        let Some(&header) = buf.first() else {
            return Ok(None);
        };
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let Some(&byte) = buf.get(i) else {
                return Ok(None);
            };
            len |= usize::from(byte & 0x7F) << (7 * (i - 1));
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
            if i == 5 {
                return Err("remaining length longer than 4 bytes".into());
            }
        }
        if buf.len() < i + len {
            return Ok(None);
        }
        let p = Self {
            header,
            body: buf[i..i + len].to_vec(),
        };
        Ok(Some((p, i + len)))
    }

    /// The packet type.
    pub fn kind(&self) -> u8 {
        self.header >> 4
    }

    /// The whole packet as it was on the wire.
    pub fn bytes(&self) -> Vec<u8> {
        packet(self.header, &self.body)
    }

    /// The packet identifier of an ack (PUBACK…PUBCOMP, SUBACK, UNSUBACK).
    pub fn pid(&self) -> u16 {
        assert!(self.body.len() >= 2, "no packet id in {self:?}");
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    /// Session Present of a CONNACK.
    pub fn session_present(&self) -> bool {
        assert_eq!(self.kind(), CONNACK, "not a CONNACK: {self:?}");
        self.body[0] & 1 == 1
    }

    /// Return code (v3) or reason code (v5) of a CONNACK.
    pub fn connack_code(&self) -> u8 {
        assert_eq!(self.kind(), CONNACK, "not a CONNACK: {self:?}");
        self.body[1]
    }

    /// Return / reason codes of a SUBACK (v5: after the properties).
    pub fn suback_codes(&self, version: u8) -> Vec<u8> {
        assert_eq!(self.kind(), SUBACK, "not a SUBACK: {self:?}");
        let mut at = 2;
        if version == V5 {
            let (len, used) = read_varint(&self.body[at..]).expect("v5 property length");
            at += used + len;
        }
        self.body[at..].to_vec()
    }
}
