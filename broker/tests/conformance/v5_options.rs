//! MQTT 5.0 options a server announces in CONNACK and applies to its own
//! packets: Maximum QoS, Retain Available, Maximum Packet Size in both
//! directions, outbound Topic Aliases, Response Information, Request
//! Problem Information, payload format validation and server redirection.
//! Property bytes are built and parsed here by hand (spec table 2-4).

use crate::common::*;

/// A will: topic, payload, QoS, retain, will properties.
type WillSpec<'a> = (&'a str, &'a [u8], u8, bool, &'a [u8]);

/// A v5 CONNECT (Clean Start, keep-alive 60) with `props` as its properties
/// and an optional will.
fn connect_v5(client_id: &str, props: &[u8], will: Option<WillSpec<'_>>) -> Vec<u8> {
    let mut flags = 0x02;
    if let Some((_, _, qos, retain, _)) = will {
        flags |= 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
    }
    let mut body = string("MQTT");
    body.extend([5, flags, 0, 60]);
    body.extend(remaining_length(props.len()));
    body.extend(props);
    body.extend(string(client_id));
    if let Some((topic, payload, _, _, will_props)) = will {
        body.extend(remaining_length(will_props.len()));
        body.extend(will_props);
        body.extend(string(topic));
        body.extend(binary(payload));
    }
    packet(CONNECT << 4, &body)
}

/// Opens a v5 connection and returns it with its CONNACK.
fn open(broker: &Broker, client_id: &str, props: &[u8]) -> (Client, RawPacket) {
    let mut c = Client::tcp(broker.addr);
    c.version = V5;
    c.send(&connect_v5(client_id, props, None));
    let ack = c.read();
    assert_eq!(ack.kind(), CONNACK, "{ack:?}");
    (c, ack)
}

/// A v5 PUBLISH with properties.
fn publish_v5(
    topic: &str,
    qos: u8,
    pid: u16,
    retain: bool,
    props: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend(pid.to_be_bytes());
    }
    body.extend(remaining_length(props.len()));
    body.extend(props);
    body.extend(payload);
    packet((PUBLISH << 4) | (qos << 1) | u8::from(retain), &body)
}

/// One property: identifier and value bytes (strings with their length prefix).
type Prop = (u8, Vec<u8>);

/// Parses the property list that starts at `at` in `body` (length first).
fn props_at(body: &[u8], at: usize) -> Vec<Prop> {
    if at >= body.len() {
        return Vec::new();
    }
    let (len, used) = read_varint(&body[at..]).expect("property length");
    let mut p = &body[at + used..at + used + len];
    let mut out = Vec::new();
    while let Some((&id, rest)) = p.split_first() {
        let n = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0B => read_varint(rest).expect("varint property").1,
            0x26 => {
                let k = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                k + 2 + usize::from(u16::from_be_bytes([rest[k], rest[k + 1]]))
            }
            _ => 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]])),
        };
        out.push((id, rest[..n].to_vec()));
        p = &rest[n..];
    }
    out
}

fn prop(props: &[Prop], id: u8) -> Option<Vec<u8>> {
    props.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone())
}

/// A string property's text (its 2-byte length stripped).
fn text(v: &[u8]) -> String {
    String::from_utf8(v[2..].to_vec()).expect("UTF-8 property")
}

/// Properties of a CONNACK.
fn connack_props(ack: &RawPacket) -> Vec<Prop> {
    props_at(&ack.body, 2)
}

/// A PUBLISH from the broker as (topic, packet id, properties, payload).
fn parse_publish(p: &RawPacket) -> (String, Option<u16>, Vec<Prop>, Vec<u8>) {
    assert_eq!(p.kind(), PUBLISH, "{p:?}");
    let b = &p.body;
    let tlen = usize::from(u16::from_be_bytes([b[0], b[1]]));
    let topic = String::from_utf8(b[2..2 + tlen].to_vec()).unwrap();
    let mut at = 2 + tlen;
    let pid = ((p.header >> 1) & 3 > 0).then(|| {
        at += 2;
        u16::from_be_bytes([b[at - 2], b[at - 1]])
    });
    let (len, used) = read_varint(&b[at..]).unwrap();
    let props = props_at(b, at);
    (topic, pid, props, b[at + used + len..].to_vec())
}

