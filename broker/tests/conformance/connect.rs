//! CONNECT / CONNACK, keep-alive, will, session present and takeover
//! (MQTT 3.1.1 sections 3.1, 3.2, 3.12, 3.14).

use crate::common::*;
use std::time::{Duration, Instant};

// [MQTT-3.1.2-2] [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT5-3.1.2-2]: a level other than
// 3, 4 or 5 gets a CONNACK refusal, then the close: the 3.1.1 return code
// 0x01 below 5, a v5 CONNACK 0x84 (Unsupported Protocol Version) above it,
// which a client newer than v5 can read.
#[test]
fn unacceptable_protocol_level_gets_return_code_1_then_close() {
    let broker = Broker::start();
    let v5_refusal = [0x20, 0x03, 0x00, 0x84, 0x00];
    for (level, expected) in [
        (2u8, connack_v3(false, 0x01)),
        (6, v5_refusal.to_vec()),
        (0x7F, v5_refusal.to_vec()),
    ] {
        let mut c = Client::tcp(broker.addr);
        let mut bytes = Connect::v311(&client_id()).bytes();
        bytes[8] = level; // 10 ; len ; 00 04 'MQTT' ; level
        c.send(&bytes);
        c.expect_bytes(&expected);
        c.expect_closed_silently(WAIT);
    }
}

// After a DISCONNECT with a reason code, the server shuts its side down and
// reads on until the client closes, so that a client still writing reads
// the reason instead of getting a reset. [MQTT5-4.13.1-1] [MQTT5-3.14.4-1]
// [MQTT5-3.14.4-2]: the connection still closes, with nothing after the
// DISCONNECT.
#[test]
fn a_client_still_writing_reads_the_disconnect_reason() {
    let broker = Broker::start();
    // Five times: without the half-close, the reset loses the DISCONNECT
    // most of the time, not always.
    for _ in 0..5 {
        disconnect_reaches_a_writing_client(broker.addr);
    }
}

fn disconnect_reaches_a_writing_client(addr: std::net::SocketAddr) {
    let t = topic("linger");
    // A subscriber with a 4 KiB receive buffer and 400 KiB of messages
    // waiting for it: the server's DISCONNECT sits behind them in its send
    // buffer when it closes.
    let mut c = Client::tcp_small_buffer(addr);
    c.version = V5;
    c.send(&Connect::v5(&client_id()).bytes());
    assert_eq!(c.read().kind(), CONNACK);
    c.sub(&t, 0);
    let mut publisher = Client::v311(addr);
    for _ in 0..100 {
        publisher.publish(&Message::new(&t, vec![b'x'; 4096]));
    }
    publisher.ping();
    // A PUBLISH with QoS 3 is malformed; 256 KiB of PINGREQs follow it in
    // the same write, which the server never answers.
    let mut bytes = vec![0x36, 0x03, 0x00, 0x01, b'a'];
    bytes.extend(std::iter::repeat_n([0xC0u8, 0x00], 128 * 1024).flatten());
    let _ = c.send_lossy(&bytes);
    c.read_until("DISCONNECT", |p| p.kind() == DISCONNECT);
    c.expect_closed(WAIT);
}

// [MQTT-3.1.4-4] [MQTT-3.2.0-1] [MQTT-3.2.2-1]: exact CONNACK bytes for each level.
#[test]
fn accepted_connect_gets_exact_connack_for_v31_and_v311() {
    let broker = Broker::start();
    for connect in [Connect::v31(&client_id()), Connect::v311(&client_id())] {
        let mut c = Client::tcp(broker.addr);
        c.version = connect.version;
        c.send(&connect.bytes());
        c.expect_bytes(&connack_v3(false, 0));
        c.ping();
        c.disconnect();
    }
}

