//! SUBSCRIBE / SUBACK, UNSUBSCRIBE / UNSUBACK and topic filter matching
//! (MQTT 3.1.1 sections 3.8–3.11, 4.7).

use crate::common::*;

// [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1]
// [MQTT-3.9.3-2] [MQTT-2.3.1-7]: exact SUBACK bytes, one code per filter, in
// filter order.
#[test]
fn suback_has_the_packet_id_and_one_code_per_filter_in_order() {
    let broker = Broker::start();
    let base = topic("suback");
    let mut c = Client::v311(broker.addr);
    let (a, b, d) = (
        format!("{base}/a"),
        format!("{base}/+"),
        format!("{base}/#"),
    );
    c.send(&subscribe(V311, 0x0A0B, &[(&a, 2), (&b, 0), (&d, 1)]));
    c.expect_bytes(&suback_v3(0x0A0B, &[2, 0, 1]));
    // All three subscriptions are live, as if sent separately [MQTT-3.8.4-4].
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&a, "x", 2);
    let msg = c.recv_acked();
    assert_eq!(msg.qos, 2, "max of 2, 0, 1: {msg:?}");
    publisher.publish_qos(&format!("{base}/q/r"), "y", 2);
    assert_eq!(c.recv_acked().qos, 1, "only {d} matches");
}

// [MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-2.3.1-7]: exact
// UNSUBACK bytes; no new messages after it.
#[test]
fn unsubscribe_stops_delivery_and_gets_exact_unsuback() {
    let broker = Broker::start();
    let t = topic("unsub");
    let mut c = Client::v311(broker.addr);
    c.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "before", 1);
    assert_eq!(c.recv_acked().payload, b"before");
    c.send(&unsubscribe(V311, 0x0102, &[&t]));
    c.expect_bytes(&[0xB0, 0x02, 0x01, 0x02]);
    publisher.publish_qos(&t, "after", 1);
    c.expect_nothing(QUIET);
}

// [MQTT-3.10.4-5]: UNSUBACK even when nothing was subscribed.
#[test]
fn unsubscribe_of_an_unknown_filter_is_still_acknowledged() {
    let broker = Broker::start();
    let mut c = Client::v311(broker.addr);
    c.send(&unsubscribe(V311, 9, &[&topic("never")]));
    c.expect_bytes(&ack(UNSUBACK, 9));
}

// [MQTT-3.10.4-1]: filters are compared character by character: `a/b` does
// not remove `a/+`.
#[test]
fn unsubscribe_compares_filters_literally() {
    let broker = Broker::start();
    let base = topic("unsub-literal");
    let mut c = Client::v311(broker.addr);
    c.sub(&format!("{base}/+"), 0);
    c.unsubscribe(&[&format!("{base}/b")]);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish0(&format!("{base}/b"), "still");
    assert_eq!(c.recv().payload, b"still");
}

// [MQTT-3.10.4-6]: several filters, one UNSUBACK, all removed.
#[test]
fn unsubscribe_of_several_filters_sends_one_unsuback() {
    let broker = Broker::start();
    let base = topic("unsub-many");
    let (a, b, keep) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/k"),
    );
    let mut c = Client::v311(broker.addr);
    c.subscribe(&[(&a, 0), (&b, 0), (&keep, 0)]);
    c.send(&unsubscribe(V311, 5, &[&a, &b]));
    c.expect_bytes(&ack(UNSUBACK, 5));
    let mut publisher = Client::v311(broker.addr);
    publisher.publish0(&a, "a");
    publisher.publish0(&b, "b");
    publisher.publish0(&keep, "k");
    assert_eq!(c.recv().payload, b"k");
    c.expect_nothing(QUIET);
}

// [MQTT-3.10.4-3]: a QoS 1 delivery started before UNSUBSCRIBE is completed:
// still resent after reconnect when it was never acknowledged.
#[test]
fn unsubscribe_completes_started_qos1_delivery() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("unsub-inflight");
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    c.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "started", 1);
    let first = c.recv();
    c.unsubscribe(&[&t]);
    c.abort();
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    let again = c.recv_acked();
    assert_eq!(
        (again.pid, again.payload.as_slice()),
        (first.pid, &b"started"[..])
    );
    c.disconnect();
    Client::accepted(broker.addr, &Connect::v311(&id))
        .0
        .disconnect();
}

