//! Test helpers: one or more sample packets of every type for every version,
//! as the decoder returns them (v3 samples carry no v5-only data), and frame
//! builders.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use std::num::NonZeroU16;

use crate::types::*;
use crate::wire::put_varint;
use crate::{encode, Decoder};

pub(crate) const V: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

pub(crate) fn pid(n: u16) -> PacketId {
    NonZeroU16::new(n).unwrap()
}

pub(crate) fn s(v: &'static str) -> ByteString {
    ByteString::from_static(v)
}

fn users() -> Vec<UserProperty> {
    vec![(s("k"), s("v1")), (s("k"), s("v2")), (s("é"), s(""))]
}

/// A frame from a first byte and a body (remaining length computed).
pub(crate) fn frame(byte1: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[byte1]);
    put_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// Decodes one complete frame with a `with_version` decoder.
pub(crate) fn decode_v(
    v: ProtocolVersion,
    bytes: &[u8],
) -> Result<Option<Packet>, crate::DecodeError> {
    let mut buf = BytesMut::from(bytes);
    Decoder::with_version(v, u32::MAX).decode(&mut buf)
}

/// Encodes `packet` for `v`.
pub(crate) fn enc(packet: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, v, &mut out).unwrap();
    out
}

pub(crate) fn publish(qos: QoS, topic: &'static str, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(7)),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(payload),
    }
}

/// v5 PUBLISH properties using every PUBLISH property.
pub(crate) fn full_publish_props() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: NonZeroU16::new(3),
        response_topic: Some(s("reply/here")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: users(),
        subscription_identifiers: vec![1, 268_435_455, 128],
        content_type: Some(s("text/plain")),
    }
}

