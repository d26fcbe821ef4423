//! Persistent sessions: offline queueing and clean-session handling
//! (MQTT 3.1.1 sections 3.1.2.4, 4.1).

use crate::common::*;
use std::net::SocketAddr;

/// Connects `id` with clean session 0, subscribes to `filters`, disconnects.
fn park_session(addr: SocketAddr, version: u8, id: &str, filters: &[(&str, u8)]) {
    let (mut c, _) = Client::accepted(addr, &Connect::new(version, id).clean(false));
    c.subscribe(filters);
    // Offline for certain before the caller publishes: otherwise the first
    // messages may reach the closing connection's inflight window.
    c.disconnect_and_wait();
}

/// Removes the session of `id` (clean session 1), for a shared broker.
fn drop_session(addr: SocketAddr, id: &str) {
    Client::accepted(addr, &Connect::v311(id)).0.disconnect();
}

// [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.1.0-1] [MQTT-4.5.0-1] [MQTT-3.2.2-2]
// [MQTT-3.1.3-2] (the session is found by its client id):
// QoS 1 and QoS 2 messages published while a clean-session-0 client is
// offline are delivered, in order, when it comes back; QoS 0 ones are not
// queued (the spec makes that optional; Tern does not queue them).
#[test]
fn offline_qos1_and_qos2_are_queued_and_qos0_is_not() {
    let broker = Broker::start();
    for version in [V31, V311] {
        let id = client_id();
        let t = topic("offline");
        park_session(broker.addr, version, &id, &[(&t, 2)]);
        let mut publisher = Client::v311(broker.addr);
        publisher.publish_qos(&t, "q1", 1);
        publisher.publish_qos(&t, "q0", 0);
        publisher.publish_qos(&t, "q2", 2);
        publisher.ping();
        let (mut c, present) =
            Client::accepted(broker.addr, &Connect::new(version, &id).clean(false));
        if version != V31 {
            assert!(present, "[MQTT-3.2.2-2]");
        }
        let a = c.recv_acked();
        let b = c.recv_acked();
        assert_eq!((a.payload.as_slice(), a.qos), (&b"q1"[..], 1), "{a:?}");
        assert_eq!((b.payload.as_slice(), b.qos), (&b"q2"[..], 2), "{b:?}");
        c.expect_nothing(QUIET);
        c.disconnect();
        drop_session(broker.addr, &id);
    }
}

// MQTT 3.1 section 3.2: the first byte of the CONNACK variable header is
// reserved (3.1 has no Session Present flag), so it stays 0 even when a
// stored session is resumed.
#[test]
fn v31_connack_reserved_byte_stays_zero_with_a_stored_session() {
    let broker = Broker::start();
    let id = client_id();
    park_session(broker.addr, V31, &id, &[(&topic("v31-present"), 1)]);
    let (c, connack) = Client::connect(broker.addr, &Connect::v31(&id).clean(false));
    assert_eq!(connack.bytes(), connack_v3(false, 0), "MQTT 3.1 CONNACK");
    c.disconnect();
    drop_session(broker.addr, &id);
}

// [MQTT-3.1.2-5] [MQTT-4.1.0-1]: the subscriptions of a resumed session
// deliver without subscribing again.
#[test]
fn resumed_session_keeps_its_subscriptions() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("resume");
    park_session(broker.addr, V311, &id, &[(&t, 1)]);
    let (mut c, present) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    assert!(present);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "live", 1);
    assert_eq!(c.recv_acked().payload, b"live");
    c.disconnect();
    drop_session(broker.addr, &id);
}

// [MQTT-4.6.0-6] [MQTT-4.6.0-1]: a long offline queue keeps publish order.
#[test]
fn offline_queue_keeps_publish_order() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("offline-order");
    park_session(broker.addr, V311, &id, &[(&t, 2)]);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..50 {
        publisher.publish_qos(&t, format!("{i}"), 1 + (i % 2));
    }
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    for i in 0..50u8 {
        let msg = c.recv_acked();
        assert_eq!(msg.payload, format!("{i}").as_bytes());
        assert_eq!(msg.qos, 1 + (i % 2));
    }
    c.disconnect();
    drop_session(broker.addr, &id);
}

// [MQTT-3.1.2-6] [MQTT-3.2.2-1]: clean session 1 discards the stored session:
// no subscription, no queued message.
#[test]
fn clean_session_discards_the_stored_session() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("discard");
    park_session(broker.addr, V311, &id, &[(&t, 1)]);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "queued", 1);
    let (mut c, present) = Client::accepted(broker.addr, &Connect::v311(&id));
    assert!(!present);
    c.expect_nothing(QUIET);
    publisher.publish_qos(&t, "live", 1);
    c.expect_nothing(QUIET);
    c.disconnect();
}

// [MQTT-3.1.2-6]: the state of a clean session is not reused by a later
// clean-session-0 connection.
#[test]
fn clean_session_state_is_not_reused() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("not-reused");
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id));
    c.sub(&t, 1);
    c.disconnect();
    let (mut c, present) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    assert!(!present);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "x", 1);
    c.expect_nothing(QUIET);
    c.disconnect();
    drop_session(broker.addr, &id);
}

// [MQTT5-3.1.2-23] [MQTT5-3.1.2-5] [MQTT5-3.1.2-6] MQTT 5.0: Clean Start 0 with a
// Session Expiry Interval keeps the session; without one (expiry 0) the
// session ends with the connection.
#[test]
fn v5_session_expiry_decides_persistence() {
    let broker = Broker::start();
    let t = topic("v5-expiry");
    let kept = client_id();
    let gone = client_id();
    for (id, expiry) in [(&kept, Some(60u32)), (&gone, None)] {
        let mut connect = Connect::v5(id).clean(false);
        connect.session_expiry = expiry;
        let (mut c, _) = Client::accepted(broker.addr, &connect);
        c.sub(&t, 1);
        c.disconnect();
    }
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "while-away", 1);
    let (mut c, connack) = Client::connect(
        broker.addr,
        &Connect::v5(&kept).clean(false).session_expiry(60),
    );
    assert!(connack.session_present(), "{connack:?}");
    assert_eq!(c.recv_acked().payload, b"while-away");
    c.disconnect();
    let (c, connack) = Client::connect(broker.addr, &Connect::v5(&gone).clean(false));
    assert!(!connack.session_present(), "{connack:?}");
    c.disconnect();
    Client::accepted(broker.addr, &Connect::v5(&kept))
        .0
        .disconnect();
}

// `--max-queued-messages 3`: the offline queue is bounded; what is kept
// arrives in publish order.
#[test]
fn offline_queue_is_bounded_by_max_queued_messages() {
    let Some(broker) = Broker::spawn_only(&["--max-queued-messages", "3"]) else {
        return;
    };
    let id = client_id();
    let t = topic("bounded");
    park_session(broker.addr, V311, &id, &[(&t, 1)]);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..10u8 {
        publisher.publish(&Message::new(&t, [i]).qos(1, u16::from(i) + 1));
    }
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    let mut got = Vec::new();
    while let Ok(p) = c.try_read(QUIET) {
        let msg = Message::decode(&p, V311).expect("PUBLISH");
        c.ack(&msg);
        got.push(msg.payload[0]);
    }
    assert!(
        (1..=3).contains(&got.len()),
        "kept {got:?} of 10 with a limit of 3"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "order: {got:?}");
}
