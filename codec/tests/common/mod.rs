//! Shared helpers for the integration tests: proptest strategies that
//! generate packets in the form the decoder returns them for a version (v3
//! packets carry no v5-only data, reason codes are valid for the packet), and
//! the decode → encode → decode check the fuzz target also runs.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use std::num::NonZeroU16;
use tern_codec::*;

pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

pub fn arb_version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ]
}

/// Any UTF-8 string without U+0000.
pub fn arb_string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,8}".prop_map(ByteString::from)
}

pub fn arb_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// A valid topic name.
pub fn arb_topic() -> impl Strategy<Value = ByteString> {
    "[a-z0-9/$€ _]{1,12}".prop_map(ByteString::from)
}

/// A valid topic filter, sometimes shared.
pub fn arb_filter() -> impl Strategy<Value = ByteString> {
    (
        any::<bool>(),
        vec(prop_oneof![Just("+".to_string()), "[a-z€$]{0,3}"], 1..4),
        any::<bool>(),
    )
        .prop_map(|(shared, levels, hash)| {
            let mut f = levels.join("/");
            if f.is_empty() {
                f.push('#');
            } else if hash {
                f.push_str("/#");
            }
            if shared {
                f = format!("$share/g1/{f}");
            }
            ByteString::from(f)
        })
}

pub fn arb_pid() -> impl Strategy<Value = PacketId> {
    (1u16..).prop_map(|n| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN))
}

pub fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub fn arb_users() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((arb_string(), arb_string()), 0..3)
}

pub fn arb_sub_id() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..200, 1u32..=268_435_455]
}

fn arb_code(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(codes).prop_map(ReasonCode)
}

pub const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub const PUBREL_CODES: &[u8] = &[0x00, 0x92];
pub const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// v3 CONNACK return codes as the decoder reports them.
pub const CONNACK_V3_CODES: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
pub const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
pub const SUBACK_V3_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
pub const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
pub const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
pub const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

pub fn arb_publish_props() -> impl Strategy<Value = PublishProperties> {
    (
        of(0u8..=1),
        of(any::<u32>()),
        of(1u16..),
        of(arb_topic()),
        of(arb_bytes()),
        arb_users(),
        vec(arb_sub_id(), 0..3),
        of(arb_string()),
    )
        .prop_map(
            |(pfi, expiry, alias, rt, cd, users, ids, ct)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                topic_alias: alias.and_then(NonZeroU16::new),
                response_topic: rt,
                correlation_data: cd,
                user_properties: users,
                subscription_identifiers: ids,
                content_type: ct,
            },
        )
}

pub fn arb_publish(v: ProtocolVersion) -> impl Strategy<Value = Publish> {
    let props = if v.is_v5() {
        arb_publish_props().boxed()
    } else {
        Just(PublishProperties::default()).boxed()
    };
    (
        arb_qos(),
        any::<bool>(),
        any::<bool>(),
        arb_topic(),
        arb_pid(),
        props,
        arb_bytes(),
        any::<bool>(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, pid, properties, payload, empty_topic)| {
                let qos0 = qos == QoS::AtMostOnce;
                let mut p = Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic,
                    packet_id: (!qos0).then_some(pid),
                    properties,
                    payload,
                };
                if empty_topic && p.properties.topic_alias.is_some() {
                    p.topic = ByteString::new();
                }
                p
            },
        )
}

fn arb_ack_props(v: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    if v.is_v5() {
        (of(arb_string()), arb_users())
            .prop_map(|(reason_string, user_properties)| AckProperties {
                reason_string,
                user_properties,
            })
            .boxed()
    } else {
        Just(AckProperties::default()).boxed()
    }
}

fn arb_pub_resp(v: ProtocolVersion, codes: &'static [u8]) -> BoxedStrategy<PubResp> {
    let code = if v.is_v5() {
        arb_code(codes).boxed()
    } else {
        Just(ReasonCode::SUCCESS).boxed()
    };
    (arb_pid(), code, arb_ack_props(v))
        .prop_map(|(packet_id, reason, properties)| PubResp {
            packet_id,
            reason,
            properties,
        })
        .boxed()
}

