//! The decoder: framing (fixed header, remaining length, maximum packet
//! size) and dispatch to the per-packet body decoders.

mod connect;
mod packets;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_strict;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::types::{Packet, PacketId, ProtocolVersion, PubResp};
use crate::wire::parse_varint;

/// Packet type numbers (2.1.2).
pub(crate) mod kind {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const CONNACK: u8 = 2;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const SUBACK: u8 = 9;
    pub(crate) const UNSUBSCRIBE: u8 = 10;
    pub(crate) const UNSUBACK: u8 = 11;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const PINGRESP: u8 = 13;
    pub(crate) const DISCONNECT: u8 = 14;
    pub(crate) const AUTH: u8 = 15;
}

/// The name of packet type `t` (the high nibble of the first byte).
pub(crate) fn kind_name(t: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "RESERVED",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    NAMES[usize::from(t & 0x0F)]
}

/// Checks the first byte of a packet: the type exists in `version` and the
/// flag bits have their required values (2.1.3 / 2.2.2). PUBLISH flags are
/// checked for QoS 3 and DUP at QoS 0.
fn check_first_byte(byte1: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let t = byte1 >> 4;
    let flags = byte1 & 0x0F;
    let required = match t {
        0 => return Err(DecodeError::ReservedPacketType(0)),
        kind::AUTH if !version.is_v5() => return Err(DecodeError::ReservedPacketType(t)),
        kind::PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::PublishQoS3);
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::DupWithQoS0);
            }
            return Ok(());
        }
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags != required {
        return Err(DecodeError::InvalidFlags {
            packet: kind_name(t),
            flags,
        });
    }
    Ok(())
}

/// Decodes MQTT packets from a byte stream.
///
/// Server side: [`Decoder::new`] accepts only CONNECT first, and that CONNECT
/// fixes the protocol version for the rest of the connection. Client side and
/// tests: [`Decoder::with_version`] decodes any packet of one version.
///
/// [`Decoder::decode`] works in two phases: it reads the fixed header and the
/// remaining length without consuming anything (a partial frame returns
/// `Ok(None)` and leaves the buffer untouched; a frame larger than the maximum
/// packet size is rejected before its body is buffered), then splits one
/// frame off the buffer. Topics, strings and payloads of the decoded packet
/// are slices of that frame: nothing is copied.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    connect_protocol: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A server-side decoder: the first packet must be CONNECT, whose protocol
    /// name and level fix the version. Packets larger than `max_packet_size`
    /// bytes (fixed header included) are rejected.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            version: None,
            connect_protocol: None,
            max_packet_size,
        }
    }

    /// A decoder for every packet type of `version` (CONNECT is still decoded
    /// by its own protocol level).
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version: Some(version),
            connect_protocol: None,
            max_packet_size,
        }
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The protocol named by the last complete CONNECT frame, even one that
    /// then failed to decode: the format for the CONNACK that answers a
    /// [`DecodeError`] (`None` when the protocol name or level was unknown).
    pub fn connect_protocol(&self) -> Option<ProtocolVersion> {
        self.connect_protocol
    }

    /// The maximum packet size in bytes, fixed header included.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size for the following packets.
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Decodes the next packet from `buf`.
    ///
    /// `Ok(None)`: `buf` holds no complete packet yet; nothing was consumed.
    /// `Ok(Some(packet))`: exactly one frame was consumed. `Err(_)`: the
    /// stream is invalid and the connection must be closed (the offending
    /// frame may or may not have been consumed).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        if let Some(packet) = self.decode_short_ack(buf) {
            return Ok(Some(packet));
        }
        let Some(&byte1) = buf.first() else {
            return Ok(None);
        };
        let version = match self.version {
            Some(v) => v,
            None if byte1 >> 4 == kind::CONNECT => ProtocolVersion::V5,
            None => return Err(DecodeError::FirstPacketNotConnect(kind_name(byte1 >> 4))),
        };
        check_first_byte(byte1, version)?;
        let Some((remaining, len_len)) = parse_varint(buf.get(1..).unwrap_or_default())? else {
            return Ok(None);
        };
        let header_len = 1 + len_len;
        let total = header_len + remaining;
        if total as u64 > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size: total as u64,
                max: self.max_packet_size,
            });
        }
        if buf.len() < total {
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        frame.advance(header_len);
        if byte1 >> 4 == kind::CONNECT {
            self.connect_protocol = connect::peek_protocol(&frame);
        }
        let packet = decode_body(byte1, frame.freeze(), version)?;
        if self.version.is_none() {
            if let Packet::Connect(connect) = &packet {
                self.version = Some(connect.protocol);
            }
        }
        Ok(Some(packet))
    }
}