// [MQTT-3.1.4-5] [MQTT-3.8.4-1]: a client may send packets right behind its
// CONNECT without waiting for the CONNACK; those in the same segment as the
// CONNECT are answered at once, not when more bytes arrive.
#[test]
fn packets_pipelined_behind_connect_are_answered() {
    let broker = Broker::start();
    let t = topic("pipelined");
    for version in [V311, V5] {
        let mut c = Client::tcp(broker.addr);
        c.version = version;
        let mut bytes = Connect::new(version, &client_id()).bytes();
        bytes.extend(subscribe(version, 1, &[(&t, 1)]));
        bytes.extend(Message::new(&t, "self").qos(1, 2).encode(version));
        c.send(&bytes);
        let connack = c.read();
        assert_eq!(connack.kind(), CONNACK, "{connack:?}");
        let suback = c.read_until("SUBACK", |p| p.kind() == SUBACK);
        assert_eq!(suback.suback_codes(version), vec![1]);
        let puback = c.read_until("PUBACK", |p| p.kind() == PUBACK);
        assert_eq!(puback.pid(), 2);
        let msg = c.recv_acked();
        assert_eq!(msg.payload, b"self");
        c.disconnect();
    }
}

// MQTT 3.1 section 3.1: a client id longer than 23 characters gets return
// code 2 (identifier rejected). [MQTT-3.1.3-9] [MQTT-3.2.2-5]
#[test]
fn v31_client_id_longer_than_23_bytes_is_rejected_with_return_code_2() {
    let broker = Broker::start();
    let long = format!("{}{}", client_id(), "abcdefghijklmnopqrstuvwxyz");
    let (mut c, connack) = Client::connect(broker.addr, &Connect::v31(&long));
    assert_eq!(connack.bytes(), connack_v3(false, 0x02));
    c.expect_closed_silently(WAIT);
}

// [MQTT-3.1.3-5]: 23 bytes of [0-9a-zA-Z] must be allowed, also in MQTT 3.1.
#[test]
fn v31_client_id_of_23_bytes_is_accepted() {
    let broker = Broker::start();
    let id: String = format!("{}ABCDEFGHIJKLMNOPQRSTUVWXYZ", client_id())
        .chars()
        .take(23)
        .collect();
    assert_eq!(id.len(), 23);
    let (mut c, present) = Client::accepted(broker.addr, &Connect::v31(&id));
    assert!(!present);
    c.ping();
}

// [MQTT-3.1.3-8] [MQTT-3.1.3-7] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
#[test]
fn empty_client_id_with_clean_session_0_is_rejected_with_return_code_2() {
    let broker = Broker::start();
    let (mut c, connack) = Client::connect(broker.addr, &Connect::v311("").clean(false));
    assert_eq!(connack.bytes(), connack_v3(false, 0x02));
    c.expect_closed_silently(WAIT);
}

// [MQTT-3.1.3-6]: an empty id is accepted with clean session, and each such
// client gets its own unique id (the second does not take over the first).
#[test]
fn empty_client_id_with_clean_session_1_gets_a_unique_id() {
    let broker = Broker::start();
    let (mut a, _) = Client::accepted(broker.addr, &Connect::v311(""));
    let (mut b, _) = Client::accepted(broker.addr, &Connect::v311(""));
    let t = topic("empty-id");
    a.sub(&t, 1);
    b.publish_qos(&t, "to-a", 1);
    assert_eq!(a.recv_acked().payload, b"to-a");
    b.ping();
    a.ping();
}

// [MQTT-3.1.4-5]: data sent after a rejected CONNECT is not processed.
#[test]
fn data_after_a_rejected_connect_is_not_processed() {
    let broker = Broker::start();
    let t = topic("after-reject");
    let mut c = Client::tcp(broker.addr);
    let mut bytes = Connect::v311("").clean(false).bytes();
    bytes.extend(
        Message::new(&t, "must-not-be-retained")
            .retain(true)
            .encode(V311),
    );
    c.send(&bytes);
    c.expect_bytes(&connack_v3(false, 0x02));
    c.expect_closed_silently(WAIT);
    let mut s = Client::v311(broker.addr);
    s.sub(&t, 0);
    s.expect_nothing(QUIET);
}

// [MQTT-3.1.0-1] [MQTT-4.8.0-1]
#[test]
fn first_packet_other_than_connect_closes_the_connection() {
    let broker = Broker::start();
    let t = topic("not-connect");
    let firsts: Vec<Vec<u8>> = vec![
        PINGREQ_BYTES.to_vec(),
        Message::new(&t, "x").encode(V311),
        subscribe(V311, 1, &[(&t, 0)]),
        DISCONNECT_BYTES.to_vec(),
    ];
    for first in firsts {
        let mut c = Client::tcp(broker.addr);
        let _ = c.send_lossy(&first);
        c.expect_closed_silently(WAIT);
    }
}