fn arb_connect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = v.is_v5();
    let will_props = if v5 {
        (
            of(any::<u32>()),
            of(0u8..=1),
            of(any::<u32>()),
            of(arb_string()),
            of(arb_topic()),
            of(arb_bytes()),
            arb_users(),
        )
            .prop_map(|(d, pfi, e, ct, rt, cd, u)| WillProperties {
                will_delay_interval: d,
                payload_format_indicator: pfi,
                message_expiry_interval: e,
                content_type: ct,
                response_topic: rt,
                correlation_data: cd,
                user_properties: u,
            })
            .boxed()
    } else {
        Just(WillProperties::default()).boxed()
    };
    let will = of((
        arb_topic(),
        arb_bytes(),
        arb_qos(),
        any::<bool>(),
        will_props,
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        }));
    let props = if v5 {
        (
            of(any::<u32>()),
            of(1u16..),
            of(1u32..),
            of(any::<u16>()),
            of(any::<bool>()),
            of(any::<bool>()),
            arb_users(),
            of((arb_string(), of(arb_bytes()))),
        )
            .prop_map(
                |(se, rm, mps, tam, rri, rpi, users, auth)| ConnectProperties {
                    session_expiry_interval: se,
                    receive_maximum: rm,
                    maximum_packet_size: mps,
                    topic_alias_maximum: tam,
                    request_response_information: rri,
                    request_problem_information: rpi,
                    user_properties: users,
                    authentication_method: auth.as_ref().map(|(m, _)| m.clone()),
                    authentication_data: auth.and_then(|(_, d)| d),
                },
            )
            .boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    (
        any::<bool>(),
        any::<u16>(),
        arb_string(),
        will,
        of(arb_string()),
        of(arb_bytes()),
        props,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // Before v5 a password needs a user name [MQTT-3.1.2-22].
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
        .boxed()
}

fn arb_connack(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props = if v.is_v5() {
        (
            (
                of(any::<u32>()),
                of(1u16..),
                of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
                of(any::<bool>()),
                of(1u32..),
                of(arb_string()),
            ),
            (
                of(any::<u16>()),
                of(arb_string()),
                arb_users(),
                of(any::<bool>()),
                of(any::<bool>()),
                of(any::<bool>()),
            ),
            (
                of(any::<u16>()),
                of(arb_string()),
                of(arb_string()),
                of(arb_string()),
                of(arb_bytes()),
            ),
        )
            .prop_map(
                |(
                    (se, rm, mq, ra, mps, aci),
                    (tam, rs, up, wsa, sia, ssa),
                    (ska, ri, sr, am, ad),
                )| {
                    ConnAckProperties {
                        session_expiry_interval: se,
                        receive_maximum: rm,
                        maximum_qos: mq,
                        retain_available: ra,
                        maximum_packet_size: mps,
                        assigned_client_identifier: aci,
                        topic_alias_maximum: tam,
                        reason_string: rs,
                        user_properties: up,
                        wildcard_subscription_available: wsa,
                        subscription_identifiers_available: sia,
                        shared_subscription_available: ssa,
                        server_keep_alive: ska,
                        response_information: ri,
                        server_reference: sr,
                        authentication_method: am,
                        authentication_data: ad,
                    }
                },
            )
            .boxed()
    } else {
        Just(ConnAckProperties::default()).boxed()
    };
    let codes = if v.is_v5() {
        CONNACK_CODES
    } else {
        CONNACK_V3_CODES
    };
    (any::<bool>(), arb_code(codes), props)
        .prop_map(|(session_present, code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                code,
                properties,
            })
        })
        .boxed()
}

fn arb_options(v: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    let v5 = v.is_v5();
    (arb_qos(), any::<bool>(), any::<bool>(), 0u8..3)
        .prop_map(move |(qos, nl, rap, rh)| SubscriptionOptions {
            qos,
            no_local: nl && v5,
            retain_as_published: rap && v5,
            retain_handling: match rh {
                1 if v5 => RetainHandling::OnNewSubscribe,
                2 if v5 => RetainHandling::Never,
                _ => RetainHandling::OnSubscribe,
            },
        })
        .boxed()
}

