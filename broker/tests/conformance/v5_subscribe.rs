//! MQTT 5.0 SUBSCRIBE / UNSUBSCRIBE: reason codes, Subscription
//! Identifiers, the subscription options (No Local, Retain As Published,
//! Retain Handling), retained messages, request/response (MQTT 5.0 sections
//! 3.3.1.3, 3.8–3.11, 4.7, 4.10). Byte-level; tags are `[MQTT5-x.y.z-n]`.

use super::v5_wire::*;
use crate::common::*;

/// The Subscription Identifier property list.
fn sub_id(n: usize) -> Props {
    Props::new().varint(SUBSCRIPTION_ID, n)
}

/// Clears the retained message of `t`.
fn clear_retained(addr: std::net::SocketAddr, t: &str) {
    Client::v311(addr).publish(&Message::new(t, "").retain(true));
}

// [MQTT5-3.8.4-1] [MQTT5-3.8.4-2] [MQTT5-3.8.4-5] [MQTT5-3.8.4-6] [MQTT5-3.8.4-7]
// [MQTT5-3.9.3-1] [MQTT5-3.9.3-2] [MQTT5-2.2.1-6] [MQTT5-2.2.2-1]: one SUBSCRIBE,
// one SUBACK with the packet id, Property Length 0 and a reason code per
// filter in order: the granted QoS, 0x8F (Topic Filter invalid) for a filter
// over `--max-topic-levels`, 0x97 (Quota exceeded) past
// `--max-subscriptions-per-client`; the granted ones work, the others not.
#[test]
fn suback_reason_codes() {
    let Some(broker) = Broker::spawn_only(&[
        "--max-topic-levels",
        "4",
        "--max-subscriptions-per-client",
        "3",
    ]) else {
        return;
    };
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let filters: [(&str, u8); 5] = [
        ("v5s/a", 2),
        ("v5s/b/c/d/e", 1), // five levels
        ("v5s/+", 0),
        ("v5s/#", 1),
        ("v5s/x", 1), // a fourth subscription
    ];
    // The invalid filter alone first, so that it never holds a quota slot
    // (see `an_invalid_filter_does_not_use_up_the_quota`).
    c.send(&subscribe5(0x4241, &Props::new(), &filters[1..2]));
    c.expect_bytes(&[0x90, 0x04, 0x42, 0x41, 0x00, 0x8F]);
    let valid = [filters[0], filters[2], filters[3], filters[4]];
    c.send(&subscribe5(0x4242, &Props::new(), &valid));
    let suback = c.read();
    assert_eq!(suback.kind(), SUBACK, "{suback:?}");
    assert_eq!(
        suback.body,
        [0x42, 0x42, 0x00, 0x02, 0x00, 0x01, 0x97],
        "{suback:?}"
    );
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos("v5s/a", "to a", 2);
    let m = recv5(&mut c);
    // Two matching subscriptions (v5s/a at 2, v5s/# at 1): one copy at QoS 2.
    assert_eq!(
        (m.topic.as_str(), m.qos),
        ("v5s/a", 2),
        "[MQTT5-3.3.4-2] {m:?}"
    );
    publisher.publish0("v5s/x", "to x");
    let m = recv5(&mut c);
    assert_eq!(m.topic, "v5s/x", "only through v5s/#: {m:?}");
    c.ping();
    c.expect_nothing(QUIET);
}

// [MQTT5-3.8.4-5]: a SUBSCRIBE with several filters is handled as a sequence
// of SUBSCRIBE packets. With `--max-subscriptions-per-client 3`, filters
// [a (QoS 2), b/c/d/e (over `--max-topic-levels 4`), + (0), # (1), x (1)]
// must give [02, 8F, 00, 01, 97]: the refused filter holds no subscription.
#[test]
fn an_invalid_filter_does_not_use_up_the_quota() {
    let Some(broker) = Broker::spawn_only(&[
        "--max-topic-levels",
        "4",
        "--max-subscriptions-per-client",
        "3",
    ]) else {
        return;
    };
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let filters = [
        ("v5s/a", 2),
        ("v5s/b/c/d/e", 1),
        ("v5s/+", 0),
        ("v5s/#", 1),
        ("v5s/x", 1),
    ];
    c.send(&subscribe5(0x4242, &Props::new(), &filters));
    c.expect_bytes(&[0x90, 0x08, 0x42, 0x42, 0x00, 0x02, 0x8F, 0x00, 0x01, 0x97]);
}

