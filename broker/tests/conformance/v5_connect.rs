//! MQTT 5.0 CONNECT, CONNACK, DISCONNECT and the will (MQTT 5.0 sections
//! 3.1, 3.2, 3.14, 4.13), byte-level. Tags are `[MQTT5-x.y.z-n]`.

use super::v5_wire::*;
use crate::common::*;
use std::time::{Duration, Instant};

/// A v5 CONNECT with raw `flags`, properties and payload (keep-alive 60).
fn connect_raw(flags: u8, props: &Props, payload: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.extend([V5, flags, 0, 60]);
    body.extend(props.encoded());
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// Ends a persistent session: Clean Start 1, no expiry.
fn drop_session(addr: std::net::SocketAddr, id: &str) {
    let (c, ack) = open(addr, &connect5(id, true, 60, &Props::new()));
    assert_eq!(ack.code, 0);
    c.disconnect();
}

// [MQTT5-3.1.4-5] [MQTT5-3.2.0-1] [MQTT5-3.2.0-2] [MQTT5-3.2.2-1] [MQTT5-3.2.2-2]
// [MQTT5-3.2.2-3] [MQTT5-3.2.2-22]: the CONNACK of an accepted v5 client: reason
// code 0, session present 0, and the capabilities Tern announces (Receive
// Maximum, Topic Alias Maximum, Retain / Wildcard / Subscription Identifier /
// Shared Subscription available, no Maximum QoS since QoS 2 is supported);
// no Server Keep Alive for a keep-alive within the cap, no assigned id for a
// client that named itself; exactly one CONNACK.
#[test]
fn connack_announces_the_capabilities() {
    let Some(broker) = Broker::spawn_only(&["--max-incoming-inflight", "7"]) else {
        return;
    };
    let (mut c, ack) = open(
        broker.addr,
        &connect5(&client_id(), true, 60, &Props::new()),
    );
    assert_eq!((ack.code, ack.session_present), (0, false), "{ack:?}");
    assert_eq!(ack.prop(RECEIVE_MAXIMUM), Some(Value::U16(7)), "{ack:?}");
    assert_eq!(
        ack.prop(TOPIC_ALIAS_MAXIMUM),
        Some(Value::U16(16)),
        "{ack:?}"
    );
    for (id, name) in [
        (RETAIN_AVAILABLE, "Retain Available"),
        (WILDCARD_SUB_AVAILABLE, "Wildcard Subscription Available"),
        (SUB_ID_AVAILABLE, "Subscription Identifiers Available"),
        (SHARED_SUB_AVAILABLE, "Shared Subscription Available"),
    ] {
        // Absent means available too; Tern says so explicitly.
        assert_eq!(ack.prop(id), Some(Value::Byte(1)), "{name}: {ack:?}");
    }
    assert_eq!(ack.prop(MAXIMUM_QOS), None, "QoS 2 is supported: {ack:?}");
    assert_eq!(ack.prop(SERVER_KEEP_ALIVE), None, "{ack:?}");
    assert_eq!(ack.prop(ASSIGNED_CLIENT_ID), None, "{ack:?}");
    c.ping();
    c.expect_nothing(QUIET);
}

// [MQTT5-3.1.3-6] [MQTT5-3.1.3-7] [MQTT5-3.2.2-16]: an empty client id gets a
// unique Assigned Client Identifier in CONNACK, and the session is the one of
// that id: reconnecting with it (Clean Start 0) finds the session.
#[test]
fn empty_client_id_gets_an_assigned_one() {
    let broker = Broker::start();
    let expiry = Props::new().u32(SESSION_EXPIRY, 60);
    let (a, ack_a) = open(broker.addr, &connect5("", false, 60, &expiry));
    let (b, ack_b) = open(broker.addr, &connect5("", true, 60, &Props::new()));
    assert_eq!((ack_a.code, ack_b.code), (0, 0));
    let Some(Value::Str(id_a)) = ack_a.prop(ASSIGNED_CLIENT_ID) else {
        panic!("no Assigned Client Identifier: {ack_a:?}");
    };
    let Some(Value::Str(id_b)) = ack_b.prop(ASSIGNED_CLIENT_ID) else {
        panic!("no Assigned Client Identifier: {ack_b:?}");
    };
    assert!(!id_a.is_empty());
    assert_ne!(id_a, id_b, "[MQTT5-3.2.2-16] assigned ids are unique");
    a.disconnect();
    b.disconnect();
    let (c, ack) = open(broker.addr, &connect5(&id_a, false, 60, &expiry));
    assert_eq!((ack.code, ack.session_present), (0, true), "{ack:?}");
    assert_eq!(ack.prop(ASSIGNED_CLIENT_ID), None);
    c.disconnect();
    drop_session(broker.addr, &id_a);
}

// [MQTT5-3.2.2-21] [MQTT5-3.2.2-22] [MQTT5-3.1.2-22] [MQTT5-3.14.2-1]: a client
// asking for more than `--max-keep-alive` (or for 0) is told Server Keep
// Alive = the cap, and the broker enforces it: silent for 1.5 × 2 s → DISCONNECT
// 0x8D (Keep Alive timeout) and close. Within the cap, the client's own value.
#[test]
fn server_keep_alive_caps_the_keep_alive() {
    let Some(broker) = Broker::spawn_only(&["--max-keep-alive", "2"]) else {
        return;
    };
    for asked in [60u16, 0] {
        let (_, ack) = open(
            broker.addr,
            &connect5(&client_id(), true, asked, &Props::new()),
        );
        assert_eq!(ack.prop(SERVER_KEEP_ALIVE), Some(Value::U16(2)), "{ack:?}");
    }
    let (mut c, ack) = open(
        broker.addr,
        &connect5(&client_id(), true, 600, &Props::new()),
    );
    assert_eq!(ack.prop(SERVER_KEEP_ALIVE), Some(Value::U16(2)));
    let start = Instant::now();
    expect_disconnect(&mut c, 0x8D, "keep-alive timeout");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed <= Duration::from_millis(4500),
        "closed after {elapsed:?}; 1.5 × the Server Keep Alive of 2 s is 3 s"
    );
    let (_, ack) = open(broker.addr, &connect5(&client_id(), true, 1, &Props::new()));
    assert_eq!(ack.prop(SERVER_KEEP_ALIVE), None, "within the cap: {ack:?}");
}

