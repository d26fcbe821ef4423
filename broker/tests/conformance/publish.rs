//! PUBLISH and its QoS flows, DUP, QoS downgrade, overlapping subscriptions
//! and ordering (MQTT 3.1.1 sections 3.3–3.7, 4.3, 4.4, 4.6).

use crate::common::*;

// [MQTT-4.3.1-1] [MQTT-3.3.1-2] [MQTT-2.3.1-5] [MQTT-3.3.2-3] [MQTT-4.5.0-1]
// [MQTT5-4.3.1-1] [MQTT5-3.3.1-2] [MQTT5-2.2.1-2] [MQTT5-3.3.2-3] [MQTT5-4.5.0-1]
#[test]
fn qos0_round_trip_in_every_version() {
    let broker = Broker::start();
    for version in [V31, V311, V5] {
        let t = topic("qos0");
        let mut sub = Client::fresh(broker.addr, version);
        sub.sub(&t, 2);
        let mut publisher = Client::fresh(broker.addr, version);
        publisher.publish0(&t, "zero");
        let msg = sub.recv();
        assert_eq!(msg.topic, t, "[MQTT-3.3.2-3]");
        assert_eq!(msg.payload, b"zero");
        assert_eq!((msg.qos, msg.dup, msg.pid), (0, false, None), "{msg:?}");
        if version != V5 {
            // Exact bytes: no packet id for QoS 0 [MQTT-2.3.1-5].
            let expected = Message::new(&t, "zero").encode(version);
            assert_eq!(msg.encode(version), expected);
        }
    }
}

// [MQTT-3.3.4-1] [MQTT-2.3.1-6] [MQTT-4.3.2-1] [MQTT-4.3.2-2]: exact PUBACK
// bytes, and the broker's own QoS 1 PUBLISH carries a non-zero id and DUP=0.
#[test]
fn qos1_flow_exact_bytes() {
    let broker = Broker::start();
    let t = topic("qos1");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.send(&Message::new(&t, "one").qos(1, 0x1234).encode(V311));
    publisher.expect_bytes(&[0x40, 0x02, 0x12, 0x34]);
    let msg = sub.recv();
    assert_eq!((msg.qos, msg.dup, msg.retain), (1, false, false), "{msg:?}");
    assert_eq!(msg.payload, b"one");
    let pid = msg.pid.expect("QoS 1 carries a packet id");
    sub.send(&ack(PUBACK, pid));
    sub.ping();
    sub.expect_nothing(QUIET); // acknowledged: no redelivery
}

// [MQTT-3.3.4-1] [MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-2.3.1-6]: exact PUBREC /
// PUBCOMP bytes towards the publisher, PUBREL (flags 0010) towards the
// subscriber.
#[test]
fn qos2_flow_exact_bytes() {
    let broker = Broker::start();
    let t = topic("qos2");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 2);
    let mut publisher = Client::v311(broker.addr);
    publisher.send(&Message::new(&t, "two").qos(2, 0xABCD).encode(V311));
    publisher.expect_bytes(&[0x50, 0x02, 0xAB, 0xCD]);
    publisher.send(&ack(PUBREL, 0xABCD));
    publisher.expect_bytes(&[0x70, 0x02, 0xAB, 0xCD]);
    let msg = sub.recv();
    assert_eq!((msg.qos, msg.dup), (2, false), "{msg:?}");
    let pid = msg.pid.expect("QoS 2 carries a packet id");
    sub.send(&ack(PUBREC, pid));
    let [hi, lo] = pid.to_be_bytes();
    sub.expect_bytes(&[0x62, 0x02, hi, lo]);
    sub.send(&ack(PUBCOMP, pid));
    sub.ping();
    sub.expect_nothing(QUIET);
}

// [MQTT-4.3.3-2]: a PUBLISH resent (DUP=1) before PUBREL is acknowledged
// again but delivered only once; after PUBCOMP the id is free for a new message.
#[test]
fn qos2_duplicate_publish_before_pubrel_is_delivered_once() {
    let broker = Broker::start();
    let t = topic("qos2-dup");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 2);
    let mut publisher = Client::v311(broker.addr);
    let msg = Message::new(&t, "once").qos(2, 7);
    publisher.send(&msg.encode(V311));
    publisher.expect_bytes(&ack(PUBREC, 7));
    publisher.send(&msg.clone().dup(true).encode(V311));
    publisher.expect_bytes(&ack(PUBREC, 7));
    publisher.send(&ack(PUBREL, 7));
    publisher.expect_bytes(&ack(PUBCOMP, 7));
    assert_eq!(sub.recv_acked().payload, b"once");
    sub.expect_nothing(QUIET);
    // The id is reusable for a different message.
    publisher.publish(&Message::new(&t, "again").qos(2, 7));
    assert_eq!(sub.recv_acked().payload, b"again");
}