// [MQTT5-3.10.4-1] [MQTT5-3.10.4-2] [MQTT5-3.10.4-4] [MQTT5-3.10.4-5] [MQTT5-3.10.4-6]
// [MQTT5-3.11.3-1] [MQTT5-3.11.3-2] [MQTT5-2.2.1-6]: one UNSUBACK with the
// packet id and a reason code per filter, in order: 0x00 for a deleted
// subscription, 0x11 (No subscription existed) otherwise; deleted ones stop
// receiving.
#[test]
fn unsuback_reason_codes() {
    let broker = Broker::start();
    let base = topic("v5-unsub");
    let (a, b, nope) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/nope"),
    );
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut c, &Props::new(), &[(&a, 1), (&b, 1)]), vec![1, 1]);
    let mut body = 0x0707u16.to_be_bytes().to_vec();
    body.push(0);
    for f in [&a, &nope, &b] {
        body.extend(string(f));
    }
    c.send(&packet(0xA2, &body));
    c.expect_bytes(&[0xB0, 0x06, 0x07, 0x07, 0x00, 0x00, 0x11, 0x00]);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&a, "a", 1);
    publisher.publish_qos(&b, "b", 1);
    c.ping();
    c.expect_nothing(QUIET);
}

// [MQTT5-3.3.4-2] [MQTT5-3.3.4-3] [MQTT5-3.3.4-4] [MQTT5-3.8.4-8]: overlapping
// subscriptions of one client: Tern sends one copy, at the highest granted
// QoS, carrying the Subscription Identifier of every matching subscription
// that has one.
#[test]
fn overlapping_subscriptions_carry_every_subscription_identifier() {
    let broker = Broker::start();
    let base = topic("v5-subid");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(&mut c, &sub_id(1), &[(&format!("{base}/#"), 0)]),
        vec![0]
    );
    assert_eq!(
        sub5(&mut c, &sub_id(268_435_455), &[(&format!("{base}/+/y"), 1)]),
        vec![1]
    );
    assert_eq!(
        sub5(&mut c, &Props::new(), &[(&format!("{base}/x/y"), 2)]),
        vec![2]
    );
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&format!("{base}/x/y"), "three", 2);
    let m = recv5(&mut c);
    assert_eq!((m.payload.as_slice(), m.qos), (&b"three"[..], 2), "{m:?}");
    let mut ids = m.sub_ids();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 268_435_455], "{m:?}");
    c.ping();
    c.expect_nothing(QUIET);
    // Only the subscription with id 1 matches: one id, at its QoS (0).
    publisher.publish_qos(&format!("{base}/z"), "one", 2);
    let m = recv5(&mut c);
    assert_eq!((m.sub_ids(), m.qos), (vec![1], 0), "{m:?}");
}

// [MQTT5-3.8.4-3]: subscribing again to an identical filter replaces the
// subscription: its new Subscription Identifier and QoS apply, and a
// subscription without an identifier drops the old one.
#[test]
fn resubscribing_replaces_the_subscription_identifier() {
    let broker = Broker::start();
    let t = topic("v5-resub");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    let mut publisher = Client::v311(broker.addr);
    for (props, qos, want) in [
        (sub_id(5), 0, vec![5]),
        (sub_id(6), 1, vec![6]),
        (Props::new(), 1, vec![]),
    ] {
        assert_eq!(sub5(&mut c, &props, &[(&t, qos)]), vec![qos]);
        publisher.publish_qos(&t, "m", 1);
        let m = recv5(&mut c);
        assert_eq!((m.sub_ids(), m.qos), (want, qos), "{m:?}");
    }
}

// [MQTT5-4.13.1-1] 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol
// Error: DISCONNECT 0x82 (or 0x81), close, no SUBACK.
#[test]
fn subscription_identifier_zero_is_a_protocol_error() {
    let broker = Broker::start();
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    c.send(&subscribe5(1, &sub_id(0), &[(&topic("v5-subid0"), 0)]));
    let before = c.expect_closed(WAIT);
    let codes: Vec<u8> = before.iter().map(disconnect_code).collect();
    assert!(codes == [0x82] || codes == [0x81], "{before:?}");
}