// [MQTT-3.1.0-2] [MQTT-4.8.0-1]
#[test]
fn second_connect_closes_the_connection() {
    let broker = Broker::start();
    let mut healthy = Healthy::new(broker.addr);
    let id = client_id();
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&id));
    c.send(&Connect::v311(&id).bytes());
    c.expect_closed_silently(WAIT);
    healthy.round_trip();
}

// [MQTT-3.1.2-3] [MQTT-3.1.4-1] [MQTT5-3.1.2-3] [MQTT5-3.1.4-1] [MQTT5-3.2.2-7]:
// reserved connect flag set → close without
// CONNACK (3.1.1; MQTT 3.1 merely leaves the bit unused). MQTT 5.0 allows a
// CONNACK with a failure reason code before the close.
#[test]
fn reserved_connect_flag_closes_without_connack() {
    let broker = Broker::start();
    let connect = Connect::v311(&client_id());
    let mut c = Client::tcp(broker.addr);
    c.send(&connect.bytes_with_flags(connect.flags() | 0x01));
    c.expect_closed_silently(WAIT);

    let connect = Connect::v5(&client_id());
    let mut c = Client::tcp(broker.addr);
    c.version = V5;
    c.send(&connect.bytes_with_flags(connect.flags() | 0x01));
    for p in c.expect_closed(WAIT) {
        let failure = p.kind() == CONNACK && p.connack_code() >= 0x80;
        assert!(
            failure || p.kind() == DISCONNECT,
            "v5: {p:?} before the close"
        );
    }
}

// [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.1.2-4] [MQTT-3.1.2-6]
#[test]
fn session_present_flag_follows_stored_session_state() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("session-present");
    // No stored session, clean=0 → 0 [MQTT-3.2.2-3].
    let (mut c, connack) = Client::connect(broker.addr, &Connect::v311(&id).clean(false));
    assert_eq!(connack.bytes(), connack_v3(false, 0));
    c.sub(&t, 1);
    c.disconnect();
    // Stored session, clean=0 → 1 [MQTT-3.2.2-2].
    let (c, connack) = Client::connect(broker.addr, &Connect::v311(&id).clean(false));
    assert_eq!(connack.bytes(), connack_v3(true, 0));
    c.disconnect();
    // clean=1 → 0 even though a session is stored [MQTT-3.2.2-1], and the
    // session is discarded [MQTT-3.1.2-6]…
    let (c, connack) = Client::connect(broker.addr, &Connect::v311(&id));
    assert_eq!(connack.bytes(), connack_v3(false, 0));
    c.disconnect();
    // …so it is not there afterwards either.
    let (c, connack) = Client::connect(broker.addr, &Connect::v311(&id).clean(false));
    assert_eq!(connack.bytes(), connack_v3(false, 0));
    c.disconnect();
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-8]: no packet within 1.5 × keep-alive → the
// server closes as if the network had failed, so the will is published.
#[test]
fn keep_alive_timeout_closes_and_publishes_the_will() {
    let broker = Broker::start();
    let will_topic = topic("keepalive-will");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id())
        .keep_alive(1)
        .will(&will_topic, b"gone", 1, false);
    let (mut victim, _) = Client::accepted(broker.addr, &connect);
    let start = Instant::now();
    victim.expect_closed_silently(WAIT);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1000),
        "closed after {elapsed:?}, before the keep-alive of 1 s had passed"
    );
    assert!(
        elapsed <= Duration::from_millis(3500),
        "closed only after {elapsed:?}"
    );
    let will = watcher.recv_acked();
    assert_eq!(
        (will.topic.as_str(), will.payload.as_slice()),
        (will_topic.as_str(), &b"gone"[..])
    );
    assert_eq!(will.qos, 1);
}

// [MQTT-3.1.2-24] [MQTT-3.12.4-1]: PINGREQ within the keep-alive keeps the
// connection open past 1.5 × keep-alive.
#[test]
fn pingreq_keeps_the_connection_alive() {
    let broker = Broker::start();
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v311(&client_id()).keep_alive(1));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        c.send(&PINGREQ_BYTES);
        c.expect_bytes(&PINGRESP_BYTES);
    }
}