// [MQTT-3.3.1-3]: DUP of an incoming PUBLISH is not propagated.
#[test]
fn incoming_dup_flag_is_not_propagated() {
    let broker = Broker::start();
    let t = topic("dup-in");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "d").qos(1, 3).dup(true));
    let msg = sub.recv_acked();
    assert!(!msg.dup, "{msg:?}");
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-3.3.1-3]: unacknowledged QoS 1 and QoS 2
// deliveries are resent on reconnect (clean session 0) with DUP=1 and their
// original packet ids.
#[test]
fn unacknowledged_publish_is_resent_with_dup_after_reconnect() {
    let broker = Broker::start();
    for qos in [1u8, 2] {
        let id = client_id();
        let t = topic("redeliver");
        let (mut sub, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
        sub.sub(&t, qos);
        let mut publisher = Client::v311(broker.addr);
        publisher.publish_qos(&t, "r", qos);
        let first = sub.recv();
        assert!(!first.dup);
        sub.abort();
        let (mut sub, present) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
        assert!(present);
        let again = sub.recv_acked();
        assert_eq!(
            (again.pid, again.qos, again.payload.as_slice()),
            (first.pid, qos, &b"r"[..])
        );
        assert!(again.dup, "[MQTT-3.3.1-1] {again:?}");
        sub.ping();
        sub.expect_nothing(QUIET);
        sub.disconnect();
        Client::accepted(broker.addr, &Connect::v311(&id))
            .0
            .disconnect();
    }
}

// [MQTT-4.4.0-1] [MQTT-4.3.3-1]: a PUBREL not yet completed is resent on
// reconnect with its original packet id.
#[test]
fn unacknowledged_pubrel_is_resent_after_reconnect() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("pubrel-resend");
    let (mut sub, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    sub.sub(&t, 2);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "q2", 2);
    let msg = sub.recv();
    let pid = msg.pid.expect("packet id");
    sub.send(&ack(PUBREC, pid));
    sub.expect_bytes(&ack(PUBREL, pid));
    sub.abort(); // PUBCOMP never sent
    let (mut sub, present) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    assert!(present);
    sub.expect_bytes(&ack(PUBREL, pid));
    sub.send(&ack(PUBCOMP, pid));
    sub.ping();
    sub.expect_nothing(QUIET); // the message itself is not delivered again
    sub.disconnect();
    Client::accepted(broker.addr, &Connect::v311(&id))
        .0
        .disconnect();
}

// [MQTT-3.8.4-6]: delivery QoS = min(published QoS, granted QoS).
#[test]
fn delivery_is_downgraded_to_the_granted_qos() {
    let broker = Broker::start();
    let mut publisher = Client::v311(broker.addr);
    for granted in 0..=2u8 {
        let t = topic("downgrade");
        let mut sub = Client::v311(broker.addr);
        sub.sub(&t, granted);
        for published in 0..=2u8 {
            publisher.publish_qos(&t, format!("{published}"), published);
            let msg = sub.recv_acked();
            assert_eq!(msg.payload, format!("{published}").as_bytes());
            assert_eq!(
                msg.qos,
                granted.min(published),
                "granted {granted}: {msg:?}"
            );
        }
    }
}

// [MQTT-3.3.5-1]: overlapping subscriptions of one client get the message at
// the maximum granted QoS. Tern folds them into exactly one delivery (the
// spec also allows one copy per subscription).
#[test]
fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let broker = Broker::start();
    let base = topic("overlap");
    let t = format!("{base}/x/y");
    let mut sub = Client::v311(broker.addr);
    let codes = sub.subscribe(&[
        (&format!("{base}/#"), 0),
        (&format!("{base}/+/y"), 2),
        (&t, 1),
    ]);
    assert_eq!(codes, vec![0, 2, 1]);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "o", 2);
    let msg = sub.recv_acked();
    assert_eq!((msg.payload.as_slice(), msg.qos), (&b"o"[..], 2), "{msg:?}");
    sub.expect_nothing(QUIET);
}

