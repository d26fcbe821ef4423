//! Zero-copy PUBLISH fan-out.
//!
//! A [`PublishTemplate`] is built once per message and protocol version. For
//! each receiver, [`PublishTemplate::write_header`] writes only the fixed
//! header and variable header (topic, packet id, v5 properties); the caller
//! then sends `publish.payload.clone()` as a separate chunk (vectored write),
//! so the payload is never copied.
//!
//! Fast path: when a delivery adds no per-receiver v5 property (no
//! subscription identifiers, no topic alias, message expiry unchanged), the
//! header is one copy of a pre-encoded layout (one for QoS 0, one for QoS > 0
//! with a packet identifier placeholder) plus patching the first byte
//! (DUP/QoS/RETAIN) and the two packet identifier bytes.
//!
//! v5 forwarding: the incoming properties are forwarded in order, except the
//! incoming Topic Alias and Subscription Identifiers (which belong to the
//! publisher's connection); the delivery supplies the receiver's Topic Alias,
//! Subscription Identifiers and remaining Message Expiry Interval.

#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};
use bytestring::ByteString;
use std::num::NonZeroU16;

use crate::encode::{check_publish_flags, check_remaining, publish_byte1};
use crate::error::EncodeError;
use crate::properties::encode::{visit_publish_dynamic, visit_publish_static, Counter, Writer};
use crate::types::{PacketId, ProtocolVersion, Publish, QoS};
use crate::wire::{field_len, put_field, put_varint, varint_len};

/// How one receiver gets a message: the per-receiver fields of its PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Delivery QoS.
    pub qos: QoS,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// DUP flag (re-delivery only, never at QoS 0).
    pub dup: bool,
    /// RETAIN flag as sent to this receiver.
    pub retain: bool,
    /// v5: the topic alias to send (0 is not representable).
    pub topic_alias: Option<NonZeroU16>,
    /// v5: send an empty topic name (the receiver already knows `topic_alias`).
    pub omit_topic: bool,
    /// v5: subscription identifiers of the matching subscriptions.
    pub subscription_identifiers: &'a [u32],
    /// v5: the remaining message expiry interval; `None` forwards the original.
    pub message_expiry_interval: Option<u32>,
}

impl Delivery<'_> {
    /// A delivery without any per-receiver v5 property.
    pub fn simple(
        qos: QoS,
        packet_id: Option<PacketId>,
        dup: bool,
        retain: bool,
    ) -> Delivery<'static> {
        Delivery {
            qos,
            packet_id,
            dup,
            retain,
            topic_alias: None,
            omit_topic: false,
            subscription_identifiers: &[],
            message_expiry_interval: None,
        }
    }
}

/// Pre-encoded header layouts of one message for one protocol version.
#[derive(Debug, Clone)]
struct Layouts {
    /// The QoS 0 header followed by the QoS > 0 header.
    headers: Vec<u8>,
    /// Length of the QoS 0 header.
    q0_len: usize,
    /// Offset of the packet identifier in the QoS > 0 header.
    pid_offset: usize,
    /// v5: the forwarded properties (no length prefix), copied as one block.
    static_props: Vec<u8>,
    /// v5: the original Message Expiry Interval.
    expiry: Option<u32>,
}

/// Sizes of a slow-path header.
#[derive(Debug, Clone, Copy)]
struct Plan {
    expiry: Option<u32>,
    topic_len: usize,
    props_len: usize,
    remaining: usize,
}

/// The per-message PUBLISH encoder for fan-out (see the module docs).
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    version: ProtocolVersion,
    topic: ByteString,
    payload_len: usize,
    layouts: Result<Layouts, EncodeError>,
}

/// Payload size above which a template copies the topic instead of sharing
/// the buffer it was decoded from.
const COPY_TOPIC_ABOVE: usize = 4096;

impl PublishTemplate {
    /// Pre-encodes the header layouts of `publish` for `version`. `publish`
    /// must carry its topic name (resolve an incoming topic alias first).
    /// Errors (an empty topic, a topic longer than 65,535 bytes) are reported
    /// by `write_header`.
    pub fn new(publish: &Publish, version: ProtocolVersion) -> Self {
        Self {
            version,
            // A topic decoded from a large frame is a slice of that frame: a
            // template kept in a cache must not pin the payload, so it copies.
            topic: if publish.payload.len() > COPY_TOPIC_ABOVE {
                ByteString::from(&*publish.topic)
            } else {
                publish.topic.clone()
            },
            payload_len: publish.payload.len(),
            layouts: build(publish, version),
        }
    }

    /// The protocol version this template encodes for.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Writes the fixed header and variable header of the PUBLISH for
    /// delivery `d` into `dst` (the payload is NOT written) and returns the
    /// total packet length, payload included. `publish` must be the message
    /// the template was built from. Before v5 the v5 fields of `d` are ignored.
    pub fn write_header(
        &self,
        publish: &Publish,
        d: &Delivery<'_>,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let l = self.check(publish, d)?;
        let byte1 = publish_byte1(d.dup, d.qos, d.retain);
        if self.is_fast(l, d) {
            let header = l.header(d.packet_id.is_some());
            let start = dst.len();
            dst.extend_from_slice(header);
            if let Some(b) = dst.get_mut(start) {
                *b = byte1;
            }
            if let Some(id) = d.packet_id {
                let at = start + l.pid_offset;
                if let Some(slot) = dst.get_mut(at..at + 2) {
                    slot.copy_from_slice(&id.get().to_be_bytes());
                }
            }
            return Ok(header.len() + self.payload_len);
        }
        let plan = self.plan(l, d)?;
        let header_len = 1 + varint_len(plan.remaining) + plan.remaining - self.payload_len;
        dst.reserve(header_len);
        dst.put_u8(byte1);
        put_varint(dst, plan.remaining);
        if plan.topic_len == 0 {
            dst.put_u16(0);
        } else {
            put_field(dst, self.topic.as_bytes());
        }
        if let Some(id) = d.packet_id {
            dst.put_u16(id.get());
        }
        put_varint(dst, plan.props_len);
        visit_publish_dynamic(
            &mut Writer(dst),
            plan.expiry,
            d.topic_alias.map(NonZeroU16::get),
            d.subscription_identifiers,
        );
        dst.put_slice(&l.static_props);
        Ok(1 + varint_len(plan.remaining) + plan.remaining)
    }

