//! Retained replay at scale: every retained message matching a new
//! subscription reaches it, however many there are and however small the
//! subscriber's buffers and queue ([MQTT-3.3.1-9], [MQTT-3.8.4-4]), and a
//! live message is never followed by an older retained value of its topic.

use crate::common::*;
use std::collections::BTreeSet;

const N: usize = 3000;

/// Publishes `n` retained QoS 1 messages on `{prefix}/{i/100}/{i}`,
/// pipelined, and waits for every PUBACK: all are stored.
fn publish_retained(publisher: &mut Client, prefix: &str, n: usize) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    for i in 0..n {
        let t = format!("{prefix}/{}/{i:05}", i / 100);
        let pid = publisher.next_pid();
        let msg = Message::new(&t, format!("v{i}")).qos(1, pid).retain(true);
        publisher.send(&msg.encode(publisher.version));
        topics.insert(t);
    }
    for _ in 0..n {
        let p = publisher.read();
        assert_eq!(p.kind(), PUBACK, "{p:?}");
    }
    topics
}

// [MQTT-3.3.1-9] [MQTT-3.8.4-4] [MQTT-3.3.1-6]: with a 16 KiB writer and a 10-message
// queue, a burst of 3,000 retained messages used to be cut to what fit; now
// every one arrives, at every QoS and in both versions, in topic order.
#[test]
fn every_retained_message_reaches_a_new_subscriber() {
    let Some(broker) = Broker::spawn_only(&[
        "--writer-buffer-bytes",
        "16384",
        "--max-queued-messages",
        "10",
    ]) else {
        return;
    };
    let prefix = topic("replay");
    let mut publisher = Client::v311(broker.addr);
    let topics = publish_retained(&mut publisher, &prefix, N);
    // A subscriber that leaves mid-replay takes its replay with it.
    let mut quitter = Client::v311(broker.addr);
    quitter.sub(&format!("{prefix}/#"), 1);
    quitter.abort();
    for (version, qos) in [(V311, 0u8), (V311, 1), (V5, 1), (V5, 2), (V5, 0)] {
        let mut sub = Client::fresh(broker.addr, version);
        sub.sub(&format!("{prefix}/#"), qos);
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            let msg = sub.recv_acked();
            assert!(msg.retain, "[MQTT-3.3.1-8] {msg:?}");
            assert_eq!(msg.qos, qos.min(1), "stored at 1, granted {qos}: {msg:?}");
            got.push(msg.topic);
        }
        sub.expect_nothing(QUIET);
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(
            distinct, topics,
            "v{version} QoS {qos}: every retained topic, once"
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "v{version} QoS {qos}: topic order"
        );
    }
}

// A subscriber whose window is full (max_inflight 1, nothing acknowledged)
// stalls the replay; a live, non-retained message published meanwhile on a
// topic the replay has not reached is delivered, and the older retained
// value of that topic is not sent after it (ARCHITECTURE.md, "Retained
// replay").
#[test]
fn a_live_message_is_not_followed_by_an_older_retained_value() {
    let Some(broker) = Broker::spawn_only(&["--max-inflight", "1"]) else {
        return;
    };
    let prefix = topic("replay-live");
    let mut publisher = Client::v311(broker.addr);
    let topics = publish_retained(&mut publisher, &prefix, 1000);
    let last = topics.iter().next_back().cloned().unwrap();
    let mut sub = Client::v311(broker.addr);
    sub.sub(&format!("{prefix}/#"), 1);
    let first = sub.recv();
    assert!(first.retain, "{first:?}");
    // Not acknowledged: the replay waits with a short queue behind it.
    sub.expect_nothing(QUIET);
    publisher.publish(&Message::new(&last, "live").qos(1, 1));
    sub.ack(&first);
    let mut got = vec![first];
    while let Ok(p) = sub.try_read(QUIET) {
        let msg = Message::decode(&p, V311).unwrap_or_else(|| panic!("{p:?}"));
        sub.ack(&msg);
        got.push(msg);
    }
    let live = got
        .iter()
        .position(|m| m.topic == last && !m.retain)
        .unwrap_or_else(|| panic!("the live message on {last} arrived"));
    assert_eq!(got[live].payload, b"live");
    assert!(
        got[live + 1..].iter().all(|m| m.topic != last),
        "no retained {last} after the live one"
    );
    let retained: BTreeSet<String> = got
        .iter()
        .filter(|m| m.retain)
        .map(|m| m.topic.clone())
        .collect();
    let mut others = topics.clone();
    others.remove(&last);
    assert!(
        others.is_subset(&retained),
        "every other retained topic arrived"
    );
    assert_eq!(
        got.iter().filter(|m| m.retain).count(),
        retained.len(),
        "each once"
    );
}
