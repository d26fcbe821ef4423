//! Shared subscriptions `$share/{group}/{filter}` (MQTT 5.0 section 4.8.2),
//! for MQTT 5.0 and 3.1.1 clients, on brokers with two workers: each
//! message goes to exactly one member of each group.

use crate::common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// `$share/{group}/{filter}`.
fn share(group: &str, filter: &str) -> String {
    format!("$share/{group}/{filter}")
}

/// Reads PUBLISHes, completing each one's QoS flow, until none arrives for
/// `quiet`.
fn drain(c: &mut Client, quiet: Duration) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        match c.try_read(quiet) {
            Ok(p) => {
                let msg = Message::decode(&p, c.version)
                    .unwrap_or_else(|| panic!("expected PUBLISH, got {p:?}"));
                c.ack(&msg);
                got.push(msg);
            }
            Err(ReadError::Timeout) => return got,
            Err(e) => panic!("reading PUBLISHes: {e:?} after {got:?}"),
        }
    }
}

/// Reads exactly `n` PUBLISHes (completing their QoS flows), then nothing.
fn recv_n(c: &mut Client, n: usize) -> Vec<Message> {
    let got: Vec<Message> = (0..n).map(|_| c.recv_acked()).collect();
    c.expect_nothing(QUIET);
    got
}

/// Reads PUBLISHes without acknowledging them, until none arrives for QUIET.
fn read_unacked(c: &mut Client) -> Vec<Message> {
    let mut got = Vec::new();
    while let Ok(p) = c.try_read(QUIET) {
        got.push(Message::decode(&p, c.version).expect("PUBLISH"));
    }
    got
}

fn payloads(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8(m.payload.clone()).expect("UTF-8 payload"))
        .collect()
}

/// The payloads `prefix0 … prefix{n-1}`.
fn numbered(prefix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Asserts that the union of `parts` is `expected` with no payload twice.
fn exactly_once(parts: &[&[Message]], expected: &BTreeSet<String>) {
    let all: Vec<String> = parts.iter().flat_map(|p| payloads(p)).collect();
    let set: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(
        set.len(),
        all.len(),
        "a message went to two members: {all:?}"
    );
    assert_eq!(&set, expected, "every message to exactly one member");
}

/// A v5 SUBSCRIBE of one filter with a Subscription Identifier (< 128).
fn subscribe_with_id(pid: u16, filter: &str, options: u8, id: u8) -> Vec<u8> {
    assert!(id < 128, "one-byte variable byte integer");
    let mut body = pid.to_be_bytes().to_vec();
    body.extend([2, 0x0B, id]);
    body.extend(string(filter));
    body.push(options);
    packet(0x82, &body)
}

/// The property bytes of a v5 PUBLISH.
fn v5_properties(p: &RawPacket) -> Vec<u8> {
    let body = &p.body;
    let mut at = 2 + usize::from(u16::from_be_bytes([body[0], body[1]]));
    if (p.header >> 1) & 3 > 0 {
        at += 2;
    }
    let (len, used) = read_varint(&body[at..]).expect("property length");
    body[at + used..at + used + len].to_vec()
}

/// Runs the 200-message round-robin check on a fresh broker with `workers`.
fn every_message_to_exactly_one_member(workers: &str) {
    const N: usize = 200;
    let Some(broker) = Broker::spawn_only(&["--workers", workers]) else {
        return;
    };
    let t = topic("rr");
    let filter = share("g", &t);
    // On two workers the acceptor puts `a` and `b` on different workers
    // (the least loaded one each time); on one worker they share it.
    let mut a = Client::fresh(broker.addr, V5);
    let mut b = Client::fresh(broker.addr, V5);
    a.sub(&filter, 0);
    b.sub(&filter, 0);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}"), 1);
    }
    publisher.ping();
    let got_a = drain(&mut a, QUIET);
    let got_b = drain(&mut b, QUIET);
    exactly_once(&[&got_a, &got_b], &numbered("m", N));
    assert!(got_a
        .iter()
        .chain(&got_b)
        .all(|m| m.qos == 0 && m.topic == t));
    // Workers (or members) take turns: half each.
    assert_eq!(
        (got_a.len(), got_b.len()),
        (N / 2, N / 2),
        "round robin over {workers} worker(s)"
    );
}

// MQTT 5.0 section 4.8.2 (each message to one and only one member)
// [MQTT5-4.8.2-1] [MQTT5-4.8.2-2] [MQTT5-4.8.2-3]: members on different
// workers; 200 messages, each reaches exactly one member, in turn.
#[test]
fn every_message_reaches_exactly_one_member_across_workers() {
    every_message_to_exactly_one_member("2");
}

