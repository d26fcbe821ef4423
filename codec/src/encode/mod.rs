//! The encoder: every packet of every version. A size pass validates the
//! packet and computes the remaining length, then one `reserve` and a write
//! pass fill the buffer.
//!
//! v3 mapping: properties are omitted; CONNACK reason codes become return
//! codes (0x00→0, 0x84→1, 0x85→2, 0x86→4, 0x87→5, anything else→3); SUBACK
//! codes 0/1/2 are kept and any other becomes 0x80; UNSUBACK has no payload;
//! DISCONNECT is `e0 00`; PUBACK-family reason codes are dropped.

#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};

use crate::decode::kind;
use crate::error::EncodeError;
use crate::properties::encode::{props_len, put_props, Properties, UserProps};
use crate::types::{
    AckProperties, Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubResp, Publish,
    QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::wire::{field_len, put_field, put_varint, varint_len, MAX_VARINT};

/// Encodes `packet` for `version` and appends it to `dst`.
///
/// CONNECT is always encoded at its own `protocol`; `version` applies to every
/// other packet. On error nothing is written.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (byte1, remaining) = size(packet, version)?;
    dst.reserve(1 + varint_len(remaining) + remaining);
    dst.put_u8(byte1);
    put_varint(dst, remaining);
    let body_start = dst.len();
    write(packet, version, dst);
    debug_assert_eq!(
        dst.len() - body_start,
        remaining,
        "{} size pass",
        packet.name()
    );
    Ok(())
}

/// The number of bytes [`encode`] writes for `packet` (fixed header
/// included), or `usize::MAX` when it cannot be encoded.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match size(packet, version) {
        Ok((_, remaining)) => 1 + varint_len(remaining) + remaining,
        Err(_) => usize::MAX,
    }
}

/// Checks a remaining length against the protocol limit.
pub(crate) fn check_remaining(n: usize) -> Result<usize, EncodeError> {
    if n > MAX_VARINT {
        Err(EncodeError::PacketTooLarge(n))
    } else {
        Ok(n)
    }
}

/// The v3 CONNACK return code for a v5 reason code.
pub(crate) fn v3_connack_code(code: ReasonCode) -> u8 {
    match code {
        ReasonCode::SUCCESS => 0,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
        ReasonCode::NOT_AUTHORIZED => 5,
        _ => 3,
    }
}

/// The v3 SUBACK return code for a v5 reason code.
pub(crate) fn v3_suback_code(code: ReasonCode) -> u8 {
    match code.0 {
        c @ 0..=2 => c,
        _ => 0x80,
    }
}

/// The first byte of a PUBLISH.
pub(crate) fn publish_byte1(dup: bool, qos: QoS, retain: bool) -> u8 {
    (kind::PUBLISH << 4) | (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain)
}

/// Checks the QoS / packet identifier / DUP combination of a PUBLISH.
pub(crate) fn check_publish_flags(qos: QoS, has_id: bool, dup: bool) -> Result<(), EncodeError> {
    if (qos == QoS::AtMostOnce) == has_id {
        return Err(EncodeError::PacketIdMismatch { qos, has_id });
    }
    if dup && qos == QoS::AtMostOnce {
        return Err(EncodeError::DupWithQoS0);
    }
    Ok(())
}

fn str_len(s: &str) -> Result<usize, EncodeError> {
    field_len(s.len())
}

fn opt_len(len: Option<usize>) -> Result<usize, EncodeError> {
    len.map_or(Ok(0), field_len)
}

/// Property length prefix plus properties.
fn block_len(p: &impl Properties) -> Result<usize, EncodeError> {
    let n = props_len(p)?;
    Ok(varint_len(n) + n)
}

fn ack_is_empty(p: &AckProperties) -> bool {
    p.reason_string.is_none() && p.user_properties.is_empty()
}

