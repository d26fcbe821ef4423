//! v5 server options in the session: what CONNACK announces, how inbound
//! PUBLISH is checked against it, outbound Topic Aliases and discarding a
//! message too large for the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn cfg() -> SessionConfig {
    SessionConfig {
        max_qos: QoS::AtLeastOnce,
        retain_available: false,
        validate_payload_format: true,
        response_information: "resp/".into(),
        max_packet_size: 2048,
        ..SessionConfig::default()
    }
}

fn inbound(qos: QoS, id: Option<u16>, pfi: Option<u8>, payload: &'static [u8]) -> Packet {
    let Packet::Publish(mut p) = publish(qos, id, "t") else {
        unreachable!()
    };
    p.properties.payload_format_indicator = pfi;
    p.payload = bytes::Bytes::from_static(payload);
    Packet::Publish(p)
}

fn disconnect_code(conn: &mut Connection) -> Option<(ReasonCode, Option<ByteString>)> {
    drain(conn).into_iter().find_map(|t| match t {
        Transmit::Packet(Packet::Disconnect(d)) => Some((d.reason, d.properties.reason_string)),
        _ => None,
    })
}

use bytestring::ByteString;

// [MQTT5-3.2.2-9] [MQTT5-3.1.2-28]: CONNACK carries Maximum QoS (only
// below 2), Retain Available, Maximum Packet Size, and Response
// Information only for a client that asked.
#[test]
fn connack_announces_the_configured_options() {
    let mut c = v5("asker", true, None);
    c.properties.request_response_information = Some(true);
    let (_, ack) = open(c, None, cfg());
    let p = &ack.properties;
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.maximum_packet_size, Some(2048));
    assert_eq!(p.response_information.as_deref(), Some("resp/asker"));

    let (_, ack) = open(v5("quiet", true, None), None, cfg());
    assert_eq!(ack.properties.response_information, None);
    let (_, ack) = open(v5("defaults", true, None), None, SessionConfig::default());
    assert_eq!(ack.properties.maximum_qos, None, "absent means 2");
    assert_eq!(ack.properties.retain_available, Some(true));
}

// [MQTT5-3.2.2-11] [MQTT5-3.2.2-14]: PUBLISH above Maximum QoS is 0x9B,
// a retained PUBLISH without retain support 0x9A; neither is routed.
#[test]
fn publish_beyond_the_announced_options_is_a_protocol_error() {
    let (mut conn, _) = open(v5("q", true, None), None, cfg());
    let err = conn
        .handle_packet(t0(), inbound(QoS::ExactlyOnce, Some(1), None, b"x"))
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::QOS_NOT_SUPPORTED);
    let (code, why) = disconnect_code(&mut conn).expect("DISCONNECT");
    assert_eq!(code, ReasonCode::QOS_NOT_SUPPORTED);
    assert!(why.unwrap().contains("MQTT5-3.2.2-11"));
    assert!(events(&mut conn)
        .iter()
        .all(|e| !matches!(e, Event::Publish(_))));

    let (mut conn, _) = open(v5("r", true, None), None, cfg());
    let Packet::Publish(mut p) = inbound(QoS::AtMostOnce, None, None, b"x") else {
        unreachable!()
    };
    p.retain = true;
    let err = conn.handle_packet(t0(), Packet::Publish(p)).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::RETAIN_NOT_SUPPORTED);
}

// [MQTT5-3.2.2-12] [MQTT5-3.2.2-13]: a will the broker cannot honour.
#[test]
fn wills_beyond_the_options_are_refused_at_connect() {
    let mut c = v5("w", true, None);
    c.will = Some(will("w/t")); // QoS 1, retained
    assert_eq!(
        Connection::check_connect(&c, &cfg()),
        Err(ReasonCode::RETAIN_NOT_SUPPORTED)
    );
    let strict = SessionConfig {
        max_qos: QoS::AtMostOnce,
        ..SessionConfig::default()
    };
    assert_eq!(
        Connection::check_connect(&c, &strict),
        Err(ReasonCode::QOS_NOT_SUPPORTED)
    );
}

