//! Keep-alive, DISCONNECT, will, close, resume with retransmission, takeover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn with_keep_alive(mut c: Connect, secs: u16) -> Connect {
    c.keep_alive = secs;
    c
}

// [MQTT-3.1.2-24] close exactly at 1.5 × keep-alive after the last packet.
#[test]
fn keep_alive_timeout_at_exactly_one_and_a_half_mqtt_3_1_2_24() {
    let (mut conn, _) = open(
        with_keep_alive(v311("c", true), 10),
        None,
        SessionConfig::default(),
    );
    assert_eq!(conn.poll_timeout(), Some(at_ms(15_000)));
    conn.handle_timeout(at_ms(14_999));
    assert!(!conn.is_closing());
    assert!(events(&mut conn).is_empty());
    conn.handle_timeout(at_ms(15_000));
    assert_eq!(close_event(&mut conn), Some(CloseReason::KeepAliveTimeout));
    assert!(drain(&mut conn).is_empty(), "v3: no DISCONNECT");
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn any_packet_restarts_the_keep_alive_timer() {
    let (mut conn, _) = open(
        with_keep_alive(v311("c", true), 10),
        None,
        SessionConfig::default(),
    );
    conn.handle_packet(at_ms(10_000), Packet::PingReq).unwrap();
    assert_eq!(conn.poll_timeout(), Some(at_ms(25_000)));
    conn.handle_timeout(at_ms(15_000));
    assert!(!conn.is_closing());
    conn.handle_packet(at_ms(20_000), publish(QoS::AtMostOnce, None, "t"))
        .unwrap();
    conn.handle_timeout(at_ms(34_999));
    assert!(!conn.is_closing());
    conn.handle_timeout(at_ms(35_000));
    assert!(conn.is_closing());
}

#[test]
fn keep_alive_zero_never_times_out() {
    let conn = open_v311("c");
    assert_eq!(conn.poll_timeout(), None);
}

// [MQTT5-3.1.2-22] v5 keep-alive timeout: DISCONNECT 0x8D, and the will is published.
#[test]
fn v5_keep_alive_timeout_sends_0x8d_and_publishes_will() {
    let mut c = with_keep_alive(v5("c", true, None), 4);
    c.will = Some(will("w"));
    let (mut conn, _) = open(c, None, SessionConfig::default());
    conn.handle_timeout(at_ms(6_000));
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::KEEP_ALIVE_TIMEOUT)
    );
    let reason = close_event(&mut conn).unwrap();
    let closed = conn.handle_close(at_ms(6_001), reason);
    assert_eq!(closed.will.map(|w| w.publish.topic), Some("w".into()));
}

// [MQTT-3.14.4-3] DISCONNECT: Close(ClientDisconnect), will discarded.
#[test]
fn disconnect_discards_the_will_mqtt_3_14_4_3() {
    let mut c = v311("c", true);
    c.will = Some(will("w"));
    let (mut conn, _) = open(c, None, SessionConfig::default());
    conn.handle_packet(at_ms(1), Packet::Disconnect(Disconnect::default()))
        .unwrap();
    assert_eq!(close_event(&mut conn), Some(CloseReason::ClientDisconnect));
    assert!(
        drain(&mut conn).is_empty(),
        "[MQTT-3.14.4-1] nothing sent after DISCONNECT"
    );
    // Even if the broker reports the socket error that follows, the will is gone.
    let closed = conn.handle_close(at_ms(2), CloseReason::NetworkError);
    assert!(closed.will.is_none());
    assert!(closed.session.is_none(), "clean session is not kept");
}

// [MQTT-3.1.2-8] the will is published when the connection ends without DISCONNECT.
#[test]
fn will_published_on_abnormal_close_mqtt_3_1_2_8() {
    let mut c = v311("c", true);
    c.will = Some(will("last/words"));
    let (conn, _) = open(c, None, SessionConfig::default());
    let closed = conn.handle_close(at_ms(1), CloseReason::NetworkError);
    let w = closed.will.expect("will");
    assert_eq!(w.publish.topic, "last/words");
    assert_eq!(
        (w.publish.qos, w.publish.retain),
        (QoS::AtLeastOnce, true),
        "[MQTT-3.1.2-17]"
    );
    assert_eq!(&w.publish.payload[..], b"gone");
    assert_eq!(w.delay, None);
}

