//! Framing, server-side version detection, zero-copy and byte vectors.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::samples::{decode_v, enc, frame, pid, publish, s, samples, V};
use crate::types::*;

#[test]
fn every_prefix_of_a_frame_is_incomplete_and_untouched() {
    for v in V {
        for packet in samples(v) {
            let bytes = enc(&packet, v);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                let before = buf.clone();
                let mut d = Decoder::with_version(v, u32::MAX);
                assert_eq!(d.decode(&mut buf), Ok(None), "{v:?} {packet:?} cut {cut}");
                assert_eq!(buf, before, "{v:?} {packet:?} cut {cut}: buffer changed");
                // Server side: the same holds for a CONNECT prefix.
                if matches!(packet, Packet::Connect(_)) {
                    assert_eq!(Decoder::new(u32::MAX).decode(&mut buf), Ok(None));
                    assert_eq!(buf, before);
                }
            }
        }
    }
}

#[test]
fn a_frame_arriving_byte_by_byte_decodes_once_complete() {
    let v = ProtocolVersion::V5;
    let packet = &samples(v)[1];
    let bytes = enc(packet, v);
    let mut d = Decoder::new(u32::MAX);
    let mut buf = BytesMut::new();
    for (i, b) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let got = d.decode(&mut buf).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(got, None);
        } else {
            assert_eq!(got.as_ref(), Some(packet));
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn oversize_is_rejected_before_the_body_arrives_mqtt_3_2_2_15() {
    // A PUBLISH announcing 1000 bytes of remaining length; only the fixed
    // header has arrived.
    let mut buf = BytesMut::from(&[0x30, 0xE8, 0x07][..]);
    let mut d = Decoder::with_version(ProtocolVersion::V311, 100);
    let err = d.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 1003,
            max: 100
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // The same for a server decoder waiting for CONNECT.
    let mut buf = BytesMut::from(&[0x10, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        Decoder::new(1024).decode(&mut buf),
        Err(DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        })
    );
}

#[test]
fn max_packet_size_counts_the_whole_packet() {
    let v = ProtocolVersion::V311;
    let bytes = enc(&Packet::Publish(publish(QoS::AtMostOnce, "t", b"12345")), v);
    let size = bytes.len() as u32;
    let mut d = Decoder::with_version(v, size);
    assert_eq!(d.max_packet_size(), size);
    assert!(d.decode(&mut bytes.clone()).unwrap().is_some());
    d.set_max_packet_size(size - 1);
    assert_eq!(
        d.decode(&mut bytes.clone()),
        Err(DecodeError::PacketTooLarge {
            size: u64::from(size),
            max: size - 1
        })
    );
}

#[test]
fn malformed_remaining_length_mqtt_1_5_5_1() {
    for bytes in [
        &[0xC0, 0x80, 0x80, 0x80, 0x80, 0x01][..],
        &[0xC0, 0x80, 0x00],
        &[0x30, 0xFF, 0x80, 0x80, 0x00],
    ] {
        assert_eq!(
            decode_v(ProtocolVersion::V311, bytes),
            Err(DecodeError::MalformedVarInt),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn server_requires_connect_first_mqtt_3_1_0_1() {
    for byte1 in [0x00u8, 0x20, 0x30, 0x82, 0xC0, 0xE0, 0xF0] {
        // Rejected from the first byte, before the rest of the frame.
        let mut buf = BytesMut::from(&[byte1][..]);
        let err = Decoder::new(u32::MAX).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, DecodeError::FirstPacketNotConnect(_)),
            "{byte1:#x}: {err}"
        );
        assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
    }
    // Garbage such as an HTTP request is rejected at once.
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert_eq!(
        Decoder::new(u32::MAX).decode(&mut buf),
        Err(DecodeError::FirstPacketNotConnect("PUBACK"))
    );
}

#[test]
fn connect_fixes_the_version() {
    for v in V {
        let mut d = Decoder::new(u32::MAX);
        assert_eq!(d.version(), None);
        let mut buf = BytesMut::new();
        for p in samples(v).into_iter().skip(1) {
            encode_into(&p, v, &mut buf);
        }
        let mut connect = enc(&samples(v)[0], v);
        connect.extend_from_slice(&buf);
        let mut buf = connect;
        assert!(matches!(d.decode(&mut buf), Ok(Some(Packet::Connect(_)))));
        assert_eq!(d.version(), Some(v));
        // Everything after it decodes at that version (a second CONNECT too:
        // rejecting it is the session's job [MQTT-3.1.0-2]).
        for p in samples(v).into_iter().skip(1) {
            assert_eq!(d.decode(&mut buf).unwrap(), Some(p));
        }
        assert_eq!(d.version(), Some(v));
    }
}

fn encode_into(p: &Packet, v: ProtocolVersion, buf: &mut BytesMut) {
    crate::encode(p, v, buf).unwrap();
}

#[test]
fn unsupported_protocol_is_distinguishable_mqtt_3_1_2_1_and_2() {
    let cases: [(&[u8], u8, bool); 6] = [
        (b"MQTT", 3, true),
        (b"MQTT", 6, true),
        (b"MQIsdp", 4, true),
        (b"MQIsdp", 5, true),
        (b"HTTP", 4, false),
        (b"mqtt", 4, false),
    ];
    for (name, level, name_ok) in cases {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, 0x02, 0x00, 0x3C, 0x00, 0x01, b'a']);
        let mut buf = frame(0x10, &body);
        let mut d = Decoder::new(u32::MAX);
        let err = d.decode(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedProtocol { name_ok, level });
        assert_eq!(err.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(d.version(), None);
    }
}

#[test]
fn decoded_fields_are_slices_of_the_read_buffer() {
    for v in V {
        let mut p = publish(QoS::AtLeastOnce, "some/topic", b"the payload bytes");
        if v.is_v5() {
            p.properties.correlation_data = Some(Bytes::from_static(b"corr"));
        }
        let mut buf = BytesMut::with_capacity(4096);
        buf.extend_from_slice(&enc(&Packet::Publish(p), v));
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Some(Packet::Publish(got)) =
            Decoder::with_version(v, u32::MAX).decode(&mut buf).unwrap()
        else {
            panic!("not a PUBLISH");
        };
        assert!(range.contains(&(got.topic.as_bytes().as_ptr() as usize)));
        assert!(range.contains(&(got.payload.as_ptr() as usize)));
        assert_eq!(got.payload.as_ptr() as usize + got.payload.len(), range.end);
        if let Some(c) = &got.properties.correlation_data {
            assert!(range.contains(&(c.as_ptr() as usize)));
        }
    }
}

#[test]
fn byte_vectors_decode() {
    use ProtocolVersion::*;
    let connect =
        b"\x10\x19\x00\x04MQTT\x04\xce\x00\x0a\x00\x01c\x00\x01w\x00\x01m\x00\x01u\x00\x01p";
    let Ok(Some(Packet::Connect(c))) = decode_v(V311, connect) else {
        panic!("CONNECT")
    };
    assert_eq!(c.protocol, V311);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(&*c.client_id, "c");
    let w = c.will.as_ref().unwrap();
    assert_eq!(
        (&*w.topic, &w.payload[..], w.qos, w.retain),
        ("w", &b"m"[..], QoS::AtLeastOnce, false)
    );
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));

    let cases: Vec<(ProtocolVersion, &[u8], Packet)> = vec![
        (
            V311,
            b"\x20\x02\x01\x00",
            Packet::ConnAck(ConnAck {
                session_present: true,
                ..Default::default()
            }),
        ),
        (
            V311,
            b"\x20\x02\x00\x03",
            Packet::ConnAck(ConnAck {
                code: ReasonCode::SERVER_UNAVAILABLE,
                ..Default::default()
            }),
        ),
        (
            V5,
            b"\x20\x03\x00\x00\x00",
            Packet::ConnAck(ConnAck::default()),
        ),
        (V311, b"\x3b\x08\x00\x01a\x00\x05hi\x00", {
            Packet::Publish(Publish {
                dup: true,
                retain: true,
                packet_id: Some(pid(5)),
                ..publish(QoS::AtLeastOnce, "a", b"hi\x00")
            })
        }),
        (
            V5,
            b"\x30\x04\x00\x01a\x00",
            Packet::Publish(publish(QoS::AtMostOnce, "a", b"")),
        ),
        (
            V311,
            b"\x50\x02\x00\x09",
            Packet::PubRec(PubResp::new(pid(9))),
        ),
        (
            V5,
            b"\x70\x03\x00\x09\x92",
            Packet::PubComp(PubResp {
                reason: ReasonCode(0x92),
                ..PubResp::new(pid(9))
            }),
        ),
        (
            V5,
            b"\xe0\x01\x04",
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::DISCONNECT_WITH_WILL,
                ..Default::default()
            }),
        ),
        (V5, b"\xe0\x00", Packet::Disconnect(Disconnect::default())),
        (V5, b"\xf0\x00", Packet::Auth(Auth::default())),
        (
            V311,
            b"\xb0\x02\x00\x01",
            Packet::UnsubAck(UnsubAck {
                packet_id: pid(1),
                reasons: vec![],
                properties: Default::default(),
            }),
        ),
        (
            V31,
            b"\xa2\x05\x00\x02\x00\x01#",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(2),
                filters: vec![s("#")],
                user_properties: vec![],
            }),
        ),
    ];
    for (v, bytes, want) in cases {
        assert_eq!(decode_v(v, bytes), Ok(Some(want)), "{v:?} {bytes:02x?}");
    }
}

