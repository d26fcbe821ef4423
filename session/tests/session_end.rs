//! When an offline session ends and when a delayed will is due, in virtual
//! time: `Session::expires_at` and `Will::publish_at` (the broker schedules
//! both from the moment the connection closed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

const S: u64 = 1000;

fn close(conn: Connection, at: u64, reason: CloseReason) -> Closed {
    conn.handle_close(at_ms(at), reason)
}

fn with_delayed_will(mut c: Connect, delay: Option<u32>) -> Connect {
    let mut w = will("last/words");
    w.properties.will_delay_interval = delay;
    c.will = Some(w);
    c
}

// [MQTT5-3.1.2-23] a session with a Session Expiry Interval > 0 is kept after
// the close, and ends that many seconds after it (3.1.2.11.2, 4.1).
#[test]
fn v5_session_ends_its_interval_after_the_close_mqtt5_3_1_2_23() {
    let (conn, _) = open(v5("c", false, Some(10)), None, SessionConfig::default());
    let session = close(conn, 2 * S, CloseReason::NetworkError)
        .session
        .expect("[MQTT5-3.1.2-23] kept");
    assert_eq!(session.expires_at(at_ms(2 * S)), Some(at_ms(12 * S)));
}

// 3.1.2.11.2: 0xFFFFFFFF never expires; a v3 Clean Session 0 session neither.
#[test]
fn max_interval_and_v3_persistent_sessions_never_expire() {
    let (conn, _) = open(
        v5("c", false, Some(u32::MAX)),
        None,
        SessionConfig::default(),
    );
    let session = close(conn, S, CloseReason::NetworkError).session.unwrap();
    assert_eq!(session.expires_at(at_ms(S)), None);

    let (conn, _) = open(v311("c", false), None, SessionConfig::default());
    let session = close(conn, S, CloseReason::NetworkError).session.unwrap();
    assert_eq!(session.expires_at(at_ms(S)), None);
}

// 3.14.2.2.2: the interval in force at the close is the one
// the client's DISCONNECT set.
#[test]
fn disconnect_changes_the_interval_in_force_at_close() {
    let (mut conn, _) = open(v5("c", false, Some(100)), None, SessionConfig::default());
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(3);
    conn.handle_packet(at_ms(S), Packet::Disconnect(d)).unwrap();
    let session = close(conn, S, CloseReason::ClientDisconnect)
        .session
        .unwrap();
    assert_eq!(session.expires_at(at_ms(S)), Some(at_ms(4 * S)));
}

// [MQTT5-3.14.2-2] the Server never sends a Session Expiry Interval on its
// own DISCONNECT (here: a takeover and a shutdown).
#[test]
fn server_disconnect_carries_no_session_expiry_mqtt5_3_14_2_2() {
    for reason in [CloseReason::TakenOver, CloseReason::ServerShutdown] {
        let (mut conn, _) = open(v5("c", false, Some(100)), None, SessionConfig::default());
        conn.close(reason);
        let sent = drain(&mut conn);
        let [Transmit::Packet(Packet::Disconnect(d))] = sent.as_slice() else {
            panic!("expected one DISCONNECT, got {sent:?}");
        };
        assert_eq!(d.properties.session_expiry_interval, None, "{reason:?}");
    }
}

// [MQTT5-3.1.3-9] [MQTT5-3.1.2-8] a delayed will is due its Will Delay Interval
// after the close, while the session is still there.
#[test]
fn delayed_will_is_due_after_its_delay_mqtt5_3_1_3_9() {
    let c = with_delayed_will(v5("c", false, Some(60)), Some(5));
    let (conn, _) = open(c, None, SessionConfig::default());
    let closed = close(conn, S, CloseReason::NetworkError);
    let will = closed.will.expect("[MQTT5-3.1.2-8] will kept for later");
    assert_eq!(will.delay, Some(5));
    assert_eq!(will.publish_at(at_ms(S)), Some(at_ms(6 * S)));
    let session = closed.session.expect("kept");
    assert!(will.publish_at(at_ms(S)) < session.expires_at(at_ms(S)));
}

// [MQTT5-3.1.3-9] the will is published when the session ends, if that comes
// before the delay: the delay is capped by the Session Expiry Interval.
#[test]
fn will_delay_past_session_end_is_due_when_the_session_ends_mqtt5_3_1_3_9() {
    let c = with_delayed_will(v5("c", false, Some(2)), Some(10));
    let (conn, _) = open(c, None, SessionConfig::default());
    let closed = close(conn, S, CloseReason::NetworkError);
    let will = closed.will.unwrap();
    let session = closed.session.unwrap();
    assert_eq!(will.publish_at(at_ms(S)), session.expires_at(at_ms(S)));
    assert_eq!(will.publish_at(at_ms(S)), Some(at_ms(3 * S)));
}

// [MQTT5-3.1.2-8] no delay, or a session that ends with the connection
// (expiry 0): the will is due at the close.
#[test]
fn will_without_delay_or_session_is_due_at_once_mqtt5_3_1_2_8() {
    for (expiry, delay) in [(Some(60), None), (Some(60), Some(0)), (None, Some(30))] {
        let c = with_delayed_will(v5("c", false, expiry), delay);
        let (conn, _) = open(c, None, SessionConfig::default());
        let will = close(conn, S, CloseReason::NetworkError).will.unwrap();
        assert_eq!(will.delay, None, "expiry {expiry:?} delay {delay:?}");
        assert_eq!(will.publish_at(at_ms(S)), Some(at_ms(S)));
    }
}

// A delay of 0xFFFFFFFF with a session that never expires: the will waits
// for the session's end (or a shutdown); its due time may not be
// representable, which `publish_at` says with `None` instead of wrapping.
#[test]
fn longest_delay_never_wraps() {
    let c = with_delayed_will(v5("c", false, Some(u32::MAX)), Some(u32::MAX));
    let (conn, _) = open(c, None, SessionConfig::default());
    let will = close(conn, S, CloseReason::NetworkError).will.unwrap();
    assert_eq!(will.delay, Some(u32::MAX));
    if let Some(at) = will.publish_at(at_ms(S)) {
        assert!(at > at_ms(S), "a far deadline, never an early one");
    }
}

// [MQTT5-3.1.2-8] DISCONNECT 0x04 keeps the will (with its delay) and
// DISCONNECT 0x00 deletes it ([MQTT5-3.1.2-10]).
#[test]
fn disconnect_with_will_keeps_the_delayed_will_mqtt5_3_1_2_8() {
    let c = with_delayed_will(v5("c", false, Some(60)), Some(2));
    let (mut conn, _) = open(c, None, SessionConfig::default());
    let d = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        ..Default::default()
    };
    conn.handle_packet(at_ms(S), Packet::Disconnect(d)).unwrap();
    let will = close(conn, S, CloseReason::ClientDisconnectWithWill)
        .will
        .expect("0x04 publishes the will");
    assert_eq!(will.publish_at(at_ms(S)), Some(at_ms(3 * S)));

    let c = with_delayed_will(v5("c", false, Some(60)), Some(2));
    let (mut conn, _) = open(c, None, SessionConfig::default());
    conn.handle_packet(at_ms(S), Packet::Disconnect(Disconnect::default()))
        .unwrap();
    assert!(close(conn, S, CloseReason::ClientDisconnect).will.is_none());
}
