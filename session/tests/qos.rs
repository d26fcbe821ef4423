//! QoS 0/1/2 in both directions, duplicates, unknown ids, receive maximum.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::num::NonZeroU16;
use tern_codec::*;
use tern_session::*;

fn routed(conn: &mut Connection) -> usize {
    events(conn)
        .iter()
        .filter(|e| matches!(e, Event::Publish(_)))
        .count()
}

// [MQTT-3.3.4-1] QoS 0: no response, routed once.
#[test]
fn inbound_qos0_is_routed_without_ack() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(1), publish(QoS::AtMostOnce, None, "a/b"))
        .unwrap();
    assert!(drain(&mut conn).is_empty());
    let ev = events(&mut conn);
    assert!(matches!(&ev[..], [Event::Publish(p)] if p.topic == "a/b"));
    assert_eq!(conn.session().stats().publish_in, 1);
}

// [MQTT5-4.3.2-4] QoS 1: PUBACK with the same packet id, message routed.
#[test]
fn inbound_qos1_gets_puback_with_same_id() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(1), publish(QoS::AtLeastOnce, Some(42), "t"))
        .unwrap();
    conn.complete_publish(QoS::AtLeastOnce, Some(pid(42)), PublishOutcome::Routed);
    assert_eq!(out(&mut conn), vec![ctl("PUBACK", Some(42))]);
    assert_eq!(routed(&mut conn), 1);
}

// [MQTT5-4.3.3-8] PUBREC; [MQTT5-4.3.3-10] duplicates get PUBREC, not routed
// again; [MQTT5-4.3.3-11] PUBREL → PUBCOMP; [MQTT5-4.3.3-12] then the id is new.
#[test]
fn inbound_qos2_exactly_once_mqtt_4_3_3_10() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(7), "t"))
        .unwrap();
    conn.complete_publish(QoS::ExactlyOnce, Some(pid(7)), PublishOutcome::Routed);
    assert_eq!(out(&mut conn), vec![ctl("PUBREC", Some(7))]);
    assert_eq!(routed(&mut conn), 1);
    assert_eq!(conn.session().pending_pubrel_len(), 1);

    conn.handle_packet(at_ms(2), publish(QoS::ExactlyOnce, Some(7), "t"))
        .unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PUBREC", Some(7))]);
    assert_eq!(
        routed(&mut conn),
        0,
        "duplicate before PUBREL is not re-emitted"
    );
    assert_eq!(conn.session().stats().publish_in_duplicates, 1);

    conn.handle_packet(at_ms(3), pubrel(7)).unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PUBCOMP", Some(7))]);
    assert_eq!(conn.session().pending_pubrel_len(), 0);

    conn.handle_packet(at_ms(4), publish(QoS::ExactlyOnce, Some(7), "t"))
        .unwrap();
    assert_eq!(
        routed(&mut conn),
        1,
        "after PUBCOMP the id carries a new message"
    );
}

// [MQTT5-4.3.3-11] [MQTT5-3.7.2-1] PUBREL for an unknown id: PUBCOMP with the same
// id, v5 reason code 0x92 (Packet Identifier not found).
#[test]
fn pubrel_for_unknown_id_gets_pubcomp_v5_with_0x92() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(1), pubrel(9)).unwrap();
    let ts = drain(&mut conn);
    assert!(
        matches!(&ts[..], [Transmit::Packet(Packet::PubComp(r))] if r.reason == ReasonCode::SUCCESS)
    );

    let mut conn = open_v5("c");
    conn.handle_packet(at_ms(1), pubrel(9)).unwrap();
    let ts = drain(&mut conn);
    assert!(matches!(&ts[..], [Transmit::Packet(Packet::PubComp(r))]
        if r.reason == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND && r.packet_id.get() == 9));
    assert!(!conn.is_closing());
}

// [MQTT5-3.3.4-7] a v5 client exceeding our Receive Maximum → DISCONNECT 0x93.
#[test]
fn v5_incoming_qos2_over_receive_maximum_disconnects_0x93() {
    let cfg = SessionConfig {
        max_incoming_inflight: 2,
        ..Default::default()
    };
    let (mut conn, ack) = open(v5("c", true, None), None, cfg);
    assert_eq!(ack.properties.receive_maximum, Some(2));
    conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(1), "t"))
        .unwrap();
    conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(2), "t"))
        .unwrap();
    // A duplicate of a pending id is still fine.
    conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(2), "t"))
        .unwrap();
    let err = conn.handle_packet(at_ms(2), publish(QoS::ExactlyOnce, Some(3), "t"));
    assert_eq!(err, Err(ProtocolError::ReceiveMaximumExceeded(2)));
    let ts = drain(&mut conn);
    assert_eq!(
        disconnect_code(&ts),
        Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    );
    assert!(matches!(
        ts.last(),
        Some(Transmit::Packet(Packet::Disconnect(_)))
    ));
    assert_eq!(
        close_event(&mut conn),
        Some(CloseReason::ProtocolError(
            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
        ))
    );
}