fn connects(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v.is_v5();
    let minimal = Connect {
        protocol: v,
        clean_start: true,
        keep_alive: 60,
        client_id: s("client-1"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    let mut full = Connect {
        protocol: v,
        clean_start: false,
        keep_alive: 0,
        client_id: s(""),
        will: Some(LastWill {
            topic: s("will/topic"),
            payload: Bytes::from_static(b"bye\x00\xff"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"p\x00ss")),
        properties: ConnectProperties::default(),
    };
    if v5 {
        full.properties = ConnectProperties {
            session_expiry_interval: Some(u32::MAX),
            receive_maximum: Some(10),
            maximum_packet_size: Some(1024),
            topic_alias_maximum: Some(0),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: users(),
            authentication_method: Some(s("SCRAM-SHA-1")),
            authentication_data: Some(Bytes::from_static(b"data")),
        };
        if let Some(w) = &mut full.will {
            w.properties = WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(0),
                message_expiry_interval: Some(10),
                content_type: Some(s("ct")),
                response_topic: Some(s("r")),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: users(),
            };
        }
    }
    let mut will_only = minimal.clone();
    will_only.will = Some(LastWill {
        topic: s("w"),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let mut out = vec![minimal, full, will_only];
    if v5 {
        // Password without user name is allowed in v5 only.
        let mut pw = out[0].clone();
        pw.password = Some(Bytes::from_static(b"secret"));
        out.push(pw);
    }
    out.into_iter()
        .map(|c| Packet::Connect(Box::new(c)))
        .collect()
}

fn connacks(v: ProtocolVersion) -> Vec<Packet> {
    let codes: &[ReasonCode] = if v.is_v5() {
        &[
            ReasonCode::SUCCESS,
            ReasonCode::BANNED,
            ReasonCode::SERVER_MOVED,
        ]
    } else {
        &[
            ReasonCode::SUCCESS,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            ReasonCode::SERVER_UNAVAILABLE,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ReasonCode::NOT_AUTHORIZED,
        ]
    };
    let mut out: Vec<Packet> = codes
        .iter()
        .map(|&code| {
            Packet::ConnAck(ConnAck {
                session_present: code == ReasonCode::SUCCESS,
                code,
                properties: ConnAckProperties::default(),
            })
        })
        .collect();
    if v.is_v5() {
        out.push(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: ConnAckProperties {
                session_expiry_interval: Some(1),
                receive_maximum: Some(65_535),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                maximum_packet_size: Some(u32::MAX),
                assigned_client_identifier: Some(s("auto-1")),
                topic_alias_maximum: Some(10),
                reason_string: Some(s("why")),
                user_properties: users(),
                wildcard_subscription_available: Some(true),
                subscription_identifiers_available: Some(false),
                shared_subscription_available: Some(true),
                server_keep_alive: Some(30),
                response_information: Some(s("resp")),
                server_reference: Some(s("other:1883")),
                authentication_method: Some(s("m")),
                authentication_data: Some(Bytes::from_static(b"d")),
            },
        }));
    }
    out
}

fn publishes(v: ProtocolVersion) -> Vec<Packet> {
    let mut out = vec![
        publish(QoS::AtMostOnce, "a/b", b"hello"),
        publish(QoS::AtLeastOnce, "a", b""),
        Publish {
            dup: true,
            retain: true,
            ..publish(QoS::ExactlyOnce, "$SYS/x/€", &[0, 1, 2, 255])
        },
    ];
    if v.is_v5() {
        let mut full = publish(QoS::AtLeastOnce, "t", b"payload");
        full.properties = full_publish_props();
        // An empty topic is allowed with a topic alias.
        let mut aliased = publish(QoS::AtMostOnce, "", b"x");
        aliased.properties.topic_alias = NonZeroU16::new(1);
        out.extend([full, aliased]);
    }
    out.into_iter().map(Packet::Publish).collect()
}

fn pub_resps(v: ProtocolVersion) -> Vec<Packet> {
    let mut resps = vec![PubResp::new(pid(1)), PubResp::new(pid(u16::MAX))];
    if v.is_v5() {
        let with_reason = |reason| PubResp {
            reason,
            ..PubResp::new(pid(2))
        };
        let with_props = PubResp {
            properties: AckProperties {
                reason_string: Some(s("because")),
                user_properties: users(),
            },
            ..with_reason(ReasonCode::SUCCESS)
        };
        resps.extend([with_props]);
        let mut out = Vec::new();
        for r in &resps {
            out.push(Packet::PubAck(r.clone()));
            out.push(Packet::PubRec(r.clone()));
            out.push(Packet::PubRel(r.clone()));
            out.push(Packet::PubComp(r.clone()));
        }
        out.push(Packet::PubAck(with_reason(
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
        )));
        out.push(Packet::PubRec(with_reason(ReasonCode::QUOTA_EXCEEDED)));
        out.push(Packet::PubRel(with_reason(
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        )));
        out.push(Packet::PubComp(with_reason(
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        )));
        return out;
    }
    resps
        .into_iter()
        .flat_map(|r| {
            [
                Packet::PubAck(r.clone()),
                Packet::PubRec(r.clone()),
                Packet::PubRel(r.clone()),
                Packet::PubComp(r),
            ]
        })
        .collect()
}

fn subscriptions(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v.is_v5();
    let opts = |qos, no_local, rap, rh| SubscriptionOptions {
        qos,
        no_local: no_local && v5,
        retain_as_published: rap && v5,
        retain_handling: if v5 { rh } else { RetainHandling::OnSubscribe },
    };
    let sub = Subscribe {
        packet_id: pid(3),
        filters: vec![
            (
                s("a/+/c"),
                opts(QoS::AtMostOnce, true, false, RetainHandling::Never),
            ),
            (
                s("#"),
                opts(
                    QoS::AtLeastOnce,
                    false,
                    true,
                    RetainHandling::OnNewSubscribe,
                ),
            ),
            (
                s("$share/g/x/#"),
                opts(QoS::ExactlyOnce, false, false, RetainHandling::OnSubscribe),
            ),
        ],
        properties: if v5 {
            SubscribeProperties {
                subscription_identifier: Some(268_435_455),
                user_properties: users(),
            }
        } else {
            SubscribeProperties::default()
        },
    };
    let ack_props = if v5 {
        AckProperties {
            reason_string: Some(s("r")),
            user_properties: users(),
        }
    } else {
        AckProperties::default()
    };
    let suback = SubAck {
        packet_id: pid(3),
        reasons: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::UNSPECIFIED_ERROR,
        ],
        properties: ack_props.clone(),
    };
    let unsub = Unsubscribe {
        packet_id: pid(4),
        filters: vec![s("a/+/c"), s("$share/g/x/#")],
        user_properties: if v5 { users() } else { Vec::new() },
    };
    let unsuback = UnsubAck {
        packet_id: pid(4),
        reasons: if v5 {
            vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
        } else {
            Vec::new()
        },
        properties: ack_props,
    };
    vec![
        Packet::Subscribe(sub),
        Packet::SubAck(suback),
        Packet::Unsubscribe(unsub),
        Packet::UnsubAck(unsuback),
    ]
}

fn tail(v: ProtocolVersion) -> Vec<Packet> {
    let mut out = vec![
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ];
    if v.is_v5() {
        out.push(Packet::Disconnect(Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL,
            properties: DisconnectProperties::default(),
        }));
        out.push(Packet::Disconnect(Disconnect {
            reason: ReasonCode::SERVER_MOVED,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                reason_string: Some(s("moved")),
                user_properties: users(),
                server_reference: Some(s("elsewhere")),
            },
        }));
        out.push(Packet::Auth(Auth::default()));
        out.push(Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                reason_string: Some(s("more")),
                user_properties: users(),
            },
        }));
        out.push(Packet::Auth(Auth {
            reason: ReasonCode::RE_AUTHENTICATE,
            properties: AuthProperties::default(),
        }));
    }
    out
}

/// Sample packets of all 15 types (14 before v5) for `v`, in decoded form.
pub(crate) fn samples(v: ProtocolVersion) -> Vec<Packet> {
    let mut out = connects(v);
    out.extend(connacks(v));
    out.extend(publishes(v));
    out.extend(pub_resps(v));
    out.extend(subscriptions(v));
    out.extend(tail(v));
    out
}