// [MQTT5-3.8.3-3]: No Local: the subscriber's own messages are not sent back
// to it; other clients' messages are.
#[test]
fn no_local_skips_the_publishers_own_messages() {
    let broker = Broker::start();
    let t = topic("v5-nolocal");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 1 | NO_LOCAL)]), vec![1]);
    c.send(&publish5(&t, 1, 1, false, &Props::new(), b"mine"));
    assert_eq!(ack5(&c.read()), (1, 0), "PUBACK");
    let mut other = Client::v311(broker.addr);
    other.publish_qos(&t, "theirs", 1);
    assert_eq!(recv5(&mut c).payload, b"theirs");
    c.ping();
    c.expect_nothing(QUIET);
    // Without No Local the own message comes back.
    let (mut d, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut d, &Props::new(), &[(&t, 1)]), vec![1]);
    d.send(&publish5(&t, 0, 0, false, &Props::new(), b"echo"));
    assert_eq!(recv5(&mut d).payload, b"echo");
}

// [MQTT5-3.3.1-12] [MQTT5-3.3.1-13] [MQTT5-3.3.1-5] [MQTT5-3.3.1-9]: Retain As
// Published 0 clears RETAIN on forwarded messages, 1 keeps it as published;
// retained messages sent because of a subscription always have RETAIN 1.
#[test]
fn retain_as_published() {
    let broker = Broker::start();
    let t = topic("v5-rap");
    let (mut plain, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut plain, &Props::new(), &[(&t, 0)]), vec![0]);
    let (mut rap, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(&mut rap, &Props::new(), &[(&t, RETAIN_AS_PUBLISHED)]),
        vec![0]
    );
    let (mut publisher, _) = open_ok(broker.addr, &Props::new());
    publisher.send(&publish5(&t, 0, 0, true, &Props::new(), b"retained"));
    publisher.send(&publish5(&t, 0, 0, false, &Props::new(), b"live"));
    for (c, first_retain) in [(&mut plain, false), (&mut rap, true)] {
        let m = recv5(c);
        assert_eq!(
            (m.payload.as_slice(), m.retain),
            (&b"retained"[..], first_retain),
            "{m:?}"
        );
        let m = recv5(c);
        assert_eq!(
            (m.payload.as_slice(), m.retain),
            (&b"live"[..], false),
            "{m:?}"
        );
    }
    let (mut late, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut late, &Props::new(), &[(&t, 0)]), vec![0]);
    let m = recv5(&mut late);
    assert_eq!(
        (m.payload.as_slice(), m.retain),
        (&b"retained"[..], true),
        "{m:?}"
    );
    clear_retained(broker.addr, &t);
}

// [MQTT5-3.3.1-9] [MQTT5-3.3.1-10] [MQTT5-3.3.1-11] [MQTT5-3.8.4-4]: Retain
// Handling 0 sends the retained message on every SUBSCRIBE (also when it
// replaces a subscription), 1 only when the subscription is new, 2 never.
#[test]
fn retain_handling() {
    let broker = Broker::start();
    let t = topic("v5-rh");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "kept").qos(1, 1).retain(true));
    for (options, first, again) in [
        (0u8, true, true),
        (RH_NEW_ONLY, true, false),
        (RH_NEVER, false, false),
    ] {
        let (mut c, _) = open_ok(broker.addr, &Props::new());
        for expected in [first, again] {
            assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 1 | options)]), vec![1]);
            if expected {
                let m = recv5(&mut c);
                assert_eq!(
                    (m.payload.as_slice(), m.retain),
                    (&b"kept"[..], true),
                    "RH {options:#x}"
                );
            }
            c.ping();
            c.expect_nothing(QUIET);
        }
        // Live messages flow whatever the Retain Handling.
        publisher.publish_qos(&t, "live", 1);
        assert_eq!(recv5(&mut c).payload, b"live", "RH {options:#x}");
    }
    clear_retained(broker.addr, &t);
}