// MQTT 5.0 section 4.8.2: both members on one worker take turns too.
#[test]
fn every_message_reaches_exactly_one_member_on_one_worker() {
    every_message_to_exactly_one_member("1");
}

// MQTT 5.0 section 4.8.2 (`$share/consumer1/…` and `$share/consumer2/…` are
// distinct shared subscriptions; each gets a copy): two groups on the same
// filter, and a third on an overlapping one, each get every message once.
#[test]
fn each_group_gets_every_message_once() {
    const N: usize = 20;
    let broker = Broker::start();
    let t = topic("groups");
    let mut g1a = Client::fresh(broker.addr, V5);
    let mut g1b = Client::v311(broker.addr);
    let mut g2 = Client::fresh(broker.addr, V5);
    let mut g3 = Client::v311(broker.addr);
    g1a.sub(&share("g1", &t), 1);
    g1b.sub(&share("g1", &t), 1);
    g2.sub(&share("g2", &t), 1);
    let wide = format!("{}/#", t.rsplit_once('/').expect("a/b").0);
    g3.sub(&share("g1", &wide), 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}"), 1);
    }
    let expected = numbered("m", N);
    let (a, b) = (drain(&mut g1a, QUIET), drain(&mut g1b, QUIET));
    exactly_once(&[&a, &b], &expected);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both members of g1 take turns"
    );
    exactly_once(&[&recv_n(&mut g2, N)], &expected);
    // Same share name, other filter: a distinct shared subscription (4.8.2).
    // `wide` may see other tests' traffic on a shared broker: keep ours.
    let mine: Vec<Message> = drain(&mut g3, QUIET)
        .into_iter()
        .filter(|m| m.topic == t)
        .collect();
    exactly_once(&[&mine], &expected);
}

// MQTT 5.0 section 4.8.2 (further copies go to non-shared subscriptions): an
// ordinary subscriber alongside a group gets every message, and a member
// that also has the ordinary subscription gets a copy from each.
#[test]
fn ordinary_subscribers_alongside_a_group_get_every_message() {
    const N: usize = 20;
    let broker = Broker::start();
    let t = topic("alongside");
    let mut plain = Client::v311(broker.addr);
    plain.sub(&t, 1);
    let mut a = Client::fresh(broker.addr, V5);
    let mut b = Client::fresh(broker.addr, V5);
    a.sub(&share("g", &t), 1);
    b.sub(&share("g", &t), 1);
    b.sub(&t, 1);
    let mut publisher = Client::fresh(broker.addr, V5);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}"), 1);
    }
    let expected = numbered("m", N);
    exactly_once(&[&recv_n(&mut plain, N)], &expected);
    let from_a = drain(&mut a, QUIET);
    let at_b = payloads(&drain(&mut b, QUIET));
    // `b` got every message once through its ordinary subscription, plus
    // the ones the group gave it.
    let ordinary: BTreeSet<String> = at_b.iter().cloned().collect();
    assert_eq!(ordinary, expected);
    assert_eq!(
        at_b.len() + from_a.len(),
        2 * N,
        "a: {from_a:?} b: {at_b:?}"
    );
    assert!(!from_a.is_empty(), "the group takes turns");
}

// [MQTT-3.8.3-1] (3.1.1: any valid filter), MQTT 5.0 section 4.8.2 (shared
// subscriptions for 3.1.1 clients too): 3.1.1 and 5.0 members share one
// group; the SUBACK grants the QoS asked for [MQTT-3.8.4-5].
#[test]
fn v311_clients_are_members_too() {
    const N: usize = 10;
    let broker = Broker::start();
    let t = topic("v311");
    let filter = share("g", &t);
    let mut old = Client::v311(broker.addr);
    let mut new = Client::fresh(broker.addr, V5);
    old.send(&subscribe(V311, 1, &[(&filter, 1)]));
    old.expect_bytes(&suback_v3(1, &[1]));
    new.sub(&filter, 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}"), 1);
    }
    let (x, y) = (drain(&mut old, QUIET), drain(&mut new, QUIET));
    exactly_once(&[&x, &y], &numbered("m", N));
    assert!(!x.is_empty() && !y.is_empty(), "{x:?} {y:?}");
    assert!(x.iter().chain(&y).all(|m| m.qos == 1 && m.topic == t));
}

