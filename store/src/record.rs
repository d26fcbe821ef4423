//! The stored records: keys and values of one worker's keyspace.
//!
//! Every value ends with a CRC-32 of its key and value bytes, so a damaged
//! record is found on read and named ([`StoreError::Corrupt`]). Numbers
//! are big-endian, so that keys sort in numeric order. Client ids and
//! topic filters never contain U+0000 ([MQTT-1.5.4-2]).
//!
//! | key | value |
//! |---|---|
//! | `V` | format version |
//! | `S` client id | [`SessionMeta`] |
//! | `B` session number, filter | subscription options, identifier |
//! | `Q` session number, message id | [`Entry`]: a queued or inflight message |
//! | `P` session number, message id | its [`Stage`] once sent, and re-send order |
//! | `I` session number, packet id | (incoming QoS 2 id waiting for PUBREL) |
//! | `M` message number | received at (wall clock), the PUBLISH as MQTT 5 |
//! | `W` client id | will due at (wall clock), the will as MQTT 5 |
//! | `R` topic | retained: order, expiry (wall clock), the PUBLISH, or a tombstone |

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use smallvec::SmallVec;
use tern_codec::{
    Decoder, Packet, PacketId, ProtocolVersion, Publish, QoS, RetainHandling, SubscriptionOptions,
};
use tern_session::InflightState;

/// The format this build writes and reads.
pub(crate) const FORMAT: u32 = 1;

pub(crate) const VERSION_KEY: &[u8] = b"V";
pub(crate) const SESSION: u8 = b'S';
pub(crate) const SUBSCRIPTION: u8 = b'B';
pub(crate) const ENTRY: u8 = b'Q';
pub(crate) const INCOMING: u8 = b'I';
pub(crate) const STAGE: u8 = b'P';
pub(crate) const MESSAGE: u8 = b'M';
pub(crate) const WILL: u8 = b'W';
pub(crate) const RETAINED: u8 = b'R';

/// A key: a tag byte and its parts.
pub(crate) fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Appends the checksum of `key` and `value` to `value`.
pub(crate) fn seal(key: &[u8], mut value: Vec<u8>) -> Vec<u8> {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(&value);
    value.extend_from_slice(&h.finalize().to_be_bytes());
    value
}

/// The value of a record without its checksum, if the checksum holds.
pub(crate) fn open<'a>(key: &[u8], value: &'a [u8]) -> Option<&'a [u8]> {
    let split = value.len().checked_sub(4)?;
    let (body, sum) = value.split_at(split);
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(body);
    (h.finalize().to_be_bytes() == sum).then_some(body)
}

/// What is kept of a persistent session besides its subscriptions,
/// messages and QoS 2 ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SessionMeta {
    /// The session's number in this keyspace: the prefix of its records.
    pub(crate) number: u64,
    pub(crate) expiry_interval: u32,
    /// When its connection closed (ms since the Unix epoch); 0 = it was
    /// connected when last written.
    pub(crate) closed_at_ms: u64,
    /// The last packet id taken (0 = none).
    pub(crate) last_packet_id: u16,
    /// The re-send order counter (see `StoredInflight::resend_order`).
    pub(crate) order: u64,
}

impl SessionMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(31);
        v.put_u64(self.number);
        v.put_u32(self.expiry_interval);
        v.put_u64(self.closed_at_ms);
        v.put_u16(self.last_packet_id);
        v.put_u64(self.order);
        v
    }

    pub(crate) fn decode(mut b: &[u8]) -> Option<Self> {
        if b.len() < 30 {
            return None;
        }
        Some(Self {
            number: b.get_u64(),
            expiry_interval: b.get_u32(),
            closed_at_ms: b.get_u64(),
            last_packet_id: b.get_u16(),
            order: b.get_u64(),
        })
    }
}

pub(crate) fn encode_options(options: &SubscriptionOptions, id: Option<u32>) -> Vec<u8> {
    let flags = options.qos as u8
        | u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling as u8) << 4
        | u8::from(id.is_some()) << 7;
    let mut v = vec![flags];
    v.put_u32(id.unwrap_or(0));
    v
}