fn subscribe_v5(c: &mut Client, filter: &str, qos: u8) {
    c.send(&subscribe(V5, 1, &[(filter, qos)]));
    let ack = c.read_until("SUBACK", |p| p.kind() == SUBACK);
    assert!(ack.suback_codes(V5)[0] < 0x80, "{ack:?}");
}

/// The first packet of the closing connection, which must be a DISCONNECT
/// with `code`; returns its properties.
fn expect_disconnect(c: &mut Client, code: u8) -> Vec<Prop> {
    let packets = c.expect_closed(WAIT);
    let d = packets
        .iter()
        .find(|p| p.kind() == DISCONNECT)
        .unwrap_or_else(|| panic!("no DISCONNECT before close: {packets:?}"));
    assert_eq!(d.body[0], code, "{d:?}");
    props_at(&d.body, 1)
}

// [MQTT5-3.2.2-9] [MQTT5-3.2.2-10] [MQTT5-3.2.2-11] [MQTT5-3.2.2-14]
// [MQTT5-3.2.2-15]: CONNACK announces Maximum QoS, Retain Available 0 and
// the Maximum Packet Size, and the broker enforces each: SUBSCRIBE at QoS 2
// is accepted and granted 1; PUBLISH at QoS 2 is DISCONNECT 0x9B, a
// retained PUBLISH 0x9A.
#[test]
fn connack_announces_the_limits_the_broker_enforces() {
    let Some(broker) = Broker::spawn_only(&[
        "--max-qos",
        "1",
        "--retain-available=false",
        "--max-packet-size",
        "4096",
    ]) else {
        return;
    };
    let (mut c, ack) = open(&broker, "limits-announced", &[]);
    let p = connack_props(&ack);
    assert_eq!(prop(&p, 0x24), Some(vec![1]), "Maximum QoS: {p:?}");
    assert_eq!(prop(&p, 0x25), Some(vec![0]), "Retain Available: {p:?}");
    assert_eq!(
        prop(&p, 0x27),
        Some(4096u32.to_be_bytes().to_vec()),
        "{p:?}"
    );
    let t = topic("maxqos");
    c.send(&subscribe(V5, 3, &[(&t, 2)]));
    let sub = c.read_until("SUBACK", |p| p.kind() == SUBACK);
    assert_eq!(sub.suback_codes(V5), vec![1], "granted at most Maximum QoS");
    c.send(&publish_v5(&t, 1, 1, false, &[], b"ok"));
    assert_eq!(c.read_until("PUBACK", |p| p.kind() == PUBACK).pid(), 1);
    let m = c.read_until("PUBLISH", |p| p.kind() == PUBLISH);
    assert_eq!((m.header >> 1) & 3, 1);
    c.send(&publish_v5(&t, 2, 2, false, &[], b"too high"));
    let d = expect_disconnect(&mut c, 0x9B);
    assert!(text(&prop(&d, 0x1F).expect("reason string")).contains("MQTT5-3.2.2-11"));

    let (mut r, _) = open(&broker, "limits-retain", &[]);
    r.send(&publish_v5(&t, 0, 0, true, &[], b"keep"));
    expect_disconnect(&mut r, 0x9A);
}

// [MQTT5-3.2.2-12] [MQTT5-3.2.2-13]: a will above Maximum QoS, or a
// retained will without retain support, refuses the connection.
#[test]
fn a_will_the_broker_cannot_honour_refuses_the_connect() {
    let Some(broker) = Broker::spawn_only(&["--max-qos", "0", "--retain-available=false"]) else {
        return;
    };
    for (qos, retain, code) in [(1, false, 0x9B), (0, true, 0x9A)] {
        let mut c = Client::tcp(broker.addr);
        c.version = V5;
        c.send(&connect_v5(
            "bad-will",
            &[],
            Some(("w", b"x", qos, retain, &[])),
        ));
        let ack = c.read();
        assert_eq!((ack.kind(), ack.connack_code()), (CONNACK, code), "{ack:?}");
        assert!(!ack.session_present());
        c.expect_closed(WAIT);
    }
    let p = connack_props(&open(&broker, "ok-will", &[]).1);
    assert_eq!(prop(&p, 0x24), Some(vec![0]));
}