// v3 clients are never told a Receive Maximum, so the v5 limit does not
// apply to them: pending QoS 2 ids are bounded by the packet-id space.
#[test]
fn v3_incoming_qos2_is_not_held_to_the_v5_receive_maximum() {
    let cfg = SessionConfig {
        max_incoming_inflight: 1,
        ..Default::default()
    };
    let (mut conn, _) = open(v311("c", true), None, cfg);
    for pid in 1..=100u16 {
        conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(pid), "t"))
            .unwrap();
    }
    assert_eq!(conn.session().pending_pubrel_len(), 100);
    assert!(close_event(&mut conn).is_none());
}

// With topic aliases disabled (maximum 0, [MQTT5-3.2.2-18]) any alias is 0x94 [MQTT5-3.3.2-9].
#[test]
fn v5_inbound_topic_alias_is_invalid_0x94() {
    let cfg = SessionConfig {
        topic_alias_maximum: 0,
        ..Default::default()
    };
    let (mut conn, ack) = open(v5("c", true, None), None, cfg);
    assert_eq!(ack.properties.topic_alias_maximum, None, "absent = 0");
    let Packet::Publish(mut p) = publish(QoS::AtMostOnce, None, "t") else {
        unreachable!()
    };
    p.properties.topic_alias = NonZeroU16::new(1);
    assert_eq!(
        conn.handle_packet(at_ms(1), Packet::Publish(p)),
        Err(ProtocolError::TopicAliasInvalid(1))
    );
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::TOPIC_ALIAS_INVALID)
    );
    assert_eq!(routed(&mut conn), 0);
}

// [MQTT5-3.3.4-6] a client PUBLISH must not carry a Subscription Identifier.
#[test]
fn v5_inbound_subscription_identifier_is_a_protocol_error_mqtt_3_3_4_6() {
    let mut conn = open_v5("c");
    let Packet::Publish(mut p) = publish(QoS::AtLeastOnce, Some(1), "t") else {
        unreachable!()
    };
    p.properties.subscription_identifiers = vec![5];
    assert_eq!(
        conn.handle_packet(at_ms(1), Packet::Publish(p)),
        Err(ProtocolError::SubscriptionIdentifierFromClient)
    );
    let ts = drain(&mut conn);
    assert_eq!(ts.len(), 1, "no PUBACK, only DISCONNECT");
    assert_eq!(disconnect_code(&ts), Some(ReasonCode::PROTOCOL_ERROR));
}

// [MQTT-3.3.1-2] QoS 0 out: no packet id, DUP 0, sent at once.
#[test]
fn outbound_qos0_is_sent_immediately_without_packet_id() {
    let mut conn = open_v311("c");
    let o = conn.deliver(
        at_ms(1),
        &Offer {
            retain: true,
            ..Offer::new(&msg("t", b"x"), at_ms(1), QoS::AtMostOnce)
        },
    );
    assert_eq!(o, DeliverOutcome::Sent);
    let ts = drain(&mut conn);
    let [Transmit::Publish(p)] = &ts[..] else {
        panic!("{ts:?}")
    };
    assert_eq!(
        (p.packet_id, p.dup, p.retain, p.qos),
        (None, false, true, QoS::AtMostOnce)
    );
    assert_eq!(conn.session().inflight_len(), 0);
}

// [MQTT-4.3.2-1] QoS 1 out: new packet id, inflight until PUBACK.
#[test]
fn outbound_qos1_until_puback() {
    let mut conn = open_v311("c");
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Sent
    );
    assert_eq!(out(&mut conn), vec![pub_(Some(1), false, "m1")]);
    assert_eq!(
        conn.session().inflight(),
        vec![(pid(1), InflightState::AwaitPubAck)]
    );
    conn.handle_packet(at_ms(2), puback(1)).unwrap();
    assert_eq!(conn.session().inflight_len(), 0);
    assert!(drain(&mut conn).is_empty());
    assert_eq!(conn.session().stats().puback_in, 1);
}