// [MQTT5-3.1.2-23] [MQTT5-3.1.2-4] [MQTT5-3.1.2-5] [MQTT5-3.1.4-4] [MQTT5-3.2.2-2]
// [MQTT5-4.1.0-1] [MQTT5-3.1.3-2]: Session Expiry Interval at CONNECT and DISCONNECT (3.14.2.2.2):
// a DISCONNECT may change a non-zero interval (a longer one keeps the session,
// 0 ends it), Clean Start 1 discards a stored session.
#[test]
fn session_expiry_at_connect_and_disconnect() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("v5-expiry-disconnect");
    let keep = Props::new().u32(SESSION_EXPIRY, 60);
    let mut publisher = Client::v311(broker.addr);

    // DISCONNECT raising the interval: the session stays, with its subscription.
    let (mut c, _) = open(broker.addr, &connect5(&id, true, 60, &keep));
    assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 1)]), vec![1]);
    c.send(&disconnect5(0, &Props::new().u32(SESSION_EXPIRY, 120)));
    c.expect_closed_silently(WAIT);
    publisher.publish_qos(&t, "kept", 1);
    let (mut c, ack) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert!(ack.session_present, "[MQTT5-3.1.2-5] {ack:?}");
    assert_eq!(recv5(&mut c).payload, b"kept");

    // DISCONNECT setting 0: the session ends with the connection.
    c.send(&disconnect5(0, &Props::new().u32(SESSION_EXPIRY, 0)));
    c.expect_closed_silently(WAIT);
    let (mut c, ack) = open(broker.addr, &connect5(&id, false, 60, &keep));
    assert!(
        !ack.session_present,
        "DISCONNECT set the expiry to 0: {ack:?}"
    );
    assert_eq!(sub5(&mut c, &Props::new(), &[(&t, 1)]), vec![1]);
    c.disconnect();

    // Clean Start 1 discards the stored session and its subscription.
    let (mut c, ack) = open(broker.addr, &connect5(&id, true, 60, &Props::new()));
    assert!(!ack.session_present, "[MQTT5-3.2.2-2] {ack:?}");
    publisher.publish_qos(&t, "gone", 1);
    c.ping();
    c.expect_nothing(QUIET);
    c.disconnect();
}