// [MQTT5-4.8.2-3] (the member's granted QoS), [MQTT5-3.3.1-12]
// [MQTT5-3.3.1-13] (Retain As Published), [MQTT5-3.3.4-3] (its Subscription
// Identifier): each member gets the message with its own options.
#[test]
fn each_member_gets_its_own_subscription_options() {
    let broker = Broker::start();
    let t = topic("options");
    let filter = share("g", &t);
    let mut low = Client::fresh(broker.addr, V5);
    low.sub(&filter, 0);
    let mut high = Client::fresh(broker.addr, V5);
    // QoS 1, Retain As Published, Subscription Identifier 9.
    high.send(&subscribe_with_id(1, &filter, 0x01 | 0x08, 9));
    let suback = high.read_until("SUBACK", |p| p.kind() == SUBACK);
    assert_eq!(suback.suback_codes(V5), vec![1]);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..2 {
        publisher.publish(&Message::new(&t, format!("m{i}")).qos(2, 1).retain(true));
    }
    let got_low = low.recv_acked();
    low.expect_nothing(QUIET);
    let raw = high.read();
    let got_high = Message::decode(&raw, V5).expect("PUBLISH");
    high.ack(&got_high);
    high.expect_nothing(QUIET);
    assert_eq!((got_low.qos, got_low.retain), (0, false), "{got_low:?}");
    assert_eq!((got_high.qos, got_high.retain), (1, true), "{got_high:?}");
    assert_eq!(
        v5_properties(&raw),
        vec![0x0B, 9],
        "subscription identifier"
    );
    assert_ne!(got_low.payload, got_high.payload);
    publisher.publish(&Message::new(&t, "").qos(1, 2).retain(true));
}

// MQTT 5.0 sections 4.8.2 ("Retained messages are not sent to this new
// subscriber") and 3.3.1.3 (retained messages go to new Non-shared
// Subscriptions); neither has a statement id. An ordinary subscription
// shows the retained message is there.
#[test]
fn retained_messages_are_not_sent_on_a_shared_subscribe() {
    let broker = Broker::start();
    let t = topic("retained");
    let mut publisher = Client::v311(broker.addr);
    publisher.publish(&Message::new(&t, "kept").qos(1, 1).retain(true));
    for version in [V5, V311] {
        let mut member = Client::fresh(broker.addr, version);
        member.sub(&share("g", &t), 1);
        member.expect_nothing(QUIET);
    }
    let mut plain = Client::v311(broker.addr);
    plain.sub(&t, 1);
    let msg = plain.recv_acked();
    assert_eq!((msg.payload.as_slice(), msg.retain), (&b"kept"[..], true));
    publisher.publish(&Message::new(&t, "").qos(1, 2).retain(true));
}

// MQTT 5.0 section 4.8.2 (a Session detaches itself with UNSUBSCRIBE of the
// full filter) [MQTT5-3.10.4-1]: after its UNSUBACK a member gets nothing;
// the other member gets every message.
#[test]
fn an_unsubscribed_member_gets_no_more_messages() {
    const N: usize = 10;
    let broker = Broker::start();
    let t = topic("unsub");
    let filter = share("g", &t);
    let mut a = Client::fresh(broker.addr, V5);
    let mut b = Client::v311(broker.addr);
    a.sub(&filter, 1);
    b.sub(&filter, 1);
    a.unsubscribe(&[&filter]);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}"), 1);
    }
    exactly_once(&[&recv_n(&mut b, N)], &numbered("m", N));
    a.expect_nothing(QUIET);
}