// [MQTT-3.1.2-8] [MQTT-3.1.2-9] [MQTT-3.1.2-16]: abnormal close publishes the
// will, at the will QoS, as a non-retained message.
#[test]
fn will_is_published_on_abnormal_close() {
    let broker = Broker::start();
    let will_topic = topic("will");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 2);
    for (version, qos) in [(V31, 0u8), (V311, 1), (V311, 2)] {
        let connect = Connect::new(version, &client_id()).will(&will_topic, b"bye", qos, false);
        let (mut victim, _) = Client::accepted(broker.addr, &connect);
        victim.ping();
        victim.abort();
        let will = watcher.recv_acked();
        assert_eq!(will.payload, b"bye");
        assert_eq!(will.qos, qos, "{will:?}");
        assert!(!will.retain, "[MQTT-3.1.2-16] {will:?}");
    }
    // Not retained: a new subscriber gets nothing.
    let mut late = Client::v311(broker.addr);
    late.sub(&will_topic, 1);
    late.expect_nothing(QUIET);
}

// [MQTT-3.1.2-8]: closing the connection because of a protocol violation is
// an abnormal close too.
#[test]
fn will_is_published_after_a_protocol_violation() {
    let broker = Broker::start();
    let will_topic = topic("will-violation");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id()).will(&will_topic, b"broken", 1, false);
    let (mut victim, _) = Client::accepted(broker.addr, &connect);
    victim.send(&[0x60, 0x02, 0x00, 0x01]); // PUBREL with reserved flags 0000
    victim.expect_closed_silently(WAIT);
    assert_eq!(watcher.recv_acked().payload, b"broken");
}

// [MQTT-3.1.2-10] [MQTT-3.14.4-3]: after DISCONNECT the will is discarded.
#[test]
fn will_is_not_published_after_disconnect() {
    let broker = Broker::start();
    let will_topic = topic("will-disconnect");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id()).will(&will_topic, b"no", 1, false);
    let (mut c, _) = Client::accepted(broker.addr, &connect);
    c.ping();
    c.send(&DISCONNECT_BYTES);
    c.expect_closed_silently(WAIT);
    watcher.expect_nothing(QUIET);
}

// [MQTT-3.1.2-17] [MQTT-3.3.1-8] [MQTT-3.3.1-9]: a will with Will Retain is
// published as a retained message.
#[test]
fn will_retain_publishes_a_retained_will() {
    let broker = Broker::start();
    let will_topic = topic("will-retain");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id()).will(&will_topic, b"last", 1, true);
    let (mut victim, _) = Client::accepted(broker.addr, &connect);
    victim.ping();
    victim.abort();
    let live = watcher.recv_acked();
    assert_eq!(live.payload, b"last");
    assert!(
        !live.retain,
        "[MQTT-3.3.1-9] live delivery has RETAIN=0: {live:?}"
    );
    let mut late = Client::v311(broker.addr);
    late.sub(&will_topic, 1);
    let stored = late.recv_acked();
    assert_eq!(stored.payload, b"last");
    assert!(stored.retain, "[MQTT-3.3.1-8] {stored:?}");
    late.publish(&Message::new(&will_topic, "").retain(true)); // clean up
}

// [MQTT-3.1.4-2]: a second connection with the same client id closes the first.
#[test]
fn takeover_closes_the_existing_connection() {
    let broker = Broker::start();
    let id = client_id();
    for version in [V31, V311] {
        let (mut first, _) = Client::accepted(broker.addr, &Connect::new(version, &id));
        first.ping();
        let (mut second, _) = Client::accepted(broker.addr, &Connect::new(version, &id));
        first.expect_closed_silently(WAIT);
        second.ping();
        second.disconnect();
    }
}