#[test]
fn no_will_flag_means_no_will_mqtt_3_1_2_12() {
    let conn = open_v311("c");
    assert!(conn
        .handle_close(at_ms(1), CloseReason::NetworkError)
        .will
        .is_none());
}

// v5 DISCONNECT 0x04 publishes the will; the delay is capped by the session expiry.
#[test]
fn v5_disconnect_with_will_publishes_it_with_capped_delay() {
    let mut c = v5("c", false, Some(30));
    let mut w = will("w");
    w.properties.will_delay_interval = Some(60);
    w.properties.content_type = Some("text/plain".into());
    c.will = Some(w);
    let (mut conn, _) = open(c, None, SessionConfig::default());
    let d = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        ..Default::default()
    };
    conn.handle_packet(at_ms(1), Packet::Disconnect(d)).unwrap();
    assert_eq!(
        close_event(&mut conn),
        Some(CloseReason::ClientDisconnectWithWill)
    );
    let closed = conn.handle_close(at_ms(2), CloseReason::ClientDisconnectWithWill);
    let w = closed.will.expect("will");
    assert_eq!(w.delay, Some(30), "[MQTT5-3.1.2-8] the session ends first");
    assert_eq!(
        w.publish.properties.content_type.as_deref(),
        Some("text/plain")
    );
    assert!(closed.session.is_some());
}

// [3.14.2.2.2] non-zero Session Expiry in DISCONNECT after 0 in CONNECT is a protocol error.
#[test]
fn v5_disconnect_session_expiry_rules() {
    let mut conn = open_v5("c");
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(10);
    assert_eq!(
        conn.handle_packet(at_ms(1), Packet::Disconnect(d)),
        Err(ProtocolError::SessionExpiryAfterZero)
    );
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::PROTOCOL_ERROR)
    );

    let (mut conn, _) = open(v5("c", false, Some(100)), None, SessionConfig::default());
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(0);
    conn.handle_packet(at_ms(1), Packet::Disconnect(d)).unwrap();
    let closed = conn.handle_close(at_ms(2), CloseReason::ClientDisconnect);
    assert!(closed.session.is_none(), "DISCONNECT set the expiry to 0");
}

// [MQTT-4.4.0-1] / [MQTT-4.6.0-1]: on resume, inflight PUBLISH re-sent with
// DUP=1 in original order and PUBREL in PUBREC order, then the queue.
#[test]
fn resume_retransmits_with_dup_in_order_mqtt_4_4_0_1() {
    let c = SessionConfig {
        max_inflight: 4,
        ..Default::default()
    };
    let (mut conn, _) = open(v311("c", false), None, c.clone());
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce));
    conn.deliver(at_ms(1), &Offer::new(&m(2), at_ms(1), QoS::ExactlyOnce));
    conn.deliver(at_ms(1), &Offer::new(&m(3), at_ms(1), QoS::ExactlyOnce));
    conn.deliver(at_ms(1), &Offer::new(&m(4), at_ms(1), QoS::AtLeastOnce));
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(5), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    );
    conn.handle_packet(at_ms(2), pubrec(3)).unwrap();
    conn.handle_packet(at_ms(2), pubrec(2)).unwrap();
    drain(&mut conn);
    let closed = conn.handle_close(at_ms(3), CloseReason::NetworkError);
    let session = closed.session.expect("persistent");
    assert_eq!(session.inflight_len(), 4);

    let (mut conn, ack) = open(v311("c", false), Some(session), c);
    assert!(ack.session_present);
    assert_eq!(
        out(&mut conn),
        vec![
            pub_(Some(1), true, "m1"),
            pub_(Some(4), true, "m4"),
            ctl("PUBREL", Some(3)),
            ctl("PUBREL", Some(2)),
        ]
    );
    assert_eq!(conn.session().stats().retransmitted, 4);
    conn.handle_packet(at_ms(4), puback(1)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(5), false, "m5")],
        "queued after retransmits"
    );
}

