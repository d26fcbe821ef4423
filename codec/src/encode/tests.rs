use bytes::{Bytes, BytesMut};

use super::*;
use crate::samples::{decode_v, enc, pid, publish, s, samples, V};
use crate::types::*;
use crate::Decoder;

#[test]
fn every_packet_round_trips_in_every_version() {
    for v in V {
        let packets = samples(v);
        assert_eq!(
            packets
                .iter()
                .map(Packet::name)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            if v.is_v5() { 15 } else { 14 },
            "{v:?} samples cover every packet type"
        );
        for packet in packets {
            let bytes = enc(&packet, v);
            assert_eq!(encoded_len(&packet, v), bytes.len(), "{v:?} {packet:?}");
            let mut buf = bytes.clone();
            let decoded = Decoder::with_version(v, u32::MAX).decode(&mut buf);
            assert_eq!(decoded, Ok(Some(packet.clone())), "{v:?} {bytes:02x?}");
            assert!(
                buf.is_empty(),
                "{v:?} {packet:?} leaves {} bytes",
                buf.len()
            );
        }
    }
}

#[test]
fn all_samples_decode_back_to_back_from_one_buffer() {
    for v in V {
        let packets = samples(v);
        let mut buf = BytesMut::new();
        for p in &packets {
            encode(p, v, &mut buf).unwrap();
        }
        let mut d = Decoder::with_version(v, u32::MAX);
        for p in &packets {
            assert_eq!(d.decode(&mut buf).unwrap().as_ref(), Some(p));
        }
        assert_eq!(d.decode(&mut buf), Ok(None));
    }
}

#[test]
fn connect_is_encoded_at_its_own_protocol_level() {
    for v in V {
        let Packet::Connect(mut c) = samples(v).remove(0) else {
            panic!("first sample is CONNECT")
        };
        c.protocol = v;
        let packet = Packet::Connect(c);
        // The `version` argument is ignored for CONNECT.
        assert_eq!(
            enc(&packet, ProtocolVersion::V5),
            enc(&packet, ProtocolVersion::V31)
        );
        let mut server = Decoder::new(u32::MAX);
        let mut buf = enc(&packet, ProtocolVersion::V311);
        assert_eq!(server.decode(&mut buf), Ok(Some(packet)));
        assert_eq!(server.version(), Some(v));
    }
}

