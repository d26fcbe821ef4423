//! Strictness: every malformed packet or protocol violation closes the
//! offending connection ([MQTT-4.8.0-1]) and leaves every other connection
//! working. Each case connects a healthy client first, and round-trips a
//! message on it after the offender was dropped.

use crate::common::*;
use std::net::SocketAddr;

/// For each case: an accepted MQTT 3.1.1 connection sends `bytes` and must
/// be closed, while a healthy client connected before keeps working.
fn violations(cases: &[(&str, Vec<u8>)]) {
    violations_v(V311, cases);
}

fn violations_v(version: u8, cases: &[(&str, Vec<u8>)]) {
    run_cases(cases, |addr| Client::fresh(addr, version));
}

/// For each case: `bytes` sent as the first packet must close the
/// connection without a CONNACK ([MQTT-3.1.4-1]).
fn connect_violations(cases: &[(&str, Vec<u8>)]) {
    run_cases(cases, Client::tcp);
}

/// Runs every case (all of them, so that one report names every failing
/// case), round-tripping on the healthy client after each.
fn run_cases(cases: &[(&str, Vec<u8>)], open: impl Fn(SocketAddr) -> Client) {
    let broker = Broker::start();
    let mut healthy = Healthy::new(broker.addr);
    let mut failed = Vec::new();
    for (what, bytes) in cases {
        let mut offender = open(broker.addr);
        let _ = offender.send_lossy(bytes);
        if let Err(e) = offender.closed_silently_within(WAIT) {
            failed.push(format!("{what}: {e}"));
        }
        healthy.round_trip();
    }
    assert!(
        failed.is_empty(),
        "not closed as required:\n{}",
        failed.join("\n")
    );
}

/// A PUBLISH whose topic is raw bytes.
fn publish_raw_topic(topic: &[u8], qos: u8) -> Vec<u8> {
    let mut body = binary(topic);
    if qos > 0 {
        body.extend([0, 1]);
    }
    body.extend(b"payload");
    packet(0x30 | (qos << 1), &body)
}

/// A SUBSCRIBE of one raw-byte filter with `options`.
fn subscribe_raw_filter(filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    body.extend(binary(filter));
    body.push(options);
    packet(0x82, &body)
}