// [MQTT5-3.2.2-10]: a SUBSCRIBE at QoS 2 is accepted and stored at Maximum QoS.
#[test]
fn subscriptions_are_granted_at_most_the_maximum_qos() {
    let (mut conn, _) = open(v5("s", true, None), None, cfg());
    conn.handle_packet(t0(), subscribe(1, &[("a", QoS::ExactlyOnce)]))
        .unwrap();
    let ev = events(&mut conn);
    let Some(Event::Subscribe { filters, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(filters[0].1.qos, QoS::AtLeastOnce);
}

// [MQTT5-3.3.2-4] [MQTT5-3.1.2-29]: invalid UTF-8 marked as UTF-8 is
// answered with 0x99 and not routed; the Reason String only when allowed.
#[test]
fn invalid_utf8_is_refused_with_payload_format_invalid() {
    for (problem_info, with_string) in [(None, true), (Some(false), false)] {
        let mut c = v5("p", true, None);
        c.properties.request_problem_information = problem_info;
        let (mut conn, _) = open(c, None, cfg());
        conn.handle_packet(t0(), inbound(QoS::AtLeastOnce, Some(4), Some(1), b"\xff"))
            .unwrap();
        conn.handle_packet(t0(), inbound(QoS::AtLeastOnce, Some(5), Some(0), b"\xff"))
            .unwrap();
        let sent = drain(&mut conn);
        let Transmit::Packet(Packet::PubAck(r)) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert_eq!(
            (r.packet_id.get(), r.reason),
            (4, ReasonCode::PAYLOAD_FORMAT_INVALID)
        );
        assert_eq!(r.properties.reason_string.is_some(), with_string);
        let routed: Vec<_> = events(&mut conn)
            .into_iter()
            .filter(|e| matches!(e, Event::Publish(_)))
            .collect();
        assert_eq!(routed.len(), 1, "only the unmarked payload is routed");
    }
}

// [MQTT5-3.1.2-25]: a discarded message frees its packet id and the next
// queued message goes out, as if the discarded one had been acknowledged.
#[test]
fn discarding_a_too_large_message_frees_the_window() {
    let mut c = v5("d", true, None);
    c.properties.receive_maximum = Some(1);
    let (mut conn, _) = open(c, None, SessionConfig::default());
    for name in [&b"m1"[..], b"m2"] {
        let m = msg("t", if name == b"m1" { b"m1" } else { b"m2" });
        conn.deliver(t0(), &Offer::new(&m, t0(), QoS::AtLeastOnce));
    }
    let first = drain(&mut conn);
    let [Transmit::Publish(p)] = &first[..] else {
        panic!("{first:?}")
    };
    conn.discard_too_large(t0(), p.packet_id);
    assert_eq!(conn.session().stats().dropped_too_large, 1);
    assert_eq!(out(&mut conn), vec![Out::Pub(Some(2), false, "m2")]);
    assert_eq!(conn.session().inflight_len(), 1);
}

// [MQTT5-3.3.2-11]: aliases only when the client allows them, within the
// smaller of both maxima.
#[test]
fn outbound_aliases_follow_both_maxima() {
    let mut c = v5("a", true, None);
    c.properties.topic_alias_maximum = Some(1);
    let (mut conn, _) = open(c, None, SessionConfig::default());
    let first = conn.topic_alias("x/y");
    assert_eq!(first.alias().map(|a| a.get()), Some(1));
    conn.commit_topic_alias(&"x/y".into(), first);
    assert!(conn.topic_alias("x/y").omits_topic());
    assert_eq!(conn.topic_alias("z").alias().map(|a| a.get()), Some(1));

    let (conn, _) = open(v5("none", true, None), None, SessionConfig::default());
    assert_eq!(conn.topic_alias("x/y"), AliasUse::None);
    let mut c = v5("off", true, None);
    c.properties.topic_alias_maximum = Some(10);
    let off = SessionConfig {
        outbound_topic_alias_maximum: 0,
        ..SessionConfig::default()
    };
    let (conn, _) = open(c, None, off);
    assert_eq!(conn.topic_alias("x/y"), AliasUse::None);
}

// 4.11: a configured Server Reference redirects every client.
#[test]
fn redirect_connack_names_the_other_server() {
    assert_eq!(redirect_connack(&SessionConfig::default()), None);
    let moved = SessionConfig {
        server_reference: "b:1883".into(),
        server_moved: true,
        ..SessionConfig::default()
    };
    let ack = redirect_connack(&moved).unwrap();
    assert_eq!(ack.code, ReasonCode::SERVER_MOVED);
    assert_eq!(ack.properties.server_reference.as_deref(), Some("b:1883"));
    assert!(!ack.session_present);
}

// [MQTT5-3.4.2-1] [MQTT5-3.5.2-1]: a v5 PUBACK/PUBREC says 0x10 when the
// broker found no subscriber; a v3.1.1 ack stays plain.
#[test]
fn unrouted_publish_acks_say_no_matching_subscribers() {
    let mut conn = open_v5("n");
    conn.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(1), "t"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::ExactlyOnce, Some(2), "t"))
        .unwrap();
    conn.complete_publish(
        QoS::AtLeastOnce,
        Some(pid(1)),
        PublishOutcome::NoMatchingSubscribers,
    );
    conn.complete_publish(
        QoS::ExactlyOnce,
        Some(pid(2)),
        PublishOutcome::NoMatchingSubscribers,
    );
    let codes: Vec<_> = drain(&mut conn)
        .into_iter()
        .map(|t| match t {
            Transmit::Packet(Packet::PubAck(r)) => ("PUBACK", r.reason),
            Transmit::Packet(Packet::PubRec(r)) => ("PUBREC", r.reason),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("PUBACK", ReasonCode::NO_MATCHING_SUBSCRIBERS),
            ("PUBREC", ReasonCode::NO_MATCHING_SUBSCRIBERS)
        ]
    );
    let mut v3 = open_v311("n3");
    v3.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(1), "t"))
        .unwrap();
    v3.complete_publish(
        QoS::AtLeastOnce,
        Some(pid(1)),
        PublishOutcome::NoMatchingSubscribers,
    );
    let sent = drain(&mut v3);
    let [Transmit::Packet(Packet::PubAck(r))] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(r.reason, ReasonCode::SUCCESS);
}