// [MQTT-4.7.2-1]: `#` and `+/…` do not match topics starting with `$`; an
// explicit `$…` filter does.
#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let broker = Broker::start();
    let suffix = topic("dollar").replace('/', "_");
    let dollar = format!("$tern-test/{suffix}");
    let sentinel = format!("tern/sentinel/{suffix}");
    let mut wild = Client::v311(broker.addr);
    assert_eq!(
        wild.subscribe(&[("#", 0), (&format!("+/{suffix}"), 0)]),
        vec![0, 0]
    );
    let mut explicit = Client::v311(broker.addr);
    explicit.sub("$tern-test/+", 0);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish0(&dollar, "hidden");
    publisher.publish0(&sentinel, "end");
    // `#` also sees the traffic of other tests on a shared broker: read up to
    // the sentinel and check nothing under `$` came first.
    loop {
        let msg = wild.recv();
        assert!(
            !msg.topic.starts_with('$'),
            "leading wildcard matched {msg:?}"
        );
        if msg.topic == sentinel {
            break;
        }
    }
    let msg = explicit.recv();
    assert_eq!(msg.topic, dollar);
}

// [MQTT-4.7.1-2]: `a/#` matches `a` itself and every level below.
#[test]
fn multi_level_wildcard_matches_the_parent_level() {
    let broker = Broker::start();
    let base = topic("hash");
    let mut c = Client::v311(broker.addr);
    c.sub(&format!("{base}/a/#"), 0);
    let mut publisher = Client::v311(broker.addr);
    for level in ["a", "a/b", "a/b/c", "a/", "ab", "b/a"] {
        publisher.publish0(&format!("{base}/{level}"), level);
    }
    for level in ["a", "a/b", "a/b/c", "a/"] {
        assert_eq!(c.recv().payload, level.as_bytes());
    }
    c.expect_nothing(QUIET);
}

// [MQTT-4.7.1-3]: `+` matches exactly one level, including an empty one.
#[test]
fn single_level_wildcard_matches_exactly_one_level() {
    let broker = Broker::start();
    let base = topic("plus");
    let mut c = Client::v311(broker.addr);
    c.subscribe(&[(&format!("{base}/+/x"), 0), (&format!("{base}/q/+"), 0)]);
    let mut publisher = Client::v311(broker.addr);
    for level in ["a/x", "/x", "a/b/x", "x", "q", "q/r", "q/", "q/r/s"] {
        publisher.publish0(&format!("{base}/{level}"), level);
    }
    for level in ["a/x", "/x", "q/r", "q/"] {
        assert_eq!(c.recv().payload, level.as_bytes());
    }
    c.expect_nothing(QUIET);
}

// [MQTT-3.8.4-3]: re-subscribing to an identical filter replaces the
// subscription (new QoS; no second copy) without losing or reordering
// messages.
#[test]
fn identical_filter_replaces_the_subscription() {
    let broker = Broker::start();
    let t = topic("replace");
    let mut c = Client::v311(broker.addr);
    c.sub(&t, 0);
    c.publish_qos(&t, "1", 2);
    c.publish_qos(&t, "2", 2);
    c.sub(&t, 2);
    c.publish_qos(&t, "3", 2);
    c.publish_qos(&t, "4", 2);
    c.ping();
    let got: Vec<(Vec<u8>, u8)> = (0..4)
        .map(|_| {
            let m = c.recv_acked();
            (m.payload, m.qos)
        })
        .collect();
    let want: Vec<(Vec<u8>, u8)> = vec![
        (b"1".to_vec(), 0),
        (b"2".to_vec(), 0),
        (b"3".to_vec(), 2),
        (b"4".to_vec(), 2),
    ];
    assert_eq!(got, want);
    c.expect_nothing(QUIET);
}

// [MQTT-3.8.3-3] [MQTT-4.8.0-1]: SUBSCRIBE without any filter closes the connection.
#[test]
fn subscribe_without_filters_closes_the_connection() {
    let broker = Broker::start();
    let mut healthy = Healthy::new(broker.addr);
    let mut c = Client::v311(broker.addr);
    c.send(&packet(0x82, &[0x00, 0x01]));
    c.expect_closed_silently(WAIT);
    healthy.round_trip();
}

// [MQTT-3.10.3-2] [MQTT-4.8.0-1]: UNSUBSCRIBE without any filter closes the connection.
#[test]
fn unsubscribe_without_filters_closes_the_connection() {
    let broker = Broker::start();
    let mut healthy = Healthy::new(broker.addr);
    let mut c = Client::v311(broker.addr);
    c.send(&packet(0xA2, &[0x00, 0x01]));
    c.expect_closed_silently(WAIT);
    healthy.round_trip();
}

// [MQTT5-3.9.3-1] [MQTT5-3.8.4-6] [MQTT5-3.8.4-7]: v5 SUBACK reason codes follow
// the property length, one per filter, in filter order.
#[test]
fn v5_suback_codes_in_filter_order() {
    let broker = Broker::start();
    let base = topic("v5-suback");
    let mut c = Client::fresh(broker.addr, V5);
    let codes = c.subscribe(&[
        (&format!("{base}/a"), 1),
        (&format!("{base}/b"), 0),
        (&format!("{base}/c"), 2),
    ]);
    assert_eq!(codes, vec![1, 0, 2]);
}