// [MQTT-3.1.4-2] [MQTT-3.1.4-3] [MQTT-3.1.2-4] [MQTT-4.4.0-1] [MQTT-3.3.1-1]:
// on takeover with clean session 0 the new connection gets the session: the
// subscription and the unacknowledged QoS 1 message (resent with DUP=1 and
// the same packet id).
#[test]
fn takeover_carries_the_session_over() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("takeover");
    let mut publisher = Client::v311(broker.addr);
    let (mut first, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
    first.sub(&t, 1);
    publisher.publish_qos(&t, "unacked", 1);
    let original = first.recv(); // never acknowledged
    assert_eq!(original.payload, b"unacked");
    let (mut second, connack) = Client::connect(broker.addr, &Connect::v311(&id).clean(false));
    assert_eq!(connack.bytes(), connack_v3(true, 0), "[MQTT-3.2.2-2]");
    first.expect_closed_silently(WAIT);
    let again = second.recv_acked();
    assert_eq!(again.payload, b"unacked");
    assert_eq!(again.pid, original.pid, "[MQTT-4.4.0-1] same packet id");
    assert!(again.dup, "[MQTT-3.3.1-1] redelivery has DUP=1: {again:?}");
    publisher.publish_qos(&t, "after", 1);
    let after = second.recv_acked();
    assert_eq!(after.payload, b"after", "subscription carried over");
    second.disconnect();
    Client::accepted(broker.addr, &Connect::v311(&id))
        .0
        .disconnect(); // drop the session
}

// [MQTT-3.1.4-2] [MQTT-3.1.2-6]: a clean session ends with its network
// connection, also when a new connection with the same client id takes it
// over: the new session starts without the old one's subscriptions.
#[test]
fn takeover_of_a_clean_session_leaves_no_subscriptions_behind() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("clean-takeover");
    let mut publisher = Client::v311(broker.addr);
    let (mut first, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(true));
    first.sub(&t, 0);
    publisher.publish0(&t, "to first");
    assert_eq!(first.recv().payload, b"to first");
    let (mut second, connack) = Client::connect(broker.addr, &Connect::v311(&id).clean(true));
    assert_eq!(connack.bytes(), connack_v3(false, 0), "[MQTT-3.2.2-1]");
    first.expect_closed_silently(WAIT);
    publisher.publish0(&t, "nobody asked the new session for this");
    second.expect_nothing(QUIET);
    second.disconnect();
}

// [MQTT-3.12.4-1] [MQTT5-3.12.4-1]: exact PINGRESP for PINGREQ, in every protocol version.
#[test]
fn pingreq_gets_pingresp() {
    let broker = Broker::start();
    for version in [V31, V311, V5] {
        let mut c = Client::fresh(broker.addr, version);
        c.send(&PINGREQ_BYTES);
        c.expect_bytes(&PINGRESP_BYTES);
    }
}

// Section 3.14.4: on DISCONNECT the server closes the connection (SHOULD)
// and sends nothing more, even for a packet that followed the DISCONNECT.
#[test]
fn disconnect_ends_the_connection() {
    let broker = Broker::start();
    let mut c = Client::v311(broker.addr);
    let mut bytes = DISCONNECT_BYTES.to_vec();
    bytes.extend(PINGREQ_BYTES);
    c.send(&bytes);
    c.expect_closed_silently(WAIT);
}

// MQTT 5.0 basics: CONNACK reason code 0, SUBACK codes after properties, a
// QoS 1 round trip with packet ids intact.
#[test]
fn v5_connect_subscribe_publish_round_trip() {
    let broker = Broker::start();
    let (mut c, connack) = Client::connect(broker.addr, &Connect::v5(&client_id()));
    assert_eq!(connack.connack_code(), 0, "{connack:?}");
    assert!(!connack.session_present());
    let t = topic("v5");
    assert_eq!(c.subscribe(&[(&t, 1)]), vec![1]);
    c.publish(&Message::new(&t, "five").qos(1, 77));
    let msg = c.recv_acked();
    assert_eq!((msg.payload.as_slice(), msg.qos), (&b"five"[..], 1));
    c.disconnect();
}

// Mixed protocol levels share one topic space.
#[test]
fn v31_v311_and_v5_clients_exchange_messages() {
    let broker = Broker::start();
    let t = topic("mixed");
    let mut subs: Vec<Client> = [V31, V311, V5]
        .into_iter()
        .map(|v| {
            let mut c = Client::fresh(broker.addr, v);
            c.sub(&t, 1);
            c
        })
        .collect();
    for (i, version) in [V31, V311, V5].into_iter().enumerate() {
        let mut publisher = Client::fresh(broker.addr, version);
        publisher.publish_qos(&t, format!("from-{i}"), 1);
        for s in &mut subs {
            let msg = s.recv_acked();
            assert_eq!(
                msg.payload,
                format!("from-{i}").as_bytes(),
                "level {}",
                s.version
            );
        }
    }
}