// [MQTT5-3.3.1-5] [MQTT5-3.3.1-6] [MQTT5-3.3.1-7] [MQTT5-3.3.1-8]: a v5 RETAIN
// PUBLISH replaces the retained message, a RETAIN 0 one leaves it alone, an
// empty retained payload deletes it (and is still forwarded).
#[test]
fn retained_messages_from_a_v5_publisher() {
    let broker = Broker::start();
    let t = topic("v5-retained");
    let (mut p, _) = open_ok(broker.addr, &Props::new());
    let late = |want: Option<&[u8]>| {
        let (mut c, _) = open_ok(broker.addr, &Props::new());
        assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 0)]), vec![0]);
        match want {
            Some(payload) => assert_eq!(recv5(&mut c).payload, payload),
            None => {
                c.ping();
                c.expect_nothing(QUIET);
            }
        }
    };
    for (retain, payload) in [
        (true, &b"one"[..]),
        (true, b"two"),
        (false, b"not retained"),
    ] {
        p.send(&publish5(&t, 1, 1, retain, &Props::new(), payload));
        p.read();
    }
    late(Some(b"two"));
    let (mut live, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut live, &Props::new(), &[(&t, RH_NEVER)]), vec![0]);
    p.send(&publish5(&t, 1, 2, true, &Props::new(), b""));
    p.read();
    assert_eq!(
        recv5(&mut live).payload,
        b"",
        "[MQTT5-3.3.1-6] still forwarded"
    );
    late(None);
}

// [MQTT5-3.3.2-15] [MQTT5-3.3.2-16] 4.10: request/response: the responder
// reads Response Topic and Correlation Data from the request and publishes
// its answer to that topic with the same Correlation Data; the requester
// matches it.
#[test]
fn request_response_round_trip() {
    let broker = Broker::start();
    let requests = topic("v5-requests");
    let replies = format!("{}/replies", topic("v5-requester"));
    let (mut responder, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(&mut responder, &Props::new(), &[(&requests, 1)]),
        vec![1]
    );
    let (mut requester, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(&mut requester, &Props::new(), &[(&replies, 1)]),
        vec![1]
    );
    for (i, correlation) in [&b"\x00req-1"[..], b"req-2\xFF"].into_iter().enumerate() {
        let props = Props::new()
            .string(RESPONSE_TOPIC, &replies)
            .binary(CORRELATION_DATA, correlation);
        requester.send(&publish5(&requests, 1, i as u16 + 1, false, &props, b"2+2"));
        assert_eq!(
            ack5(&requester.read()),
            (i as u16 + 1, 0),
            "PUBACK of the request"
        );
        let request = recv5(&mut responder);
        let Some(Value::Str(reply_to)) = request.prop(RESPONSE_TOPIC) else {
            panic!("no Response Topic: {request:?}");
        };
        let Some(Value::Bin(data)) = request.prop(CORRELATION_DATA) else {
            panic!("no Correlation Data: {request:?}");
        };
        assert_eq!(
            (reply_to.as_str(), data.as_slice()),
            (replies.as_str(), correlation)
        );
        let answer = Props::new().binary(CORRELATION_DATA, &data);
        responder.send(&publish5(&reply_to, 1, i as u16 + 1, false, &answer, b"4"));
        assert_eq!(
            ack5(&responder.read()),
            (i as u16 + 1, 0),
            "PUBACK of the reply"
        );
        let reply = recv5(&mut requester);
        assert_eq!(reply.payload, b"4");
        assert_eq!(
            reply.prop(CORRELATION_DATA),
            Some(Value::Bin(correlation.to_vec()))
        );
    }
}

