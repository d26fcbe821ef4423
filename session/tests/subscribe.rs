//! SUBSCRIBE / UNSUBSCRIBE bookkeeping and the SUBACK / UNSUBACK round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn suback(conn: &mut Connection) -> SubAck {
    let ts = drain(conn);
    match &ts[..] {
        [Transmit::Packet(Packet::SubAck(s))] => s.clone(),
        other => panic!("expected one SUBACK, got {other:?}"),
    }
}

fn subscribe_event(
    conn: &mut Connection,
) -> (PacketId, Vec<ByteStringQos>, Vec<bool>, Option<u32>) {
    let ev = events(conn);
    match ev.into_iter().next() {
        Some(Event::Subscribe {
            packet_id,
            filters,
            existed,
            subscription_identifier,
        }) => (
            packet_id,
            filters
                .into_iter()
                .map(|(f, o)| (f.to_string(), o.qos))
                .collect(),
            existed,
            subscription_identifier,
        ),
        other => panic!("expected Subscribe, got {other:?}"),
    }
}
type ByteStringQos = (String, QoS);

// [MQTT-3.8.4-1/2] SUBACK with the same id; [MQTT-3.8.4-5] one code per filter.
#[test]
fn subscribe_records_then_suback_after_completion_mqtt_3_8_4_1() {
    let mut conn = open_v311("c");
    conn.handle_packet(
        at_ms(1),
        subscribe(3, &[("a/+", QoS::ExactlyOnce), ("b", QoS::AtMostOnce)]),
    )
    .unwrap();
    assert!(drain(&mut conn).is_empty(), "SUBACK waits for the broker");
    let (id, filters, existed, sid) = subscribe_event(&mut conn);
    assert_eq!(id, pid(3));
    assert_eq!(
        filters,
        vec![
            ("a/+".into(), QoS::ExactlyOnce),
            ("b".into(), QoS::AtMostOnce)
        ]
    );
    assert_eq!(existed, vec![false, false]);
    assert_eq!(sid, None);
    // The broker grants at most QoS 1 for a/+.
    conn.complete_subscribe(
        pid(3),
        vec![ReasonCode::GRANTED_QOS_1, ReasonCode::GRANTED_QOS_0],
    );
    let ack = suback(&mut conn);
    assert_eq!(ack.packet_id, pid(3));
    assert_eq!(ack.reasons, vec![ReasonCode(1), ReasonCode(0)]);
    assert_eq!(
        conn.session().subscription("a/+").map(|(o, _)| o.qos),
        Some(QoS::AtLeastOnce)
    );
}

// [MQTT-3.8.4-3] an identical filter replaces the subscription; existed = true.
#[test]
fn resubscribe_replaces_and_reports_existed_mqtt_3_8_4_3() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(1), subscribe(1, &[("t", QoS::AtMostOnce)]))
        .unwrap();
    events(&mut conn);
    conn.complete_subscribe(pid(1), vec![ReasonCode(0)]);
    conn.handle_packet(at_ms(2), subscribe(2, &[("t", QoS::ExactlyOnce)]))
        .unwrap();
    let (_, _, existed, _) = subscribe_event(&mut conn);
    assert_eq!(existed, vec![true]);
    assert_eq!(conn.session().subscriptions().count(), 1);
    assert_eq!(
        conn.session().subscription("t").map(|(o, _)| o.qos),
        Some(QoS::ExactlyOnce)
    );
}

// A failure code from the broker undoes the recorded subscription (or restores the old one).
#[test]
fn failed_subscription_is_rolled_back() {
    let mut conn = open_v5("c");
    conn.handle_packet(at_ms(1), subscribe(1, &[("keep", QoS::AtLeastOnce)]))
        .unwrap();
    events(&mut conn);
    conn.complete_subscribe(pid(1), vec![ReasonCode(1)]);
    drain(&mut conn);
    conn.handle_packet(
        at_ms(2),
        subscribe(2, &[("keep", QoS::ExactlyOnce), ("deny", QoS::AtMostOnce)]),
    )
    .unwrap();
    events(&mut conn);
    conn.complete_subscribe(
        pid(2),
        vec![ReasonCode::NOT_AUTHORIZED, ReasonCode::NOT_AUTHORIZED],
    );
    assert_eq!(
        suback(&mut conn).reasons,
        vec![ReasonCode(0x87), ReasonCode(0x87)]
    );
    assert_eq!(
        conn.session().subscription("keep").map(|(o, _)| o.qos),
        Some(QoS::AtLeastOnce)
    );
    assert!(conn.session().subscription("deny").is_none());
}