    /// The total length of the packet `write_header` describes for `d`
    /// (payload included), or `usize::MAX` when it cannot be encoded.
    pub fn packet_len(&self, publish: &Publish, d: &Delivery<'_>) -> usize {
        let Ok(l) = self.check(publish, d) else {
            return usize::MAX;
        };
        if self.is_fast(l, d) {
            return l.header(d.packet_id.is_some()).len() + self.payload_len;
        }
        match self.plan(l, d) {
            Ok(plan) => 1 + varint_len(plan.remaining) + plan.remaining,
            Err(_) => usize::MAX,
        }
    }

    fn check(&self, publish: &Publish, d: &Delivery<'_>) -> Result<&Layouts, EncodeError> {
        let l = self.layouts.as_ref().map_err(Clone::clone)?;
        if publish.payload.len() != self.payload_len || publish.topic.len() != self.topic.len() {
            return Err(EncodeError::TemplateMismatch);
        }
        check_publish_flags(d.qos, d.packet_id.is_some(), d.dup)?;
        Ok(l)
    }

    fn is_fast(&self, l: &Layouts, d: &Delivery<'_>) -> bool {
        !self.version.is_v5()
            || (d.subscription_identifiers.is_empty()
                && d.topic_alias.is_none()
                && !d.omit_topic
                && (d.message_expiry_interval.is_none() || d.message_expiry_interval == l.expiry))
    }

    fn plan(&self, l: &Layouts, d: &Delivery<'_>) -> Result<Plan, EncodeError> {
        if d.omit_topic && d.topic_alias.is_none() {
            return Err(EncodeError::OmitTopicWithoutAlias);
        }
        let expiry = d.message_expiry_interval.or(l.expiry);
        let mut c = Counter::default();
        visit_publish_dynamic(
            &mut c,
            expiry,
            d.topic_alias.map(NonZeroU16::get),
            d.subscription_identifiers,
        );
        let props_len = c.finish()? + l.static_props.len();
        let topic_len = if d.omit_topic { 0 } else { self.topic.len() };
        let pid = if d.packet_id.is_some() { 2 } else { 0 };
        let remaining = check_remaining(
            2 + topic_len + pid + varint_len(props_len) + props_len + self.payload_len,
        )?;
        Ok(Plan {
            expiry,
            topic_len,
            props_len,
            remaining,
        })
    }
}

impl Layouts {
    fn header(&self, with_packet_id: bool) -> &[u8] {
        let (q0, q1) = self.headers.split_at(self.q0_len);
        if with_packet_id {
            q1
        } else {
            q0
        }
    }
}

/// Pre-encodes both header layouts of `publish`.
fn build(publish: &Publish, version: ProtocolVersion) -> Result<Layouts, EncodeError> {
    if publish.topic.is_empty() {
        return Err(EncodeError::EmptyTopic);
    }
    let topic_len = field_len(publish.topic.len())?;
    let mut static_props = Vec::new();
    let mut expiry = None;
    let mut props_block = 0;
    let mut props_len = 0;
    if version.is_v5() {
        let p = &publish.properties;
        let mut c = Counter::default();
        visit_publish_static(&mut c, p);
        let n = c.finish()?;
        static_props.reserve_exact(n);
        visit_publish_static(&mut Writer(&mut static_props), p);
        expiry = p.message_expiry_interval;
        props_len = check_remaining(static_props.len() + if expiry.is_some() { 5 } else { 0 })?;
        props_block = varint_len(props_len) + props_len;
    }
    let rem0 = check_remaining(topic_len + props_block + publish.payload.len())?;
    let rem1 = check_remaining(rem0 + 2)?;
    let header_len = |rem: usize| 1 + varint_len(rem) + rem - publish.payload.len();
    let mut headers = Vec::with_capacity(header_len(rem0) + header_len(rem1));
    let mut pid_offset = 0;
    for (rem, with_pid) in [(rem0, false), (rem1, true)] {
        let start = headers.len();
        // The first byte is patched per delivery.
        headers.put_u8(publish_byte1(false, QoS::AtMostOnce, false));
        put_varint(&mut headers, rem);
        put_field(&mut headers, publish.topic.as_bytes());
        if with_pid {
            pid_offset = headers.len() - start;
            headers.put_u16(0);
        }
        if version.is_v5() {
            put_varint(&mut headers, props_len);
            visit_publish_dynamic(&mut Writer(&mut headers), expiry, None, &[]);
            headers.put_slice(&static_props);
        }
    }
    Ok(Layouts {
        q0_len: header_len(rem0),
        headers,
        pid_offset,
        static_props,
        expiry,
    })
}
