//! Outgoing flow control: packet ids, inflight window, bounded queue, order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn cfg(window: u16) -> SessionConfig {
    SessionConfig {
        max_inflight: window,
        ..Default::default()
    }
}

// [MQTT-2.3.1-2] ids are reused only once free, and wrap 65535 → 1 (never 0).
#[test]
fn packet_ids_are_reused_only_when_free_and_wrap_mqtt_2_3_1_2() {
    let (mut conn, _) = open(v311("c", true), None, cfg(u16::MAX));
    // Keep id 2 inflight the whole time; acknowledge everything else.
    let mut seen_after_wrap = Vec::new();
    for i in 0..(u32::from(u16::MAX) + 3) {
        conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce));
        let ts = drain(&mut conn);
        let [Transmit::Publish(p)] = &ts[..] else {
            panic!("{ts:?}")
        };
        let id = p.packet_id.unwrap().get();
        if id != 2 {
            conn.handle_packet(at_ms(2), puback(id)).unwrap();
        }
        if i >= u32::from(u16::MAX) - 1 {
            seen_after_wrap.push(id);
        }
    }
    assert_eq!(
        seen_after_wrap,
        vec![u16::MAX, 1, 3, 4],
        "2 is skipped while in use"
    );
    assert_eq!(
        conn.session().inflight(),
        vec![(pid(2), InflightState::AwaitPubAck)]
    );
}

// [MQTT5-4.9.0-2] / window: at most max_inflight unacknowledged; the rest wait
// in order and are released one per acknowledgement.
#[test]
fn inflight_window_queues_and_releases_in_order_mqtt_4_9_0_2() {
    let (mut conn, _) = open(v311("c", true), None, cfg(2));
    let outcomes: Vec<_> = (1..=5)
        .map(|i| conn.deliver(at_ms(1), &Offer::new(&m(i), at_ms(1), QoS::AtLeastOnce)))
        .collect();
    use DeliverOutcome::*;
    assert_eq!(outcomes, vec![Sent, Sent, Queued, Queued, Queued]);
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(1), false, "m1"), pub_(Some(2), false, "m2")]
    );
    assert_eq!(conn.session().queued_len(), 3);

    conn.handle_packet(at_ms(2), puback(2)).unwrap();
    assert_eq!(out(&mut conn), vec![pub_(Some(3), false, "m3")]);
    conn.handle_packet(at_ms(3), puback(1)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(4), false, "m4")],
        "ids advance; no quick reuse"
    );
    conn.handle_packet(at_ms(4), puback(3)).unwrap();
    assert_eq!(out(&mut conn), vec![pub_(Some(5), false, "m5")]);
    assert_eq!(conn.session().queued_len(), 0);
}

// QoS 2 holds its window slot until PUBCOMP, not PUBREC.
#[test]
fn qos2_holds_the_window_until_pubcomp() {
    let (mut conn, _) = open(v311("c", true), None, cfg(1));
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::ExactlyOnce));
    conn.deliver(at_ms(1), &Offer::new(&m(2), at_ms(1), QoS::ExactlyOnce));
    conn.handle_packet(at_ms(2), pubrec(1)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(1), false, "m1"), ctl("PUBREL", Some(1))]
    );
    conn.handle_packet(at_ms(3), pubcomp(1)).unwrap();
    assert_eq!(out(&mut conn), vec![pub_(Some(2), false, "m2")]);
}

// [MQTT5-3.3.4-9] [MQTT5-4.9.0-1] the client's Receive Maximum caps the window below max_inflight.
#[test]
fn v5_client_receive_maximum_caps_the_window_mqtt_3_3_4_9() {
    let mut c = v5("c", true, None);
    c.properties.receive_maximum = Some(1);
    let (mut conn, _) = open(c, None, cfg(32));
    assert_eq!(conn.send_window(), 1);
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Sent
    );
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(2), at_ms(1), QoS::ExactlyOnce)),
        DeliverOutcome::Queued
    );
    let (conn2, _) = open(v5("d", true, None), None, cfg(4));
    assert_eq!(conn2.send_window(), 4, "absent Receive Maximum = 65535");
}

// [MQTT-4.6.0-6] ordering: a new QoS > 0 message goes behind queued ones even
// if the window has room.
#[test]
fn new_deliveries_go_behind_the_queue_mqtt_4_6_0_6() {
    let mut old = Session::new("c".into(), true);
    let c = cfg(1);
    old.enqueue(t0(), &Offer::new(&m(1), t0(), QoS::AtLeastOnce), &c);
    old.enqueue(t0(), &Offer::new(&m(2), t0(), QoS::AtLeastOnce), &c);
    let (mut conn, _) = open(v311("c", false), Some(old), c);
    assert_eq!(out(&mut conn), vec![pub_(Some(1), false, "m1")]);
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(3), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    );
    conn.handle_packet(at_ms(2), puback(1)).unwrap();
    conn.handle_packet(at_ms(3), puback(2)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(2), false, "m2"), pub_(Some(3), false, "m3")]
    );
}

// QoS 0 needs no window: it is sent even when the window is full (ordering
// is per QoS, [MQTT-4.6.0-6]).
#[test]
fn qos0_bypasses_a_full_window() {
    let (mut conn, _) = open(v311("c", true), None, cfg(1));
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce));
    conn.deliver(at_ms(1), &Offer::new(&m(2), at_ms(1), QoS::AtLeastOnce));
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(3), at_ms(1), QoS::AtMostOnce)),
        DeliverOutcome::Sent
    );
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(1), false, "m1"), pub_(None, false, "m3")]
    );
}

