//! The oracle test's common view of a decoded packet: the fields both Tern
//! and mqttbytes 0.6 represent, built from either side's packet.

use bytes::BytesMut;
use mqttbytes::{v4, v5};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tern_codec::*;

pub(crate) type Pairs = Vec<(String, String)>;
/// Will topic, payload, QoS, retain, properties.
pub(crate) type WillView = (String, Vec<u8>, u8, bool, Option<String>);
/// Session expiry, reason string, user properties, server reference.
pub(crate) type DisconnectProps = (Option<u32>, Option<String>, Pairs, Option<String>);

/// The fields both decoders represent, normalised (an absent or empty
/// property block is `None`; an absent user name or password is "").
#[derive(Debug, PartialEq)]
pub(crate) enum View {
    Connect {
        level: u8,
        clean: bool,
        keep_alive: u16,
        client_id: String,
        will: Option<WillView>,
        login: Option<(String, String)>,
        props: Option<String>,
    },
    ConnAck(bool, u8, Option<String>),
    Publish {
        flags: (bool, u8, bool),
        topic: String,
        pkid: u16,
        payload: Vec<u8>,
        props: Option<String>,
    },
    Ack(&'static str, u16, u8, Option<(Option<String>, Pairs)>),
    Subscribe(
        u16,
        Vec<(String, u8, bool, bool, u8)>,
        Option<(Option<usize>, Pairs)>,
    ),
    SubAck(u16, Vec<u8>, Option<(Option<String>, Pairs)>),
    Unsubscribe(u16, Vec<String>, Option<Pairs>),
    UnsubAck(u16, Vec<u8>, Option<(Option<String>, Pairs)>),
    PingReq,
    PingResp,
    Disconnect(u8, Option<DisconnectProps>),
}

pub(crate) fn pairs(p: &[UserProperty]) -> Pairs {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn opt_s(s: &Option<bytestring::ByteString>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub(crate) fn nonempty<T: PartialEq + Default>(t: T) -> Option<T> {
    (t != T::default()).then_some(t)
}

pub(crate) fn login(user: Option<&str>, pass: Option<&[u8]>) -> Option<(String, String)> {
    let u = user.unwrap_or("").to_string();
    let p = String::from_utf8_lossy(pass.unwrap_or(b"")).into_owned();
    (!u.is_empty() || !p.is_empty()).then_some((u, p))
}

pub(crate) fn ack_props(p: &AckProperties) -> Option<(Option<String>, Pairs)> {
    nonempty((opt_s(&p.reason_string), pairs(&p.user_properties)))
}

/// Our packet as a view. Property blocks are rendered with `Debug` of a
/// tuple of the same fields in the same order as [`v5_view`] renders them.
pub(crate) fn ours_view(v: ProtocolVersion, p: &Packet) -> View {
    match p {
        Packet::Connect(c) => View::Connect {
            level: c.protocol as u8,
            clean: c.clean_start,
            keep_alive: c.keep_alive,
            client_id: c.client_id.to_string(),
            will: c.will.as_ref().map(|w| {
                let wp = &w.properties;
                let props = (
                    wp.will_delay_interval,
                    wp.payload_format_indicator,
                    wp.message_expiry_interval,
                    opt_s(&wp.content_type),
                    opt_s(&wp.response_topic),
                    wp.correlation_data.as_ref().map(|b| b.to_vec()),
                    pairs(&wp.user_properties),
                );
                let props = nonempty(props).map(|p| format!("{p:?}"));
                (
                    w.topic.to_string(),
                    w.payload.to_vec(),
                    w.qos as u8,
                    w.retain,
                    props,
                )
            }),
            login: login(c.username.as_deref(), c.password.as_deref()),
            props: {
                let cp = &c.properties;
                let t = (
                    cp.session_expiry_interval,
                    cp.receive_maximum,
                    cp.maximum_packet_size,
                    cp.topic_alias_maximum,
                    cp.request_response_information.map(u8::from),
                    cp.request_problem_information.map(u8::from),
                    pairs(&cp.user_properties),
                    opt_s(&cp.authentication_method),
                    cp.authentication_data.as_ref().map(|b| b.to_vec()),
                );
                nonempty(t).map(|t| format!("{t:?}"))
            },
        },
        Packet::ConnAck(c) => {
            let p = &c.properties;
            let t = (
                (
                    p.session_expiry_interval,
                    p.receive_maximum,
                    p.maximum_qos.map(|q| q as u8),
                    p.retain_available.map(u8::from),
                ),
                (
                    p.maximum_packet_size,
                    opt_s(&p.assigned_client_identifier),
                    p.topic_alias_maximum,
                    opt_s(&p.reason_string),
                ),
                pairs(&p.user_properties),
                (
                    p.wildcard_subscription_available.map(u8::from),
                    p.subscription_identifiers_available.map(u8::from),
                    p.shared_subscription_available.map(u8::from),
                    p.server_keep_alive,
                ),
                (
                    opt_s(&p.response_information),
                    opt_s(&p.server_reference),
                    opt_s(&p.authentication_method),
                ),
                p.authentication_data.as_ref().map(|b| b.to_vec()),
            );
            let code = if v.is_v5() {
                c.code.0
            } else {
                v3_connack(c.code.0)
            };
            View::ConnAck(
                c.session_present,
                code,
                nonempty(t).map(|t| format!("{t:?}")),
            )
        }
        Packet::Publish(p) => {
            let pp = &p.properties;
            let t = (
                pp.payload_format_indicator,
                pp.message_expiry_interval,
                pp.topic_alias.map(|a| a.get()),
                opt_s(&pp.response_topic),
                pp.correlation_data.as_ref().map(|b| b.to_vec()),
                pairs(&pp.user_properties),
                pp.subscription_identifiers
                    .iter()
                    .map(|&i| i as usize)
                    .collect::<Vec<_>>(),
                opt_s(&pp.content_type),
            );
            View::Publish {
                flags: (p.dup, p.qos as u8, p.retain),
                topic: p.topic.to_string(),
                pkid: p.packet_id.map_or(0, |i| i.get()),
                payload: p.payload.to_vec(),
                props: nonempty(t).map(|t| format!("{t:?}")),
            }
        }
        Packet::PubAck(r) => View::Ack(
            "PUBACK",
            r.packet_id.get(),
            r.reason.0,
            ack_props(&r.properties),
        ),
        Packet::PubRec(r) => View::Ack(
            "PUBREC",
            r.packet_id.get(),
            r.reason.0,
            ack_props(&r.properties),
        ),
        Packet::PubRel(r) => View::Ack(
            "PUBREL",
            r.packet_id.get(),
            r.reason.0,
            ack_props(&r.properties),
        ),
        Packet::PubComp(r) => View::Ack(
            "PUBCOMP",
            r.packet_id.get(),
            r.reason.0,
            ack_props(&r.properties),
        ),
        Packet::Subscribe(s) => View::Subscribe(
            s.packet_id.get(),
            s.filters
                .iter()
                .map(|(f, o)| {
                    (
                        f.to_string(),
                        o.qos as u8,
                        o.no_local,
                        o.retain_as_published,
                        o.retain_handling as u8,
                    )
                })
                .collect(),
            nonempty((
                s.properties.subscription_identifier.map(|i| i as usize),
                pairs(&s.properties.user_properties),
            )),
        ),
        Packet::SubAck(s) => View::SubAck(
            s.packet_id.get(),
            s.reasons.iter().map(|r| r.0).collect(),
            ack_props(&s.properties),
        ),
        Packet::Unsubscribe(u) => View::Unsubscribe(
            u.packet_id.get(),
            u.filters.iter().map(|f| f.to_string()).collect(),
            nonempty(pairs(&u.user_properties)),
        ),
        Packet::UnsubAck(u) => View::UnsubAck(
            u.packet_id.get(),
            u.reasons.iter().map(|r| r.0).collect(),
            ack_props(&u.properties),
        ),
        Packet::PingReq => View::PingReq,
        Packet::PingResp => View::PingResp,
        Packet::Disconnect(d) => {
            let p = &d.properties;
            View::Disconnect(
                d.reason.0,
                nonempty((
                    p.session_expiry_interval,
                    opt_s(&p.reason_string),
                    pairs(&p.user_properties),
                    opt_s(&p.server_reference),
                )),
            )
        }
        Packet::Auth(_) => unreachable!("mqttbytes has no AUTH (D24)"),
    }
}

/// Our 3.1.1 CONNACK reason code as mqttbytes' 3.1.1 return code.
pub(crate) fn v3_connack(code: u8) -> u8 {
    match code {
        0x84 => 1,
        0x85 => 2,
        0x88 => 3,
        0x86 => 4,
        0x87 => 5,
        c => c,
    }
}

pub(crate) fn v4_view(p: v4::Packet) -> View {
    match p {
        v4::Packet::Connect(c) => View::Connect {
            level: match c.protocol {
                mqttbytes::Protocol::V4 => 4,
                mqttbytes::Protocol::V5 => 5,
            },
            clean: c.clean_session,
            keep_alive: c.keep_alive,
            client_id: c.client_id,
            will: c
                .last_will
                .map(|w| (w.topic, w.message.to_vec(), w.qos as u8, w.retain, None)),
            login: c
                .login
                .and_then(|l| login(Some(&l.username), Some(l.password.as_bytes()))),
            props: None,
        },
        v4::Packet::ConnAck(c) => View::ConnAck(c.session_present, c.code as u8, None),
        v4::Packet::Publish(p) => View::Publish {
            flags: (p.dup, p.qos as u8, p.retain),
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload.to_vec(),
            props: None,
        },
        v4::Packet::PubAck(a) => View::Ack("PUBACK", a.pkid, 0, None),
        v4::Packet::PubRec(a) => View::Ack("PUBREC", a.pkid, 0, None),
        v4::Packet::PubRel(a) => View::Ack("PUBREL", a.pkid, 0, None),
        v4::Packet::PubComp(a) => View::Ack("PUBCOMP", a.pkid, 0, None),
        v4::Packet::Subscribe(s) => View::Subscribe(
            s.pkid,
            s.filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8, false, false, 0))
                .collect(),
            None,
        ),
        v4::Packet::SubAck(s) => View::SubAck(
            s.pkid,
            s.return_codes
                .into_iter()
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(q) => q as u8,
                    v4::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
            None,
        ),
        v4::Packet::Unsubscribe(u) => View::Unsubscribe(u.pkid, u.topics, None),
        v4::Packet::UnsubAck(u) => View::UnsubAck(u.pkid, Vec::new(), None),
        v4::Packet::PingReq => View::PingReq,
        v4::Packet::PingResp => View::PingResp,
        v4::Packet::Disconnect => View::Disconnect(0, None),
    }
}

pub(crate) fn v5_view(p: v5::Packet) -> View {
    let b = |b: Option<bytes::Bytes>| b.map(|b| b.to_vec());
    match p {
        v5::Packet::Connect(c) => View::Connect {
            level: match c.protocol {
                mqttbytes::Protocol::V4 => 4,
                mqttbytes::Protocol::V5 => 5,
            },
            clean: c.clean_session,
            keep_alive: c.keep_alive,
            client_id: c.client_id,
            will: c.last_will.map(|w| {
                let props = w.properties.map(|p| {
                    let t = (
                        p.delay_interval,
                        p.payload_format_indicator,
                        p.message_expiry_interval,
                        p.content_type,
                        p.response_topic,
                        b(p.correlation_data),
                        p.user_properties,
                    );
                    format!("{t:?}")
                });
                (w.topic, w.message.to_vec(), w.qos as u8, w.retain, props)
            }),
            login: c
                .login
                .and_then(|l| login(Some(&l.username), Some(l.password.as_bytes()))),
            props: c.properties.map(|p| {
                let t = (
                    p.session_expiry_interval,
                    p.receive_maximum,
                    p.max_packet_size,
                    p.topic_alias_max,
                    p.request_response_info,
                    p.request_problem_info,
                    p.user_properties,
                    p.authentication_method,
                    b(p.authentication_data),
                );
                format!("{t:?}")
            }),
        },
        v5::Packet::ConnAck(c) => View::ConnAck(
            c.session_present,
            c.code as u8,
            c.properties.map(|p| {
                let t = (
                    (
                        p.session_expiry_interval,
                        p.receive_max,
                        p.max_qos,
                        p.retain_available,
                    ),
                    (
                        p.max_packet_size,
                        p.assigned_client_identifier,
                        p.topic_alias_max,
                        p.reason_string,
                    ),
                    p.user_properties,
                    (
                        p.wildcard_subscription_available,
                        p.subscription_identifiers_available,
                        p.shared_subscription_available,
                        p.server_keep_alive,
                    ),
                    (
                        p.response_information,
                        p.server_reference,
                        p.authentication_method,
                    ),
                    b(p.authentication_data),
                );
                format!("{t:?}")
            }),
        ),
        v5::Packet::Publish(p) => View::Publish {
            flags: (p.dup, p.qos as u8, p.retain),
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload.to_vec(),
            props: p.properties.map(|p| {
                let t = (
                    p.payload_format_indicator,
                    p.message_expiry_interval,
                    p.topic_alias,
                    p.response_topic,
                    b(p.correlation_data),
                    p.user_properties,
                    p.subscription_identifiers,
                    p.content_type,
                );
                format!("{t:?}")
            }),
        },
        v5::Packet::PubAck(a) => View::Ack(
            "PUBACK",
            a.pkid,
            a.reason as u8,
            a.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::PubRec(a) => View::Ack(
            "PUBREC",
            a.pkid,
            a.reason as u8,
            a.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::PubRel(a) => View::Ack(
            "PUBREL",
            a.pkid,
            a.reason as u8,
            a.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::PubComp(a) => View::Ack(
            "PUBCOMP",
            a.pkid,
            a.reason as u8,
            a.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::Subscribe(s) => View::Subscribe(
            s.pkid,
            s.filters
                .into_iter()
                .map(|f| {
                    let rh = match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => 0,
                        v5::RetainForwardRule::OnNewSubscribe => 1,
                        v5::RetainForwardRule::Never => 2,
                    };
                    (f.path, f.qos as u8, f.nolocal, f.preserve_retain, rh)
                })
                .collect(),
            s.properties.map(|p| (p.id, p.user_properties)),
        ),
        v5::Packet::SubAck(s) => View::SubAck(
            s.pkid,
            s.return_codes.into_iter().map(|c| c as u8).collect(),
            s.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::Unsubscribe(u) => {
            View::Unsubscribe(u.pkid, u.filters, u.properties.map(|p| p.user_properties))
        }
        v5::Packet::UnsubAck(u) => View::UnsubAck(
            u.pkid,
            u.reasons.into_iter().map(|r| r as u8).collect(),
            u.properties.map(|p| (p.reason_string, p.user_properties)),
        ),
        v5::Packet::PingReq => View::PingReq,
        v5::Packet::PingResp => View::PingResp,
        v5::Packet::Disconnect(d) => View::Disconnect(
            d.reason_code as u8,
            d.properties.map(|p| {
                (
                    p.session_expiry_interval,
                    p.reason_string,
                    p.user_properties,
                    p.server_reference,
                )
            }),
        ),
    }
}

/// What mqttbytes made of a frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Theirs {
    Packet(View),
    Incomplete,
    Error(String),
    Panic,
}

pub(crate) fn theirs(v: ProtocolVersion, bytes: &[u8], max: usize) -> Theirs {
    // Framing first: only a frame mqttbytes considers incomplete is
    // `Incomplete`; running out of bytes inside a complete frame is an error.
    match mqttbytes::check(bytes.iter(), max) {
        Err(mqttbytes::Error::InsufficientBytes(_)) => return Theirs::Incomplete,
        Err(e) => return Theirs::Error(format!("{e:?}")),
        Ok(_) => {}
    }
    let mut buf = BytesMut::from(bytes);
    let result = catch_unwind(AssertUnwindSafe(|| {
        if v.is_v5() {
            v5::read(&mut buf, max).map(v5_view)
        } else {
            v4::read(&mut buf, max).map(v4_view)
        }
    }));
    match result {
        Err(_) => Theirs::Panic,
        Ok(Ok(view)) => Theirs::Packet(view),
        Ok(Err(e)) => Theirs::Error(format!("{e:?}")),
    }
}