/// A CONNECT (3.1.1, clean session) with `flags` and raw payload `payload`.
fn connect_raw(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

// Section 2.2.3 [MQTT-4.8.0-1]: a remaining length of more than four bytes.
#[test]
fn remaining_length_longer_than_four_bytes() {
    violations(&[
        ("5-byte length", vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        (
            "5-byte length, PINGREQ",
            vec![0xC0, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
    ]);
}

// [MQTT-3.6.1-1] [MQTT-2.2.2-2]
#[test]
fn pubrel_with_reserved_flags_other_than_0010() {
    violations(&[
        ("PUBREL 0000", vec![0x60, 0x02, 0x00, 0x01]),
        ("PUBREL 0011", vec![0x63, 0x02, 0x00, 0x01]),
        ("PUBREL 1010", vec![0x6A, 0x02, 0x00, 0x01]),
    ]);
}

// [MQTT-3.8.1-1] [MQTT-2.2.2-2]
#[test]
fn subscribe_with_reserved_flags_other_than_0010() {
    let t = topic("flags");
    let mut zero = subscribe(V311, 1, &[(&t, 0)]);
    zero[0] = 0x80;
    let mut three = zero.clone();
    three[0] = 0x83;
    violations(&[("SUBSCRIBE 0000", zero), ("SUBSCRIBE 0011", three)]);
}

// [MQTT-3.10.1-1] [MQTT-2.2.2-2]
#[test]
fn unsubscribe_with_reserved_flags_other_than_0010() {
    let t = topic("flags");
    let mut zero = unsubscribe(V311, 1, &[&t]);
    zero[0] = 0xA0;
    let mut eight = zero.clone();
    eight[0] = 0xA8;
    violations(&[("UNSUBSCRIBE 0000", zero), ("UNSUBSCRIBE 1000", eight)]);
}

// [MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-3.14.1-1]: reserved flags of the other
// fixed headers must be 0000.
#[test]
fn other_packets_with_reserved_flags_set() {
    violations(&[
        ("PUBACK 0001", vec![0x41, 0x02, 0x00, 0x01]),
        ("PUBREC 0100", vec![0x54, 0x02, 0x00, 0x01]),
        ("PUBCOMP 1000", vec![0x78, 0x02, 0x00, 0x01]),
        ("PINGREQ 0001", vec![0xC1, 0x00]),
        ("DISCONNECT 0010", vec![0xE2, 0x00]),
    ]);
}

// [MQTT-4.8.0-1]: packet types a client never sends (0, 15 in v3, and the
// server-to-client ones).
#[test]
fn reserved_and_server_only_packet_types() {
    violations(&[
        ("type 0", vec![0x00, 0x00]),
        ("type 15 (AUTH) in 3.1.1", vec![0xF0, 0x00]),
        ("CONNACK", connack_v3(false, 0)),
        ("SUBACK", suback_v3(1, &[0])),
        ("UNSUBACK", ack(UNSUBACK, 1)),
        ("PINGRESP", PINGRESP_BYTES.to_vec()),
    ]);
}

// [MQTT-3.3.1-4]
#[test]
fn publish_with_qos_3() {
    let t = topic("qos3");
    let mut qos3 = Message::new(&t, "x").qos(2, 1).encode(V311);
    qos3[0] |= 0x06;
    let mut qos3_retain = qos3.clone();
    qos3_retain[0] |= 0x01;
    violations(&[("QoS 3", qos3), ("QoS 3 + RETAIN", qos3_retain)]);
}

// [MQTT-3.3.2-2] [MQTT-4.7.1-1]
#[test]
fn publish_with_a_wildcard_in_the_topic_name() {
    let base = topic("wild");
    violations(&[
        (
            "+ level",
            Message::new(&format!("{base}/+"), "x").encode(V311),
        ),
        (
            "# level",
            Message::new(&format!("{base}/#"), "x").encode(V311),
        ),
        ("# alone", Message::new("#", "x").encode(V311)),
        (
            "+ inside a level",
            Message::new(&format!("{base}/a+b"), "x")
                .qos(1, 1)
                .encode(V311),
        ),
    ]);
}

// [MQTT-1.5.3-1] [MQTT-3.3.2-1]: ill-formed UTF-8 in a topic name.
#[test]
fn publish_with_invalid_utf8_in_the_topic_name() {
    violations(&[
        ("0xFF", publish_raw_topic(b"tern/\xFF", 0)),
        ("overlong NUL C0 80", publish_raw_topic(b"tern/\xC0\x80", 1)),
        (
            "surrogate U+D800",
            publish_raw_topic(b"tern/\xED\xA0\x80", 0),
        ),
        ("truncated sequence", publish_raw_topic(b"tern/\xE2\x82", 0)),
    ]);
}

// [MQTT-1.5.3-2] [MQTT-4.7.3-2]: U+0000 in a topic name or filter.
#[test]
fn null_character_in_a_topic_name_or_filter() {
    violations(&[
        ("PUBLISH topic", publish_raw_topic(b"tern/a\x00b", 0)),
        ("SUBSCRIBE filter", subscribe_raw_filter(b"tern/a\x00b", 0)),
    ]);
}

// [MQTT-1.5.3-1] [MQTT-3.8.3-1] [MQTT-3.10.3-1]: ill-formed UTF-8 in filters.
#[test]
fn invalid_utf8_in_a_topic_filter() {
    let mut unsub = vec![0, 1];
    unsub.extend(binary(b"tern/\xFF"));
    violations(&[
        ("SUBSCRIBE", subscribe_raw_filter(b"tern/\xFF/#", 0)),
        ("UNSUBSCRIBE", packet(0xA2, &unsub)),
    ]);
}

// [MQTT-4.7.3-1]: topic names and filters are at least one character long.
#[test]
fn empty_topic_name_or_filter() {
    violations(&[
        ("PUBLISH QoS 0", publish_raw_topic(b"", 0)),
        ("PUBLISH QoS 1", publish_raw_topic(b"", 1)),
        ("SUBSCRIBE", subscribe_raw_filter(b"", 0)),
    ]);
}

// [MQTT-4.7.1-2] [MQTT-4.7.1-3]: wildcards that do not occupy a whole level,
// or `#` that is not last.
#[test]
fn subscribe_with_an_invalid_topic_filter() {
    violations(&[
        ("a/#/b", subscribe_raw_filter(b"tern/#/b", 0)),
        ("a#", subscribe_raw_filter(b"tern#", 0)),
        ("a/b#", subscribe_raw_filter(b"tern/b#", 0)),
        ("a+", subscribe_raw_filter(b"tern+", 0)),
        ("a/+b", subscribe_raw_filter(b"tern/+b", 0)),
    ]);
}

// [MQTT-3-8.3-4]: reserved option bits, or requested QoS 3.
#[test]
fn subscribe_with_reserved_option_bits_or_qos_3() {
    violations(&[
        ("QoS 3", subscribe_raw_filter(b"tern/opts", 0x03)),
        ("bit 2", subscribe_raw_filter(b"tern/opts", 0x04)),
        ("bits 6-7", subscribe_raw_filter(b"tern/opts", 0xC1)),
    ]);
}

// [MQTT-2.3.1-1]: packet identifier 0.
#[test]
fn packet_identifier_zero() {
    let t = topic("pid0");
    let mut q1 = Message::new(&t, "x").qos(1, 1).encode(V311);
    let at = 2 + 2 + t.len();
    q1[at..at + 2].copy_from_slice(&[0, 0]);
    let mut q2 = q1.clone();
    q2[0] = 0x34;
    violations(&[
        ("PUBLISH QoS 1", q1),
        ("PUBLISH QoS 2", q2),
        ("SUBSCRIBE", subscribe(V311, 0, &[(&t, 0)])),
        ("UNSUBSCRIBE", unsubscribe(V311, 0, &[&t])),
    ]);
}

// Section 2.2.3: packets whose remaining length leaves bytes over (or
// lacks bytes) in a fixed-size variable header.
#[test]
fn trailing_bytes_after_a_fixed_size_packet() {
    violations(&[
        ("PUBACK length 3", vec![0x40, 0x03, 0x00, 0x01, 0x00]),
        ("PUBREL length 4", vec![0x62, 0x04, 0x00, 0x01, 0x00, 0x00]),
        ("PUBACK length 1", vec![0x40, 0x01, 0x00]),
        ("PINGREQ length 1", vec![0xC0, 0x01, 0x00]),
        ("DISCONNECT length 1", vec![0xE0, 0x01, 0x00]),
    ]);
}

// [MQTT-4.8.0-1]: a packet cut short by the end of the stream is discarded,
// the connection closed, and nothing of it delivered.
#[test]
fn truncated_packet_then_end_of_stream() {
    let broker = Broker::start();
    let t = topic("truncated");
    let mut healthy = Healthy::new(broker.addr);
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&t, 0);
    let mut offender = Client::v311(broker.addr);
    let whole = Message::new(&t, vec![b'x'; 300]).encode(V311);
    offender.send(&whole[..whole.len() / 2]);
    offender.shutdown_write();
    offender.expect_closed_silently(WAIT);
    watcher.expect_nothing(QUIET);
    healthy.round_trip();
}

// `--max-packet-size`: a larger packet closes the connection before it is
// buffered; one within the limit passes.
#[test]
fn packet_larger_than_max_packet_size() {
    let Some(broker) = Broker::spawn_only(&["--max-packet-size", "1024"]) else {
        return;
    };
    let t = topic("oversize");
    let mut healthy = Healthy::new(broker.addr);
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&t, 0);
    let mut ok = Client::v311(broker.addr);
    ok.publish0(&t, vec![b'k'; 900]);
    assert_eq!(watcher.recv().payload.len(), 900);
    let mut offender = Client::v311(broker.addr);
    // Only the header and the start of a 2000-byte PUBLISH: the length alone
    // must be enough to reject it.
    let big = Message::new(&t, vec![b'x'; 2000]).encode(V311);
    offender.send(&big[..64]);
    offender.expect_closed_silently(WAIT);
    watcher.expect_nothing(QUIET);
    healthy.round_trip();
}

// [MQTT-3.1.4-1] [MQTT-3.1.2-1] [MQTT5-3.1.2-1]: a protocol name other than
// `MQTT`/`MQIsdp` is closed (MQTT 5.0 also allows a CONNACK 0x84 first).
#[test]
fn connect_with_an_unknown_protocol_name() {
    let mut name = Connect::v311(&client_id()).bytes();
    name[4..8].copy_from_slice(b"MQTX");
    let mut lower = Connect::v311(&client_id()).bytes();
    lower[4..8].copy_from_slice(b"mqtt");
    connect_violations(&[("MQTX", name), ("mqtt", lower)]);
}

// [MQTT-3.1.4-1] [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-14] [MQTT-3.1.2-15]
// [MQTT-3.1.2-22]: inconsistent connect flags.
#[test]
fn connect_with_inconsistent_flags() {
    let id = string(&client_id());
    let mut will = id.clone();
    will.extend(string("tern/will"));
    will.extend(binary(b"w"));
    let mut with_password = id.clone();
    with_password.extend(binary(b"secret"));
    connect_violations(&[
        (
            "will QoS 1 without will flag",
            connect_raw(0x02 | 0x08, &id),
        ),
        (
            "will retain without will flag",
            connect_raw(0x02 | 0x20, &id),
        ),
        ("will QoS 3", connect_raw(0x02 | 0x04 | 0x18, &will)),
        (
            "password without user name",
            connect_raw(0x02 | 0x40, &with_password),
        ),
    ]);
}

// [MQTT-3.1.4-1] [MQTT-3.1.2-9] [MQTT-3.1.2-19] [MQTT-3.1.2-21]
// [MQTT-3.1.3-3]: fields announced by the flags are missing.
#[test]
fn connect_with_missing_payload_fields() {
    let id = string(&client_id());
    let mut user = id.clone();
    user.extend(string("user"));
    connect_violations(&[
        (
            "will topic and message missing",
            connect_raw(0x02 | 0x04, &id),
        ),
        ("user name missing", connect_raw(0x02 | 0x80, &id)),
        ("password missing", connect_raw(0x02 | 0x80 | 0x40, &user)),
        ("client id missing", connect_raw(0x02, &[])),
    ]);
}

// [MQTT-3.1.4-1] [MQTT-3.1.2-18] [MQTT-3.1.2-20] [MQTT-3.1.3-1]: bytes after
// the last field the flags announce.
#[test]
fn connect_with_trailing_bytes() {
    let id = string(&client_id());
    let mut extra = id.clone();
    extra.extend(string("user-without-flag"));
    let mut one = id.clone();
    one.push(0);
    connect_violations(&[
        ("user name without flag", connect_raw(0x02, &extra)),
        ("one byte", connect_raw(0x02, &one)),
    ]);
}

// [MQTT-3.1.4-1] [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-3.1.3-4] [MQTT-3.1.3-10]
// [MQTT-3.1.3-11]: ill-formed strings in CONNECT.
#[test]
fn connect_with_invalid_utf8_strings() {
    let mut will = string(&client_id());
    will.extend(binary(b"tern/\xFF"));
    will.extend(binary(b"w"));
    let mut user = string(&client_id());
    user.extend(binary(b"us\xC0\x80er"));
    connect_violations(&[
        ("client id 0xFF", connect_raw(0x02, &binary(b"id\xFF"))),
        ("client id U+0000", connect_raw(0x02, &binary(b"id\x00x"))),
        ("will topic", connect_raw(0x02 | 0x04, &will)),
        ("user name", connect_raw(0x02 | 0x80, &user)),
    ]);
}

// [MQTT-3.3.2-2] [MQTT-3.1.4-1]: the will topic is a topic name: no wildcards.
#[test]
fn connect_with_a_wildcard_will_topic() {
    let mut will = string(&client_id());
    will.extend(string("tern/+/will"));
    will.extend(binary(b"w"));
    connect_violations(&[("will topic with +", connect_raw(0x02 | 0x04, &will))]);
}

// [MQTT5-3.6.1-1] [MQTT5-3.3.2-2] [MQTT5-4.13.1-1]: MQTT 5.0: a violation closes
// the connection too (a DISCONNECT with a reason code may come first).
#[test]
fn v5_violation_closes_the_connection() {
    violations_v(
        V5,
        &[
            ("PUBREL 0000", vec![0x60, 0x02, 0x00, 0x01]),
            ("wildcard topic", packet(0x30, b"\x00\x06tern/#\x00payload")),
        ],
    );
}

// Limits on what a client controls: a topic name with more levels than
// `--max-topic-levels` closes only the offending connection (v3: no
// DISCONNECT exists), and is never routed.
#[test]
fn publish_over_the_topic_level_limit_closes_only_the_offender() {
    let Some(broker) = Broker::spawn_only(&["--max-topic-levels", "4"]) else {
        return;
    };
    let mut healthy = Healthy::new(broker.addr);
    let mut watcher = Client::v311(broker.addr);
    watcher.sub("deep/#", 0);
    let mut ok = Client::v311(broker.addr);
    ok.publish0("deep/a/b/c", b"fits");
    assert_eq!(watcher.recv().payload, b"fits");
    let mut offender = Client::v311(broker.addr);
    offender.publish0("deep/a/b/c/d", b"too deep");
    offender.expect_closed_silently(WAIT);
    watcher.expect_nothing(QUIET);
    healthy.round_trip();
}