/// A member that leaves with QoS 1 messages unacknowledged (two in flight,
/// the rest queued behind `--max-inflight 2`): the other member gets them,
/// contents intact. `persistent`: the leaver's session is kept, and does
/// not get them again when it comes back.
fn unacked_messages_go_to_the_other_member(broker: &Broker, version: u8, persistent: bool) {
    const N: usize = 10;
    let t = topic("handoff");
    let filter = share("g", &t);
    let id = client_id();
    let connect = || {
        let c = Connect::new(version, &id).clean(!persistent);
        if version == V5 && persistent {
            c.session_expiry(60)
        } else {
            c
        }
    };
    let (mut leaver, _) = Client::accepted(broker.addr, &connect());
    leaver.sub(&filter, 1);
    let mut stayer = Client::v311(broker.addr);
    stayer.sub(&filter, 1);
    let mut publisher = Client::v311(broker.addr);
    for i in 0..N {
        publisher.publish_qos(&t, format!("m{i}-{}", "x".repeat(i)), 1);
    }
    let seen_by_leaver = read_unacked(&mut leaver);
    assert_eq!(
        seen_by_leaver.len(),
        2,
        "the inflight window: {seen_by_leaver:?}"
    );
    let first = drain(&mut stayer, QUIET);
    assert_eq!(first.len(), N / 2, "turns: {first:?}");
    leaver.abort();
    let handed = recv_n(&mut stayer, N / 2);
    let expected: BTreeSet<String> = (0..N).map(|i| format!("m{i}-{}", "x".repeat(i))).collect();
    exactly_once(&[&first, &handed], &expected);
    let handed_payloads = payloads(&handed);
    for m in payloads(&seen_by_leaver) {
        assert!(
            handed_payloads.contains(&m),
            "{m} not handed on: {handed_payloads:?}"
        );
    }
    assert!(handed.iter().all(|m| m.qos == 1 && m.topic == t));
    if persistent {
        let (mut back, present) = Client::accepted(broker.addr, &connect());
        if version != V31 {
            assert!(present, "the session was kept");
        }
        back.expect_nothing(QUIET);
        back.disconnect();
        Client::accepted(broker.addr, &Connect::new(version, &id))
            .0
            .disconnect();
    }
}

// MQTT 5.0 section 4.8.2 (a QoS 1 message to a member whose session ends
// SHOULD go to another member), for a 5.0 and a 3.1.1 leaver.
#[test]
fn unacked_qos1_messages_of_a_departed_member_go_to_another_member() {
    let Some(broker) = Broker::spawn_only(&["--max-inflight", "2"]) else {
        return;
    };
    unacked_messages_go_to_the_other_member(&broker, V5, false);
    unacked_messages_go_to_the_other_member(&broker, V311, false);
}

// MQTT 5.0 section 4.8.2 (the server MAY send a QoS 1 message to another
// member as soon as it loses the connection to the first): the leaver's
// kept session gives them up and does not get them again.
#[test]
fn unacked_qos1_messages_of_a_persistent_member_go_to_another_member() {
    let Some(broker) = Broker::spawn_only(&["--max-inflight", "2"]) else {
        return;
    };
    unacked_messages_go_to_the_other_member(&broker, V5, true);
    unacked_messages_go_to_the_other_member(&broker, V311, true);
}

// [MQTT5-4.8.2-4] [MQTT5-4.8.2-5]: a QoS 2 message sent to a member that
// leaves before completing it is not sent to another member; a kept session
// gets it again (DUP) when its client reconnects.
#[test]
fn a_sent_qos2_message_stays_with_its_member() {
    let broker = Broker::start();
    for persistent in [true, false] {
        let t = topic("qos2");
        let filter = share("g", &t);
        let id = client_id();
        let (mut leaver, _) = Client::accepted(broker.addr, &Connect::v311(&id).clean(!persistent));
        leaver.sub(&filter, 2);
        let mut stayer = Client::v311(broker.addr);
        stayer.sub(&filter, 2);
        let mut publisher = Client::v311(broker.addr);
        publisher.publish_qos(&t, "m0", 2);
        publisher.publish_qos(&t, "m1", 2);
        let held = leaver.recv();
        assert_eq!(held.qos, 2);
        let other = stayer.recv_acked();
        assert_ne!(held.payload, other.payload, "one each");
        leaver.abort();
        stayer.expect_nothing(QUIET);
        if persistent {
            let (mut back, present) =
                Client::accepted(broker.addr, &Connect::v311(&id).clean(false));
            assert!(present);
            let again = back.recv_acked();
            assert_eq!((again.payload, again.dup), (held.payload, true));
            back.expect_nothing(QUIET);
            back.disconnect();
            Client::accepted(broker.addr, &Connect::v311(&id))
                .0
                .disconnect();
        }
    }
}

// [MQTT5-3.8.3-4]: No Local on a shared subscription is a Protocol Error
// (v5 DISCONNECT 0x82, then the connection closes).
#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = Broker::start();
    let mut c = Client::fresh(broker.addr, V5);
    c.send(&subscribe(V5, 1, &[(&share("g", &topic("nl")), 0x04 | 1)]));
    let before = c.expect_closed(WAIT);
    let disconnect = before
        .iter()
        .find(|p| p.kind() == DISCONNECT)
        .unwrap_or_else(|| panic!("no DISCONNECT: {before:?}"));
    assert_eq!(disconnect.body.first(), Some(&0x82), "{disconnect:?}");
    assert!(before.iter().all(|p| p.kind() != SUBACK), "{before:?}");
}
