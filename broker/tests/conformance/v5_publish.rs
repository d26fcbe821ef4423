//! MQTT 5.0 PUBLISH and its acknowledgements: properties forwarded, Message
//! Expiry, Receive Maximum both ways, reason codes, inbound Topic Aliases,
//! protocol errors answered with DISCONNECT (MQTT 5.0 sections 3.3–3.7, 4.3,
//! 4.4, 4.9, 4.13). Byte-level; tags are `[MQTT5-x.y.z-n]`.

use super::v5_wire::*;
use crate::common::*;
use std::time::Duration;

/// A clean v5 client subscribed to `filter` at `qos` (no subscription options).
fn subscriber(addr: std::net::SocketAddr, filter: &str, qos: u8) -> Client {
    let (mut c, _) = open_ok(addr, &Props::new());
    assert_eq!(sub5(&mut c, &Props::new(), &[(filter, qos)]), vec![qos]);
    c
}

/// Publishes at QoS 1 and returns the PUBACK as (packet id, reason code).
fn publish_qos1(c: &mut Client, topic: &str, pid: u16, props: &Props, payload: &[u8]) -> (u16, u8) {
    c.send(&publish5(topic, 1, pid, false, props, payload));
    ack5(&c.read_until("PUBACK", |p| p.kind() == PUBACK))
}

