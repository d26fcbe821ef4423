//! The store-change journal (`SessionConfig::record_changes`): what a
//! persistent session records for a persistence backend, and that nothing
//! is recorded when it is off or the session is not persistent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::sync::Arc;
use tern_codec::*;
use tern_session::*;

fn recording() -> SessionConfig {
    SessionConfig {
        record_changes: true,
        ..SessionConfig::default()
    }
}

fn changes(conn: &mut Connection) -> Vec<SessionChange> {
    std::iter::from_fn(|| conn.poll_change()).collect()
}

/// The change a message's arrival records: compared by id, message, QoS.
fn queued(change: &SessionChange) -> Option<(u64, &Arc<Publish>, QoS)> {
    match change {
        SessionChange::Queued { message } => Some((message.id, &message.msg, message.qos)),
        _ => None,
    }
}

/// SUBSCRIBE, a QoS 1 delivery, its PUBACK: on a persistent v5 session.
fn subscribe_deliver_ack(conn: &mut Connection, message: &Arc<Publish>) {
    conn.handle_packet(at_ms(1), subscribe(1, &[("a/+", QoS::AtLeastOnce)]))
        .unwrap();
    let _ = events(conn);
    conn.complete_subscribe(pid(1), vec![ReasonCode(1)]);
    let o = conn.deliver(at_ms(2), &Offer::new(message, at_ms(2), QoS::AtLeastOnce));
    assert_eq!(o, DeliverOutcome::Sent);
    conn.handle_packet(at_ms(3), puback(1)).unwrap();
}

#[test]
fn a_persistent_session_records_subscribe_deliver_and_ack() {
    let (mut conn, _) = open(v5("j", false, Some(60)), None, recording());
    let message = msg("a/b", b"x");
    subscribe_deliver_ack(&mut conn, &message);
    let all = changes(&mut conn);
    assert_eq!(
        all,
        vec![
            SessionChange::Subscribed {
                filter: "a/+".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                },
                subscription_identifier: None,
            },
            all[1].clone(),
            SessionChange::Sent {
                id: 1,
                packet_id: pid(1)
            },
            SessionChange::Acked { packet_id: pid(1) },
        ]
    );
    assert_eq!(queued(&all[1]), Some((1, &message, QoS::AtLeastOnce)));
    assert_eq!(conn.poll_change(), None, "drained");
}

#[test]
fn nothing_is_recorded_when_off_or_for_a_session_that_is_not_kept() {
    let message = msg("a/b", b"x");
    let off = open(v5("j", false, Some(60)), None, SessionConfig::default()).0;
    let not_kept = open(v5("j", true, Some(0)), None, recording()).0;
    for mut conn in [off, not_kept] {
        subscribe_deliver_ack(&mut conn, &message);
        assert_eq!(changes(&mut conn), vec![]);
    }
    let mut s = Session::new("j".into(), false);
    let o = s.enqueue(
        t0(),
        &Offer::new(&message, t0(), QoS::AtLeastOnce),
        &recording(),
    );
    assert_eq!(o, EnqueueOutcome::Queued);
    assert_eq!(s.poll_change(), None);
}

// QoS 2 both ways, UNSUBSCRIBE, the offline queue and the expiry a
// DISCONNECT sets.
#[test]
fn qos2_unsubscribe_offline_queue_and_expiry_are_recorded() {
    let cfg = recording();
    let (mut conn, _) = open(v5("j", false, Some(60)), None, cfg.clone());
    let message = msg("t", b"x");
    conn.deliver(t0(), &Offer::new(&message, t0(), QoS::ExactlyOnce));
    conn.handle_packet(at_ms(1), pubrec(1)).unwrap();
    conn.handle_packet(at_ms(1), pubcomp(1)).unwrap();
    conn.handle_packet(at_ms(2), publish(QoS::ExactlyOnce, Some(9), "in"))
        .unwrap();
    conn.complete_publish(QoS::ExactlyOnce, Some(pid(9)), PublishOutcome::Routed);
    conn.handle_packet(at_ms(2), pubrel(9)).unwrap();
    conn.handle_packet(
        at_ms(3),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            filters: vec!["never".into()],
            user_properties: vec![],
        }),
    )
    .unwrap();
    conn.handle_packet(at_ms(3), subscribe(3, &[("u", QoS::AtMostOnce)]))
        .unwrap();
    conn.complete_subscribe(pid(3), vec![ReasonCode(0)]);
    conn.handle_packet(
        at_ms(3),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(4),
            filters: vec!["u".into()],
            user_properties: vec![],
        }),
    )
    .unwrap();
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(5);
    conn.handle_packet(at_ms(4), Packet::Disconnect(d)).unwrap();
    let all = changes(&mut conn);
    assert_eq!(
        all,
        vec![
            all[0].clone(),
            SessionChange::Sent {
                id: 1,
                packet_id: pid(1)
            },
            SessionChange::Released { packet_id: pid(1) },
            SessionChange::Acked { packet_id: pid(1) },
            SessionChange::InboundQos2 {
                packet_id: pid(9),
                done: false
            },
            SessionChange::InboundQos2 {
                packet_id: pid(9),
                done: true
            },
            SessionChange::Subscribed {
                filter: "u".into(),
                options: SubscriptionOptions::default(),
                subscription_identifier: None,
            },
            SessionChange::Unsubscribed { filter: "u".into() },
            SessionChange::ExpiryChanged { secs: 5 },
        ]
    );
    assert_eq!(queued(&all[0]), Some((1, &message, QoS::ExactlyOnce)));
    assert!(!format!("{all:?}").contains("payload: "), "{all:?}");

    // Offline: `Session::enqueue` records into the kept session's journal.
    let mut session = conn
        .handle_close(at_ms(5), CloseReason::ClientDisconnect)
        .session
        .unwrap();
    let later = msg("t", b"y");
    session.enqueue(
        at_ms(6),
        &Offer::new(&later, at_ms(6), QoS::AtLeastOnce),
        &cfg,
    );
    let change = session.poll_change().expect("queued");
    assert_eq!(queued(&change), Some((2, &later, QoS::AtLeastOnce)));
    assert_eq!(session.poll_change(), None);
}
