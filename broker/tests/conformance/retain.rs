//! Retained messages (MQTT 3.1.1 section 3.3.1.3).

use crate::common::*;

/// Deletes the retained message of `t` so a shared broker stays clean.
fn clear(c: &mut Client, t: &str) {
    c.publish(&Message::new(t, "").retain(true));
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.8.4-6]: the retained
// message and its QoS are stored; a new subscription gets it with RETAIN=1
// at min(stored QoS, granted QoS).
#[test]
fn retained_message_is_sent_on_subscribe_with_retain_1() {
    let broker = Broker::start();
    let t = topic("retain");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "kept").qos(1, 1).retain(true));
    for (granted, expected_qos) in [(2u8, 1u8), (1, 1), (0, 0)] {
        let mut sub = Client::v311(broker.addr);
        sub.sub(&t, granted);
        let msg = sub.recv_acked();
        assert_eq!(msg.payload, b"kept");
        assert!(msg.retain, "[MQTT-3.3.1-8] {msg:?}");
        assert_eq!(msg.qos, expected_qos, "granted {granted}: {msg:?}");
        sub.expect_nothing(QUIET);
    }
    clear(&mut publisher, &t);
}

// [MQTT-3.3.1-9]: a message forwarded to an established subscription has
// RETAIN=0 even when it was published with RETAIN=1.
#[test]
fn live_forward_of_a_retained_publish_has_retain_0() {
    let broker = Broker::start();
    let t = topic("retain-live");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "live").qos(1, 1).retain(true));
    let msg = sub.recv_acked();
    assert_eq!(msg.payload, b"live");
    assert!(!msg.retain, "{msg:?}");
    clear(&mut publisher, &t);
}

// [MQTT-3.3.1-5] [MQTT-3.3.1-7]: a new retained message replaces the old one;
// a retained QoS 0 message discards the previous one (Tern stores it, as
// the spec recommends).
#[test]
fn retained_message_is_replaced() {
    let broker = Broker::start();
    let t = topic("retain-replace");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "first").qos(1, 1).retain(true));
    publisher.publish(&Message::new(&t, "second").qos(2, 2).retain(true));
    publisher.publish(&Message::new(&t, "third").retain(true));
    publisher.ping();
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 2);
    let msg = sub.recv_acked();
    assert_eq!(
        (msg.payload.as_slice(), msg.qos),
        (&b"third"[..], 0),
        "{msg:?}"
    );
    assert!(msg.retain);
    sub.expect_nothing(QUIET);
    clear(&mut publisher, &t);
}

// [MQTT-3.3.1-10] [MQTT-3.3.1-11]: a retained PUBLISH with an empty payload is
// forwarded as normal and deletes the retained message.
#[test]
fn empty_retained_payload_deletes_the_retained_message() {
    let broker = Broker::start();
    let t = topic("retain-delete");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "doomed").qos(1, 1).retain(true));
    let mut live = Client::v311(broker.addr);
    live.sub(&t, 1);
    assert_eq!(live.recv_acked().payload, b"doomed");
    publisher.publish(&Message::new(&t, "").qos(1, 2).retain(true));
    let deletion = live.recv_acked();
    assert!(deletion.payload.is_empty(), "[MQTT-3.3.1-10] {deletion:?}");
    assert!(!deletion.retain);
    let mut late = Client::v311(broker.addr);
    late.sub(&t, 1);
    late.expect_nothing(QUIET);
}

// [MQTT-3.3.1-12]: RETAIN=0 neither stores nor replaces nor removes.
#[test]
fn non_retained_publish_leaves_the_retained_message_alone() {
    let broker = Broker::start();
    let t = topic("retain-untouched");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "stored").qos(1, 1).retain(true));
    publisher.publish(&Message::new(&t, "transient").qos(1, 2));
    publisher.publish(&Message::new(&t, "").qos(1, 3));
    publisher.ping();
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    assert_eq!(sub.recv_acked().payload, b"stored");
    sub.expect_nothing(QUIET);
    let fresh = topic("retain-never");
    publisher.publish(&Message::new(&fresh, "not-kept").qos(1, 4));
    sub.sub(&fresh, 1);
    sub.expect_nothing(QUIET);
    clear(&mut publisher, &t);
}

// [MQTT-3.3.1-6] [MQTT-4.7.1-2] [MQTT-4.7.1-3]: a wildcard subscription gets
// every matching retained message, and only those.
#[test]
fn wildcard_subscription_gets_all_matching_retained_messages() {
    let broker = Broker::start();
    let base = topic("retain-wild");
    let mut publisher = Client::v311(broker.addr);
    let topics = ["a", "a/b", "a/b/c", "x/b", "a/c"];
    for (i, level) in topics.iter().enumerate() {
        let pid = u16::try_from(i + 1).unwrap();
        publisher.publish(
            &Message::new(&format!("{base}/{level}"), *level)
                .qos(1, pid)
                .retain(true),
        );
    }
    let cases: [(&str, &[&str]); 4] = [
        ("a/#", &["a", "a/b", "a/b/c", "a/c"]),
        ("+/b", &["a/b", "x/b"]),
        ("a/+", &["a/b", "a/c"]),
        ("#", &["a", "a/b", "a/b/c", "x/b", "a/c"]),
    ];
    for (filter, expected) in cases {
        let mut sub = Client::v311(broker.addr);
        sub.sub(&format!("{base}/{filter}"), 1);
        let mut got: Vec<String> = (0..expected.len())
            .map(|_| {
                let msg = sub.recv_acked();
                assert!(msg.retain, "{msg:?}");
                String::from_utf8(msg.payload).unwrap()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "filter {filter}");
        sub.expect_nothing(QUIET);
    }
    for level in topics {
        clear(&mut publisher, &format!("{base}/{level}"));
    }
}

// [MQTT-3.1.2.7]: retained messages survive the end of the publisher's session.
#[test]
fn retained_message_outlives_the_publishing_session() {
    let broker = Broker::start();
    let t = topic("retain-outlive");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "still-here").qos(1, 1).retain(true));
    publisher.disconnect();
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    assert_eq!(sub.recv_acked().payload, b"still-here");
    clear(&mut sub, &t);
}

// [MQTT-3.8.4-3]: re-subscribing with an identical filter re-sends the
// matching retained messages (with RETAIN=1).
#[test]
fn resubscribe_resends_retained_messages() {
    let broker = Broker::start();
    let t = topic("retain-resub");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "r").qos(1, 1).retain(true));
    let mut sub = Client::v311(broker.addr);
    for granted in [0u8, 1, 1] {
        sub.sub(&t, granted);
        let msg = sub.recv_acked();
        assert_eq!(
            (msg.payload.as_slice(), msg.retain, msg.qos),
            (&b"r"[..], true, granted)
        );
    }
    sub.expect_nothing(QUIET);
    clear(&mut publisher, &t);
}