// [MQTT5-3.3.2-4] [MQTT5-3.3.2-15] [MQTT5-3.3.2-16] [MQTT5-3.3.2-17] [MQTT5-3.3.2-18]
// [MQTT5-3.3.2-20] [MQTT5-2.2.2-1]: Payload Format Indicator, Content Type,
// Response Topic, Correlation Data and User Properties reach every subscriber
// unaltered, the User Properties in their order (a repeated name included); a
// message without properties arrives with Property Length 0.
#[test]
fn publish_properties_are_forwarded_unchanged_and_in_order() {
    let broker = Broker::start();
    let t = topic("v5-props");
    let mut subs = vec![
        subscriber(broker.addr, &t, 0),
        subscriber(broker.addr, &t, 2),
    ];
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    let props = Props::new()
        .byte(PAYLOAD_FORMAT, 1)
        .string(CONTENT_TYPE, "application/json; charset=utf-8")
        .string(RESPONSE_TOPIC, "tern/replies/☃")
        .binary(CORRELATION_DATA, &[0, 1, 2, 0xFF])
        .user("k", "v1")
        .user("émoji", "🐦")
        .user("k", "v2")
        .user("", "");
    assert_eq!(publish_qos1(&mut publisher, &t, 1, &props, b"{}").1, 0);
    let sent = parse_props(&props.0);
    for s in &mut subs {
        let msg = recv5(s);
        assert_eq!(msg.payload, b"{}");
        let mut got = msg.props.clone();
        let mut want = sent.clone();
        // The order of different properties is free; User Properties keep theirs.
        let users = |v: &[(u8, Value)]| -> Vec<Value> {
            v.iter()
                .filter(|(id, _)| *id == USER_PROPERTY)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(users(&got), users(&want), "[MQTT5-3.3.2-18] {msg:?}");
        got.sort_by_key(|(id, _)| *id);
        want.sort_by_key(|(id, _)| *id);
        let others = |v: Vec<(u8, Value)>| -> Vec<(u8, Value)> {
            v.into_iter()
                .filter(|(id, _)| *id != USER_PROPERTY)
                .collect()
        };
        assert_eq!(others(got), others(want), "{msg:?}");
    }
    publisher.send(&publish5(&t, 0, 0, false, &Props::new(), b"bare"));
    for s in &mut subs {
        let p = s.read();
        let msg = Publish5::parse(&p);
        assert_eq!(
            (msg.payload.as_slice(), msg.props.len()),
            (&b"bare"[..], 0),
            "{p:?}"
        );
        if msg.qos == 0 {
            // Exact bytes: topic, Property Length 0, payload.
            assert_eq!(p.bytes(), publish5(&t, 0, 0, false, &Props::new(), b"bare"));
        }
    }
}

// [MQTT5-3.3.2-6]: a delivered message carries the Message Expiry Interval
// minus the time it waited in the broker: at once the full value, after
// waiting ~2 s in an offline session's queue at most the value minus 2.
#[test]
fn message_expiry_is_forwarded_with_the_remaining_value() {
    let broker = Broker::start();
    let t = topic("v5-expiry-remaining");
    let mut live = subscriber(broker.addr, &t, 1);
    let id = client_id();
    let keep = Props::new().u32(SESSION_EXPIRY, 60);
    let (mut away, _) = open(broker.addr, &connect5(&id, true, 60, &keep));
    assert_eq!(sub5(&mut away, &Props::new(), &[(&t, 1)]), vec![1]);
    away.disconnect();
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    let expiry = Props::new().u32(MESSAGE_EXPIRY, 100);
    publish_qos1(&mut publisher, &t, 1, &expiry, b"m");
    let now = recv5(&mut live);
    let Some(Value::U32(left)) = now.prop(MESSAGE_EXPIRY) else {
        panic!("no Message Expiry Interval: {now:?}");
    };
    assert!(
        (99..=100).contains(&left),
        "sent at once with {left} s of 100 left"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let (mut back, ack) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert!(ack.session_present);
    let later = recv5(&mut back);
    let Some(Value::U32(left)) = later.prop(MESSAGE_EXPIRY) else {
        panic!("no Message Expiry Interval: {later:?}");
    };
    assert!(
        (90..=98).contains(&left),
        "after ~2 s in the queue: {left} s of 100 left"
    );
    back.disconnect();
    open(broker.addr, &connect5(&id, true, 60, &Props::new()))
        .0
        .disconnect();
}

// [MQTT5-3.3.2-5]: a queued message whose Message Expiry Interval passes
// before delivery starts is deleted; one without an interval still arrives.
#[test]
fn expired_queued_messages_are_not_delivered() {
    let broker = Broker::start();
    let t = topic("v5-expired");
    let id = client_id();
    let keep = Props::new().u32(SESSION_EXPIRY, 60);
    let (mut c, _) = open(broker.addr, &connect5(&id, true, 60, &keep));
    assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 2)]), vec![2]);
    c.disconnect();
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    publish_qos1(
        &mut publisher,
        &t,
        1,
        &Props::new().u32(MESSAGE_EXPIRY, 1),
        b"dies",
    );
    publish_qos1(&mut publisher, &t, 2, &Props::new(), b"lives");
    std::thread::sleep(Duration::from_millis(2200));
    let (mut c, _) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert_eq!(recv5(&mut c).payload, b"lives");
    c.ping();
    c.expect_nothing(QUIET);
    c.disconnect();
    open(broker.addr, &connect5(&id, true, 60, &Props::new()))
        .0
        .disconnect();
}

