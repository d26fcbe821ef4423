//! The few MQTT 3.1.1 / 5.0 packets a load generator needs: tiny encoders that
//! append to a reused `Vec<u8>`, a pre-encoded PUBLISH template patched in
//! place, and a streaming parser that never allocates.
//!
//! v5 packets are written with property length 0. Incoming v5 properties are
//! skipped, except the CONNACK limits the generator must respect.

use thiserror::Error;

/// MQTT packet types (high nibble of the first byte).
pub(crate) mod ptype {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const CONNACK: u8 = 2;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const SUBACK: u8 = 9;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const PINGRESP: u8 = 13;
    pub(crate) const DISCONNECT: u8 = 14;
}

/// Largest remaining length MQTT can express (four varint bytes).
pub(crate) const MAX_REMAINING: usize = 268_435_455;

/// Bytes at the start of every payload: timestamp (8), publisher (4), sequence (4).
pub(crate) const STAMP_LEN: usize = 16;

/// A malformed frame from the broker.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("[MQTT-1.5.5-1] remaining length uses more than four bytes")]
    BadVarint,
    #[error("packet type {0} truncated: remaining length too short for its fields")]
    Truncated(u8),
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    BadQos,
    #[error("malformed v5 property 0x{0:02x}")]
    BadProperty(u8),
}

/// What the send side stamps into the first 16 payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// CLOCK_MONOTONIC nanoseconds when the frame was queued for writing.
    pub(crate) ts_ns: u64,
    /// Publisher index within the run.
    pub(crate) publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub(crate) seq: u32,
}

impl Stamp {
    fn read(p: &[u8]) -> Option<Self> {
        let ts = p.get(0..8)?;
        let publisher = p.get(8..12)?;
        let seq = p.get(12..16)?;
        Some(Self {
            ts_ns: u64::from_be_bytes(ts.try_into().ok()?),
            publisher: u32::from_be_bytes(publisher.try_into().ok()?),
            seq: u32::from_be_bytes(seq.try_into().ok()?),
        })
    }
}

/// An incoming PUBLISH, reduced to what the generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) qos: u8,
    pub(crate) dup: bool,
    pub(crate) retain: bool,
    /// 0 for QoS 0.
    pub(crate) pid: u16,
    pub(crate) topic_len: usize,
    pub(crate) payload_len: usize,
    /// `None` if the payload is shorter than [`STAMP_LEN`].
    pub(crate) stamp: Option<Stamp>,
}

/// Limits a v5 CONNACK may impose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnAckProps {
    pub(crate) receive_max: Option<u16>,
    pub(crate) max_qos: Option<u8>,
    pub(crate) max_packet_size: Option<u32>,
}

/// One parsed frame. Owns no buffer memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    ConnAck {
        session_present: bool,
        code: u8,
        props: ConnAckProps,
    },
    Publish(Incoming),
    PubAck {
        pid: u16,
        code: u8,
    },
    PubRec {
        pid: u16,
        code: u8,
    },
    PubRel {
        pid: u16,
        code: u8,
    },
    PubComp {
        pid: u16,
        code: u8,
    },
    /// First reason code only (the generator subscribes one filter at a time).
    SubAck {
        pid: u16,
        code: u8,
    },
    PingResp,
    Disconnect {
        code: u8,
    },
    Other {
        packet_type: u8,
    },
}

/// Fixed header: `(first byte, header length, remaining length)`, or `None`
/// while fewer bytes than the header are buffered.
pub(crate) fn header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((first, 2 + i, value)));
        }
    }
    Err(FrameError::BadVarint)
}

