use bytes::{Bytes, BytesMut};
use std::num::NonZeroU16;

use super::*;
use crate::samples::{enc, full_publish_props, pid, publish, V};
use crate::types::{Packet, Publish};
use crate::Decoder;

/// The PUBLISH a receiver gets for delivery `d`, built the slow way.
pub(crate) fn equivalent(p: &Publish, d: &Delivery<'_>, v: ProtocolVersion) -> Publish {
    let mut out = Publish {
        dup: d.dup,
        qos: d.qos,
        retain: d.retain,
        topic: p.topic.clone(),
        packet_id: d.packet_id,
        properties: p.properties.clone(),
        payload: p.payload.clone(),
    };
    if v.is_v5() {
        out.properties.topic_alias = d.topic_alias;
        out.properties.subscription_identifiers = d.subscription_identifiers.to_vec();
        if d.message_expiry_interval.is_some() {
            out.properties.message_expiry_interval = d.message_expiry_interval;
        }
        if d.omit_topic {
            out.topic = ByteString::new();
        }
    }
    out
}

/// Header + payload, checking the returned and predicted lengths.
fn fan_out(t: &PublishTemplate, p: &Publish, d: &Delivery<'_>) -> BytesMut {
    let mut out = BytesMut::new();
    let total = t.write_header(p, d, &mut out).unwrap();
    assert_eq!(total, out.len() + p.payload.len());
    assert_eq!(t.packet_len(p, d), total);
    out.extend_from_slice(&p.payload);
    out
}

fn deliveries() -> Vec<Delivery<'static>> {
    vec![
        Delivery::simple(QoS::AtMostOnce, None, false, false),
        Delivery::simple(QoS::AtMostOnce, None, false, true),
        Delivery::simple(QoS::AtLeastOnce, Some(pid(1)), false, false),
        Delivery::simple(QoS::AtLeastOnce, Some(pid(0xABCD)), true, true),
        Delivery::simple(QoS::ExactlyOnce, Some(pid(u16::MAX)), true, false),
    ]
}

fn messages() -> Vec<Publish> {
    let mut with_props = publish(QoS::AtLeastOnce, "a/b/c", b"payload");
    with_props.properties = full_publish_props();
    let mut expiry_only = publish(QoS::AtMostOnce, "e", b"x");
    expiry_only.properties.message_expiry_interval = Some(60);
    vec![
        publish(QoS::AtMostOnce, "t", b""),
        publish(QoS::ExactlyOnce, "sensors/€/temp", &[0xFF; 300]),
        with_props,
        expiry_only,
    ]
}

#[test]
fn fast_path_equals_encode_in_every_version() {
    for v in V {
        for m in messages() {
            let t = PublishTemplate::new(&m, v);
            assert_eq!(t.version(), v);
            for d in deliveries() {
                let mut want = equivalent(&m, &d, v);
                // The incoming alias and subscription ids are never forwarded.
                want.properties.topic_alias = None;
                want.properties.subscription_identifiers.clear();
                assert_eq!(
                    fan_out(&t, &m, &d),
                    enc(&Packet::Publish(want), v),
                    "{v:?} {d:?}"
                );
            }
        }
    }
}

#[test]
fn fast_path_patches_only_the_first_byte_and_the_packet_id() {
    let m = messages().remove(2);
    let t = PublishTemplate::new(&m, ProtocolVersion::V5);
    let mut a = BytesMut::new();
    let mut b = BytesMut::new();
    t.write_header(
        &m,
        &Delivery::simple(QoS::AtLeastOnce, Some(pid(1)), false, false),
        &mut a,
    )
    .unwrap();
    t.write_header(
        &m,
        &Delivery::simple(QoS::ExactlyOnce, Some(pid(0x0203)), true, true),
        &mut b,
    )
    .unwrap();
    assert_eq!(a.len(), b.len());
    let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    let pid_at = 2 + 2 + m.topic.len();
    assert_eq!(differing, vec![0, pid_at, pid_at + 1]);
    assert_eq!(b[0], 0x3D);
    assert_eq!(&b[pid_at..pid_at + 2], &[0x02, 0x03]);
}