// [MQTT5-3.3.4-9] [MQTT5-3.3.4-10] [MQTT5-4.6.0-6] [MQTT5-4.9.0-1] [MQTT5-4.9.0-2] [MQTT5-4.9.0-3]
// [MQTT5-4.3.2-3] [MQTT5-4.3.3-3]: a client's Receive Maximum of 2: never more
// than 2 unacknowledged QoS 1/2 PUBLISH packets, other packets (PINGRESP)
// still flow, and each ack releases the next message, in order.
#[test]
fn receive_maximum_of_the_client_is_honoured() {
    let broker = Broker::start();
    let t = topic("v5-receive-max");
    let (mut sub, _) = open(
        broker.addr,
        &connect5(
            &client_id(),
            true,
            60,
            &Props::new().u16(RECEIVE_MAXIMUM, 2),
        ),
    );
    assert_eq!(sub5(&mut sub, &Props::new(), &[(&t, 2)]), vec![2]);
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    for i in 0..6u16 {
        let qos = 1 + (i % 2) as u8;
        publisher.send(&publish5(
            &t,
            qos,
            i + 1,
            false,
            &Props::new(),
            format!("{i}").as_bytes(),
        ));
        let answer = publisher.read();
        if qos == 2 {
            publisher.send(&ack(PUBREL, i + 1));
            publisher.read_until("PUBCOMP", |p| p.kind() == PUBCOMP);
        }
        assert_eq!(answer.pid(), i + 1);
    }
    let mut unacked: Vec<Publish5> = (0..2).map(|_| Publish5::parse(&sub.read())).collect();
    sub.ping(); // [MQTT5-4.9.0-3] a PINGRESP is not held back
    sub.expect_nothing(QUIET);
    let mut got = Vec::new();
    while got.len() < 6 {
        let m = unacked.remove(0);
        got.push(m.payload.clone());
        let pid = m.pid.expect("QoS > 0");
        if m.qos == 1 {
            sub.send(&ack(PUBACK, pid));
        } else {
            sub.send(&ack(PUBREC, pid));
            let rel = sub.read_until("PUBREL", |p| p.kind() == PUBREL);
            assert_eq!(rel.pid(), pid);
            // Still unacknowledged until PUBCOMP: nothing new yet.
            sub.send(&ack(PUBCOMP, pid));
        }
        if got.len() + unacked.len() < 6 {
            unacked.push(Publish5::parse(&sub.read()));
        }
        assert!(unacked.len() <= 2);
        if got.len() + unacked.len() < 6 {
            sub.expect_nothing(Duration::from_millis(150));
        }
    }
    let want: Vec<Vec<u8>> = (0..6).map(|i| format!("{i}").into_bytes()).collect();
    assert_eq!(got, want, "[MQTT5-4.6.0-5] order");
}

// [MQTT5-3.3.4-7] [MQTT5-3.3.4-8] [MQTT5-4.13.1-1]: CONNACK tells the client
// Receive Maximum = `--max-incoming-inflight` (2); a third QoS 2 PUBLISH
// while two await PUBREL gets DISCONNECT 0x93 (Receive Maximum exceeded).
#[test]
fn exceeding_the_brokers_receive_maximum_gets_disconnect_0x93() {
    let Some(broker) = Broker::spawn_only(&["--max-incoming-inflight", "2"]) else {
        return;
    };
    let (mut c, ack) = open_ok(broker.addr, &Props::new());
    assert_eq!(ack.prop(RECEIVE_MAXIMUM), Some(Value::U16(2)));
    let t = topic("v5-rm-exceeded");
    for pid in 1..=2u16 {
        c.send(&publish5(&t, 2, pid, false, &Props::new(), b"q2"));
        // Nobody subscribes: 0x10 (No matching subscribers), still a success.
        assert_eq!(ack5(&c.read()), (pid, 0x10), "PUBREC");
    }
    c.send(&publish5(&t, 2, 3, false, &Props::new(), b"one too many"));
    expect_disconnect(&mut c, 0x93, "[MQTT5-3.3.4-7] Receive Maximum exceeded");
}