// [MQTT5-4.3.3-4] PUBREC → PUBREL same id; [MQTT5-4.3.3-5] until PUBCOMP.
#[test]
fn outbound_qos2_publish_pubrec_pubrel_pubcomp_mqtt_4_3_3_4() {
    let mut conn = open_v311("c");
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::ExactlyOnce));
    assert_eq!(out(&mut conn), vec![pub_(Some(1), false, "m1")]);
    assert_eq!(
        conn.session().inflight(),
        vec![(pid(1), InflightState::AwaitPubRec)]
    );
    conn.handle_packet(at_ms(2), pubrec(1)).unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PUBREL", Some(1))]);
    assert_eq!(
        conn.session().inflight(),
        vec![(pid(1), InflightState::AwaitPubComp)]
    );
    conn.handle_packet(at_ms(3), pubcomp(1)).unwrap();
    assert_eq!(conn.session().inflight_len(), 0);
    let st = conn.session().stats();
    assert_eq!((st.pubrec_in, st.pubcomp_in, st.unknown_acks), (1, 1, 0));
}

// [MQTT5-4.4.0-2] PUBREC with a reason ≥ 0x80 ends the exchange: no PUBREL, id freed.
#[test]
fn v5_pubrec_error_frees_the_id_without_pubrel_mqtt_4_4_0_2() {
    let mut conn = open_v5("c");
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::ExactlyOnce));
    drain(&mut conn);
    let mut r = PubResp::new(pid(1));
    r.reason = ReasonCode::QUOTA_EXCEEDED;
    conn.handle_packet(at_ms(2), Packet::PubRec(r)).unwrap();
    assert!(drain(&mut conn).is_empty());
    assert_eq!(conn.session().inflight_len(), 0);
}

// Acks for ids not inflight (or in the wrong state) are ignored, not fatal.
#[test]
fn unknown_or_mismatched_acks_are_ignored() {
    for mut conn in [open_v311("c"), open_v5("c")] {
        conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce));
        drain(&mut conn);
        conn.handle_packet(at_ms(2), puback(99)).unwrap();
        conn.handle_packet(at_ms(2), pubcomp(1)).unwrap(); // QoS 1 message: wrong ack
        assert_eq!(conn.session().inflight_len(), 1);
        assert!(!conn.is_closing());
        assert!(drain(&mut conn).is_empty());
        assert_eq!(conn.session().stats().unknown_acks, 2);
    }
}

#[test]
fn pubrec_for_unknown_id_answers_pubrel_so_the_client_can_finish() {
    let mut conn = open_v5("c");
    conn.handle_packet(at_ms(1), pubrec(5)).unwrap();
    let ts = drain(&mut conn);
    assert!(matches!(&ts[..], [Transmit::Packet(Packet::PubRel(r))]
        if r.packet_id.get() == 5 && r.reason == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND));
    assert_eq!(conn.session().stats().unknown_acks, 1);
}

#[test]
fn repeated_pubrec_repeats_pubrel() {
    let mut conn = open_v311("c");
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::ExactlyOnce));
    conn.handle_packet(at_ms(2), pubrec(1)).unwrap();
    conn.handle_packet(at_ms(3), pubrec(1)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![
            pub_(Some(1), false, "m1"),
            ctl("PUBREL", Some(1)),
            ctl("PUBREL", Some(1))
        ]
    );
}

// [MQTT5-3.3.4-4] v5 subscription identifiers travel with the PUBLISH; v3 never gets them.
#[test]
fn subscription_identifiers_only_for_v5() {
    let mut conn = open_v5("c");
    conn.deliver(
        at_ms(1),
        &Offer {
            subscription_identifiers: &[3, 9],
            ..Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce)
        },
    );
    let ts = drain(&mut conn);
    let [Transmit::Publish(p)] = &ts[..] else {
        panic!()
    };
    assert_eq!(&p.subscription_identifiers[..], &[3, 9]);

    let mut conn = open_v311("c");
    conn.deliver(
        at_ms(1),
        &Offer {
            subscription_identifiers: &[3],
            ..Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce)
        },
    );
    let ts = drain(&mut conn);
    let [Transmit::Publish(p)] = &ts[..] else {
        panic!()
    };
    assert!(p.subscription_identifiers.is_empty());
}