// [MQTT5-4.13.1-1] [MQTT5-3.14.2-1] 3.14.2.2.2: a non-zero Session Expiry
// Interval in DISCONNECT after 0 (absent) in CONNECT is a Protocol Error: the
// broker answers DISCONNECT 0x82 and closes.
#[test]
fn disconnect_cannot_set_an_expiry_after_zero() {
    let broker = Broker::start();
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    c.send(&disconnect5(0, &Props::new().u32(SESSION_EXPIRY, 30)));
    expect_disconnect(&mut c, 0x82, "expiry after 0");
}

// [MQTT5-3.1.4-6] [MQTT5-3.2.2-6] [MQTT5-3.2.2-7] [MQTT5-4.13.2-1] [MQTT5-3.14.0-1]:
// a refused CONNECT (Receive Maximum 0 is a Protocol Error; an Authentication
// Method nobody configured) is closed, at most after a CONNACK with a failure
// code and Session Present 0, never with a DISCONNECT; the PUBLISH sent right
// behind it is not processed.
#[test]
fn refused_connect_processes_nothing_after_it() {
    let broker = Broker::start();
    let t = topic("v5-refused");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&t, 0);
    for props in [
        Props::new().u16(RECEIVE_MAXIMUM, 0),
        Props::new().string(0x15, "TERN-TEST-NO-SUCH-METHOD"),
    ] {
        let mut bytes = connect5(&client_id(), true, 60, &props);
        bytes.extend(publish5(
            &t,
            0,
            0,
            false,
            &Props::new(),
            b"after the refusal",
        ));
        let mut c = Client::tcp(broker.addr);
        c.version = V5;
        c.send(&bytes);
        for p in c.expect_closed(WAIT) {
            let ack = ConnAck5::parse(&p);
            assert!(ack.code >= 0x80 && !ack.session_present, "{ack:?}");
        }
    }
    watcher.expect_nothing(QUIET);
}

// [MQTT5-3.1.0-2] [MQTT5-4.13.1-1] [MQTT5-3.14.2-2] [MQTT5-3.14.4-1] [MQTT5-3.14.4-2]:
// a second CONNECT → DISCONNECT 0x82 (no Session Expiry Interval in it), then
// nothing more but the close.
#[test]
fn second_connect_gets_disconnect_0x82() {
    let broker = Broker::start();
    let (mut c, _) = open_ok(broker.addr, &Props::new());
    c.send(&connect5(&client_id(), true, 60, &Props::new()));
    expect_disconnect(&mut c, 0x82, "[MQTT5-3.1.0-2]");
}

// [MQTT5-3.1.0-1] [MQTT5-3.14.0-1]: before CONNECT the version is unknown and
// nothing is accepted: a v5 SUBSCRIBE as the first packet is closed without
// any packet (no DISCONNECT before a successful CONNACK).
#[test]
fn v5_packet_before_connect_is_closed_silently() {
    let broker = Broker::start();
    let mut c = Client::tcp(broker.addr);
    c.send(&subscribe5(1, &Props::new(), &[("tern/x", 0)]));
    let before = c.expect_closed(WAIT);
    assert!(before.is_empty(), "{before:?}");
}