#[test]
fn byte_vectors() {
    use ProtocolVersion::*;
    let connect = |v| {
        Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: true,
            keep_alive: 60,
            client_id: s("a"),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }))
    };
    let q1 = Packet::Publish(Publish {
        packet_id: Some(pid(7)),
        ..publish(QoS::AtLeastOnce, "a/b", b"hi")
    });
    let reason = |r| {
        Packet::PubAck(PubResp {
            reason: r,
            ..PubResp::new(pid(1))
        })
    };
    let reason_string = Packet::PubAck(PubResp {
        properties: AckProperties {
            reason_string: Some(s("x")),
            user_properties: Vec::new(),
        },
        ..PubResp::new(pid(1))
    });
    let sub = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        filters: vec![(
            s("a"),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        )],
        properties: SubscribeProperties::default(),
    });
    let suback = Packet::SubAck(SubAck {
        packet_id: pid(1),
        reasons: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode(0x03),
        ],
        properties: AckProperties::default(),
    });
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: pid(1),
        reasons: vec![ReasonCode::SUCCESS],
        properties: AckProperties::default(),
    });
    let disconnect = |r| {
        Packet::Disconnect(Disconnect {
            reason: r,
            properties: DisconnectProperties::default(),
        })
    };
    let cases: Vec<(Packet, ProtocolVersion, &[u8])> = vec![
        (
            connect(V31),
            V31,
            b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01a",
        ),
        (
            connect(V311),
            V311,
            b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a",
        ),
        (
            connect(V5),
            V5,
            b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01a",
        ),
        (q1.clone(), V311, b"\x32\x09\x00\x03a/b\x00\x07hi"),
        (q1, V5, b"\x32\x0a\x00\x03a/b\x00\x07\x00hi"),
        (
            Packet::Publish(publish(QoS::AtMostOnce, "a", b"hi")),
            V5,
            b"\x30\x06\x00\x01a\x00hi",
        ),
        (reason(ReasonCode::SUCCESS), V311, b"\x40\x02\x00\x01"),
        // v3 PUBACK carries no reason code.
        (
            reason(ReasonCode::QUOTA_EXCEEDED),
            V311,
            b"\x40\x02\x00\x01",
        ),
        (reason(ReasonCode::SUCCESS), V5, b"\x40\x02\x00\x01"),
        (
            reason(ReasonCode::NO_MATCHING_SUBSCRIBERS),
            V5,
            b"\x40\x03\x00\x01\x10",
        ),
        (reason_string, V5, b"\x40\x08\x00\x01\x00\x04\x1f\x00\x01x"),
        (
            Packet::PubRel(PubResp::new(pid(1))),
            V311,
            b"\x62\x02\x00\x01",
        ),
        (sub.clone(), V311, b"\x82\x06\x00\x01\x00\x01a\x01"),
        (sub, V5, b"\x82\x07\x00\x01\x00\x00\x01a\x01"),
        // v3 SUBACK: codes other than 0/1/2 become 0x80.
        (suback.clone(), V311, b"\x90\x05\x00\x01\x01\x80\x80"),
        (suback, V5, b"\x90\x06\x00\x01\x00\x01\x87\x03"),
        (unsuback.clone(), V311, b"\xb0\x02\x00\x01"),
        (unsuback, V5, b"\xb0\x04\x00\x01\x00\x00"),
        (Packet::PingReq, V311, b"\xc0\x00"),
        (Packet::PingResp, V5, b"\xd0\x00"),
        (
            disconnect(ReasonCode::NORMAL_DISCONNECTION),
            V311,
            b"\xe0\x00",
        ),
        (
            disconnect(ReasonCode::SESSION_TAKEN_OVER),
            V311,
            b"\xe0\x00",
        ),
        (
            disconnect(ReasonCode::NORMAL_DISCONNECTION),
            V5,
            b"\xe0\x00",
        ),
        (
            disconnect(ReasonCode::SESSION_TAKEN_OVER),
            V5,
            b"\xe0\x01\x8e",
        ),
        (Packet::Auth(Auth::default()), V5, b"\xf0\x00"),
        (
            Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties::default(),
            }),
            V5,
            b"\xf0\x02\x18\x00",
        ),
    ];
    for (packet, v, want) in cases {
        assert_eq!(&enc(&packet, v)[..], want, "{v:?} {packet:?}");
    }
}

#[test]
fn v3_connack_return_codes() {
    let cases = [
        (ReasonCode::SUCCESS, 0),
        (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode::SERVER_UNAVAILABLE, 3),
        (ReasonCode::SERVER_BUSY, 3),
        (ReasonCode::UNSPECIFIED_ERROR, 3),
        (ReasonCode::BANNED, 3),
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode::NOT_AUTHORIZED, 5),
    ];
    for (code, want) in cases {
        let p = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: ConnAckProperties::default(),
        });
        for v in [ProtocolVersion::V31, ProtocolVersion::V311] {
            assert_eq!(&enc(&p, v)[..], &[0x20, 0x02, 0x00, want], "{code:?}");
        }
        assert_eq!(
            &enc(&p, ProtocolVersion::V5)[..],
            &[0x20, 0x03, 0x00, code.0, 0x00]
        );
    }
}

#[test]
fn v3_drops_v5_only_fields() {
    let mut p = publish(QoS::AtLeastOnce, "t", b"x");
    p.properties = crate::samples::full_publish_props();
    let plain = Packet::Publish(publish(QoS::AtLeastOnce, "t", b"x"));
    assert_eq!(
        enc(&Packet::Publish(p), ProtocolVersion::V311),
        enc(&plain, ProtocolVersion::V311)
    );
}

#[test]
fn auth_does_not_exist_before_v5() {
    for v in [ProtocolVersion::V31, ProtocolVersion::V311] {
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&Packet::Auth(Auth::default()), v, &mut out),
            Err(EncodeError::NotInVersion {
                packet: "AUTH",
                version: v
            })
        );
        assert!(out.is_empty());
        assert_eq!(encoded_len(&Packet::Auth(Auth::default()), v), usize::MAX);
    }
}