// [MQTT5-3.1.2-24] [MQTT5-3.1.2-25]: a message bigger than the client's
// Maximum Packet Size is not sent, and the session carries on as if it had
// been: with Receive Maximum 1 the message after it is still delivered
// once the window frees, and nothing stalls.
#[test]
fn messages_too_large_for_a_subscriber_are_skipped_not_truncated() {
    let broker = Broker::start();
    let t = topic("too-large");
    // Maximum Packet Size 64, Receive Maximum 1.
    let mut props = vec![0x27];
    props.extend(64u32.to_be_bytes());
    props.extend([0x21, 0, 1]);
    let (mut sub, _) = open(&broker, "small-packets", &props);
    subscribe_v5(&mut sub, &t, 1);
    let (mut other, _) = open(&broker, "big-packets", &[]);
    subscribe_v5(&mut other, &t, 1);
    let (mut publisher, _) = open(&broker, "too-large-pub", &[]);
    let big = vec![b'x'; 100];
    for (i, payload) in [&b"one"[..], &big, b"three"].into_iter().enumerate() {
        let pid = i as u16 + 1;
        publisher.send(&publish_v5(&t, 1, pid, false, &[], payload));
        assert_eq!(
            publisher.read_until("PUBACK", |p| p.kind() == PUBACK).pid(),
            pid
        );
    }
    let first = sub.read();
    let (_, pid, _, payload) = parse_publish(&first);
    assert_eq!(payload, b"one");
    sub.expect_nothing(QUIET);
    sub.send(&ack(PUBACK, pid.unwrap()));
    let next = sub.read();
    assert!(next.bytes().len() <= 64, "{next:?}");
    let (_, pid, _, payload) = parse_publish(&next);
    assert_eq!(
        payload, b"three",
        "the big one was skipped, the window freed"
    );
    sub.send(&ack(PUBACK, pid.unwrap()));
    sub.expect_nothing(QUIET);
    // A subscriber without the limit got all three, the big one whole.
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let p = other.read();
            let (_, pid, _, payload) = parse_publish(&p);
            other.send(&ack(PUBACK, pid.unwrap()));
            payload
        })
        .collect();
    assert_eq!(got[1], big);
}

// [MQTT5-3.1.2-26] [MQTT5-3.1.2-27] [MQTT5-3.3.2-11] [MQTT5-3.3.2-8]: the
// broker assigns Topic Aliases up to the client's Topic Alias Maximum,
// sends a known topic as alias + empty topic name, reuses aliases when all
// are taken, and sends none to a client that allows none.
#[test]
fn outbound_topic_aliases_stay_within_the_client_maximum() {
    let broker = Broker::start();
    let base = topic("out-alias");
    let (mut sub, _) = open(&broker, "alias-sub", &[0x22, 0, 2]);
    subscribe_v5(&mut sub, &format!("{base}/#"), 0);
    let (mut plain, _) = open(&broker, "alias-none", &[]);
    subscribe_v5(&mut plain, &format!("{base}/#"), 0);
    let (mut publisher, _) = open(&broker, "alias-pub", &[]);
    let sent = ["a", "a", "b", "c", "a", "c"];
    for s in sent {
        publisher.send(&publish_v5(
            &format!("{base}/{s}"),
            0,
            0,
            false,
            &[],
            s.as_bytes(),
        ));
    }
    let mut map: std::collections::HashMap<u16, String> = Default::default();
    let mut omitted = 0;
    for s in sent {
        let (topic, _, props, payload) = parse_publish(&sub.read());
        assert_eq!(payload, s.as_bytes());
        let alias = prop(&props, 0x23).map(|v| u16::from_be_bytes([v[0], v[1]]));
        let alias = alias.expect("every PUBLISH carries an alias");
        assert!((1..=2).contains(&alias), "alias {alias} outside 1..=2");
        let resolved = if topic.is_empty() {
            omitted += 1;
            map.get(&alias)
                .cloned()
                .expect("an empty topic uses a known alias")
        } else {
            map.insert(alias, topic.clone());
            topic
        };
        assert_eq!(resolved, format!("{base}/{s}"));
    }
    assert!(omitted >= 1, "a repeated topic was sent as an alias");
    for s in sent {
        let (topic, _, props, _) = parse_publish(&plain.read());
        assert_eq!(topic, format!("{base}/{s}"));
        assert_eq!(
            prop(&props, 0x23),
            None,
            "no alias for a client allowing none"
        );
    }
}