// [MQTT5-3.4.2-1] [MQTT5-3.5.2-1] [MQTT5-3.6.2-1] [MQTT5-3.7.2-1] [MQTT5-2.2.1-5]
// [MQTT5-4.3.2-4] [MQTT5-4.3.3-8] [MQTT5-4.3.3-11] [MQTT5-3.3.4-1]: reason codes of
// the broker's acknowledgements: PUBACK / PUBREC / PUBCOMP with 0x00 (or
// 0x10 No matching subscribers, which Tern may use when nobody subscribed);
// PUBREL for an unknown packet id → PUBCOMP 0x92; as the sender, a PUBREC for
// an id it has not sent → PUBREL 0x92 (Packet Identifier not found).
#[test]
fn acknowledgement_reason_codes() {
    let broker = Broker::start();
    let t = topic("v5-acks");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let ok = |code: u8| code == 0x00 || code == 0x10;
    let (pid, code) = publish_qos1(&mut c, &t, 0x0102, &Props::new(), b"1");
    assert!(pid == 0x0102 && ok(code), "PUBACK {code:#04x}");
    c.send(&publish5(&t, 2, 0x0203, false, &Props::new(), b"2"));
    let rec = c.read();
    assert_eq!(rec.kind(), PUBREC, "{rec:?}");
    let (pid, code) = ack5(&rec);
    assert!(pid == 0x0203 && ok(code), "PUBREC {rec:?}");
    c.send(&ack(PUBREL, 0x0203));
    c.expect_bytes(&ack(PUBCOMP, 0x0203));
    c.send(&ack(PUBREL, 0x0999));
    let comp = c.read();
    assert_eq!(
        (comp.kind(), ack5(&comp)),
        (PUBCOMP, (0x0999, 0x92)),
        "{comp:?}"
    );
    c.send(&ack(PUBREC, 0x0777));
    let rel = c.read();
    assert_eq!((rel.header, ack5(&rel)), (0x62, (0x0777, 0x92)), "{rel:?}");
    c.ping();
}

// [MQTT5-4.4.0-2] [MQTT5-4.3.2-3] [MQTT5-4.3.3-3]: a PUBACK or PUBREC with a
// reason code ≥ 0x80 acknowledges the PUBLISH: no PUBREL follows, and it is
// not re-sent when the session resumes.
#[test]
fn error_acks_from_the_receiver_end_the_delivery() {
    let broker = Broker::start();
    let t = topic("v5-error-ack");
    let id = client_id();
    let keep = Props::new().u32(SESSION_EXPIRY, 60);
    let (mut sub, _) = open(broker.addr, &connect5(&id, true, 60, &keep));
    assert_eq!(sub5(&mut sub, &Props::new(), &[(&t, 2)]), vec![2]);
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    publish_qos1(&mut publisher, &t, 1, &Props::new(), b"q1");
    publisher.send(&publish5(&t, 2, 2, false, &Props::new(), b"q2"));
    publisher.read();
    publisher.send(&ack(PUBREL, 2));
    publisher.read();
    for _ in 0..2 {
        let m = Publish5::parse(&sub.read());
        let kind = if m.qos == 1 { PUBACK } else { PUBREC };
        let [hi, lo] = m.pid.expect("QoS > 0").to_be_bytes();
        sub.send(&[kind << 4, 3, hi, lo, 0x80]); // Unspecified error
    }
    sub.ping();
    sub.expect_nothing(QUIET); // no PUBREL
    sub.abort();
    let (mut sub, ack) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert!(ack.session_present);
    sub.ping();
    sub.expect_nothing(QUIET); // nothing re-sent
    sub.disconnect();
    open(broker.addr, &connect5(&id, true, 60, &Props::new()))
        .0
        .disconnect();
}