/// Parse one complete frame from the front of `buf`. `Ok(None)` means more
/// bytes are needed (nothing is consumed); otherwise returns the frame and the
/// number of bytes it occupied.
pub(crate) fn parse(buf: &[u8], v5: bool) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some((first, hlen, rlen)) = header(buf)? else {
        return Ok(None);
    };
    let total = hlen + rlen;
    let Some(body) = buf.get(hlen..total) else {
        return Ok(None);
    };
    let kind = first >> 4;
    let mut r = Reader {
        buf: body,
        pos: 0,
        kind,
    };
    let frame = match kind {
        ptype::CONNACK => {
            let flags = r.u8()?;
            let code = r.u8()?;
            let props = if v5 && r.remaining() > 0 {
                connack_props(&mut r)?
            } else {
                ConnAckProps::default()
            };
            Frame::ConnAck {
                session_present: flags & 1 == 1,
                code,
                props,
            }
        }
        ptype::PUBLISH => {
            let qos = (first >> 1) & 3;
            if qos == 3 {
                return Err(FrameError::BadQos);
            }
            let topic_len = usize::from(r.u16()?);
            r.skip(topic_len)?;
            let pid = if qos > 0 { r.u16()? } else { 0 };
            if v5 {
                let plen = r.varint()?;
                r.skip(plen)?;
            }
            let payload = &body[r.pos..];
            Frame::Publish(Incoming {
                qos,
                dup: first & 0x08 != 0,
                retain: first & 0x01 != 0,
                pid,
                topic_len,
                payload_len: payload.len(),
                stamp: Stamp::read(payload),
            })
        }
        ptype::PUBACK | ptype::PUBREC | ptype::PUBREL | ptype::PUBCOMP => {
            let pid = r.u16()?;
            // v5: reason code and properties are optional; absent means 0x00.
            let code = if v5 && r.remaining() > 0 { r.u8()? } else { 0 };
            match kind {
                ptype::PUBACK => Frame::PubAck { pid, code },
                ptype::PUBREC => Frame::PubRec { pid, code },
                ptype::PUBREL => Frame::PubRel { pid, code },
                _ => Frame::PubComp { pid, code },
            }
        }
        ptype::SUBACK => {
            let pid = r.u16()?;
            if v5 {
                let plen = r.varint()?;
                r.skip(plen)?;
            }
            Frame::SubAck { pid, code: r.u8()? }
        }
        ptype::PINGRESP => Frame::PingResp,
        ptype::DISCONNECT => Frame::Disconnect {
            code: if r.remaining() > 0 { r.u8()? } else { 0 },
        },
        other => Frame::Other { packet_type: other },
    };
    Ok(Some((frame, total)))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: u8,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(FrameError::Truncated(self.kind))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(FrameError::Truncated(self.kind))?;
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), FrameError> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn varint(&mut self) -> Result<usize, FrameError> {
        let mut value = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            value |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FrameError::BadVarint)
    }
}

/// Walk the CONNACK property list (MQTT 5.0 §2.2.2.2), keeping the limits.
fn connack_props(r: &mut Reader<'_>) -> Result<ConnAckProps, FrameError> {
    let len = r.varint()?;
    let end = r.pos + len;
    if end > r.buf.len() {
        return Err(FrameError::Truncated(r.kind));
    }
    let mut props = ConnAckProps::default();
    while r.pos < end {
        let id = r.u8()?;
        match id {
            0x21 => props.receive_max = Some(r.u16()?),
            0x24 => props.max_qos = Some(r.u8()?),
            0x27 => props.max_packet_size = Some(r.u32()?),
            0x01 | 0x17 | 0x19 | 0x25 | 0x28 | 0x29 | 0x2A => r.skip(1)?,
            0x13 | 0x22 | 0x23 => r.skip(2)?,
            0x02 | 0x11 | 0x18 => r.skip(4)?,
            0x0B => {
                r.varint()?;
            }
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                let n = usize::from(r.u16()?);
                r.skip(n)?;
            }
            0x26 => {
                for _ in 0..2 {
                    let n = usize::from(r.u16()?);
                    r.skip(n)?;
                }
            }
            other => return Err(FrameError::BadProperty(other)),
        }
    }
    if r.pos != end {
        return Err(FrameError::Truncated(r.kind));
    }
    Ok(props)
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            break;
        }
    }
}

fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Callers keep strings short (client ids, topics); checked in config.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// CONNECT with a clean session/clean start, no will, no credentials.
pub(crate) fn connect(
    out: &mut Vec<u8>,
    v5: bool,
    client_id: &[u8],
    keep_alive: u16,
    persistent: bool,
) {
    // v5 properties: none, or a Session Expiry Interval (0x11) of 3600 s.
    let props: &[u8] = match (v5, persistent) {
        (false, _) => &[],
        (true, false) => &[0],
        (true, true) => &[5, 0x11, 0, 0, 0x0E, 0x10],
    };
    let rlen = 10 + props.len() + 2 + client_id.len();
    out.push(ptype::CONNECT << 4);
    put_varint(out, rlen);
    put_str(out, b"MQTT");
    out.push(if v5 { 5 } else { 4 });
    // Clean Session / Clean Start, unless the session is to persist.
    out.push(if persistent { 0 } else { 0x02 });
    out.extend_from_slice(&keep_alive.to_be_bytes());
    out.extend_from_slice(props);
    put_str(out, client_id);
}