// [MQTT5-3.3.2-7]: outbound aliases do not outlive the network connection:
// a resumed session starts with full topic names again.
#[test]
fn outbound_topic_aliases_end_with_the_connection() {
    let broker = Broker::start();
    let t = topic("alias-reconnect");
    let mut props = vec![0x22, 0, 4, 0x11];
    props.extend(60u32.to_be_bytes());
    let (mut sub, _) = open(&broker, "alias-again", &props);
    subscribe_v5(&mut sub, &t, 0);
    let (mut publisher, _) = open(&broker, "alias-again-pub", &[]);
    publisher.send(&publish_v5(&t, 0, 0, false, &[], b"1"));
    publisher.send(&publish_v5(&t, 0, 0, false, &[], b"2"));
    assert_eq!(parse_publish(&sub.read()).0, t);
    assert_eq!(parse_publish(&sub.read()).0, "", "second one by alias");
    sub.disconnect();
    let mut again = Client::tcp(broker.addr);
    again.version = V5;
    let mut bytes = connect_v5("alias-again", &props, None);
    bytes[9] &= !0x02; // Clean Start 0: resume the session
    again.send(&bytes);
    assert!(again.read().session_present());
    publisher.send(&publish_v5(&t, 0, 0, false, &[], b"3"));
    let (topic, _, props, _) = parse_publish(&again.read());
    assert_eq!(topic, t, "a new connection has no aliases yet");
    assert!(prop(&props, 0x23).is_some());
}

// [MQTT5-3.1.2-28]: Response Information only when the client asks for it.
#[test]
fn response_information_only_when_requested() {
    let Some(broker) = Broker::spawn_only(&["--response-information", "replies/"]) else {
        return;
    };
    let (_c, ack) = open(&broker, "asks-info", &[0x19, 1]);
    let info = prop(&connack_props(&ack), 0x1A).expect("Response Information");
    assert_eq!(text(&info), "replies/asks-info");
    for props in [&[][..], &[0x19, 0]] {
        let (_c, ack) = open(&broker, "no-info", props);
        assert_eq!(prop(&connack_props(&ack), 0x1A), None, "{props:?}");
    }
}

// [MQTT5-3.3.2-4] [MQTT5-3.4.2-1] [MQTT5-3.5.2-1] [MQTT5-3.1.2-29]: with
// validation on, a payload marked UTF-8 that is not is refused with 0x99
// (PUBACK, PUBREC, or DISCONNECT for QoS 0) and not delivered; the Reason
// String is left out when the client set Request Problem Information 0.
#[test]
fn invalid_utf8_payloads_are_refused_with_0x99() {
    let Some(broker) = Broker::spawn_only(&["--validate-payload-format"]) else {
        return;
    };
    let t = topic("pfi");
    let (mut sub, _) = open(&broker, "pfi-sub", &[]);
    subscribe_v5(&mut sub, &t, 2);
    let marked = [0x01, 1];
    let bad = [0xC3, 0x28];
    let (mut c, _) = open(&broker, "pfi-pub", &[]);
    c.send(&publish_v5(&t, 1, 7, false, &marked, &bad));
    let puback = c.read();
    assert_eq!(
        (puback.kind(), puback.pid(), puback.body[2]),
        (PUBACK, 7, 0x99)
    );
    assert!(
        prop(&props_at(&puback.body, 3), 0x1F).is_some(),
        "reason string"
    );
    c.send(&publish_v5(&t, 2, 8, false, &marked, &bad));
    let pubrec = c.read();
    assert_eq!(
        (pubrec.kind(), pubrec.pid(), pubrec.body[2]),
        (PUBREC, 8, 0x99)
    );
    c.send(&publish_v5(&t, 1, 9, false, &marked, "é".as_bytes()));
    assert_eq!(
        c.read().body.get(2).copied().unwrap_or(0),
        0,
        "valid UTF-8 accepted"
    );
    let (_, _, props, payload) = parse_publish(&sub.read());
    assert_eq!(payload, "é".as_bytes(), "only the valid one is delivered");
    assert_eq!(prop(&props, 0x01), Some(vec![1]));

    let (mut quiet, _) = open(&broker, "pfi-quiet", &[0x17, 0]);
    quiet.send(&publish_v5(&t, 1, 3, false, &marked, &bad));
    let puback = quiet.read();
    assert_eq!(puback.body[2], 0x99);
    assert_eq!(
        props_at(&puback.body, 3),
        vec![],
        "no Reason String when not requested"
    );
    quiet.send(&publish_v5(&t, 0, 0, false, &marked, &bad));
    let d = expect_disconnect(&mut quiet, 0x99);
    assert!(
        prop(&d, 0x1F).is_some(),
        "DISCONNECT may always carry a Reason String"
    );
    sub.expect_nothing(QUIET);
}