/// First byte and remaining length of `packet`, validating every field.
fn size(packet: &Packet, v: ProtocolVersion) -> Result<(u8, usize), EncodeError> {
    let v5 = v.is_v5();
    let (byte1, n) = match packet {
        Packet::Connect(c) => (kind::CONNECT << 4, connect_len(c)?),
        Packet::ConnAck(c) => (
            kind::CONNACK << 4,
            2 + if v5 { block_len(&c.properties)? } else { 0 },
        ),
        Packet::Publish(p) => {
            check_publish_flags(p.qos, p.packet_id.is_some(), p.dup)?;
            let mut n = str_len(&p.topic)? + p.payload.len();
            if p.packet_id.is_some() {
                n += 2;
            }
            if v5 {
                n += block_len(&p.properties)?;
            }
            (publish_byte1(p.dup, p.qos, p.retain), n)
        }
        Packet::PubAck(r) => (kind::PUBACK << 4, pub_resp_len(r, v5)?),
        Packet::PubRec(r) => (kind::PUBREC << 4, pub_resp_len(r, v5)?),
        Packet::PubRel(r) => ((kind::PUBREL << 4) | 0b0010, pub_resp_len(r, v5)?),
        Packet::PubComp(r) => (kind::PUBCOMP << 4, pub_resp_len(r, v5)?),
        Packet::Subscribe(s) => {
            let mut n = 2;
            if v5 {
                n += block_len(&s.properties)?;
            }
            for (f, _) in &s.filters {
                n += str_len(f)? + 1;
            }
            ((kind::SUBSCRIBE << 4) | 0b0010, n)
        }
        Packet::SubAck(s) => {
            let props = if v5 { block_len(&s.properties)? } else { 0 };
            (kind::SUBACK << 4, 2 + props + s.reasons.len())
        }
        Packet::Unsubscribe(u) => {
            let mut n = 2;
            if v5 {
                n += block_len(&UserProps(&u.user_properties))?;
            }
            for f in &u.filters {
                n += str_len(f)?;
            }
            ((kind::UNSUBSCRIBE << 4) | 0b0010, n)
        }
        Packet::UnsubAck(u) => {
            let n = if v5 {
                2 + block_len(&u.properties)? + u.reasons.len()
            } else {
                2
            };
            (kind::UNSUBACK << 4, n)
        }
        Packet::PingReq => (kind::PINGREQ << 4, 0),
        Packet::PingResp => (kind::PINGRESP << 4, 0),
        Packet::Disconnect(d) => (kind::DISCONNECT << 4, disconnect_len(d, v5)?),
        Packet::Auth(a) => {
            if !v5 {
                return Err(EncodeError::NotInVersion {
                    packet: "AUTH",
                    version: v,
                });
            }
            (kind::AUTH << 4, auth_len(a)?)
        }
    };
    Ok((byte1, check_remaining(n)?))
}

fn protocol_name(v: ProtocolVersion) -> &'static [u8] {
    match v {
        ProtocolVersion::V31 => b"MQIsdp",
        ProtocolVersion::V311 | ProtocolVersion::V5 => b"MQTT",
    }
}

fn connect_len(c: &Connect) -> Result<usize, EncodeError> {
    let v5 = c.protocol.is_v5();
    // Protocol name, level, flags, keep alive.
    let mut n = 2 + protocol_name(c.protocol).len() + 1 + 1 + 2;
    if v5 {
        n += block_len(&c.properties)?;
    }
    n += str_len(&c.client_id)?;
    if let Some(w) = &c.will {
        if v5 {
            n += block_len(&w.properties)?;
        }
        n += str_len(&w.topic)? + field_len(w.payload.len())?;
    }
    n += opt_len(c.username.as_ref().map(|u| u.len()))?;
    n += opt_len(c.password.as_ref().map(|p| p.len()))?;
    Ok(n)
}

fn pub_resp_len(r: &PubResp, v5: bool) -> Result<usize, EncodeError> {
    if !v5 {
        return Ok(2);
    }
    if !ack_is_empty(&r.properties) {
        return Ok(3 + block_len(&r.properties)?);
    }
    Ok(if r.reason == ReasonCode::SUCCESS {
        2
    } else {
        3
    })
}

fn disconnect_len(d: &Disconnect, v5: bool) -> Result<usize, EncodeError> {
    if !v5 {
        return Ok(0);
    }
    if d.properties != Default::default() {
        return Ok(1 + block_len(&d.properties)?);
    }
    Ok(usize::from(d.reason != ReasonCode::NORMAL_DISCONNECTION))
}

fn auth_len(a: &Auth) -> Result<usize, EncodeError> {
    if a.reason == ReasonCode::SUCCESS && a.properties == Default::default() {
        return Ok(0);
    }
    Ok(1 + block_len(&a.properties)?)
}

/// Writes the body of a packet that passed [`size`].
fn write(packet: &Packet, v: ProtocolVersion, dst: &mut BytesMut) {
    let v5 = v.is_v5();
    match packet {
        Packet::Connect(c) => write_connect(c, dst),
        Packet::ConnAck(c) => write_connack(c, v5, dst),
        Packet::Publish(p) => write_publish(p, v5, dst),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            write_pub_resp(r, v5, dst);
        }
        Packet::Subscribe(s) => write_subscribe(s, v5, dst),
        Packet::SubAck(s) => write_suback(s, v5, dst),
        Packet::Unsubscribe(u) => write_unsubscribe(u, v5, dst),
        Packet::UnsubAck(u) => write_unsuback(u, v5, dst),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => write_disconnect(d, v5, dst),
        Packet::Auth(a) => write_auth(a, dst),
    }
}