#[test]
fn publish_flag_combinations_are_checked_mqtt_2_3_1_5() {
    let v = ProtocolVersion::V5;
    let mut out = BytesMut::new();
    let mut q0 = publish(QoS::AtMostOnce, "t", b"");
    q0.packet_id = Some(pid(1));
    assert_eq!(
        encode(&Packet::Publish(q0), v, &mut out),
        Err(EncodeError::PacketIdMismatch {
            qos: QoS::AtMostOnce,
            has_id: true
        })
    );
    let mut q1 = publish(QoS::AtLeastOnce, "t", b"");
    q1.packet_id = None;
    assert!(matches!(
        encode(&Packet::Publish(q1), v, &mut out),
        Err(EncodeError::PacketIdMismatch { .. })
    ));
    // [MQTT-3.3.1-2]
    let mut dup = publish(QoS::AtMostOnce, "t", b"");
    dup.dup = true;
    assert_eq!(
        encode(&Packet::Publish(dup), v, &mut out),
        Err(EncodeError::DupWithQoS0)
    );
    assert!(out.is_empty());
}

#[test]
fn oversized_fields_are_rejected() {
    let long = bytestring::ByteString::from("a".repeat(65_536));
    let p = Packet::Publish(Publish {
        topic: long.clone(),
        ..publish(QoS::AtMostOnce, "t", b"")
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&p, ProtocolVersion::V311, &mut out),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert_eq!(encoded_len(&p, ProtocolVersion::V311), usize::MAX);
    let mut props = PublishProperties::default();
    props.user_properties.push((s("k"), long));
    let p = Packet::Publish(Publish {
        properties: props,
        ..publish(QoS::AtMostOnce, "t", b"")
    });
    assert_eq!(
        encode(&p, ProtocolVersion::V5, &mut out),
        Err(EncodeError::FieldTooLong(65_536))
    );
    // v3 omits properties, so the same packet encodes.
    assert!(encode(&p, ProtocolVersion::V311, &mut out).is_ok());
}

#[test]
fn remaining_length_limit() {
    // 268,435,455 bytes of remaining length is the protocol maximum.
    let payload = Bytes::from(vec![0u8; MAX_VARINT - 3]);
    let ok = Packet::Publish(Publish {
        payload: payload.clone(),
        ..publish(QoS::AtMostOnce, "t", b"")
    });
    assert_eq!(encoded_len(&ok, ProtocolVersion::V311), 1 + 4 + MAX_VARINT);
    let too_big = Packet::Publish(Publish {
        payload,
        ..publish(QoS::AtMostOnce, "tt", b"")
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&too_big, ProtocolVersion::V311, &mut out),
        Err(EncodeError::PacketTooLarge(MAX_VARINT + 1))
    );
    assert_eq!(encoded_len(&too_big, ProtocolVersion::V311), usize::MAX);
}

#[test]
fn invalid_subscription_identifiers_are_rejected() {
    for bad in [0, 268_435_456] {
        let mut p = publish(QoS::AtMostOnce, "t", b"");
        p.properties.subscription_identifiers = vec![1, bad];
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&Packet::Publish(p), ProtocolVersion::V5, &mut out),
            Err(EncodeError::InvalidSubscriptionIdentifier(bad))
        );
        let sub = Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            filters: vec![(s("a"), SubscriptionOptions::default())],
            properties: SubscribeProperties {
                subscription_identifier: Some(bad),
                user_properties: Vec::new(),
            },
        });
        assert_eq!(
            encode(&sub, ProtocolVersion::V5, &mut out),
            Err(EncodeError::InvalidSubscriptionIdentifier(bad))
        );
    }
}

#[test]
fn v5_ack_short_forms_decode_to_the_same_packet() {
    // PUBACK with an explicit zero property length (remaining length 4).
    assert_eq!(
        decode_v(ProtocolVersion::V5, b"\x40\x04\x00\x01\x10\x00"),
        Ok(Some(Packet::PubAck(PubResp {
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ..PubResp::new(pid(1))
        })))
    );
    assert_eq!(
        decode_v(ProtocolVersion::V5, b"\x40\x04\x00\x01\x00\x00"),
        Ok(Some(Packet::PubAck(PubResp::new(pid(1)))))
    );
}