// [MQTT-4.6.0-5] [MQTT-4.6.0-6] [MQTT-4.5.0-1] [MQTT-4.1.0-2]: one publisher, one topic:
// every subscriber gets the messages in publish order, for each QoS.
#[test]
fn messages_arrive_in_publish_order() {
    let broker = Broker::start();
    for qos in 0..=2u8 {
        let t = topic("order");
        let mut subs: Vec<Client> = (0..2)
            .map(|_| {
                let mut c = Client::v311(broker.addr);
                c.sub(&t, 2);
                c
            })
            .collect();
        let mut publisher = Client::v311(broker.addr);
        for i in 0..100 {
            publisher.publish_qos(&t, format!("{i}"), qos);
        }
        for s in &mut subs {
            for i in 0..100 {
                let msg = s.recv_acked();
                assert_eq!(msg.payload, format!("{i}").as_bytes(), "QoS {qos}");
            }
        }
    }
}

// [MQTT-4.6.0-2] [MQTT-4.6.0-3]: PUBACKs and PUBRECs come back in the order of
// the PUBLISH packets (sent back to back, without waiting).
#[test]
fn acknowledgements_follow_publish_order() {
    let broker = Broker::start();
    let t = topic("ack-order");
    let mut publisher = Client::v311(broker.addr);
    for (qos, kind) in [(1u8, PUBACK), (2, PUBREC)] {
        let base = u16::from(qos) * 1000;
        let mut burst = Vec::new();
        for i in 1..=20u16 {
            burst.extend(Message::new(&t, "a").qos(qos, base + i).encode(V311));
        }
        publisher.send(&burst);
        for i in 1..=20u16 {
            publisher.expect_bytes(&ack(kind, base + i));
        }
        if qos == 2 {
            let mut rels = Vec::new();
            for i in 1..=20u16 {
                rels.extend(ack(PUBREL, base + i));
            }
            publisher.send(&rels);
            for i in 1..=20u16 {
                publisher.expect_bytes(&ack(PUBCOMP, base + i));
            }
        }
    }
}

// [MQTT-4.6.0-4] [MQTT-4.3.3-1]: as the QoS 2 sender, the broker sends
// PUBRELs in the order the PUBRECs arrived (here: reversed).
#[test]
fn pubrels_follow_pubrec_order() {
    let broker = Broker::start();
    let t = topic("pubrel-order");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 2);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..3 {
        publisher.publish_qos(&t, format!("{i}"), 2);
    }
    let pids: Vec<u16> = (0..3).map(|_| sub.recv().pid.expect("packet id")).collect();
    let mut recs = Vec::new();
    for pid in pids.iter().rev() {
        recs.extend(ack(PUBREC, *pid));
    }
    sub.send(&recs);
    for pid in pids.iter().rev() {
        sub.expect_bytes(&ack(PUBREL, *pid));
    }
    for pid in &pids {
        sub.send(&ack(PUBCOMP, *pid));
    }
    sub.ping();
}