// [MQTT5-3.1.4-1] [MQTT5-3.1.4-2] [MQTT5-3.1.2-9] [MQTT5-3.1.2-11] [MQTT5-3.1.2-12]
// [MQTT5-3.1.2-13] [MQTT5-3.1.2-16] [MQTT5-3.1.2-17] [MQTT5-3.1.2-18] [MQTT5-3.1.2-19]
// [MQTT5-3.1.3-1] [MQTT5-3.1.3-3] [MQTT5-3.1.3-4] [MQTT5-3.1.3-11] [MQTT5-3.1.3-12]
// [MQTT5-1.5.4-1] [MQTT5-1.5.4-2] [MQTT5-1.5.5-1] [MQTT5-1.5.7-1] [MQTT5-2.1.3-1]
// [MQTT5-3.14.0-1]: malformed v5 CONNECTs are closed, at most after a CONNACK
// with a failure code, never with a DISCONNECT.
#[test]
fn malformed_v5_connects_are_closed() {
    let broker = Broker::start();
    let id = string(&client_id());
    let none = Props::new();
    let will = |topic: &[u8]| {
        let mut p = id.clone();
        p.push(0); // will properties
        p.extend(binary(topic));
        p.extend(binary(b"w"));
        p
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "will QoS 1 without will flag",
            connect_raw(0x0A, &none, &id),
        ),
        (
            "will retain without will flag",
            connect_raw(0x22, &none, &id),
        ),
        ("will QoS 3", connect_raw(0x1E, &none, &will(b"tern/w"))),
        (
            "will flag without will fields",
            connect_raw(0x06, &none, &id),
        ),
        (
            "user name flag without user name",
            connect_raw(0x82, &none, &id),
        ),
        (
            "password flag without password",
            connect_raw(0x42, &none, &id),
        ),
        (
            "user name without the flag",
            connect_raw(0x02, &none, &[id.clone(), string("u")].concat()),
        ),
        ("no client id", connect_raw(0x02, &none, &[])),
        (
            "client id not UTF-8",
            connect_raw(0x02, &none, &binary(b"\xC0\x80ab")),
        ),
        (
            "client id with a surrogate",
            connect_raw(0x02, &none, &binary(b"a\xED\xA0\x80")),
        ),
        (
            "client id with U+0000",
            connect_raw(0x02, &none, &binary(b"a\x00b")),
        ),
        (
            "will topic not UTF-8",
            connect_raw(0x06, &none, &will(b"\xFF\xFE")),
        ),
        (
            "will topic with a wildcard",
            connect_raw(0x06, &none, &will(b"tern/#")),
        ),
        (
            "user name not UTF-8",
            connect_raw(0x82, &none, &[id.clone(), binary(b"\xC3")].concat()),
        ),
        (
            "user property name not UTF-8",
            connect_raw(0x02, &Props(vec![0x26, 0, 1, 0xFF, 0, 1, b'v']), &id),
        ),
        (
            "property length not minimal",
            [
                vec![0x10, 0x12],
                string("MQTT"),
                vec![V5, 0x02, 0, 60, 0x80, 0x00],
                id.clone(),
            ]
            .concat(),
        ),
        (
            "unknown property 0x7F",
            connect_raw(0x02, &Props(vec![0x7F, 1]), &id),
        ),
        ("reserved flag", connect_raw(0x03, &none, &id)),
    ];
    let mut failed = Vec::new();
    for (what, bytes) in cases {
        let mut c = Client::tcp(broker.addr);
        c.version = V5;
        let _ = c.send_lossy(&bytes);
        match c.closed_within(WAIT) {
            Ok(before) => {
                let bad: Vec<_> = before
                    .iter()
                    .filter(|p| !(p.kind() == CONNACK && p.connack_code() >= 0x80))
                    .collect();
                if !bad.is_empty() {
                    failed.push(format!("{what}: sent {bad:?} before the close"));
                }
            }
            Err(e) => failed.push(format!("{what}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // Every will QoS 0..=2 is accepted [MQTT5-3.1.2-12].
    for qos in 0..=2u8 {
        let (c, ack) = open(
            broker.addr,
            &connect_raw(0x06 | (qos << 3), &none, &will(b"tern/w")),
        );
        assert_eq!(ack.code, 0, "will QoS {qos}: {ack:?}");
        c.disconnect();
    }
}

/// A clean v5 CONNECT with a will: `flags` adds Will QoS / Retain bits.
fn connect_with_will(will_topic: &str, will_props: &Props, flags: u8) -> Vec<u8> {
    let mut payload = string(&client_id());
    payload.extend(will_props.encoded());
    payload.extend(string(will_topic));
    payload.extend(binary(b"last words"));
    connect_raw(0x06 | flags, &Props::new(), &payload)
}

// [MQTT5-3.1.2-7] [MQTT5-3.1.2-8] [MQTT5-3.1.2-14] [MQTT5-3.1.3-10] [MQTT5-3.3.2-17]
// [MQTT5-3.3.2-20]: the will of a connection that ends without DISCONNECT is
// published (no Will Delay Interval), non-retained, with its properties and
// its user properties in order.
#[test]
fn will_is_published_with_its_properties_in_order() {
    let broker = Broker::start();
    let t = topic("v5-will");
    let (mut watcher, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut watcher, &Props::new(), &[(&t, 1)]), vec![1]);
    let props = Props::new()
        .string(CONTENT_TYPE, "text/plain")
        .user("z", "1")
        .user("a", "2")
        .user("z", "3");
    let (victim, ack) = open(broker.addr, &connect_with_will(&t, &props, 0x08));
    assert_eq!(ack.code, 0);
    victim.abort();
    let will = recv5(&mut watcher);
    assert_eq!(
        (will.payload.as_slice(), will.retain),
        (&b"last words"[..], false)
    );
    assert_eq!(
        will.prop(CONTENT_TYPE),
        Some(Value::Str("text/plain".into()))
    );
    let users: Vec<_> = will
        .props
        .iter()
        .filter(|(id, _)| *id == USER_PROPERTY)
        .collect();
    let pair = |k: &str, v: &str| (USER_PROPERTY, Value::Pair(k.into(), v.into()));
    assert_eq!(
        users,
        vec![&pair("z", "1"), &pair("a", "2"), &pair("z", "3")]
    );
}

// [MQTT5-3.1.2-10] [MQTT5-3.14.4-3] [MQTT5-3.1.2-15]: DISCONNECT 0x00 discards
// the will; DISCONNECT 0x04 (Disconnect with Will Message) publishes it, here
// as a retained message (Will Retain 1).
#[test]
fn disconnect_reason_decides_the_will() {
    let broker = Broker::start();
    let t = topic("v5-will-disconnect");
    let (mut watcher, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut watcher, &Props::new(), &[(&t, 1)]), vec![1]);
    let (mut quiet, _) = open(broker.addr, &connect_with_will(&t, &Props::new(), 0x08));
    quiet.send(&disconnect5(0x00, &Props::new()));
    quiet.expect_closed_silently(WAIT);
    watcher.expect_nothing(QUIET);

    let (mut loud, _) = open(broker.addr, &connect_with_will(&t, &Props::new(), 0x28));
    loud.send(&disconnect5(0x04, &Props::new()));
    loud.expect_closed_silently(WAIT);
    let will = recv5(&mut watcher);
    assert_eq!(will.payload, b"last words");
    // Retained: a new subscriber gets it with RETAIN=1.
    let (mut late, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut late, &Props::new(), &[(&t, 0)]), vec![0]);
    let retained = recv5(&mut late);
    assert!(retained.retain, "[MQTT5-3.1.2-15] {retained:?}");
    Client::v311(broker.addr).publish(&Message::new(&t, "").retain(true));
}