#[test]
fn per_receiver_v5_properties_equal_encode() {
    let ids = [1u32, 127, 128, 268_435_455];
    let alias = NonZeroU16::new(9);
    for m in messages() {
        let t = PublishTemplate::new(&m, ProtocolVersion::V5);
        let base = Delivery::simple(QoS::AtLeastOnce, Some(pid(3)), false, true);
        let cases = [
            Delivery {
                subscription_identifiers: &ids,
                ..base
            },
            Delivery {
                subscription_identifiers: &ids[..1],
                ..base
            },
            Delivery {
                topic_alias: alias,
                ..base
            },
            Delivery {
                topic_alias: alias,
                omit_topic: true,
                ..base
            },
            Delivery {
                message_expiry_interval: Some(59),
                ..base
            },
            Delivery {
                message_expiry_interval: Some(0),
                subscription_identifiers: &ids,
                topic_alias: alias,
                omit_topic: true,
                ..base
            },
            Delivery {
                qos: QoS::AtMostOnce,
                packet_id: None,
                subscription_identifiers: &ids,
                ..base
            },
        ];
        for d in cases {
            let want = equivalent(&m, &d, ProtocolVersion::V5);
            let got = fan_out(&t, &m, &d);
            assert_eq!(
                got,
                enc(&Packet::Publish(want.clone()), ProtocolVersion::V5),
                "{d:?}"
            );
            let mut buf = got;
            let decoded = Decoder::with_version(ProtocolVersion::V5, u32::MAX)
                .decode(&mut buf)
                .unwrap();
            assert_eq!(decoded, Some(Packet::Publish(want)));
        }
    }
}

#[test]
fn unchanged_expiry_stays_on_the_fast_path() {
    let m = messages().remove(3);
    let t = PublishTemplate::new(&m, ProtocolVersion::V5);
    let l = t.layouts.as_ref().unwrap();
    let same = Delivery {
        message_expiry_interval: Some(60),
        ..Delivery::simple(QoS::AtMostOnce, None, false, false)
    };
    assert!(t.is_fast(l, &same));
    let changed = Delivery {
        message_expiry_interval: Some(59),
        ..same
    };
    assert!(!t.is_fast(l, &changed));
}

#[test]
fn v3_ignores_v5_delivery_fields() {
    let m = publish(QoS::AtLeastOnce, "t", b"x");
    let ids = [5u32];
    for v in [ProtocolVersion::V31, ProtocolVersion::V311] {
        let t = PublishTemplate::new(&m, v);
        let d = Delivery {
            topic_alias: NonZeroU16::new(1),
            omit_topic: true,
            subscription_identifiers: &ids,
            message_expiry_interval: Some(1),
            ..Delivery::simple(QoS::AtLeastOnce, Some(pid(2)), false, false)
        };
        let plain = Delivery::simple(QoS::AtLeastOnce, Some(pid(2)), false, false);
        assert_eq!(fan_out(&t, &m, &d), fan_out(&t, &m, &plain));
    }
}