impl Decoder {
    /// Fast path for the most frequent frame of a fan-out: a 4-byte PUBACK,
    /// PUBREC, PUBREL or PUBCOMP with just a packet identifier (every v3
    /// one, and a v5 one with reason Success and no properties, 3.4.2.1).
    /// Consumes the frame without splitting it off the buffer. `None` for
    /// anything else — including a packet identifier of 0 and a decoder
    /// still waiting for CONNECT — which the general path then decodes (or
    /// rejects) exactly as before.
    fn decode_short_ack(&self, buf: &mut BytesMut) -> Option<Packet> {
        let &[byte1, 2, hi, lo, ..] = &buf[..] else {
            return None;
        };
        if self.version.is_none() || self.max_packet_size < 4 {
            return None;
        }
        let packet_id = PacketId::new(u16::from_be_bytes([hi, lo]))?;
        let packet = match byte1 {
            0x40 => Packet::PubAck(PubResp::new(packet_id)),
            0x50 => Packet::PubRec(PubResp::new(packet_id)),
            0x62 => Packet::PubRel(PubResp::new(packet_id)),
            0x70 => Packet::PubComp(PubResp::new(packet_id)),
            _ => return None,
        };
        buf.advance(4);
        Some(packet)
    }
}

/// Decodes the body (everything after the remaining length) of one packet
/// whose first byte passed [`check_first_byte`].
fn decode_body(byte1: u8, body: Bytes, v: ProtocolVersion) -> Result<Packet, DecodeError> {
    let flags = byte1 & 0x0F;
    Ok(match byte1 >> 4 {
        kind::CONNECT => Packet::Connect(Box::new(connect::connect(body)?)),
        kind::CONNACK => Packet::ConnAck(connect::connack(body, v)?),
        kind::PUBLISH => Packet::Publish(packets::publish(flags, body, v)?),
        kind::PUBACK => Packet::PubAck(packets::pub_resp(kind::PUBACK, body, v)?),
        kind::PUBREC => Packet::PubRec(packets::pub_resp(kind::PUBREC, body, v)?),
        kind::PUBREL => Packet::PubRel(packets::pub_resp(kind::PUBREL, body, v)?),
        kind::PUBCOMP => Packet::PubComp(packets::pub_resp(kind::PUBCOMP, body, v)?),
        kind::SUBSCRIBE => Packet::Subscribe(packets::subscribe(body, v)?),
        kind::SUBACK => Packet::SubAck(packets::suback(body, v)?),
        kind::UNSUBSCRIBE => Packet::Unsubscribe(packets::unsubscribe(body, v)?),
        kind::UNSUBACK => Packet::UnsubAck(packets::unsuback(body, v)?),
        kind::PINGREQ => {
            packets::empty(body, "PINGREQ")?;
            Packet::PingReq
        }
        kind::PINGRESP => {
            packets::empty(body, "PINGRESP")?;
            Packet::PingResp
        }
        kind::DISCONNECT => Packet::Disconnect(packets::disconnect(body, v)?),
        kind::AUTH => Packet::Auth(packets::auth(body)?),
        t => return Err(DecodeError::ReservedPacketType(t)),
    })
}
