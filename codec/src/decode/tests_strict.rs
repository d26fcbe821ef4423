//! One test per strictness rule, named after its normative statement.

use super::*;
use crate::samples::{decode_v, frame, V};
use crate::topic::TopicError;
use crate::types::*;
use crate::wire::put_varint;

use ProtocolVersion::{V31, V311, V5};

fn err(v: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    match decode_v(v, bytes) {
        Err(e) => e,
        Ok(p) => panic!("{v:?} {bytes:02x?} decoded to {p:?}"),
    }
}

fn ok(v: ProtocolVersion, bytes: &[u8]) -> Packet {
    match decode_v(v, bytes) {
        Ok(Some(p)) => p,
        other => panic!("{v:?} {bytes:02x?}: {other:?}"),
    }
}

/// A v5 PUBLISH QoS 0 to topic `a` with the given property bytes.
fn v5_publish(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b'a'];
    put_varint(&mut body, props.len());
    body.extend_from_slice(props);
    body.extend_from_slice(b"pay");
    frame(0x30, &body).to_vec()
}

/// A v5 CONNECT with the given CONNECT property bytes.
fn v5_connect(props: &[u8]) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x05\x02\x00\x3c".to_vec();
    put_varint(&mut body, props.len());
    body.extend_from_slice(props);
    body.extend_from_slice(b"\x00\x01c");
    frame(0x10, &body).to_vec()
}

/// A v5 CONNACK with the given property bytes.
fn v5_connack(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x00];
    put_varint(&mut body, props.len());
    body.extend_from_slice(props);
    frame(0x20, &body).to_vec()
}

#[test]
fn reserved_packet_types_2_1_2() {
    for v in V {
        assert_eq!(err(v, b"\x00\x00"), DecodeError::ReservedPacketType(0));
    }
    for v in [V31, V311] {
        assert_eq!(err(v, b"\xf0\x00"), DecodeError::ReservedPacketType(15));
    }
}

#[test]
fn reserved_fixed_header_flags_mqtt_2_2_2_1() {
    // (type, required flags) for every type with reserved flags.
    let table = [
        (1u8, 0u8),
        (2, 0),
        (4, 0),
        (5, 0),
        (6, 2),
        (7, 0),
        (8, 2),
        (9, 0),
        (10, 2),
        (11, 0),
        (12, 0),
        (13, 0),
        (14, 0),
        (15, 0),
    ];
    for v in V {
        for (t, required) in table {
            if t == 15 && !v.is_v5() {
                continue;
            }
            for flags in 0..16u8 {
                if flags == required {
                    continue;
                }
                let bytes = [(t << 4) | flags, 0x00];
                assert_eq!(
                    err(v, &bytes),
                    DecodeError::InvalidFlags {
                        packet: kind_name(t),
                        flags
                    },
                    "{v:?} type {t} flags {flags:#06b}"
                );
            }
        }
    }
}

#[test]
fn pubrel_subscribe_unsubscribe_need_0010_mqtt_3_6_1_1_mqtt_3_8_1_1_mqtt_3_10_1_1() {
    for v in V {
        assert!(matches!(
            err(v, b"\x60\x02\x00\x01"),
            DecodeError::InvalidFlags { .. }
        ));
        assert!(matches!(
            err(v, b"\x80\x06\x00\x01\x00\x01a\x00"),
            DecodeError::InvalidFlags { .. }
        ));
        assert!(matches!(
            err(v, b"\xa0\x05\x00\x01\x00\x01a"),
            DecodeError::InvalidFlags { .. }
        ));
        ok(v, b"\x62\x02\x00\x01");
        if v.is_v5() {
            ok(v, b"\x82\x07\x00\x01\x00\x00\x01a\x00");
            ok(v, b"\xa2\x06\x00\x01\x00\x00\x01a");
        } else {
            ok(v, b"\x82\x06\x00\x01\x00\x01a\x00");
            ok(v, b"\xa2\x05\x00\x01\x00\x01a");
        }
    }
}