// [MQTT5-3.3.1-1] [MQTT5-3.3.1-3] [MQTT5-4.4.0-1] [MQTT5-4.3.2-1] [MQTT5-4.3.2-2]
// [MQTT5-4.3.3-1] [MQTT5-4.3.3-2] [MQTT5-4.3.3-4] [MQTT5-4.3.3-5] [MQTT5-4.3.3-6]
// [MQTT5-2.2.1-4]: the broker's QoS 1/2 PUBLISH packets carry
// fresh non-zero ids and DUP 0 (whatever DUP the publisher sent); on resume an
// unacknowledged PUBLISH is re-sent with DUP 1 and its id, and a QoS 2 message
// whose PUBREC arrived is continued with PUBREL, never re-sent as PUBLISH.
#[test]
fn unacknowledged_deliveries_are_resumed() {
    let broker = Broker::start();
    let t = topic("v5-resume");
    let id = client_id();
    let keep = Props::new().u32(SESSION_EXPIRY, 60);
    let (mut sub, _) = open(broker.addr, &connect5(&id, true, 60, &keep));
    assert_eq!(sub5(&mut sub, &Props::new(), &[(&t, 2)]), vec![2]);
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    for (i, qos) in [1u8, 2, 2].into_iter().enumerate() {
        let pid = i as u16 + 1;
        let mut bytes = publish5(
            &t,
            qos,
            pid,
            false,
            &Props::new(),
            format!("{i}").as_bytes(),
        );
        bytes[0] |= 0x08; // DUP from the publisher is not propagated
        publisher.send(&bytes);
        publisher.read();
        if qos == 2 {
            publisher.send(&ack(PUBREL, pid));
            publisher.read();
        }
    }
    let first: Vec<Publish5> = (0..3).map(|_| Publish5::parse(&sub.read())).collect();
    let mut pids: Vec<u16> = first.iter().map(|m| m.pid.expect("QoS > 0")).collect();
    assert!(first.iter().all(|m| !m.dup), "{first:?}");
    pids.dedup();
    assert_eq!(pids.len(), 3, "unique ids: {first:?}");
    sub.send(&ack(PUBREC, pids[1])); // the first QoS 2 message gets PUBREC only
    sub.expect_bytes(&ack(PUBREL, pids[1]));
    sub.abort();
    let (mut sub, connack) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert!(connack.session_present);
    // The PUBREL and the two PUBLISH packets, in any order between them.
    let resent: Vec<RawPacket> = (0..3).map(|_| sub.read()).collect();
    let rels: Vec<_> = resent.iter().filter(|p| p.kind() == PUBREL).collect();
    assert_eq!(rels.len(), 1, "{resent:?}");
    assert_eq!(rels[0].bytes(), ack(PUBREL, pids[1]), "{resent:?}");
    let again: Vec<(Option<u16>, bool, Vec<u8>)> = resent
        .iter()
        .filter(|p| p.kind() == PUBLISH)
        .map(Publish5::parse)
        .map(|m| (m.pid, m.dup, m.payload))
        .collect();
    let want = [
        (Some(pids[0]), true, b"0".to_vec()),
        (Some(pids[2]), true, b"2".to_vec()),
    ];
    assert_eq!(again, want, "re-sent in their original order");
    sub.send(&ack(PUBACK, pids[0]));
    sub.send(&ack(PUBCOMP, pids[1]));
    sub.send(&ack(PUBREC, pids[2]));
    sub.expect_bytes(&ack(PUBREL, pids[2]));
    sub.send(&ack(PUBCOMP, pids[2]));
    sub.ping();
    sub.expect_nothing(QUIET);
    sub.disconnect();
    open(broker.addr, &connect5(&id, true, 60, &Props::new()))
        .0
        .disconnect();
}

// [MQTT5-4.3.2-5] [MQTT5-4.3.3-9] [MQTT5-4.3.3-10] [MQTT5-4.3.3-12] [MQTT5-4.5.0-1]:
// a QoS 2 PUBLISH repeated before PUBREL is delivered once; after PUBCOMP
// (and after PUBACK for QoS 1) the same id carries a new message.
#[test]
fn packet_ids_of_the_publisher_are_reused_correctly() {
    let broker = Broker::start();
    let t = topic("v5-pid-reuse");
    let mut sub = subscriber(broker.addr, &t, 2);
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let q2 = publish5(&t, 2, 9, false, &Props::new(), b"once");
    c.send(&q2);
    assert_eq!(ack5(&c.read()), (9, 0));
    let mut dup = q2.clone();
    dup[0] |= 0x08;
    c.send(&dup);
    assert_eq!(ack5(&c.read()), (9, 0));
    c.send(&ack(PUBREL, 9));
    c.expect_bytes(&ack(PUBCOMP, 9));
    c.send(&publish5(&t, 2, 9, false, &Props::new(), b"new"));
    c.read();
    c.send(&ack(PUBREL, 9));
    c.read();
    for payload in ["a", "b"] {
        publish_qos1(&mut c, &t, 4, &Props::new(), payload.as_bytes());
    }
    let got: Vec<Vec<u8>> = (0..4).map(|_| recv5(&mut sub).payload).collect();
    assert_eq!(got, [&b"once"[..], b"new", b"a", b"b"]);
    sub.expect_nothing(QUIET);
}