pub(crate) fn decode_options(b: &[u8]) -> Option<(SubscriptionOptions, Option<u32>)> {
    let (&flags, mut rest) = b.split_first()?;
    if rest.len() < 4 {
        return None;
    }
    let id = rest.get_u32();
    let retain_handling = match (flags >> 4) & 3 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscribe,
        2 => RetainHandling::Never,
        _ => return None,
    };
    let options = SubscriptionOptions {
        qos: QoS::from_u8(flags & 3)?,
        no_local: flags & 4 != 0,
        retain_as_published: flags & 8 != 0,
        retain_handling,
    };
    Some((options, (flags & 0x80 != 0).then_some(id)))
}

/// Where a message of a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Queued,
    /// Sent, waiting for PUBACK or PUBREC.
    Sent(PacketId),
    /// PUBREL sent, waiting for PUBCOMP.
    Released(PacketId),
}

/// One message of a session's queue or inflight window; where it is
/// (queued, sent, released) is its `P` record, written as that changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The `M` record holding the message.
    pub(crate) message: u64,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) sub_ids: SmallVec<[u32; 1]>,
    pub(crate) share: Option<ByteString>,
}

impl Entry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.put_u64(self.message);
        v.put_u8(self.qos as u8 | u8::from(self.retain) << 2);
        v.put_u8(u8::try_from(self.sub_ids.len()).unwrap_or(u8::MAX));
        for id in self.sub_ids.iter().take(usize::from(u8::MAX)) {
            v.put_u32(*id);
        }
        if let Some(g) = &self.share {
            v.put_slice(g.as_bytes());
        }
        v
    }

    pub(crate) fn decode(mut b: &[u8]) -> Option<Self> {
        if b.len() < 10 {
            return None;
        }
        let message = b.get_u64();
        let flags = b.get_u8();
        let n = usize::from(b.get_u8());
        if b.len() < n * 4 {
            return None;
        }
        let sub_ids = (0..n).map(|_| b.get_u32()).collect();
        let share = if b.is_empty() {
            None
        } else {
            Some(ByteString::from(std::str::from_utf8(b).ok()?))
        };
        Some(Self {
            message,
            qos: QoS::from_u8(flags & 3)?,
            retain: flags & 4 != 0,
            sub_ids,
            share,
        })
    }
}

/// The session's inflight state of a message at `stage`, if it is inflight.
pub(crate) fn inflight_state(stage: Stage, qos: QoS) -> Option<(PacketId, InflightState)> {
    match stage {
        Stage::Queued => None,
        Stage::Sent(p) if qos == QoS::AtLeastOnce => Some((p, InflightState::AwaitPubAck)),
        Stage::Sent(p) => Some((p, InflightState::AwaitPubRec)),
        Stage::Released(p) => Some((p, InflightState::AwaitPubComp)),
    }
}

pub(crate) fn encode_stage(stage: Stage, order: u64) -> Vec<u8> {
    let (tag, pid) = match stage {
        Stage::Queued => (0, 0),
        Stage::Sent(p) => (1, p.get()),
        Stage::Released(p) => (2, p.get()),
    };
    let mut v = Vec::with_capacity(11);
    v.put_u8(tag);
    v.put_u16(pid);
    v.put_u64(order);
    v
}

pub(crate) fn decode_stage(mut b: &[u8]) -> Option<(Stage, u64)> {
    if b.len() < 11 {
        return None;
    }
    let tag = b.get_u8();
    let pid = PacketId::new(b.get_u16());
    let order = b.get_u64();
    let stage = match tag {
        0 => Stage::Queued,
        1 => Stage::Sent(pid?),
        2 => Stage::Released(pid?),
        _ => return None,
    };
    Some((stage, order))
}

/// A cleared retained topic: only its order, so that it beats older sets
/// on other workers at recovery.
pub(crate) fn encode_tombstone(order: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.put_u64(0);
    v.put_u64(order);
    v
}

/// A tombstone's order, if `body` is one.
pub(crate) fn tombstone(mut body: &[u8]) -> Option<u64> {
    (body.len() == 16).then(|| {
        body.advance(8);
        body.get_u64()
    })
}