#[test]
fn publish_qos_3_mqtt_3_3_1_4() {
    for v in V {
        let e = err(v, b"\x36\x05\x00\x01a\x00\x01");
        assert_eq!(e, DecodeError::PublishQoS3);
        assert_eq!(e.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn publish_dup_at_qos_0_mqtt_3_3_1_2() {
    for v in V {
        assert_eq!(err(v, b"\x38\x03\x00\x01a"), DecodeError::DupWithQoS0);
        // DUP at QoS 1 is fine.
        let dup_q1: &[u8] = if v.is_v5() {
            b"\x3a\x06\x00\x01a\x00\x01\x00"
        } else {
            b"\x3a\x05\x00\x01a\x00\x01"
        };
        ok(v, dup_q1);
    }
}

#[test]
fn topic_name_wildcards_mqtt_3_3_2_2() {
    for v in V {
        for topic in [&b"a/+"[..], b"#", b"a/b#"] {
            let mut body = vec![0, topic.len() as u8];
            body.extend_from_slice(topic);
            if v.is_v5() {
                body.push(0);
            }
            let e = err(v, &frame(0x30, &body));
            assert_eq!(e, DecodeError::TopicName(TopicError::WildcardInName));
            assert_eq!(e.reason_code(), ReasonCode::TOPIC_NAME_INVALID);
        }
    }
}

#[test]
fn null_character_mqtt_1_5_3_2_and_mqtt_4_7_3_2() {
    for v in V {
        assert_eq!(err(v, b"\x30\x04\x00\x02a\x00"), DecodeError::NullCharacter);
        // In a client id and in a subscription filter too.
        let connect = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c\x00";
        assert_eq!(err(v, connect), DecodeError::NullCharacter);
        let unsub: &[u8] = if v.is_v5() {
            b"\xa2\x07\x00\x01\x00\x00\x02a\x00"
        } else {
            b"\xa2\x06\x00\x01\x00\x02a\x00"
        };
        assert_eq!(err(v, unsub), DecodeError::NullCharacter);
    }
}

#[test]
fn ill_formed_utf8_mqtt_1_5_3_1() {
    for v in V {
        // An encoded surrogate U+D800, an overlong '/', a lone continuation byte.
        for bad in [&[0xED, 0xA0, 0x80][..], &[0xC0, 0xAF], &[0x80]] {
            let mut body = vec![0, bad.len() as u8];
            body.extend_from_slice(bad);
            if v.is_v5() {
                body.push(0);
            }
            assert_eq!(
                err(v, &frame(0x30, &body)),
                DecodeError::InvalidUtf8,
                "{bad:02x?}"
            );
        }
    }
}

#[test]
fn empty_topic_name_mqtt_4_7_3_1() {
    for v in [V31, V311] {
        assert_eq!(
            err(v, b"\x30\x02\x00\x00"),
            DecodeError::TopicName(TopicError::Empty)
        );
    }
    // v5: a protocol error without a topic alias, fine with one.
    let e = err(V5, b"\x30\x03\x00\x00\x00");
    assert_eq!(e, DecodeError::EmptyTopicWithoutAlias);
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
    let Packet::Publish(p) = ok(V5, b"\x30\x06\x00\x00\x03\x23\x00\x01") else {
        panic!()
    };
    assert!(p.topic.is_empty());
    assert_eq!(p.properties.topic_alias.map(|a| a.get()), Some(1));
}

#[test]
fn packet_id_zero_mqtt_2_3_1_1() {
    for v in V {
        let cases: [&[u8]; 6] = [
            b"\x32\x05\x00\x01a\x00\x00",
            b"\x40\x02\x00\x00",
            b"\x62\x02\x00\x00",
            b"\x82\x06\x00\x00\x00\x01a\x00",
            b"\xa2\x05\x00\x00\x00\x01a",
            b"\x90\x03\x00\x00\x00",
        ];
        // In v5 the packet id comes before the property length, so it fails first.
        for bytes in cases {
            assert_eq!(
                err(v, bytes),
                DecodeError::PacketIdZero,
                "{v:?} {bytes:02x?}"
            );
        }
    }
}

#[test]
fn subscribe_without_filters_mqtt_3_8_3_3() {
    assert_eq!(
        err(V311, b"\x82\x02\x00\x01"),
        DecodeError::SubscribeNoFilters
    );
    let e = err(V5, b"\x82\x03\x00\x01\x00");
    assert_eq!(e, DecodeError::SubscribeNoFilters);
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn unsubscribe_without_filters_mqtt_3_10_3_2() {
    assert_eq!(
        err(V31, b"\xa2\x02\x00\x01"),
        DecodeError::UnsubscribeNoFilters
    );
    assert_eq!(
        err(V5, b"\xa2\x03\x00\x01\x00"),
        DecodeError::UnsubscribeNoFilters
    );
}

#[test]
fn v3_subscription_options_reserved_bits_mqtt_3_8_3_4() {
    for v in [V31, V311] {
        for opts in [0x04u8, 0x08, 0x10, 0x80, 0xFC] {
            let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', opts];
            assert_eq!(
                err(v, &bytes),
                DecodeError::SubscriptionOptionsReserved(opts)
            );
        }
        assert_eq!(
            err(v, b"\x82\x06\x00\x01\x00\x01a\x03"),
            DecodeError::SubscriptionQoS3
        );
    }
}

#[test]
fn v5_subscription_options_reserved_bits_mqtt_3_8_3_5() {
    for opts in [0x40u8, 0x80, 0xC0] {
        let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', opts];
        assert_eq!(
            err(V5, &bytes),
            DecodeError::SubscriptionOptionsReserved(opts)
        );
    }
    assert_eq!(
        err(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x03"),
        DecodeError::SubscriptionQoS3
    );
    // Retain handling 3 is a protocol error (3.8.3.1).
    assert_eq!(
        err(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x30"),
        DecodeError::RetainHandling3
    );
    // Every defined bit decodes.
    let Packet::Subscribe(s) = ok(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x2e") else {
        panic!()
    };
    let o = s.filters[0].1;
    assert_eq!(
        (o.qos, o.no_local, o.retain_as_published, o.retain_handling),
        (QoS::ExactlyOnce, true, true, RetainHandling::Never)
    );
}

#[test]
fn no_local_on_shared_subscription_mqtt_3_8_3_4() {
    let mut body = b"\x00\x01\x00\x00\x0a$share/g/a".to_vec();
    body.push(0x04);
    assert_eq!(
        err(V5, &frame(0x82, &body)),
        DecodeError::NoLocalOnSharedSubscription
    );
    body.pop();
    body.push(0x00);
    ok(V5, &frame(0x82, &body));
}

#[test]
fn topic_filter_syntax_mqtt_4_7_1_2_and_3_and_mqtt_4_8_2_1_and_2() {
    let cases: [(&str, TopicError); 6] = [
        ("a/#/b", TopicError::MultiLevelWildcard),
        ("a#", TopicError::MultiLevelWildcard),
        ("a+/b", TopicError::SingleLevelWildcard),
        ("$share//a", TopicError::ShareName),
        ("$share/g", TopicError::SharedFilter),
        ("", TopicError::Empty),
    ];
    for v in V {
        for (filter, want) in cases {
            let mut body = vec![0x00, 0x01];
            if v.is_v5() {
                body.push(0);
            }
            body.extend_from_slice(&[0, filter.len() as u8]);
            body.extend_from_slice(filter.as_bytes());
            let unsub = body.clone();
            body.push(0);
            let e = err(v, &frame(0x82, &body));
            assert_eq!(
                e,
                DecodeError::TopicFilter(want),
                "{v:?} SUBSCRIBE {filter:?}"
            );
            assert_eq!(e.reason_code(), ReasonCode::TOPIC_FILTER_INVALID);
            assert_eq!(
                err(v, &frame(0xa2, &unsub)),
                DecodeError::TopicFilter(want),
                "{v:?} UNSUBSCRIBE {filter:?}"
            );
        }
    }
}

/// A CONNECT body for `level` (4 or 5) with `flags` and `payload`.
fn connect_with(level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT".to_vec();
    body.extend_from_slice(&[level, flags, 0x00, 0x3c]);
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    frame(0x10, &body).to_vec()
}

#[test]
fn connect_reserved_flag_mqtt_3_1_2_3() {
    for level in [4, 5] {
        assert_eq!(
            err(V311, &connect_with(level, 0x03, b"\x00\x01c")),
            DecodeError::ConnectReservedFlag
        );
    }
}

#[test]
fn will_qos_and_retain_need_the_will_flag_mqtt_3_1_2_11_13_15() {
    for level in [4, 5] {
        // Will QoS 1 without the will flag [MQTT-3.1.2-13] [MQTT5-3.1.2-11].
        assert_eq!(
            err(V5, &connect_with(level, 0x0A, b"\x00\x01c")),
            DecodeError::WillFlagsWithoutWill
        );
        // Will retain without the will flag [MQTT-3.1.2-15] [MQTT5-3.1.2-13].
        assert_eq!(
            err(V5, &connect_with(level, 0x22, b"\x00\x01c")),
            DecodeError::WillFlagsWithoutWill
        );
    }
}

#[test]
fn will_qos_3_mqtt_3_1_2_14() {
    assert_eq!(
        err(V311, &connect_with(4, 0x1E, b"\x00\x01c\x00\x01w\x00\x00")),
        DecodeError::WillQoS3
    );
}

#[test]
fn password_without_user_name_mqtt_3_1_2_22() {
    assert_eq!(
        err(V311, &connect_with(4, 0x42, b"\x00\x01c\x00\x01p")),
        DecodeError::PasswordWithoutUsername
    );
    // Allowed in v5 (3.1.2.9).
    let Packet::Connect(c) = ok(V311, &connect_with(5, 0x42, b"\x00\x01c\x00\x01p")) else {
        panic!()
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
}

#[test]
fn connect_payload_fields_must_match_flags_mqtt_3_1_2_9_and_19_and_21() {
    // Will flag set but no will topic/payload; user name flag but no user name.
    for (flags, payload) in [
        (0x06u8, &b"\x00\x01c"[..]),
        (0x82, b"\x00\x01c"),
        (0xC2, b"\x00\x01c\x00\x01u"),
    ] {
        assert_eq!(
            err(V311, &connect_with(4, flags, payload)),
            DecodeError::Truncated { packet: "CONNECT" }
        );
    }
    // Fields present without their flag [MQTT-3.1.2-18] [MQTT-3.1.2-20].
    assert!(matches!(
        err(V311, &connect_with(4, 0x02, b"\x00\x01c\x00\x01u")),
        DecodeError::TrailingBytes {
            packet: "CONNECT",
            extra: 3
        }
    ));
}

#[test]
fn will_topic_must_be_a_topic_name_mqtt_3_1_3_10() {
    assert_eq!(
        err(V311, &connect_with(4, 0x06, b"\x00\x01c\x00\x01#\x00\x00")),
        DecodeError::TopicName(TopicError::WildcardInName)
    );
}

#[test]
fn connack_reserved_flags_mqtt_3_2_2_1() {
    for v in V {
        let bytes: &[u8] = if v.is_v5() {
            b"\x20\x03\x02\x00\x00"
        } else {
            b"\x20\x02\x02\x00"
        };
        assert_eq!(err(v, bytes), DecodeError::ConnAckReservedFlags(0x02));
    }
}

#[test]
fn invalid_reason_codes() {
    // v3 CONNACK return codes 6..=255 are reserved (3.2.2.3).
    assert!(matches!(
        err(V311, b"\x20\x02\x00\x06"),
        DecodeError::InvalidReasonCode { code: 6, .. }
    ));
    // v3 SUBACK codes other than 0, 1, 2, 0x80 [MQTT-3.9.3-2].
    assert!(matches!(
        err(V311, b"\x90\x03\x00\x01\x03"),
        DecodeError::InvalidReasonCode { code: 3, .. }
    ));
    // v5: each packet's own table [MQTT5-3.2.2-8] [MQTT5-3.4.2-1] [MQTT5-3.5.2-1]
    // [MQTT5-3.6.2-1] [MQTT5-3.9.3-2] [MQTT5-3.11.3-2] [MQTT5-3.14.2-1] [MQTT5-3.15.2-1]
    // (the strings below are the rules the codec's errors name).
    let cases: [(&[u8], &str); 8] = [
        (b"\x20\x03\x00\x01\x00", "MQTT-3.2.2-8"),
        (b"\x40\x03\x00\x01\x92", "MQTT-3.4.2-1"),
        (b"\x50\x03\x00\x01\x01", "MQTT-3.5.2-1"),
        (b"\x62\x03\x00\x01\x10", "MQTT-3.6.2-1"),
        (b"\x90\x04\x00\x01\x00\x03", "MQTT-3.9.3-2"),
        (b"\xb0\x04\x00\x01\x00\x01", "MQTT-3.11.3-2"),
        (b"\xe0\x01\x01", "MQTT-3.14.2-1"),
        (b"\xf0\x02\x01\x00", "MQTT-3.15.2-1"),
    ];
    for (bytes, want) in cases {
        let e = err(V5, bytes);
        assert!(
            matches!(e, DecodeError::InvalidReasonCode { rule, .. } if rule == want),
            "{bytes:02x?}: {e}"
        );
        assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
    }
}

#[test]
fn acks_need_reason_codes_mqtt_3_9_3_1() {
    assert_eq!(
        err(V311, b"\x90\x02\x00\x01"),
        DecodeError::NoReasonCodes { packet: "SUBACK" }
    );
    assert_eq!(
        err(V5, b"\xb0\x03\x00\x01\x00"),
        DecodeError::NoReasonCodes { packet: "UNSUBACK" }
    );
}

#[test]
fn trailing_bytes_are_malformed() {
    let cases: [(ProtocolVersion, &[u8]); 7] = [
        (V311, b"\xc0\x01\x00"),
        (V5, b"\xd0\x01\x00"),
        (V311, b"\xe0\x01\x00"),
        (V311, b"\x40\x03\x00\x01\x00"),
        (V311, b"\xb0\x03\x00\x01\x00"),
        (V5, b"\x40\x05\x00\x01\x00\x00\x00"),
        (V5, b"\x20\x04\x00\x00\x00\x00"),
    ];
    for (v, bytes) in cases {
        let e = err(v, bytes);
        assert!(
            matches!(e, DecodeError::TrailingBytes { .. }),
            "{bytes:02x?}: {e}"
        );
        assert_eq!(e.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn truncated_fields_are_malformed() {
    let cases: [(ProtocolVersion, &[u8]); 6] = [
        (V311, b"\x30\x01\x00"),
        (V311, b"\x30\x03\x00\x05a"),
        (V311, b"\x32\x04\x00\x01a\x00"),
        (V311, b"\x40\x01\x00"),
        // v5 AUTH with a reason code but no property length.
        (V5, b"\xf0\x01\x18"),
        (V5, b"\x20\x02\x00\x00"),
    ];
    for (v, bytes) in cases {
        assert!(
            matches!(err(v, bytes), DecodeError::Truncated { .. }),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn property_length_is_a_hard_boundary_2_2_2_1() {
    // The property length says 2 but message expiry needs 5 bytes; the bytes
    // that follow (the payload) must not be read as part of the property.
    let bytes = frame(0x30, b"\x00\x01a\x02\x02\x00\x00\x00\x10");
    assert_eq!(
        err(V5, &bytes),
        DecodeError::Truncated { packet: "PUBLISH" }
    );
    // A property length beyond the packet.
    assert_eq!(
        err(V5, &frame(0x30, b"\x00\x01a\x09\x01\x01")),
        DecodeError::Truncated { packet: "PUBLISH" }
    );
    // A non-minimal property length.
    assert_eq!(
        err(V5, &frame(0x30, b"\x00\x01a\x80\x00")),
        DecodeError::MalformedVarInt
    );
}

#[test]
fn unknown_property_is_malformed_2_2_2_2() {
    for id in [0x00u8, 0x04, 0x0A, 0x2B, 0x7F, 0x80, 0xFF] {
        let e = err(V5, &v5_publish(&[id, 0x00]));
        assert_eq!(e, DecodeError::UnknownProperty(id));
        assert_eq!(e.reason_code(), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn property_not_allowed_in_packet_is_malformed_2_2_2_2() {
    // Session expiry in PUBLISH, topic alias in CONNECT, will delay in CONNECT
    // properties, reason string in SUBSCRIBE.
    let e = err(V5, &v5_publish(b"\x11\x00\x00\x00\x01"));
    assert_eq!(
        e,
        DecodeError::PropertyNotAllowed {
            id: 0x11,
            packet: "PUBLISH"
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::MALFORMED_PACKET);
    assert!(matches!(
        err(V5, &v5_connect(b"\x23\x00\x01")),
        DecodeError::PropertyNotAllowed { id: 0x23, .. }
    ));
    assert!(matches!(
        err(V5, &v5_connect(b"\x18\x00\x00\x00\x01")),
        DecodeError::PropertyNotAllowed { id: 0x18, .. }
    ));
    let sub = frame(0x82, b"\x00\x01\x04\x1f\x00\x01x\x00\x01a\x00");
    assert!(matches!(
        err(V5, &sub),
        DecodeError::PropertyNotAllowed { id: 0x1F, .. }
    ));
    // Subscription identifier in UNSUBSCRIBE.
    let unsub = frame(0xa2, b"\x00\x01\x02\x0b\x01\x00\x01a");
    assert!(matches!(
        err(V5, &unsub),
        DecodeError::PropertyNotAllowed { id: 0x0B, .. }
    ));
}

#[test]
fn duplicate_property_is_a_protocol_error() {
    let e = err(V5, &v5_publish(b"\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02"));
    assert_eq!(
        e,
        DecodeError::DuplicateProperty {
            id: 0x02,
            packet: "PUBLISH"
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
    assert!(matches!(
        err(V5, &v5_connect(b"\x21\x00\x01\x21\x00\x02")),
        DecodeError::DuplicateProperty { id: 0x21, .. }
    ));
    // Subscription identifier: once in SUBSCRIBE (3.8.2.1.2) ...
    let sub = frame(0x82, b"\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00");
    assert!(matches!(
        err(V5, &sub),
        DecodeError::DuplicateProperty { id: 0x0B, .. }
    ));
    // ... but repeatable in PUBLISH, like user properties (order kept).
    let Packet::Publish(p) = ok(
        V5,
        &v5_publish(b"\x0b\x01\x0b\x7f\x26\x00\x01k\x00\x01a\x26\x00\x01k\x00\x01b"),
    ) else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 127]);
    let values: Vec<&str> = p
        .properties
        .user_properties
        .iter()
        .map(|(_, v)| &**v)
        .collect();
    assert_eq!(values, ["a", "b"]);
}

#[test]
fn out_of_range_property_values_are_protocol_errors() {
    let invalid = |bytes: &[u8], id: u8, value: u32| {
        let e = err(V5, bytes);
        assert_eq!(
            e,
            DecodeError::InvalidPropertyValue { id, value },
            "{bytes:02x?}"
        );
        e.reason_code()
    };
    // Receive maximum 0 (3.1.2.11.3), maximum packet size 0 (3.1.2.11.4).
    assert_eq!(
        invalid(&v5_connect(b"\x21\x00\x00"), 0x21, 0),
        ReasonCode::PROTOCOL_ERROR
    );
    invalid(&v5_connect(b"\x27\x00\x00\x00\x00"), 0x27, 0);
    // Request response / problem information other than 0 or 1.
    invalid(&v5_connect(b"\x19\x02"), 0x19, 2);
    invalid(&v5_connect(b"\x17\x02"), 0x17, 2);
    // Topic alias 0 [MQTT5-3.3.2-8] answers 0x94.
    assert_eq!(
        invalid(&v5_publish(b"\x23\x00\x00"), 0x23, 0),
        ReasonCode::TOPIC_ALIAS_INVALID
    );
    // Subscription identifier 0 (3.3.2.3.8, 3.8.2.1.2).
    invalid(&v5_publish(b"\x0b\x00"), 0x0B, 0);
    invalid(&frame(0x82, b"\x00\x01\x02\x0b\x00\x00\x01a\x00"), 0x0B, 0);
    // Payload format indicator other than 0 or 1.
    invalid(&v5_publish(b"\x01\x02"), 0x01, 2);
    // CONNACK: maximum QoS 2, retain available 2, receive maximum 0,
    // wildcard / subscription id / shared subscription available 2.
    invalid(&v5_connack(b"\x24\x02"), 0x24, 2);
    invalid(&v5_connack(b"\x25\x02"), 0x25, 2);
    invalid(&v5_connack(b"\x21\x00\x00"), 0x21, 0);
    invalid(&v5_connack(b"\x28\x02"), 0x28, 2);
    invalid(&v5_connack(b"\x29\x05"), 0x29, 5);
    invalid(&v5_connack(b"\x2a\xff"), 0x2A, 255);
    invalid(&v5_connack(b"\x27\x00\x00\x00\x00"), 0x27, 0);
}

#[test]
fn authentication_data_needs_a_method_3_1_2_11_10() {
    let e = err(V5, &v5_connect(b"\x16\x00\x01x"));
    assert_eq!(e, DecodeError::AuthDataWithoutMethod);
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
    ok(V5, &v5_connect(b"\x15\x00\x01m\x16\x00\x01x"));
}

#[test]
fn response_topic_must_not_contain_wildcards_mqtt_3_3_2_14() {
    let e = err(V5, &v5_publish(b"\x08\x00\x03a/#"));
    assert_eq!(e, DecodeError::ResponseTopic(TopicError::WildcardInName));
    assert_eq!(e.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn v5_short_forms_of_acks_disconnect_and_auth() {
    // Remaining length 2: Success, no properties (3.4.2.1).
    assert_eq!(
        ok(V5, b"\x40\x02\x00\x01"),
        Packet::PubAck(PubResp::new(crate::samples::pid(1)))
    );
    // Remaining length 3: reason code, no properties (3.4.2.2.1).
    let Packet::PubRel(r) = ok(V5, b"\x62\x03\x00\x01\x92") else {
        panic!()
    };
    assert_eq!(r.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    // DISCONNECT: remaining length 0 is a normal disconnection, 1 a bare reason.
    assert_eq!(
        ok(V5, b"\xe0\x00"),
        Packet::Disconnect(Disconnect::default())
    );
    let Packet::Disconnect(d) = ok(V5, b"\xe0\x01\x8e") else {
        panic!()
    };
    assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER);
    // AUTH: remaining length 0 is Success without properties.
    assert_eq!(ok(V5, b"\xf0\x00"), Packet::Auth(Auth::default()));
}