// [MQTT-2.3.1-4] [MQTT-2.3.1-1]: the broker never uses a packet id that is
// still unacknowledged on the connection; ids are reused only after the ack.
#[test]
fn broker_packet_ids_are_unique_while_unacknowledged() {
    let broker = Broker::start();
    let t = topic("pids");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..40 {
        publisher.publish_qos(&t, format!("{i}"), 1);
    }
    let mut unacked: Vec<Message> = Vec::new();
    let mut received = 0;
    while received < 40 {
        match sub.try_read(QUIET) {
            Ok(p) => {
                let msg = Message::decode(&p, V311).expect("PUBLISH");
                assert!(
                    unacked.iter().all(|m| m.pid != msg.pid),
                    "packet id {:?} reused while unacknowledged",
                    msg.pid
                );
                assert_eq!(msg.payload, format!("{received}").as_bytes());
                received += 1;
                unacked.push(msg);
                if unacked.len() == 15 {
                    for m in unacked.drain(..10) {
                        sub.ack(&m);
                    }
                }
            }
            Err(ReadError::Timeout) => {
                assert!(!unacked.is_empty(), "stalled with nothing in flight");
                for m in unacked.drain(..) {
                    sub.ack(&m);
                }
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

// [MQTT-4.6.0-1] [MQTT-4.4.0-1]: resent PUBLISH packets keep their original order.
#[test]
fn resent_messages_keep_their_order() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("resend-order");
    let (mut sub, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..10 {
        publisher.publish_qos(&t, format!("{i}"), 1);
    }
    let first: Vec<Message> = (0..10).map(|_| sub.recv()).collect();
    sub.abort();
    let (mut sub, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    for (i, original) in first.iter().enumerate() {
        let again = sub.recv_acked();
        assert_eq!(again.payload, format!("{i}").as_bytes());
        assert_eq!(again.pid, original.pid);
        assert!(again.dup);
    }
    sub.disconnect();
    Client::accepted(broker.addr, &Connect::v311(&id))
        .0
        .disconnect();
}

// [MQTT-3.3.4-1]: a PUBLISH nobody subscribed to is still acknowledged.
#[test]
fn publish_without_subscribers_is_acknowledged() {
    let broker = Broker::start();
    let t = topic("nobody");
    let mut c = Client::v311(broker.addr);
    c.publish(&Message::new(&t, "1").qos(1, 1));
    c.publish(&Message::new(&t, "2").qos(2, 2));
    c.ping();
}

// [MQTT-4.7.3-4] [MQTT-3.3.2-3]: no normalisation: case, empty levels and a
// trailing separator are significant.
#[test]
fn topic_matching_is_exact_without_normalisation() {
    let broker = Broker::start();
    let base = topic("exact");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&format!("{base}/a/b"), 0);
    let mut publisher = Client::v311(broker.addr);
    for other in ["A/b", "a//b", "a/b/", "a/b ", "a"] {
        publisher.publish0(&format!("{base}/{other}"), other);
    }
    publisher.publish0(&format!("{base}/a/b"), "hit");
    let msg = sub.recv();
    assert_eq!(
        (msg.topic, msg.payload),
        (format!("{base}/a/b"), b"hit".to_vec())
    );
    sub.expect_nothing(QUIET);
}

// Workers=1: every connection on one worker uses the local delivery path.
#[test]
fn qos_round_trips_with_a_single_worker() {
    let Some(broker) = Broker::spawn_only(&["--workers", "1"]) else {
        return;
    };
    let t = topic("one-worker");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 2);
    let mut publisher = Client::v311(broker.addr);
    for qos in 0..=2u8 {
        publisher.publish_qos(&t, format!("{qos}"), qos);
        let msg = sub.recv_acked();
        assert_eq!((msg.payload, msg.qos), (format!("{qos}").into_bytes(), qos));
    }
}

// `--max-inflight 2`: at most two unacknowledged QoS 1 deliveries at a time;
// the rest wait in the session queue and follow in order as acks arrive.
#[test]
fn inflight_window_limits_unacknowledged_deliveries() {
    let Some(broker) = Broker::spawn_only(&["--max-inflight", "2"]) else {
        return;
    };
    let t = topic("inflight");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..6 {
        publisher.publish_qos(&t, format!("{i}"), 1);
    }
    let a = sub.recv();
    let b = sub.recv();
    sub.expect_nothing(QUIET);
    let mut got = vec![a.payload.clone(), b.payload.clone()];
    sub.ack(&a);
    sub.ack(&b);
    while got.len() < 6 {
        got.push(sub.recv_acked().payload);
    }
    let expected: Vec<Vec<u8>> = (0..6).map(|i| format!("{i}").into_bytes()).collect();
    assert_eq!(got, expected);
}

// A QoS 0 message fanned out to several 3.1.1 receivers of one worker goes
// out as one frame encoded once and shared (from the second receiver on);
// every receiver must still get exactly the right bytes, including a
// receiver granted QoS 1 (header of its own) and messages too large to share.
#[test]
fn qos0_fan_out_gives_every_receiver_the_exact_frame() {
    let Some(broker) = Broker::spawn_only(&["--workers", "1"]) else {
        return;
    };
    let t = topic("shared-frame");
    let mut subs: Vec<Client> = (0..4).map(|_| Client::v311(broker.addr)).collect();
    for s in &mut subs {
        s.sub(&t, 0);
    }
    let mut q1 = Client::v311(broker.addr);
    q1.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    for size in [0usize, 1, 100, 4096, 4097, 20_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        publisher.publish0(&t, &payload);
        let expected = packet(0x30, &[string(&t), payload.clone()].concat());
        for (i, s) in subs.iter_mut().enumerate() {
            assert_eq!(
                s.read().bytes(),
                expected,
                "subscriber {i}, payload {size} B"
            );
        }
        let m = q1.recv_acked();
        assert_eq!(
            (m.qos, &m.payload[..]),
            (0, &payload[..]),
            "QoS 0 at granted QoS 1"
        );
    }
}