// The QoS 2 receiver state survives a reconnect: a re-sent PUBLISH is not routed twice.
#[test]
fn incoming_qos2_state_survives_resume() {
    let (mut conn, _) = open(v311("c", false), None, SessionConfig::default());
    conn.handle_packet(at_ms(1), publish(QoS::ExactlyOnce, Some(5), "t"))
        .unwrap();
    events(&mut conn);
    let session = conn
        .handle_close(at_ms(2), CloseReason::NetworkError)
        .session
        .unwrap();
    let (mut conn, _) = open(v311("c", false), Some(session), SessionConfig::default());
    let Packet::Publish(mut p) = publish(QoS::ExactlyOnce, Some(5), "t") else {
        unreachable!()
    };
    p.dup = true;
    conn.handle_packet(at_ms(3), Packet::Publish(p)).unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PUBREC", Some(5))]);
    assert!(events(&mut conn).is_empty());
    conn.handle_packet(at_ms(4), pubrel(5)).unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PUBCOMP", Some(5))]);
}

// [MQTT5-3.1.4-3] v5 takeover: DISCONNECT 0x8E to the old client, session moved.
#[test]
fn takeover_moves_the_session_mqtt_3_1_4_3() {
    let (mut old, _) = open(v5("c", false, Some(60)), None, SessionConfig::default());
    old.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce));
    drain(&mut old);
    old.close(CloseReason::TakenOver);
    assert_eq!(
        disconnect_code(&drain(&mut old)),
        Some(ReasonCode::SESSION_TAKEN_OVER)
    );
    assert_eq!(close_event(&mut old), Some(CloseReason::TakenOver));
    old.close(CloseReason::ServerShutdown);
    assert!(
        drain(&mut old).is_empty() && events(&mut old).is_empty(),
        "close is idempotent"
    );

    let session = old.into_session();
    let (mut new, ack) = open(
        v5("c", false, Some(60)),
        Some(session),
        SessionConfig::default(),
    );
    assert!(ack.session_present);
    assert_eq!(out(&mut new), vec![pub_(Some(1), true, "m1")]);
}

// v3 takeover through handle_close: the will is published, a persistent session kept.
#[test]
fn v3_takeover_via_handle_close_returns_will_and_session() {
    let mut c = v311("c", false);
    c.will = Some(will("w"));
    let (mut conn, _) = open(c, None, SessionConfig::default());
    conn.close(CloseReason::TakenOver);
    assert!(drain(&mut conn).is_empty(), "v3 has no server DISCONNECT");
    let closed = conn.handle_close(at_ms(1), CloseReason::TakenOver);
    assert!(closed.will.is_some());
    assert!(closed.session.is_some());
}

// [MQTT5-3.14.2-1] shutdown: DISCONNECT 0x8B (Server shutting down).
#[test]
fn server_shutdown_sends_0x8b_to_v5_clients() {
    let mut conn = open_v5("c");
    conn.close(CloseReason::ServerShutdown);
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::SERVER_SHUTTING_DOWN)
    );
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtMostOnce)),
        DeliverOutcome::Dropped(DropReason::Qos0NotQueued)
    );
    assert!(drain(&mut conn).is_empty(), "nothing after DISCONNECT");
}

// [MQTT5-4.13.1-1] a codec error reported by the broker: v5 DISCONNECT 0x81.
#[test]
fn malformed_packet_reported_by_broker_sends_0x81() {
    let mut conn = open_v5("c");
    conn.close(CloseReason::ProtocolError(ReasonCode::MALFORMED_PACKET));
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::MALFORMED_PACKET)
    );
}
