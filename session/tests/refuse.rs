//! A PUBLISH the broker refuses after routing was asked (`complete_publish`
//! with `Refused`): the v5 acknowledgement carries the broker's reason code.
//! (A client's PUBLISH to `$SYS` is refused by the session's authorizer
//! itself: see `authorize.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn ack_codes(conn: &mut Connection) -> Vec<(&'static str, ReasonCode)> {
    drain(conn)
        .into_iter()
        .map(|t| match t {
            Transmit::Packet(Packet::PubAck(r)) => ("PUBACK", r.reason),
            Transmit::Packet(Packet::PubRec(r)) => ("PUBREC", r.reason),
            other => panic!("{other:?}"),
        })
        .collect()
}

// [MQTT5-3.4.2-1] [MQTT5-3.5.2-1]: PUBACK/PUBREC carry the refusal's reason
// code (0x87 Not authorized). [MQTT5-4.3.3-9]: after an error PUBREC the
// same packet id starts a new message (it is routed again, not taken for a
// duplicate).
#[test]
fn refused_publish_acks_carry_the_reason_and_free_the_qos2_id() {
    let mut conn = open_v5("r");
    conn.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(1), "refused"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::ExactlyOnce, Some(2), "refused"))
        .unwrap();
    assert_eq!(
        events(&mut conn).len(),
        2,
        "the broker decides, not the session"
    );
    let refused = PublishOutcome::Refused(ReasonCode::NOT_AUTHORIZED);
    conn.complete_publish(QoS::AtLeastOnce, Some(pid(1)), refused);
    conn.complete_publish(QoS::ExactlyOnce, Some(pid(2)), refused);
    assert_eq!(
        ack_codes(&mut conn),
        vec![
            ("PUBACK", ReasonCode::NOT_AUTHORIZED),
            ("PUBREC", ReasonCode::NOT_AUTHORIZED)
        ]
    );
    conn.handle_packet(t0(), publish(QoS::ExactlyOnce, Some(2), "t"))
        .unwrap();
    assert_eq!(events(&mut conn).len(), 1, "a new message, not a duplicate");
    conn.complete_publish(QoS::ExactlyOnce, Some(pid(2)), PublishOutcome::Routed);
    assert_eq!(ack_codes(&mut conn), vec![("PUBREC", ReasonCode::SUCCESS)]);
}

// 3.1.1 acks have no reason code: a refusal leaves the ack as it is, and
// QoS 2 goes on to PUBREL/PUBCOMP ([MQTT-4.3.3-2]).
#[test]
fn v3_acks_stay_plain() {
    let mut v3 = open_v311("r3");
    v3.handle_packet(t0(), publish(QoS::ExactlyOnce, Some(1), "refused"))
        .unwrap();
    v3.complete_publish(
        QoS::ExactlyOnce,
        Some(pid(1)),
        PublishOutcome::Refused(ReasonCode::NOT_AUTHORIZED),
    );
    assert_eq!(ack_codes(&mut v3), vec![("PUBREC", ReasonCode::SUCCESS)]);
    v3.handle_packet(t0(), pubrel(1)).unwrap();
    let sent = drain(&mut v3);
    assert!(
        matches!(&sent[..], [Transmit::Packet(Packet::PubComp(_))]),
        "{sent:?}"
    );
}
