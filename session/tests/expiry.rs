//! v5 Message Expiry Interval on outgoing messages, in virtual time:
//! [MQTT5-3.3.2-5] a message whose interval has passed before onward delivery
//! starts is deleted; [MQTT5-3.3.2-6] a sent one carries the received value
//! minus the time it waited in the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::Arc;
use tern_codec::*;
use tern_session::*;

/// Message `m<i>` with a Message Expiry Interval of `secs`.
fn expiring(i: usize, secs: u32) -> Arc<Publish> {
    let mut p = (*m(i)).clone();
    p.properties.message_expiry_interval = Some(secs);
    Arc::new(p)
}

/// Sent PUBLISHes as (payload name, dup, Message Expiry Interval).
fn sent(conn: &mut Connection) -> Vec<(&'static str, bool, Option<u32>)> {
    drain(conn)
        .into_iter()
        .filter_map(|t| match t {
            Transmit::Publish(p) => {
                let name = ["m0", "m1", "m2", "m3", "m4", "m5"]
                    .into_iter()
                    .find(|n| n.as_bytes() == &p.msg.payload[..])
                    .unwrap_or("?");
                Some((name, p.dup, p.message_expiry_interval))
            }
            Transmit::Packet(_) => None,
        })
        .collect()
}

fn window(n: u16) -> SessionConfig {
    SessionConfig {
        max_inflight: n,
        ..Default::default()
    }
}

const S: u64 = 1000;

// [MQTT5-3.3.2-6] sent at once: the full interval; a message without one has none.
#[test]
fn immediate_delivery_forwards_the_interval_mqtt_3_3_2_6() {
    let mut conn = open_v5("c");
    conn.deliver(
        at_ms(5),
        &Offer::new(&expiring(1, 30), at_ms(5), QoS::AtLeastOnce),
    );
    conn.deliver(at_ms(5), &Offer::new(&m(2), at_ms(5), QoS::AtMostOnce));
    conn.deliver(
        at_ms(5),
        &Offer::new(&expiring(3, 0), at_ms(5), QoS::AtMostOnce),
    );
    assert_eq!(
        sent(&mut conn),
        vec![
            ("m1", false, Some(30)),
            ("m2", false, None),
            ("m3", false, Some(0))
        ]
    );
}

// [MQTT5-3.3.2-6] the broker received the message earlier than it delivers it:
// the waiting time (whole seconds) is subtracted.
#[test]
fn interval_counts_from_reception_mqtt_3_3_2_6() {
    let mut conn = open_v5("c");
    let o = conn.deliver(
        at_ms(2500),
        &Offer::new(&expiring(1, 10), at_ms(0), QoS::AtLeastOnce),
    );
    assert_eq!(o, DeliverOutcome::Sent);
    assert_eq!(sent(&mut conn), vec![("m1", false, Some(8))]);
}

// [MQTT5-3.3.2-5] a message already expired when routed is not delivered.
#[test]
fn deliver_drops_an_already_expired_message_mqtt_3_3_2_5() {
    let mut conn = open_v5("c");
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let o = conn.deliver(at_ms(10 * S), &Offer::new(&expiring(1, 10), at_ms(0), qos));
        assert_eq!(o, DeliverOutcome::Dropped(DropReason::Expired));
    }
    assert!(sent(&mut conn).is_empty());
    assert_eq!(conn.session().stats().dropped_expired, 2);
    assert_eq!(conn.stats().deliver_dropped, 2);
}

// [MQTT5-3.3.2-5] queued behind a full window, a message expires before it is
// released: it is dropped (counted) and the next one goes out instead.
#[test]
fn queued_message_expires_before_release_mqtt_3_3_2_5() {
    let (mut conn, _) = open(v5("c", true, None), None, window(1));
    conn.deliver(at_ms(0), &Offer::new(&m(1), at_ms(0), QoS::AtLeastOnce));
    assert_eq!(
        conn.deliver(
            at_ms(0),
            &Offer::new(&expiring(2, 5), at_ms(0), QoS::AtLeastOnce)
        ),
        DeliverOutcome::Queued
    );
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(3, 60), at_ms(0), QoS::AtLeastOnce),
    );
    assert_eq!(sent(&mut conn), vec![("m1", false, None)]);
    conn.handle_packet(at_ms(6 * S), puback(1)).unwrap();
    assert_eq!(sent(&mut conn), vec![("m3", false, Some(54))]);
    assert_eq!(conn.session().stats().dropped_expired, 1);
    assert_eq!(conn.session().queued_len(), 0);
    assert_eq!(conn.session().queued_bytes(), 0);
}

// [MQTT5-3.3.2-6] the longer a message waits in the queue, the less remains.
#[test]
fn remaining_interval_decreases_with_waiting_time_mqtt_3_3_2_6() {
    let (mut conn, _) = open(v5("c", true, None), None, window(1));
    conn.deliver(at_ms(0), &Offer::new(&m(1), at_ms(0), QoS::AtLeastOnce));
    for i in 2..=4 {
        conn.deliver(
            at_ms(0),
            &Offer::new(&expiring(i, 10), at_ms(0), QoS::ExactlyOnce),
        );
    }
    sent(&mut conn);
    conn.handle_packet(at_ms(1500), puback(1)).unwrap();
    assert_eq!(sent(&mut conn), vec![("m2", false, Some(9))]);
    conn.handle_packet(at_ms(4 * S), pubrec(2)).unwrap();
    conn.handle_packet(at_ms(4 * S), pubcomp(2)).unwrap();
    assert_eq!(sent(&mut conn), vec![("m3", false, Some(6))]);
    // A failed PUBREC frees the id too; 9.9 s waited of 10 still leaves 1.
    let mut rec = PubResp::new(pid(3));
    rec.reason = ReasonCode::UNSPECIFIED_ERROR;
    conn.handle_packet(at_ms(9900), Packet::PubRec(rec))
        .unwrap();
    assert_eq!(sent(&mut conn), vec![("m4", false, Some(1))]);
    assert_eq!(conn.session().stats().dropped_expired, 0);
}