// [MQTT5-3.14.2-3]: a DISCONNECT's Reason String is left out when it would
// exceed the client's Maximum Packet Size.
#[test]
fn disconnect_reason_string_respects_the_client_maximum_packet_size() {
    let broker = Broker::start();
    let mut props = vec![0x27];
    props.extend(16u32.to_be_bytes());
    let (mut c, _) = open(&broker, "tiny-packets", &props);
    // A PUBLISH with a Subscription Identifier is a protocol error.
    c.send(&publish_v5(&topic("tiny"), 0, 0, false, &[0x0B, 1], b"x"));
    let d = expect_disconnect(&mut c, 0x82);
    assert_eq!(prop(&d, 0x1F), None, "{d:?}");
}

// 4.11 Server redirection: with a Server Reference configured every v5
// client gets 0x9C (or 0x9D when moved) carrying it, and 3.1.1 clients
// return code 3; nobody is served.
#[test]
fn server_redirection_sends_clients_elsewhere() {
    for (args, code) in [
        (&["--server-reference", "mqtt2.example:1883"][..], 0x9C),
        (
            &["--server-reference", "mqtt2.example:1883", "--server-moved"][..],
            0x9D,
        ),
    ] {
        let Some(broker) = Broker::spawn_only(args) else {
            return;
        };
        let mut c = Client::tcp(broker.addr);
        c.send(&connect_v5("redirected", &[], None));
        let ack = c.read();
        assert_eq!(ack.connack_code(), code, "{ack:?}");
        let reference = prop(&connack_props(&ack), 0x1C).expect("Server Reference");
        assert_eq!(text(&reference), "mqtt2.example:1883");
        c.expect_closed(WAIT);
        let mut v3 = Client::tcp(broker.addr);
        v3.send(&Connect::v311("redirected-v3").bytes());
        v3.expect_bytes(&connack_v3(false, 3));
    }
}

// [MQTT5-3.4.2-1] [MQTT5-3.5.2-1]: a v5 PUBACK/PUBREC for a message no
// subscriber matched says 0x10 (No matching subscribers); one that was
// delivered says Success, and 3.1.1 acks never carry a code.
#[test]
fn acks_say_when_no_subscriber_matched() {
    let broker = Broker::start();
    let t = topic("nobody");
    let (mut c, _) = open(&broker, "nobody-pub", &[]);
    c.send(&publish_v5(&t, 1, 1, false, &[], b"x"));
    c.expect_bytes(&[0x40, 0x03, 0x00, 0x01, 0x10]);
    c.send(&publish_v5(&t, 2, 2, false, &[], b"x"));
    c.expect_bytes(&[0x50, 0x03, 0x00, 0x02, 0x10]);
    c.send(&[0x62, 0x02, 0x00, 0x02]);
    c.expect_bytes(&ack(PUBCOMP, 2));
    let (mut sub, _) = open(&broker, "nobody-sub", &[]);
    subscribe_v5(&mut sub, &t, 1);
    c.send(&publish_v5(&t, 1, 3, false, &[], b"x"));
    c.expect_bytes(&ack(PUBACK, 3));
    let mut v3 = Client::v311(broker.addr);
    v3.send(
        &Message::new(&topic("nobody-v3"), "x")
            .qos(1, 4)
            .encode(V311),
    );
    v3.expect_bytes(&ack(PUBACK, 4));
}