/// SUBSCRIBE to one filter at `qos` (v5 options: no-local 0, retain-as-published 0).
pub(crate) fn subscribe(out: &mut Vec<u8>, v5: bool, pid: u16, filter: &[u8], qos: u8) {
    let rlen = 2 + usize::from(v5) + 2 + filter.len() + 1;
    out.push((ptype::SUBSCRIBE << 4) | 0x02);
    put_varint(out, rlen);
    out.extend_from_slice(&pid.to_be_bytes());
    if v5 {
        out.push(0);
    }
    put_str(out, filter);
    out.push(qos);
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP with success (4 bytes in both versions).
pub(crate) fn ack(out: &mut Vec<u8>, kind: u8, pid: u16) {
    let flags = if kind == ptype::PUBREL { 0x02 } else { 0 };
    let [hi, lo] = pid.to_be_bytes();
    out.extend_from_slice(&[(kind << 4) | flags, 2, hi, lo]);
}

/// PINGREQ.
pub(crate) fn pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[ptype::PINGREQ << 4, 0]);
}

/// DISCONNECT (v5: remaining length 0 means reason 0x00, normal disconnection).
pub(crate) fn disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[ptype::DISCONNECT << 4, 0]);
}

/// A PUBLISH encoded once; each send copies it and patches the packet id and
/// the payload stamp in place.
#[derive(Debug, Clone)]
pub(crate) struct PublishTemplate {
    bytes: Vec<u8>,
    pid_at: Option<usize>,
    stamp_at: usize,
}

impl PublishTemplate {
    /// Build the frame for `topic` with a `payload_len`-byte payload
    /// (at least [`STAMP_LEN`]; the rest is a fixed filler pattern).
    pub(crate) fn new(v5: bool, qos: u8, topic: &[u8], payload_len: usize, publisher: u32) -> Self {
        let payload_len = payload_len.max(STAMP_LEN);
        let pid_len = if qos > 0 { 2 } else { 0 };
        let rlen = 2 + topic.len() + pid_len + usize::from(v5) + payload_len;
        let mut bytes = Vec::with_capacity(1 + varint_len(rlen) + rlen);
        bytes.push((ptype::PUBLISH << 4) | (qos << 1));
        put_varint(&mut bytes, rlen);
        put_str(&mut bytes, topic);
        let pid_at = (qos > 0).then(|| {
            let at = bytes.len();
            bytes.extend_from_slice(&[0, 1]);
            at
        });
        if v5 {
            bytes.push(0);
        }
        let stamp_at = bytes.len();
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&publisher.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend((0..payload_len - STAMP_LEN).map(|i| b'a' + (i % 26) as u8));
        Self {
            bytes,
            pid_at,
            stamp_at,
        }
    }