// [MQTT5-3.3.2-5] [MQTT5-3.3.2-6] offline: expiry counts while the client is away; what survives is sent
// with the reduced interval on resume, what expired is dropped and counted.
#[test]
fn offline_queue_expires_while_client_is_away_mqtt_3_3_2_5() {
    let mut s = Session::new("c".into(), true);
    let c = SessionConfig::default();
    for (i, secs) in [(1, 5), (2, 30)] {
        let o = s.enqueue(
            at_ms(0),
            &Offer::new(&expiring(i, secs), at_ms(0), QoS::AtLeastOnce),
            &c,
        );
        assert_eq!(o, EnqueueOutcome::Queued);
    }
    s.enqueue(at_ms(0), &Offer::new(&m(3), at_ms(0), QoS::AtLeastOnce), &c);
    let mut conn = open_at(at_ms(10 * S), v5("c", false, Some(60)), Some(s), c);
    assert_eq!(
        sent(&mut conn),
        vec![("m2", false, Some(20)), ("m3", false, None)]
    );
    assert_eq!(conn.session().stats().dropped_expired, 1);
}

// [MQTT5-3.3.2-5] enqueueing a message that already expired drops it.
#[test]
fn enqueue_drops_an_already_expired_message() {
    let mut s = Session::new("c".into(), true);
    let c = SessionConfig::default();
    let o = s.enqueue(
        at_ms(3 * S),
        &Offer::new(&expiring(1, 3), at_ms(0), QoS::AtLeastOnce),
        &c,
    );
    assert_eq!(o, EnqueueOutcome::DroppedExpired);
    assert_eq!((s.queued_len(), s.stats().dropped_expired), (0, 1));
}

// A full queue first makes room by purging expired messages.
#[test]
fn full_queue_purges_expired_messages_first() {
    let c = SessionConfig {
        max_queued_messages: 2,
        ..Default::default()
    };
    let mut s = Session::new("c".into(), true);
    s.enqueue(
        at_ms(0),
        &Offer::new(&expiring(1, 1), at_ms(0), QoS::AtLeastOnce),
        &c,
    );
    s.enqueue(
        at_ms(0),
        &Offer::new(&expiring(2, 100), at_ms(0), QoS::AtLeastOnce),
        &c,
    );
    assert_eq!(
        s.enqueue(
            at_ms(500),
            &Offer::new(&m(3), at_ms(500), QoS::AtLeastOnce),
            &c
        ),
        EnqueueOutcome::DroppedQueueFull,
        "nothing expired yet"
    );
    assert_eq!(
        s.enqueue(
            at_ms(2 * S),
            &Offer::new(&m(4), at_ms(2 * S), QoS::AtLeastOnce),
            &c
        ),
        EnqueueOutcome::Queued
    );
    assert_eq!(s.queued_len(), 2);
    assert_eq!(s.queued_bytes(), 2 * ("t".len() + 2));
    assert_eq!(s.stats().dropped_expired, 1);
    assert_eq!(s.stats().dropped_queue_full, 1);
}

// [MQTT5-4.4.0-1] inflight messages are re-sent on resume with the reduced
// interval; onward delivery has started, so even an expired one is re-sent
// (with 0) rather than dropped ([MQTT5-3.3.2-5], [MQTT5-4.3.3-7]).
#[test]
fn inflight_resent_on_resume_carries_the_reduced_interval_mqtt_4_3_3_7() {
    let (mut conn, _) = open(v5("c", false, Some(60)), None, SessionConfig::default());
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(1, 30), at_ms(0), QoS::AtLeastOnce),
    );
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(2, 3), at_ms(0), QoS::ExactlyOnce),
    );
    conn.deliver(at_ms(0), &Offer::new(&m(3), at_ms(0), QoS::AtLeastOnce));
    sent(&mut conn);
    let session = conn
        .handle_close(at_ms(S), CloseReason::NetworkError)
        .session
        .expect("persistent");
    let mut conn = open_at(
        at_ms(12 * S),
        v5("c", false, Some(60)),
        Some(session),
        SessionConfig::default(),
    );
    assert_eq!(
        sent(&mut conn),
        vec![
            ("m1", true, Some(18)),
            ("m2", true, Some(0)),
            ("m3", true, None)
        ]
    );
    assert_eq!(conn.session().stats().dropped_expired, 0);
    assert_eq!(conn.session().inflight_len(), 3);
}

// v3 receivers get no property, but Tern still applies the publisher's expiry.
#[test]
fn v3_receiver_gets_no_property_but_expiry_still_applies() {
    let (mut conn, _) = open(v311("c", true), None, window(1));
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(1, 30), at_ms(0), QoS::AtLeastOnce),
    );
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(2, 2), at_ms(0), QoS::AtLeastOnce),
    );
    conn.deliver(
        at_ms(0),
        &Offer::new(&expiring(3, 30), at_ms(0), QoS::AtLeastOnce),
    );
    assert_eq!(sent(&mut conn), vec![("m1", false, None)]);
    conn.handle_packet(at_ms(5 * S), puback(1)).unwrap();
    assert_eq!(sent(&mut conn), vec![("m3", false, None)]);
    assert_eq!(conn.session().stats().dropped_expired, 1);
}