// [MQTT5-3.3.2-12] [MQTT5-3.2.2-17] [MQTT5-3.3.2-1]: inbound Topic Aliases:
// PUBLISH with a topic and alias 1 sets the mapping, an empty topic with
// alias 1 uses it, a new topic replaces it, the highest alias (16) works.
// Subscribers always get the full topic name.
#[test]
fn topic_aliases_from_the_client_are_resolved() {
    let broker = Broker::start();
    let base = topic("v5-alias");
    let mut sub = subscriber(broker.addr, &format!("{base}/#"), 0);
    let (mut c, ack) = open_ok(broker.addr, &Props::new());
    assert_eq!(ack.prop(TOPIC_ALIAS_MAXIMUM), Some(Value::U16(16)));
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let alias = |n: u16| Props::new().u16(TOPIC_ALIAS, n);
    for (topic, n, payload) in [
        (a.as_str(), 1, "set"),
        ("", 1, "use"),
        (b.as_str(), 1, "replace"),
        ("", 1, "use again"),
        (a.as_str(), 16, "highest"),
        ("", 16, "use highest"),
    ] {
        c.send(&publish5(topic, 0, 0, false, &alias(n), payload.as_bytes()));
    }
    c.ping();
    for (topic, payload) in [
        (&a, "set"),
        (&a, "use"),
        (&b, "replace"),
        (&b, "use again"),
        (&a, "highest"),
        (&a, "use highest"),
    ] {
        let m = recv5(&mut sub);
        assert_eq!(
            (&m.topic, m.payload.as_slice()),
            (topic, payload.as_bytes())
        );
        assert_eq!(m.prop(TOPIC_ALIAS), None, "{m:?}");
    }
}

// [MQTT5-3.3.2-9] [MQTT5-3.3.2-8] [MQTT5-3.3.2-7] [MQTT5-4.13.1-1] [MQTT5-3.14.2-1]:
// an alias above the Topic Alias Maximum (17 > 16) or 0 → DISCONNECT 0x94
// (Topic Alias invalid); an empty topic with an alias never set on this
// connection (even one set on an earlier connection of the same client) →
// DISCONNECT 0x82. The message is not routed.
#[test]
fn invalid_topic_aliases_get_disconnect() {
    let broker = Broker::start();
    let t = topic("v5-alias-bad");
    let mut watcher = subscriber(broker.addr, &t, 0);
    let alias = |n: u16| Props::new().u16(TOPIC_ALIAS, n);
    for (n, code) in [(17u16, 0x94u8), (0, 0x94)] {
        let (mut c, _) = open_ok(broker.addr, &Props::new());
        c.send(&publish5(&t, 0, 0, false, &alias(n), b"bad alias"));
        expect_disconnect(&mut c, code, &format!("alias {n}"));
    }
    let id = client_id();
    let (mut c, _) = open(broker.addr, &connect5(&id, true, 60, &Props::new()));
    c.send(&publish5(&t, 0, 0, false, &alias(3), b"mapped"));
    assert_eq!(recv5(&mut watcher).payload, b"mapped");
    c.disconnect();
    let (mut c, _) = open(broker.addr, &connect5(&id, true, 60, &Props::new()));
    c.send(&publish5("", 0, 0, false, &alias(3), b"unknown here"));
    expect_disconnect(
        &mut c,
        0x82,
        "[MQTT5-3.3.2-7] alias of an earlier connection",
    );
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    c.send(&publish5(
        "",
        1,
        1,
        false,
        &Props::new(),
        b"no topic, no alias",
    ));
    expect_disconnect(&mut c, 0x82, "empty topic without alias");
    watcher.expect_nothing(QUIET);
}