// Queue bounded by messages: at the limit → Dropped(QueueFull), counted.
#[test]
fn queue_message_limit_drops_with_queue_full() {
    let c = SessionConfig {
        max_inflight: 1,
        max_queued_messages: 2,
        ..Default::default()
    };
    let (mut conn, _) = open(v311("c", true), None, c);
    use DeliverOutcome::*;
    let outcomes: Vec<_> = (1..=4)
        .map(|i| conn.deliver(at_ms(1), &Offer::new(&m(i), at_ms(1), QoS::AtLeastOnce)))
        .collect();
    assert_eq!(
        outcomes,
        vec![Sent, Queued, Queued, Dropped(DropReason::QueueFull)]
    );
    assert_eq!(conn.session().stats().dropped_queue_full, 1);
    assert_eq!(conn.session().stats().queue_high_water_messages, 2);
    assert_eq!(conn.stats().deliver_dropped, 1);
}

// Queue bounded by bytes (topic + payload).
#[test]
fn queue_byte_limit_drops_with_queue_full() {
    let c = SessionConfig {
        max_inflight: 1,
        max_queued_bytes: 7,
        ..Default::default()
    };
    let (mut conn, _) = open(v311("c", true), None, c);
    conn.deliver(at_ms(1), &Offer::new(&m(1), at_ms(1), QoS::AtLeastOnce)); // sent
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(2), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    ); // 3 bytes
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(3), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    ); // 6 bytes
    assert_eq!(
        conn.deliver(at_ms(1), &Offer::new(&m(4), at_ms(1), QoS::AtLeastOnce)),
        DeliverOutcome::Dropped(DropReason::QueueFull)
    );
    assert_eq!(conn.session().queued_bytes(), 6);
    conn.handle_packet(at_ms(2), puback(1)).unwrap();
    assert_eq!(conn.session().queued_bytes(), 3);
    assert_eq!(
        conn.deliver(at_ms(3), &Offer::new(&m(5), at_ms(3), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    );
}

// Offline: QoS 0 dropped unless configured, QoS 1/2 queued within limits.
#[test]
fn offline_enqueue_then_release_on_resume_up_to_window() {
    let c = SessionConfig {
        max_inflight: 2,
        ..Default::default()
    };
    let mut s = Session::new("c".into(), true);
    assert_eq!(
        s.enqueue(t0(), &Offer::new(&m(0), t0(), QoS::AtMostOnce), &c),
        EnqueueOutcome::DroppedQos0
    );
    for i in 1..=3 {
        assert_eq!(
            s.enqueue(
                t0(),
                &Offer {
                    retain: i == 1,
                    ..Offer::new(&m(i), t0(), QoS::ExactlyOnce)
                },
                &c
            ),
            EnqueueOutcome::Queued
        );
    }
    let (mut conn, ack) = open(v311("c", false), Some(s), c);
    assert!(ack.session_present);
    let ts = drain(&mut conn);
    assert_eq!(ts.len(), 2, "window of 2");
    let Transmit::Publish(first) = &ts[0] else {
        panic!()
    };
    assert!(first.retain, "retain flag kept from enqueue");
    assert!(!first.dup, "queued messages were never sent: DUP 0");
    assert_eq!(conn.session().queued_len(), 1);
}

#[test]
fn offline_qos0_queued_when_enabled_is_sent_without_window() {
    let c = SessionConfig {
        max_inflight: 1,
        queue_qos0_offline: true,
        ..Default::default()
    };
    let mut s = Session::new("c".into(), true);
    s.enqueue(t0(), &Offer::new(&m(1), t0(), QoS::AtLeastOnce), &c);
    s.enqueue(t0(), &Offer::new(&m(2), t0(), QoS::AtLeastOnce), &c);
    s.enqueue(t0(), &Offer::new(&m(3), t0(), QoS::AtMostOnce), &c);
    let (mut conn, _) = open(v311("c", false), Some(s), c);
    assert_eq!(out(&mut conn), vec![pub_(Some(1), false, "m1")]);
    conn.handle_packet(at_ms(1), puback(1)).unwrap();
    assert_eq!(
        out(&mut conn),
        vec![pub_(Some(2), false, "m2"), pub_(None, false, "m3")],
        "QoS 0 behind QoS 1 in the queue follows it out"
    );
}

// While closing, QoS > 0 deliveries are kept in the session; QoS 0 is dropped.
#[test]
fn deliver_while_closing_queues_qos1_and_drops_qos0() {
    let (mut conn, _) = open(v311("c", false), None, SessionConfig::default());
    conn.handle_packet(at_ms(1), Packet::Disconnect(Disconnect::default()))
        .unwrap();
    assert_eq!(
        conn.deliver(at_ms(2), &Offer::new(&m(1), at_ms(2), QoS::AtLeastOnce)),
        DeliverOutcome::Queued
    );
    assert_eq!(
        conn.deliver(at_ms(2), &Offer::new(&m(2), at_ms(2), QoS::AtMostOnce)),
        DeliverOutcome::Dropped(DropReason::Qos0NotQueued)
    );
    assert!(drain(&mut conn).is_empty());
    let closed = conn.handle_close(at_ms(3), CloseReason::ClientDisconnect);
    assert_eq!(closed.session.unwrap().queued_len(), 1);
}