// max_subscriptions: refused filters get 0x97 in their SUBACK position and are not routed.
#[test]
fn subscription_quota_refuses_extra_filters() {
    let cfg = SessionConfig {
        max_subscriptions: 2,
        ..Default::default()
    };
    let (mut conn, _) = open(v5("c", true, None), None, cfg);
    conn.handle_packet(
        at_ms(1),
        subscribe(
            1,
            &[
                ("a", QoS::AtMostOnce),
                ("b", QoS::AtMostOnce),
                ("c", QoS::AtMostOnce),
                ("a", QoS::AtLeastOnce),
            ],
        ),
    )
    .unwrap();
    let (_, filters, existed, _) = subscribe_event(&mut conn);
    let names: Vec<_> = filters.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        vec!["a", "b", "a"],
        "c is refused; replacing a is allowed"
    );
    assert_eq!(existed, vec![false, false, true]);
    conn.complete_subscribe(pid(1), vec![ReasonCode(0), ReasonCode(0), ReasonCode(1)]);
    assert_eq!(
        suback(&mut conn).reasons,
        vec![
            ReasonCode(0),
            ReasonCode(0),
            ReasonCode::QUOTA_EXCEEDED,
            ReasonCode(1)
        ]
    );
    // All refused: answered at once, no event.
    conn.handle_packet(at_ms(2), subscribe(2, &[("z", QoS::AtMostOnce)]))
        .unwrap();
    assert!(events(&mut conn).is_empty());
    assert_eq!(suback(&mut conn).reasons, vec![ReasonCode::QUOTA_EXCEEDED]);
}

#[test]
fn v5_subscription_identifier_is_stored_and_reported() {
    let mut conn = open_v5("c");
    let Packet::Subscribe(mut s) = subscribe(4, &[("x/#", QoS::AtLeastOnce)]) else {
        unreachable!()
    };
    s.properties.subscription_identifier = Some(77);
    conn.handle_packet(at_ms(1), Packet::Subscribe(s)).unwrap();
    let (_, _, _, sid) = subscribe_event(&mut conn);
    assert_eq!(sid, Some(77));
    let subs: Vec<_> = conn
        .session()
        .subscriptions()
        .map(|(f, o, id)| (f.to_string(), o.qos, id))
        .collect();
    assert_eq!(subs, vec![("x/#".to_string(), QoS::AtLeastOnce, Some(77))]);
}

// [MQTT5-3.8.3-4] No Local on a shared subscription is a protocol error.
#[test]
fn no_local_on_shared_subscription_is_a_protocol_error_mqtt_3_8_3_4() {
    let mut conn = open_v5("c");
    let Packet::Subscribe(mut s) = subscribe(1, &[("$share/g/t", QoS::AtMostOnce)]) else {
        unreachable!()
    };
    s.filters[0].1.no_local = true;
    assert_eq!(
        conn.handle_packet(at_ms(1), Packet::Subscribe(s)),
        Err(ProtocolError::NoLocalOnSharedSubscription)
    );
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    assert_eq!(conn.session().subscriptions().count(), 0);
}

// [MQTT-3.10.4-4/5] [MQTT5-3.10.4-4] [MQTT5-3.10.4-5] [MQTT5-3.11.3-1] UNSUBACK with
// the same id; v5 has one reason code per filter in order, v3 carries none.
#[test]
fn unsubscribe_removes_and_reports_existed() {
    for version_v5 in [false, true] {
        let mut conn = if version_v5 {
            open_v5("c")
        } else {
            open_v311("c")
        };
        conn.handle_packet(at_ms(1), subscribe(1, &[("a", QoS::AtMostOnce)]))
            .unwrap();
        events(&mut conn);
        conn.complete_subscribe(pid(1), vec![ReasonCode(0)]);
        drain(&mut conn);
        let u = Unsubscribe {
            packet_id: pid(2),
            filters: vec!["a".into(), "nope".into()],
            user_properties: vec![],
        };
        conn.handle_packet(at_ms(2), Packet::Unsubscribe(u))
            .unwrap();
        let ev = events(&mut conn);
        assert!(
            matches!(&ev[..], [Event::Unsubscribe { packet_id, existed, .. }]
            if *packet_id == pid(2) && *existed == vec![true, false])
        );
        assert_eq!(conn.session().subscriptions().count(), 0);
        conn.complete_unsubscribe(
            pid(2),
            vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        );
        let ts = drain(&mut conn);
        let [Transmit::Packet(Packet::UnsubAck(ack))] = &ts[..] else {
            panic!()
        };
        assert_eq!(ack.packet_id, pid(2));
        assert_eq!(ack.reasons.len(), if version_v5 { 2 } else { 0 });
    }
}

// Subscriptions are session state: they survive a reconnect with CleanSession=0.
#[test]
fn subscriptions_survive_resume() {
    let (mut conn, _) = open(v311("c", false), None, SessionConfig::default());
    conn.handle_packet(at_ms(1), subscribe(1, &[("s/#", QoS::AtLeastOnce)]))
        .unwrap();
    events(&mut conn);
    conn.complete_subscribe(pid(1), vec![ReasonCode(1)]);
    let session = conn
        .handle_close(at_ms(2), CloseReason::NetworkError)
        .session
        .unwrap();
    let (conn, _) = open(v311("c", false), Some(session), SessionConfig::default());
    assert!(conn.session().subscription("s/#").is_some());
}