// [MQTT5-3.3.4-6] [MQTT5-4.13.1-1] [MQTT5-3.3.1-4] [MQTT5-3.3.2-2] [MQTT5-3.3.2-14]
// [MQTT5-4.7.0-1] [MQTT5-3.3.2-13] [MQTT5-3.3.2-19] [MQTT5-1.5.4-1] [MQTT5-4.7.3-2]:
// protocol errors and malformed PUBLISH packets get a DISCONNECT with a
// reason code (0x81 malformed, 0x82 protocol error, 0x90 topic name invalid)
// and the close; nothing is routed.
#[test]
fn bad_publish_packets_get_disconnect_with_a_reason_code() {
    let broker = Broker::start();
    let t = topic("v5-bad-publish");
    let mut watcher = subscriber(broker.addr, &t, 0);
    let p = |props: Props| publish5(&t, 0, 0, false, &props, b"x");
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "Subscription Identifier from a client",
            p(Props::new().varint(SUBSCRIPTION_ID, 1)),
            &[0x82],
        ),
        (
            "QoS 3",
            {
                let mut b = p(Props::new());
                b[0] |= 0x06;
                b
            },
            &[0x81],
        ),
        (
            "wildcard in the topic",
            publish5("tern/+/x", 0, 0, false, &Props::new(), b"x"),
            &[0x81, 0x82, 0x90],
        ),
        (
            "Response Topic with a wildcard",
            p(Props::new().string(RESPONSE_TOPIC, "a/#")),
            &[0x81, 0x82],
        ),
        (
            "Response Topic not UTF-8",
            p(Props(vec![RESPONSE_TOPIC, 0, 1, 0xFF])),
            &[0x81],
        ),
        (
            "Content Type not UTF-8",
            p(Props(vec![CONTENT_TYPE, 0, 2, 0xED, 0xA0])),
            &[0x81],
        ),
        (
            "topic with U+0000",
            publish5(&format!("{t}\0"), 0, 0, false, &Props::new(), b"x"),
            &[0x81, 0x82, 0x90],
        ),
        (
            "Payload Format Indicator twice",
            p(Props::new().byte(PAYLOAD_FORMAT, 0).byte(PAYLOAD_FORMAT, 0)),
            &[0x81, 0x82],
        ),
        ("unknown property", p(Props(vec![0x7F, 0])), &[0x81]),
        (
            "property length past the end",
            {
                let mut b = p(Props::new());
                let at = b.len() - 2;
                b[at] = 0x20;
                b
            },
            &[0x81],
        ),
    ];
    let mut failed = Vec::new();
    for (what, bytes, codes) in cases {
        let (mut c, _) = open_ok(broker.addr, &Props::new());
        let _ = c.send_lossy(&bytes);
        match c.closed_within(WAIT) {
            Ok(before) => {
                let got: Vec<u8> = before
                    .iter()
                    .filter(|p| p.kind() == DISCONNECT)
                    .map(disconnect_code)
                    .collect();
                if got.len() != 1 || !codes.contains(&got[0]) {
                    failed.push(format!(
                        "{what}: sent {before:?}, want one DISCONNECT with one of {codes:02X?}"
                    ));
                }
            }
            Err(e) => failed.push(format!("{what}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    watcher.expect_nothing(QUIET);
}

// [MQTT5-4.3.3-13] [MQTT5-4.3.3-11]: the broker, as QoS 2 receiver, completes
// the exchange with PUBCOMP even when the message expired while it waited
// for the PUBREL.
#[test]
fn qos2_exchange_completes_after_the_message_expired() {
    let broker = Broker::start();
    let t = topic("v5-q2-expired");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let expiry = Props::new().u32(MESSAGE_EXPIRY, 1);
    c.send(&publish5(&t, 2, 5, false, &expiry, b"short-lived"));
    assert_eq!(
        ack5(&c.read()),
        (5, 0x10),
        "PUBREC, no matching subscribers"
    );
    std::thread::sleep(Duration::from_millis(1500));
    c.send(&ack(PUBREL, 5));
    c.expect_bytes(&ack(PUBCOMP, 5));
}