#[test]
fn payload_is_never_copied() {
    for v in V {
        // A message decoded from a read buffer, as in the broker.
        let mut src = publish(QoS::AtLeastOnce, "t/x", b"");
        src.payload = Bytes::from(vec![0xA5; 1000]);
        src.properties.user_properties = if v.is_v5() {
            full_publish_props().user_properties
        } else {
            Vec::new()
        };
        let mut read_buf = enc(&Packet::Publish(src), v);
        let Some(Packet::Publish(m)) = Decoder::with_version(v, u32::MAX)
            .decode(&mut read_buf)
            .unwrap()
        else {
            panic!()
        };
        let t = PublishTemplate::new(&m, v);
        let ids = [7u32];
        for d in [
            Delivery::simple(QoS::AtMostOnce, None, false, false),
            Delivery {
                subscription_identifiers: &ids,
                ..Delivery::simple(QoS::AtLeastOnce, Some(pid(1)), false, false)
            },
        ] {
            let mut header = BytesMut::new();
            let total = t.write_header(&m, &d, &mut header).unwrap();
            // The header holds no payload byte; the payload chunk is the
            // decoded slice itself.
            assert!(
                !header.contains(&0xA5),
                "{v:?} header contains payload bytes"
            );
            assert_eq!(total, header.len() + 1000);
            let chunk = m.payload.clone();
            assert_eq!(chunk.as_ptr(), m.payload.as_ptr());
            // Header + chunk is a valid packet.
            let mut wire = header;
            wire.extend_from_slice(&chunk);
            let Some(Packet::Publish(got)) = Decoder::with_version(v, u32::MAX)
                .decode(&mut wire)
                .unwrap()
            else {
                panic!()
            };
            assert_eq!(got.payload, m.payload);
        }
    }
}

#[test]
fn invalid_deliveries_are_rejected() {
    let m = publish(QoS::AtMostOnce, "t", b"x");
    let t = PublishTemplate::new(&m, ProtocolVersion::V5);
    let mut out = BytesMut::new();
    let base = Delivery::simple(QoS::AtLeastOnce, Some(pid(1)), false, false);
    let cases = [
        (
            Delivery {
                packet_id: None,
                ..base
            },
            EncodeError::PacketIdMismatch {
                qos: QoS::AtLeastOnce,
                has_id: false,
            },
        ),
        (
            Delivery {
                qos: QoS::AtMostOnce,
                ..base
            },
            EncodeError::PacketIdMismatch {
                qos: QoS::AtMostOnce,
                has_id: true,
            },
        ),
        (
            Delivery::simple(QoS::AtMostOnce, None, true, false),
            EncodeError::DupWithQoS0,
        ),
        (
            Delivery {
                omit_topic: true,
                ..base
            },
            EncodeError::OmitTopicWithoutAlias,
        ),
        (
            Delivery {
                subscription_identifiers: &[0],
                ..base
            },
            EncodeError::InvalidSubscriptionIdentifier(0),
        ),
        (
            Delivery {
                subscription_identifiers: &[268_435_456],
                ..base
            },
            EncodeError::InvalidSubscriptionIdentifier(268_435_456),
        ),
    ];
    for (d, e) in cases {
        assert_eq!(t.write_header(&m, &d, &mut out), Err(e), "{d:?}");
        assert_eq!(t.packet_len(&m, &d), usize::MAX);
        assert!(out.is_empty());
    }
    let other = publish(QoS::AtMostOnce, "t", b"longer");
    assert_eq!(
        t.write_header(&other, &base, &mut out),
        Err(EncodeError::TemplateMismatch)
    );
}

#[test]
fn unencodable_messages_report_at_write_time() {
    let mut m = publish(QoS::AtMostOnce, "t", b"x");
    m.topic = ByteString::from("a".repeat(65_536));
    let t = PublishTemplate::new(&m, ProtocolVersion::V311);
    let d = Delivery::simple(QoS::AtMostOnce, None, false, false);
    assert_eq!(
        t.write_header(&m, &d, &mut BytesMut::new()),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert_eq!(t.packet_len(&m, &d), usize::MAX);
}

#[test]
fn an_unresolved_topic_alias_is_rejected() {
    // The broker must resolve an incoming alias before fan-out [MQTT-4.7.3-1] [MQTT5-4.7.3-1].
    let mut m = publish(QoS::AtMostOnce, "", b"x");
    m.properties.topic_alias = NonZeroU16::new(1);
    let t = PublishTemplate::new(&m, ProtocolVersion::V5);
    let d = Delivery::simple(QoS::AtMostOnce, None, false, false);
    assert_eq!(
        t.write_header(&m, &d, &mut BytesMut::new()),
        Err(EncodeError::EmptyTopic)
    );
}