/// A PUBLISH encoded as MQTT 5 (every property kept) after a 64-bit time
/// and an 8-byte `extra` field.
pub(crate) fn encode_publish(time_ms: u64, extra: u64, publish: &Publish) -> Vec<u8> {
    let mut p = publish.clone();
    p.dup = false;
    // QoS > 0 needs a packet id to encode; it is not kept.
    p.packet_id = (p.qos != QoS::AtMostOnce).then_some(PacketId::MIN);
    let packet = Packet::Publish(p);
    let mut buf =
        BytesMut::with_capacity(16 + tern_codec::encoded_len(&packet, ProtocolVersion::V5));
    buf.put_u64(time_ms);
    buf.put_u64(extra);
    if tern_codec::encode(&packet, ProtocolVersion::V5, &mut buf).is_err() {
        // A message the broker accepted always encodes; keep the time only.
        buf.truncate(16);
    }
    buf.to_vec()
}

/// The inverse of [`encode_publish`]: time, extra, and the PUBLISH (its
/// topic and payload slices of `value`, which is not copied).
pub(crate) fn decode_publish(value: Bytes) -> Result<(u64, u64, Publish), &'static str> {
    let mut b = value;
    if b.len() < 16 {
        return Err("short message record");
    }
    let time = b.get_u64();
    let extra = b.get_u64();
    let mut buf = BytesMut::from(b);
    let mut decoder = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
    match decoder.decode(&mut buf) {
        Ok(Some(Packet::Publish(mut p))) if buf.is_empty() => {
            p.packet_id = None;
            Ok((time, extra, p))
        }
        Ok(_) => Err("message record is not one PUBLISH"),
        Err(_) => Err("message record does not decode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_checksums_catch_damage() {
        let k = key(ENTRY, &[&7u64.to_be_bytes(), &9u64.to_be_bytes()]);
        let e = Entry {
            message: 42,
            qos: QoS::ExactlyOnce,
            retain: true,
            sub_ids: SmallVec::from_slice(&[1, 268_435_455]),
            share: Some("$share/g/a/+".into()),
        };
        let sealed = seal(&k, e.encode());
        let body = open(&k, &sealed).unwrap();
        assert_eq!(Entry::decode(body), Some(e));
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        assert!(open(&k, &bad).is_none(), "a flipped bit");
        assert!(open(b"Qother", &sealed).is_none(), "under another key");
        assert!(open(&k, &sealed[..3]).is_none(), "truncated");
        let stage = Stage::Released(PacketId::new(513).unwrap());
        assert_eq!(decode_stage(&encode_stage(stage, 77)), Some((stage, 77)));
        assert_eq!(tombstone(&encode_tombstone(9)), Some(9));

        let meta = SessionMeta {
            number: 3,
            expiry_interval: u32::MAX,
            closed_at_ms: 1_700_000_000_000,
            last_packet_id: 65535,
            order: 12,
        };
        assert_eq!(SessionMeta::decode(&meta.encode()), Some(meta));
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            retain_handling: RetainHandling::Never,
        };
        for id in [None, Some(5)] {
            assert_eq!(
                decode_options(&encode_options(&options, id)),
                Some((options, id))
            );
        }
    }

    #[test]
    fn a_publish_keeps_its_properties_and_payload() {
        let mut p = Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b".into(),
            packet_id: PacketId::new(9),
            properties: Default::default(),
            payload: Bytes::from_static(b"hello"),
        };
        p.properties.message_expiry_interval = Some(30);
        p.properties.content_type = Some("text/plain".into());
        p.properties.user_properties = vec![("k".into(), "v".into())];
        let v = encode_publish(5, 6, &p);
        let (t, x, back) = decode_publish(Bytes::from(v)).unwrap();
        assert_eq!((t, x), (5, 6));
        assert_eq!(back.topic, p.topic);
        assert_eq!(back.payload, p.payload);
        assert_eq!(back.properties, p.properties);
        assert_eq!(
            (back.qos, back.retain, back.dup, back.packet_id),
            (p.qos, true, false, None)
        );
        assert!(decode_publish(Bytes::from_static(b"short")).is_err());
    }
}