// [MQTT5-3.1.3-5]: client ids of 1 to 23 characters from [0-9a-zA-Z] are
// accepted (longer ones and other characters too, which 5.0 allows).
#[test]
fn alphanumeric_client_ids_up_to_23_bytes_are_accepted() {
    let broker = Broker::start();
    let long = format!("Z{}XYZ0123456789-_./", client_id());
    for id in [&long[..1], &long[..23], &long[..]] {
        let (c, ack) = open(broker.addr, &connect5(id, true, 60, &Props::new()));
        assert_eq!(ack.code, 0, "{id:?}: {ack:?}");
        c.disconnect();
    }
}

// [MQTT5-3.14.1-1] [MQTT5-2.1.3-1]: a DISCONNECT with reserved fixed-header
// bits set is malformed: the broker closes (a DISCONNECT 0x81 may come first)
// and, the DISCONNECT not being valid, publishes the will.
#[test]
fn disconnect_with_reserved_flags_is_malformed() {
    let broker = Broker::start();
    let t = topic("v5-disconnect-flags");
    let (mut watcher, _) = open_ok(broker.addr, &Props::new());
    assert_eq!(sub5(&mut watcher, &Props::new(), &[(&t, 1)]), vec![1]);
    let (mut c, _) = open(broker.addr, &connect_with_will(&t, &Props::new(), 0x08));
    c.send(&[0xE1, 0x00]);
    for p in c.expect_closed(WAIT) {
        assert_eq!(disconnect_code(&p), 0x81, "{p:?}");
    }
    assert_eq!(recv5(&mut watcher).payload, b"last words");
}