// [MQTT5-4.7.2-1] [MQTT5-4.7.3-4]: filters starting with a wildcard do not
// match topics starting with `$`; a filter naming the `$` level does; no
// normalisation of case.
#[test]
fn wildcards_do_not_match_dollar_topics() {
    let broker = Broker::start();
    let unique = topic("v5-dollar").replace('/', "-");
    let (mut wild, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(&mut wild, &Props::new(), &[(&format!("+/{unique}"), 0)]),
        vec![0]
    );
    let (mut named, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(
        sub5(
            &mut named,
            &Props::new(),
            &[(&format!("$tern/{unique}"), 0)]
        ),
        vec![0]
    );
    let (mut p, _) = open_ok(broker.addr, &Props::new());
    p.send(&publish5(
        &format!("$tern/{unique}"),
        0,
        0,
        false,
        &Props::new(),
        b"dollar",
    ));
    p.send(&publish5(
        &format!("$TERN/{unique}"),
        0,
        0,
        false,
        &Props::new(),
        b"case",
    ));
    p.send(&publish5(
        &format!("x/{unique}"),
        0,
        0,
        false,
        &Props::new(),
        b"plain",
    ));
    assert_eq!(recv5(&mut named).payload, b"dollar");
    assert_eq!(recv5(&mut wild).payload, b"plain");
    named.expect_nothing(QUIET);
    wild.expect_nothing(QUIET);
}

// [MQTT5-3.8.1-1] [MQTT5-3.8.3-1] [MQTT5-3.8.3-2] [MQTT5-3.8.3-5] [MQTT5-3.10.1-1]
// [MQTT5-3.10.3-1] [MQTT5-3.10.3-2] [MQTT5-4.7.1-1] [MQTT5-4.7.1-2] [MQTT5-4.7.3-1]
// [MQTT5-4.7.3-2] [MQTT5-4.13.1-1] [MQTT5-1.5.4-2]: malformed SUBSCRIBE and
// UNSUBSCRIBE packets get DISCONNECT 0x81 (0x82 where the spec calls it a
// Protocol Error: QoS 3, Retain Handling 3; 0x8F may name an invalid filter)
// and the close, without SUBACK / UNSUBACK.
#[test]
fn bad_subscribe_and_unsubscribe_get_disconnect() {
    let broker = Broker::start();
    let sub = |filter: &[u8], options: u8| {
        let mut body = vec![0, 1, 0];
        body.extend(binary(filter));
        body.push(options);
        packet(0x82, &body)
    };
    let unsub = |first: u8, filter: Option<&[u8]>| {
        let mut body = vec![0, 1, 0];
        if let Some(f) = filter {
            body.extend(binary(f));
        }
        packet(first, &body)
    };
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "SUBSCRIBE flags 0000",
            {
                let mut b = sub(b"a", 0);
                b[0] = 0x80;
                b
            },
            &[0x81],
        ),
        ("reserved option bits", sub(b"a", 0xC0), &[0x81]),
        ("Retain Handling 3", sub(b"a", 0x30), &[0x82]),
        ("QoS 3", sub(b"a", 0x03), &[0x82]),
        ("no filter", packet(0x82, &[0, 1, 0]), &[0x81, 0x82]),
        ("filter not UTF-8", sub(b"\xFF", 0), &[0x81]),
        ("filter with U+0000", sub(b"a\x00", 0), &[0x81, 0x8F]),
        ("empty filter", sub(b"", 0), &[0x81, 0x8F]),
        ("# not last", sub(b"a/#/b", 0), &[0x81, 0x8F]),
        ("+ inside a level", sub(b"a/b+", 0), &[0x81, 0x8F]),
        ("UNSUBSCRIBE flags 0000", unsub(0xA0, Some(b"a")), &[0x81]),
        (
            "UNSUBSCRIBE without filters",
            unsub(0xA2, None),
            &[0x81, 0x82],
        ),
        (
            "UNSUBSCRIBE filter not UTF-8",
            unsub(0xA2, Some(b"\xC3")),
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
                let sent_ack = before
                    .iter()
                    .any(|p| p.kind() == SUBACK || p.kind() == UNSUBACK);
                if sent_ack || got.len() != 1 || !codes.contains(&got[0]) {
                    failed.push(format!(
                        "{what}: sent {before:?}, want a DISCONNECT with one of {codes:02X?}"
                    ));
                }
            }
            Err(e) => failed.push(format!("{what}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

// [MQTT5-3.10.4-3] [MQTT5-3.10.4-2]: after UNSUBSCRIBE the broker completes
// the QoS 2 delivery it had started (PUBREC → PUBREL) and sends nothing new.
#[test]
fn unsubscribe_completes_deliveries_already_started() {
    let broker = Broker::start();
    let t = topic("v5-unsub-inflight");
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 2)]), vec![2]);
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "started", 2);
    let m = Publish5::parse(&c.read());
    let pid = m.pid.expect("QoS 2");
    c.unsubscribe(&[&t]);
    publisher.publish_qos(&t, "after", 2);
    c.send(&ack(PUBREC, pid));
    c.expect_bytes(&ack(PUBREL, pid));
    c.send(&ack(PUBCOMP, pid));
    c.ping();
    c.expect_nothing(QUIET);
}