/// Writes a property block whose size pass succeeded.
fn put_block(dst: &mut BytesMut, p: &impl Properties) {
    // `size` already validated this block, so the error arm is unreachable.
    let n = props_len(p).unwrap_or(0);
    put_props(dst, p, n);
}

fn write_connect(c: &Connect, dst: &mut BytesMut) {
    let v5 = c.protocol.is_v5();
    put_field(dst, protocol_name(c.protocol));
    dst.put_u8(c.protocol as u8);
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0b0000_0010;
    }
    if let Some(w) = &c.will {
        flags |= 0b0000_0100 | ((w.qos as u8) << 3);
        if w.retain {
            flags |= 0b0010_0000;
        }
    }
    if c.password.is_some() {
        flags |= 0b0100_0000;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    dst.put_u8(flags);
    dst.put_u16(c.keep_alive);
    if v5 {
        put_block(dst, &c.properties);
    }
    put_field(dst, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            put_block(dst, &w.properties);
        }
        put_field(dst, w.topic.as_bytes());
        put_field(dst, &w.payload);
    }
    if let Some(u) = &c.username {
        put_field(dst, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_field(dst, p);
    }
}

fn write_connack(c: &ConnAck, v5: bool, dst: &mut BytesMut) {
    dst.put_u8(u8::from(c.session_present));
    if v5 {
        dst.put_u8(c.code.0);
        put_block(dst, &c.properties);
    } else {
        dst.put_u8(v3_connack_code(c.code));
    }
}

fn write_publish(p: &Publish, v5: bool, dst: &mut BytesMut) {
    put_field(dst, p.topic.as_bytes());
    if let Some(id) = p.packet_id {
        dst.put_u16(id.get());
    }
    if v5 {
        put_block(dst, &p.properties);
    }
    dst.put_slice(&p.payload);
}

fn write_pub_resp(r: &PubResp, v5: bool, dst: &mut BytesMut) {
    dst.put_u16(r.packet_id.get());
    if !v5 {
        return;
    }
    if !ack_is_empty(&r.properties) {
        dst.put_u8(r.reason.0);
        put_block(dst, &r.properties);
    } else if r.reason != ReasonCode::SUCCESS {
        dst.put_u8(r.reason.0);
    }
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    let mut b = o.qos as u8;
    if v5 {
        b |= u8::from(o.no_local) << 2;
        b |= u8::from(o.retain_as_published) << 3;
        b |= (o.retain_handling as u8) << 4;
    }
    b
}

fn write_subscribe(s: &Subscribe, v5: bool, dst: &mut BytesMut) {
    dst.put_u16(s.packet_id.get());
    if v5 {
        put_block(dst, &s.properties);
    }
    for (f, o) in &s.filters {
        put_field(dst, f.as_bytes());
        dst.put_u8(options_byte(o, v5));
    }
}

fn write_suback(s: &SubAck, v5: bool, dst: &mut BytesMut) {
    dst.put_u16(s.packet_id.get());
    if v5 {
        put_block(dst, &s.properties);
        for r in &s.reasons {
            dst.put_u8(r.0);
        }
    } else {
        for r in &s.reasons {
            dst.put_u8(v3_suback_code(*r));
        }
    }
}

fn write_unsubscribe(u: &Unsubscribe, v5: bool, dst: &mut BytesMut) {
    dst.put_u16(u.packet_id.get());
    if v5 {
        put_block(dst, &UserProps(&u.user_properties));
    }
    for f in &u.filters {
        put_field(dst, f.as_bytes());
    }
}

fn write_unsuback(u: &UnsubAck, v5: bool, dst: &mut BytesMut) {
    dst.put_u16(u.packet_id.get());
    if v5 {
        put_block(dst, &u.properties);
        for r in &u.reasons {
            dst.put_u8(r.0);
        }
    }
}

fn write_disconnect(d: &Disconnect, v5: bool, dst: &mut BytesMut) {
    if !v5 {
        return;
    }
    if d.properties != Default::default() {
        dst.put_u8(d.reason.0);
        put_block(dst, &d.properties);
    } else if d.reason != ReasonCode::NORMAL_DISCONNECTION {
        dst.put_u8(d.reason.0);
    }
}

fn write_auth(a: &Auth, dst: &mut BytesMut) {
    if a.reason == ReasonCode::SUCCESS && a.properties == Default::default() {
        return;
    }
    dst.put_u8(a.reason.0);
    put_block(dst, &a.properties);
}