// [MQTT5-3.4.2-2] [MQTT5-3.5.2-2]: the Reason String of a PUBACK/PUBREC is
// left out when it would exceed the client's Maximum Packet Size.
#[test]
fn ack_reason_string_respects_the_client_maximum_packet_size() {
    let Some(broker) = Broker::spawn_only(&["--validate-payload-format"]) else {
        return;
    };
    let t = topic("pfi-small");
    let mut small = vec![0x27];
    small.extend(32u32.to_be_bytes());
    let (mut c, _) = open(&broker, "pfi-small", &small);
    for (qos, kind) in [(1, PUBACK), (2, PUBREC)] {
        c.send(&publish_v5(&t, qos, 5, false, &[0x01, 1], &[0xFF]));
        let a = c.read();
        assert_eq!((a.kind(), a.body[2]), (kind, 0x99), "{a:?}");
        assert!(a.bytes().len() <= 32, "{a:?}");
        assert_eq!(props_at(&a.body, 3), vec![], "no Reason String: {a:?}");
    }
    // The same client with room for it gets one.
    let (mut roomy, _) = open(&broker, "pfi-roomy", &[]);
    roomy.send(&publish_v5(&t, 1, 6, false, &[0x01, 1], &[0xFF]));
    let a = roomy.read();
    assert!(prop(&props_at(&a.body, 3), 0x1F).is_some(), "{a:?}");
}

/// A v5 SUBSCRIBE of one filter with a Subscription Identifier.
fn subscribe_with_id(pid: u16, filter: &str, options: u8, id: u8) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend([2, 0x0B, id]);
    body.extend(string(filter));
    body.push(options);
    packet((SUBSCRIBE << 4) | 2, &body)
}

// [MQTT5-3.3.4-5] [MQTT5-3.3.4-3]: a client with a shared and an ordinary
// subscription matching one message gets two PUBLISH packets, each with the
// identifier of its own subscription only.
#[test]
fn separate_copies_carry_their_own_subscription_identifier() {
    let broker = Broker::start();
    let t = topic("two-copies");
    let (mut c, _) = open(&broker, "two-copies", &[]);
    c.send(&subscribe_with_id(1, &format!("$share/g/{t}"), 1, 7));
    assert_eq!(c.read_until("SUBACK", |p| p.kind() == SUBACK).pid(), 1);
    c.send(&subscribe_with_id(2, &t, 1, 9));
    assert_eq!(c.read_until("SUBACK", |p| p.kind() == SUBACK).pid(), 2);
    let (mut publisher, _) = open(&broker, "two-copies-pub", &[]);
    publisher.send(&publish_v5(&t, 0, 0, false, &[], b"both"));
    let mut ids: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let (_, _, props, payload) = parse_publish(&c.read());
            assert_eq!(payload, b"both");
            props
                .iter()
                .filter(|(id, _)| *id == 0x0B)
                .map(|(_, v)| v[0])
                .collect()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec![vec![7], vec![9]]);
    c.expect_nothing(QUIET);
}

// [MQTT5-3.15.1-1]: AUTH with reserved flag bits set is malformed.
#[test]
fn auth_with_reserved_flags_is_malformed() {
    let broker = Broker::start();
    let (mut c, _) = open(&broker, "auth-flags", &[]);
    c.send(&[0xF1, 0x00]);
    expect_disconnect(&mut c, 0x81);
}

// [MQTT5-4.8.2-6]: a shared-subscription member that answers a PUBLISH
// with PUBACK 0x80 has it discarded: when that member then leaves, the
// message is not handed to the other member.
#[test]
fn a_refused_shared_message_is_not_sent_to_another_member() {
    let broker = Broker::start();
    let t = topic("refused-share");
    let group = format!("$share/r/{t}");
    let (mut a, _) = open(&broker, "share-a", &[]);
    subscribe_v5(&mut a, &group, 1);
    let (mut b, _) = open(&broker, "share-b", &[]);
    subscribe_v5(&mut b, &group, 1);
    let (mut publisher, _) = open(&broker, "share-pub", &[]);
    publisher.send(&publish_v5(&t, 1, 1, false, &[], b"refuse me"));
    let (mut taker, mut other, first) = match a.try_read(std::time::Duration::from_secs(1)) {
        Ok(p) => (a, b, p),
        Err(_) => {
            let p = b.read();
            (b, a, p)
        }
    };
    let (_, pid, _, payload) = parse_publish(&first);
    assert_eq!(payload, b"refuse me");
    let mut refusal = pid.unwrap().to_be_bytes().to_vec();
    refusal.push(0x80);
    taker.send(&packet(PUBACK << 4, &refusal));
    taker.ping();
    taker.disconnect();
    other.expect_nothing(QUIET);
}