    /// Encoded size of one frame.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Append one frame to `out`, patched with `pid` (ignored at QoS 0),
    /// timestamp and sequence number. Allocation-free when `out` has capacity.
    pub(crate) fn write(&self, out: &mut Vec<u8>, pid: u16, ts_ns: u64, seq: u32) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let frame = &mut out[start..];
        if let Some(at) = self.pid_at {
            frame[at..at + 2].copy_from_slice(&pid.to_be_bytes());
        }
        let s = self.stamp_at;
        frame[s..s + 8].copy_from_slice(&ts_ns.to_be_bytes());
        frame[s + 12..s + 16].copy_from_slice(&seq.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8], v5: bool) -> Frame {
        let (f, n) = parse(buf, v5).unwrap().unwrap();
        assert_eq!(n, buf.len());
        f
    }

    /// Every strict prefix is incomplete; the full buffer parses to `expect`.
    fn check_partials(buf: &[u8], v5: bool, expect: Frame) {
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut], v5), Ok(None), "prefix of {cut} bytes");
        }
        assert_eq!(one(buf, v5), expect);
    }

    #[test]
    fn publish_template_roundtrips_every_version_and_qos() {
        for v5 in [false, true] {
            for qos in 0..=2u8 {
                let t = PublishTemplate::new(v5, qos, b"bench/fan", 100, 7);
                let mut out = Vec::new();
                t.write(&mut out, 513, 123_456_789, 42);
                assert_eq!(out.len(), t.len());
                let stamp = Stamp {
                    ts_ns: 123_456_789,
                    publisher: 7,
                    seq: 42,
                };
                let expect = Frame::Publish(Incoming {
                    qos,
                    dup: false,
                    retain: false,
                    pid: if qos > 0 { 513 } else { 0 },
                    topic_len: 9,
                    payload_len: 100,
                    stamp: Some(stamp),
                });
                check_partials(&out, v5, expect);
            }
        }
    }

    #[test]
    fn large_publish_uses_multi_byte_remaining_length() {
        let t = PublishTemplate::new(false, 1, b"t", 20_000, 0);
        let mut out = Vec::new();
        t.write(&mut out, 1, 5, 6);
        assert_eq!(header(&out).unwrap(), Some((0x32, 4, 20_000 + 2 + 1 + 2)));
        let Frame::Publish(inc) = one(&out, false) else {
            panic!("not a publish")
        };
        assert_eq!(inc.payload_len, 20_000);
        assert_eq!(inc.stamp.unwrap().seq, 6);
    }

    #[test]
    fn several_frames_back_to_back_parse_in_order() {
        let mut buf = Vec::new();
        ack(&mut buf, ptype::PUBACK, 1);
        pingreq(&mut buf); // PINGREQ is not a client-received type: Other
        ack(&mut buf, ptype::PUBCOMP, 2);
        let (f1, n1) = parse(&buf, false).unwrap().unwrap();
        let (f2, n2) = parse(&buf[n1..], false).unwrap().unwrap();
        let (f3, n3) = parse(&buf[n1 + n2..], false).unwrap().unwrap();
        assert_eq!(f1, Frame::PubAck { pid: 1, code: 0 });
        assert_eq!(
            f2,
            Frame::Other {
                packet_type: ptype::PINGREQ
            }
        );
        assert_eq!(f3, Frame::PubComp { pid: 2, code: 0 });
        assert_eq!(n1 + n2 + n3, buf.len());
    }

    #[test]
    fn acks_of_all_four_kinds_v3_and_v5() {
        for (kind, pid) in [
            (ptype::PUBACK, 1u16),
            (ptype::PUBREC, 300),
            (ptype::PUBREL, 65535),
            (ptype::PUBCOMP, 9),
        ] {
            let mut b = Vec::new();
            ack(&mut b, kind, pid);
            let expect = match kind {
                ptype::PUBACK => Frame::PubAck { pid, code: 0 },
                ptype::PUBREC => Frame::PubRec { pid, code: 0 },
                ptype::PUBREL => Frame::PubRel { pid, code: 0 },
                _ => Frame::PubComp { pid, code: 0 },
            };
            check_partials(&b, false, expect);
            check_partials(&b, true, expect);
        }
        // v5 with reason code and a reason-string property.
        let b = [0x40, 8, 0, 5, 0x10, 4, 0x1f, 0, 1, b'x'];
        assert_eq!(one(&b, true), Frame::PubAck { pid: 5, code: 0x10 });
        // v5 PUBREC with only a reason code (0x80 unspecified error).
        assert_eq!(
            one(&[0x50, 3, 0, 6, 0x80], true),
            Frame::PubRec { pid: 6, code: 0x80 }
        );
    }

    #[test]
    fn connack_v3_and_v5_with_limits() {
        check_partials(
            &[0x20, 2, 1, 0],
            false,
            Frame::ConnAck {
                session_present: true,
                code: 0,
                props: ConnAckProps::default(),
            },
        );
        // v5: receive max 20, max qos 1, max packet size 1024, assigned client id "ab",
        // user property ("k","v"), topic alias max 10.
        let props: Vec<u8> = [
            &[0x21, 0, 20][..],
            &[0x24, 1],
            &[0x27, 0, 0, 4, 0],
            &[0x12, 0, 2, b'a', b'b'],
            &[0x26, 0, 1, b'k', 0, 1, b'v'],
            &[0x22, 0, 10],
        ]
        .concat();
        let mut b = vec![0x20, (2 + 1 + props.len()) as u8, 0, 0, props.len() as u8];
        b.extend_from_slice(&props);
        check_partials(
            &b,
            true,
            Frame::ConnAck {
                session_present: false,
                code: 0,
                props: ConnAckProps {
                    receive_max: Some(20),
                    max_qos: Some(1),
                    max_packet_size: Some(1024),
                },
            },
        );
        // Refusal in v3 (not authorised).
        assert_eq!(
            one(&[0x20, 2, 0, 5], false),
            Frame::ConnAck {
                session_present: false,
                code: 5,
                props: ConnAckProps::default()
            }
        );
        // Unknown property id is malformed.
        assert_eq!(
            parse(&[0x20, 5, 0, 0, 2, 0x7f, 0], true),
            Err(FrameError::BadProperty(0x7f))
        );
    }

    #[test]
    fn suback_pingresp_disconnect() {
        check_partials(
            &[0x90, 3, 0, 1, 1],
            false,
            Frame::SubAck { pid: 1, code: 1 },
        );
        check_partials(
            &[0x90, 4, 0, 2, 0, 0x80],
            true,
            Frame::SubAck { pid: 2, code: 0x80 },
        );
        check_partials(&[0xd0, 0], false, Frame::PingResp);
        check_partials(&[0xe0, 0], true, Frame::Disconnect { code: 0 });
        check_partials(&[0xe0, 2, 0x8b, 0], true, Frame::Disconnect { code: 0x8b });
    }

    #[test]
    fn v5_publish_properties_are_skipped() {
        // topic "a", qos 1, pid 3, properties: message expiry 4 bytes, then 16-byte stamp.
        let mut b = vec![0x32, 0, 0, 1, b'a', 0, 3, 5, 0x02, 0, 0, 0, 9];
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b[1] = (b.len() - 2) as u8;
        let Frame::Publish(inc) = one(&b, true) else {
            panic!("not a publish")
        };
        assert_eq!((inc.qos, inc.pid, inc.payload_len), (1, 3, 16));
        assert_eq!(
            inc.stamp,
            Some(Stamp {
                ts_ns: 7,
                publisher: 1,
                seq: 2
            })
        );
    }

    #[test]
    fn short_payload_has_no_stamp_and_flags_are_read() {
        let b = [0x39, 6, 0, 1, b't', 0, 9, b'x'];
        let Frame::Publish(inc) = one(&b, false) else {
            panic!("not a publish")
        };
        assert!(inc.dup && inc.retain);
        assert_eq!(
            (inc.qos, inc.pid, inc.payload_len, inc.stamp),
            (0, 0, 3, None)
        );
        // The same bytes as QoS 0 without the dup flag: "\0\x09x" is payload.
        let b = [0x30, 6, 0, 1, b't', 0, 9, b'x'];
        let Frame::Publish(inc) = one(&b, false) else {
            panic!("not a publish")
        };
        assert_eq!(inc.payload_len, 3);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(
            parse(&[0x30, 0xff, 0xff, 0xff, 0xff, 0], false),
            Err(FrameError::BadVarint)
        );
        assert_eq!(
            parse(&[0x36, 3, 0, 1, b't'], false),
            Err(FrameError::BadQos)
        );
        // Topic length points past the end of the frame.
        assert_eq!(
            parse(&[0x30, 3, 0, 9, b't'], false),
            Err(FrameError::Truncated(ptype::PUBLISH))
        );
        assert_eq!(
            parse(&[0x40, 1, 0], false),
            Err(FrameError::Truncated(ptype::PUBACK))
        );
    }

    #[test]
    fn encoders_produce_spec_bytes() {
        let mut b = Vec::new();
        connect(&mut b, false, b"c1", 60, false);
        assert_eq!(
            b,
            [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 2, b'c', b'1']
        );
        b.clear();
        connect(&mut b, true, b"c1", 60, false);
        assert_eq!(
            b,
            [0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 2, b'c', b'1']
        );
        b.clear();
        // Persistent: Clean Start 0 and Session Expiry Interval 3600.
        connect(&mut b, true, b"c1", 60, true);
        assert_eq!(
            b,
            [
                0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 5, 0, 0, 60, 5, 0x11, 0, 0, 0x0E, 0x10, 0,
                2, b'c', b'1'
            ]
        );
        b.clear();
        subscribe(&mut b, false, 1, b"a/#", 2);
        assert_eq!(b, [0x82, 8, 0, 1, 0, 3, b'a', b'/', b'#', 2]);
        b.clear();
        subscribe(&mut b, true, 1, b"a", 1);
        assert_eq!(b, [0x82, 7, 0, 1, 0, 0, 1, b'a', 1]);
        b.clear();
        ack(&mut b, ptype::PUBREL, 0x0102);
        assert_eq!(b, [0x62, 2, 1, 2]);
        b.clear();
        disconnect(&mut b);
        pingreq(&mut b);
        assert_eq!(b, [0xe0, 0, 0xc0, 0]);
    }

    #[test]
    fn varint_encoding_matches_length_table() {
        for v in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING,
        ] {
            let mut b = vec![0x30];
            put_varint(&mut b, v);
            assert_eq!(b.len() - 1, varint_len(v));
            let (_, hlen, rlen) = header(&b).unwrap().unwrap();
            assert_eq!((hlen, rlen), (1 + varint_len(v), v));
        }
    }
}