#[test]
fn empty_client_id_is_decoded_in_every_version() {
    // 3.1.1 allows it; the 3.1 length rule is checked by the session.
    for (name, level) in [(&b"MQIsdp"[..], 3u8), (b"MQTT", 4), (b"MQTT", 5)] {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, 0x02, 0x00, 0x3C]);
        if level == 5 {
            body.push(0);
        }
        body.extend_from_slice(&[0x00, 0x00]);
        let got = Decoder::new(u32::MAX).decode(&mut frame(0x10, &body));
        let Ok(Some(Packet::Connect(c))) = got else {
            panic!("{got:?}")
        };
        assert!(c.client_id.is_empty());
    }
}

#[test]
fn connect_protocol_is_known_even_when_connect_fails() {
    // A v5 CONNECT with the reserved flag set [MQTT5-3.1.2-3]: the broker may
    // still answer with a v5 CONNACK 0x81.
    let mut d = Decoder::new(u32::MAX);
    let bad = frame(0x10, b"\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01a");
    assert_eq!(
        d.decode(&mut bad.clone()),
        Err(DecodeError::ConnectReservedFlag)
    );
    assert_eq!(
        (d.version(), d.connect_protocol()),
        (None, Some(ProtocolVersion::V5))
    );
    // An unknown level names no protocol.
    let mut d = Decoder::new(u32::MAX);
    let unknown = frame(0x10, b"\x00\x04MQTT\x07\x02\x00\x3c\x00\x01a");
    assert!(d.decode(&mut unknown.clone()).is_err());
    assert_eq!(d.connect_protocol(), None);
    // A truncated protocol name neither.
    assert!(d.decode(&mut frame(0x10, b"\x00\x04MQ")).is_err());
    assert_eq!(d.connect_protocol(), None);
    // Success sets both.
    let mut d = Decoder::new(u32::MAX);
    let ok = enc(&samples(ProtocolVersion::V31)[0], ProtocolVersion::V31);
    assert!(d.decode(&mut ok.clone()).unwrap().is_some());
    assert_eq!(
        (d.version(), d.connect_protocol()),
        (Some(ProtocolVersion::V31), Some(ProtocolVersion::V31))
    );
}