fn arb_subscriptions(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = v.is_v5();
    let sub_props = if v5 {
        (of(arb_sub_id()), arb_users())
            .prop_map(|(id, u)| SubscribeProperties {
                subscription_identifier: id,
                user_properties: u,
            })
            .boxed()
    } else {
        Just(SubscribeProperties::default()).boxed()
    };
    let subscribe = (
        arb_pid(),
        vec((arb_filter(), arb_options(v)), 1..4),
        sub_props,
    )
        .prop_map(|(packet_id, mut filters, properties)| {
            // No Local is a protocol error on shared subscriptions [MQTT-3.8.3-4].
            for (f, o) in &mut filters {
                if f.starts_with("$share/") {
                    o.no_local = false;
                }
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        });
    let codes = if v5 { SUBACK_CODES } else { SUBACK_V3_CODES };
    let suback = (arb_pid(), vec(arb_code(codes), 1..4), arb_ack_props(v)).prop_map(
        |(packet_id, reasons, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties,
            })
        },
    );
    let users = if v5 {
        arb_users().boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let unsubscribe = (arb_pid(), vec(arb_filter(), 1..4), users).prop_map(
        |(packet_id, filters, user_properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                user_properties,
            })
        },
    );
    let reasons = if v5 {
        vec(arb_code(UNSUBACK_CODES), 1..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let unsuback =
        (arb_pid(), reasons, arb_ack_props(v)).prop_map(|(packet_id, reasons, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reasons,
                properties,
            })
        });
    prop_oneof![subscribe, suback, unsubscribe, unsuback].boxed()
}

fn arb_tail(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !v.is_v5() {
        return prop_oneof![
            Just(Packet::PingReq),
            Just(Packet::PingResp),
            Just(Packet::Disconnect(Disconnect::default()))
        ]
        .boxed();
    }
    let disconnect = (
        arb_code(DISCONNECT_CODES),
        of(any::<u32>()),
        of(arb_string()),
        arb_users(),
        of(arb_string()),
    )
        .prop_map(|(reason, se, rs, up, sr)| {
            Packet::Disconnect(Disconnect {
                reason,
                properties: DisconnectProperties {
                    session_expiry_interval: se,
                    reason_string: rs,
                    user_properties: up,
                    server_reference: sr,
                },
            })
        });
    let auth = (
        arb_code(AUTH_CODES),
        of(arb_string()),
        of(arb_bytes()),
        of(arb_string()),
        arb_users(),
    )
        .prop_map(|(reason, am, ad, rs, up)| {
            Packet::Auth(Auth {
                reason,
                properties: AuthProperties {
                    authentication_method: am,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: up,
                },
            })
        });
    prop_oneof![
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect,
        auth
    ]
    .boxed()
}

/// Any packet in the form `Decoder::with_version(v, _)` returns it.
pub fn arb_packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    prop_oneof![
        arb_connect(v),
        arb_connack(v),
        arb_publish(v).prop_map(Packet::Publish),
        arb_pub_resp(v, PUBACK_CODES).prop_map(Packet::PubAck),
        arb_pub_resp(v, PUBACK_CODES).prop_map(Packet::PubRec),
        arb_pub_resp(v, PUBREL_CODES).prop_map(Packet::PubRel),
        arb_pub_resp(v, PUBREL_CODES).prop_map(Packet::PubComp),
        arb_subscriptions(v),
        arb_tail(v),
    ]
    .boxed()
}

/// Encodes `packet` for `v`.
pub fn enc(packet: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, v, &mut out).expect("encodable packet");
    out
}

/// Decodes everything `data` holds with `decoder`; every decoded packet must
/// re-encode, decode to itself and consume exactly its own bytes. Returns the
/// number of packets decoded. This is the fuzz target's property.
pub fn check_round_trips(decoder: &mut Decoder, data: &[u8]) -> usize {
    let mut buf = BytesMut::from(data);
    let mut n = 0;
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        n += 1;
        let version = decoder
            .version()
            .expect("a decoded packet fixes the version");
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out).expect("a decoded packet re-encodes");
        assert_eq!(encoded_len(&packet, version), out.len());
        let again = Decoder::with_version(version, u32::MAX).decode(&mut out);
        assert_eq!(again, Ok(Some(packet)), "re-decoding");
        assert!(
            out.is_empty(),
            "re-encoded packet has {} extra bytes",
            out.len()
        );
    }
    n
}

/// Runs [`check_round_trips`] with a server decoder and a decoder per version.
pub fn check_all_decoders(data: &[u8]) -> usize {
    let mut n = check_round_trips(&mut Decoder::new(1 << 20), data);
    for v in VERSIONS {
        n += check_round_trips(&mut Decoder::with_version(v, 1 << 20), data);
    }
    n
}