/// The general path on its own: what `decode_short_ack` must agree with.
fn decode_general(v: ProtocolVersion, frame: &[u8]) -> Result<Packet, DecodeError> {
    check_first_byte(frame[0], v)?;
    decode_body(frame[0], Bytes::copy_from_slice(&frame[2..]), v)
}

#[test]
fn short_acks_take_the_fast_path_and_match_the_general_decoder() {
    for v in V {
        for byte1 in [0x40u8, 0x50, 0x62, 0x70] {
            for id in [1u16, 0x00FF, 0x0100, 0xFFFF] {
                let [hi, lo] = id.to_be_bytes();
                let frame = [byte1, 2, hi, lo];
                let mut buf = BytesMut::from(&frame[..]);
                buf.extend_from_slice(b"\xc0\x00"); // a PINGREQ behind it
                let d = Decoder::with_version(v, u32::MAX);
                let fast = d.decode_short_ack(&mut buf);
                assert!(fast.is_some(), "{v:?} {frame:?} missed the fast path");
                assert_eq!(&buf[..], b"\xc0\x00", "exactly one frame consumed");
                assert_eq!(
                    fast.ok_or(DecodeError::PacketIdZero),
                    decode_general(v, &frame)
                );
            }
        }
    }
}

#[test]
fn short_ack_fast_path_leaves_everything_else_to_the_general_path() {
    let v = ProtocolVersion::V5;
    let d = Decoder::with_version(v, u32::MAX);
    let not_fast: [&[u8]; 8] = [
        b"\x40\x02\x00",             // incomplete: general path waits
        b"\x40\x02\x00\x00",         // [MQTT-2.3.1-1] [MQTT5-2.2.1-3] id 0 rejected
        b"\x60\x02\x00\x01",         // PUBREL flags [MQTT-3.6.1-1] [MQTT5-3.6.1-1]
        b"\x42\x02\x00\x01",         // PUBACK with reserved flags
        b"\x40\x03\x00\x01\x10",     // v5 PUBACK with a reason code
        b"\x40\x04\x00\x01\x10\x00", // v5 PUBACK with a property length
        b"\xb0\x02\x00\x01",         // UNSUBACK
        b"\x30\x02\x00\x01",         // PUBLISH
    ];
    for bytes in not_fast {
        let mut buf = BytesMut::from(bytes);
        assert_eq!(d.decode_short_ack(&mut buf), None, "{bytes:?}");
        assert_eq!(&buf[..], bytes, "untouched");
    }
    // Before CONNECT nothing but CONNECT is accepted [MQTT-3.1.0-1] [MQTT5-3.1.0-1].
    let mut server = Decoder::new(u32::MAX);
    let mut buf = BytesMut::from(&b"\x40\x02\x00\x01"[..]);
    assert!(matches!(
        server.decode(&mut buf),
        Err(DecodeError::FirstPacketNotConnect(_))
    ));
    // The decoder as a whole: id 0 and wrong flags are still errors.
    let mut d = Decoder::with_version(v, u32::MAX);
    let mut buf = BytesMut::from(&b"\x40\x02\x00\x00"[..]);
    assert_eq!(d.decode(&mut buf), Err(DecodeError::PacketIdZero));
    let mut buf = BytesMut::from(&b"\x60\x02\x00\x01"[..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(DecodeError::InvalidFlags { .. })
    ));
    // A maximum packet size below 4 still rejects a 4-byte ack.
    let mut tiny = Decoder::with_version(v, 3);
    let mut buf = BytesMut::from(&b"\x40\x02\x00\x01"[..]);
    assert!(matches!(
        tiny.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 4, max: 3 })
    ));
}
