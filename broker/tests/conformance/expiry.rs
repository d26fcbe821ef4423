//! MQTT 5.0 time-driven behaviour: Session Expiry Interval (3.1.2.11.2),
//! Will Delay Interval (3.1.3.2.2, 3.1.2.5) and Message Expiry Interval of
//! retained and routed messages (3.3.2.3.3). Intervals are 1–2 s; the
//! broker checks its deadlines every 500 ms, so a deadline may fire up to
//! half a second late, and the waits below allow for that.
//!
//! The v5 packets with properties are built here, byte by byte.

use crate::common::*;
use std::net::SocketAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Longer than a 1 s interval plus a tick of lateness plus scheduling slack.
const PAST_ONE_SECOND: Duration = Duration::from_millis(2200);

/// A v5 CONNECT under construction, with the properties these tests need.
#[derive(Clone, Debug, Default)]
struct V5Connect {
    client_id: String,
    clean_start: bool,
    session_expiry: Option<u32>,
    receive_maximum: Option<u16>,
    /// Topic, payload, QoS, Will Delay Interval.
    will: Option<(String, Vec<u8>, u8, Option<u32>)>,
}

impl V5Connect {
    fn new(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            clean_start: true,
            ..Self::default()
        }
    }

    fn clean(mut self, clean: bool) -> Self {
        self.clean_start = clean;
        self
    }

    fn expiry(mut self, secs: u32) -> Self {
        self.session_expiry = Some(secs);
        self
    }

    fn will(mut self, topic: &str, payload: &[u8], delay: Option<u32>) -> Self {
        self.will = Some((topic.to_owned(), payload.to_vec(), 1, delay));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut body = string("MQTT");
        body.push(V5);
        let mut flags = if self.clean_start { 0x02 } else { 0 };
        if let Some((_, _, qos, _)) = &self.will {
            flags |= 0x04 | (qos << 3);
        }
        body.push(flags);
        body.extend(60u16.to_be_bytes());
        let mut props = Vec::new();
        if let Some(secs) = self.session_expiry {
            props.push(0x11);
            props.extend(secs.to_be_bytes());
        }
        if let Some(max) = self.receive_maximum {
            props.push(0x21);
            props.extend(max.to_be_bytes());
        }
        body.extend(remaining_length(props.len()));
        body.extend(props);
        body.extend(string(&self.client_id));
        if let Some((topic, payload, _, delay)) = &self.will {
            let mut will_props = Vec::new();
            if let Some(d) = delay {
                will_props.push(0x18);
                will_props.extend(d.to_be_bytes());
            }
            body.extend(remaining_length(will_props.len()));
            body.extend(will_props);
            body.extend(string(topic));
            body.extend(binary(payload));
        }
        packet(CONNECT << 4, &body)
    }

    /// Connects; returns the client and Session Present.
    fn connect(&self, addr: SocketAddr) -> (Client, bool) {
        let mut c = Client::tcp(addr);
        c.version = V5;
        c.send(&self.bytes());
        let connack = c.read();
        assert_eq!(connack.kind(), CONNACK, "{connack:?}");
        assert_eq!(connack.connack_code(), 0, "refused: {connack:?}");
        let present = connack.session_present();
        (c, present)
    }
}

/// A v5 PUBLISH with an optional Message Expiry Interval.
fn publish_v5(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pid: u16,
    retain: bool,
    expiry: Option<u32>,
) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend(pid.to_be_bytes());
    }
    let mut props = Vec::new();
    if let Some(secs) = expiry {
        props.push(0x02);
        props.extend(secs.to_be_bytes());
    }
    body.extend(remaining_length(props.len()));
    body.extend(props);
    body.extend_from_slice(payload);
    packet((PUBLISH << 4) | (qos << 1) | u8::from(retain), &body)
}

/// Publishes at QoS 1 from a v5 client and waits for the PUBACK.
fn publish1(c: &mut Client, topic: &str, payload: &[u8], retain: bool, expiry: Option<u32>) {
    let pid = c.next_pid();
    c.send(&publish_v5(topic, payload, 1, pid, retain, expiry));
    let puback = c.read_until("PUBACK", |p| p.kind() == PUBACK);
    assert_eq!(puback.pid(), pid);
}

/// DISCONNECT with `reason` and, if given, a Session Expiry Interval.
fn disconnect_v5(mut c: Client, reason: u8, session_expiry: Option<u32>) {
    let mut body = vec![reason];
    let mut props = Vec::new();
    if let Some(secs) = session_expiry {
        props.push(0x11);
        props.extend(secs.to_be_bytes());
    }
    body.extend(remaining_length(props.len()));
    body.extend(props);
    c.send(&packet(DISCONNECT << 4, &body));
    c.shutdown_write();
    let _ = c.closed_within(WAIT);
}

/// The Message Expiry Interval of a v5 PUBLISH the broker sent, if any.
fn message_expiry(p: &RawPacket) -> Option<u32> {
    assert_eq!(p.kind(), PUBLISH, "{p:?}");
    let body = &p.body;
    let mut at = 2 + usize::from(u16::from_be_bytes([body[0], body[1]]));
    if (p.header >> 1) & 3 > 0 {
        at += 2;
    }
    let (len, used) = read_varint(&body[at..]).expect("property length");
    at += used;
    let end = at + len;
    let u16_at = |i: usize| usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
    let mut found = None;
    while at < end {
        let id = body[at];
        at += 1;
        match id {
            0x01 => at += 1,
            0x02 => {
                found = Some(u32::from_be_bytes([
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ]));
                at += 4;
            }
            0x03 | 0x08 | 0x09 => at += 2 + u16_at(at),
            0x0B => at += read_varint(&body[at..]).expect("subscription id").1,
            0x23 => at += 2,
            0x26 => {
                at += 2 + u16_at(at);
                at += 2 + u16_at(at);
            }
            other => panic!("unexpected PUBLISH property 0x{other:02X} in {p:?}"),
        }
    }
    found
}

/// A v5 clean client subscribed to `filter` at QoS 1.
fn watcher(addr: SocketAddr, filter: &str) -> Client {
    let (mut c, _) = V5Connect::new(&client_id()).connect(addr);
    c.sub(filter, 1);
    c
}

/// Ends the session of `id` for good (Clean Start, expiry 0), for a shared broker.
fn forget(addr: SocketAddr, id: &str) {
    let (c, _) = V5Connect::new(id).connect(addr);
    c.disconnect();
}

/// Waits for the will on `topic`; returns how long after `since` it came.
fn will_arrives(w: &mut Client, topic: &str, payload: &[u8], since: Instant) -> Duration {
    let p = w.read_until("the will", |p| p.kind() == PUBLISH);
    let msg = Message::decode(&p, V5).expect("PUBLISH");
    w.ack(&msg);
    assert_eq!(
        (msg.topic.as_str(), msg.payload.as_slice()),
        (topic, payload),
        "{msg:?}"
    );
    since.elapsed()
}

// [MQTT5-3.1.2-23] [MQTT5-4.1.0-2] 3.1.2.11.2: an offline session is kept for its
// Session Expiry Interval and no longer: after it, Clean Start 0 finds no
// session (Session Present 0, [MQTT5-3.1.2-6] [MQTT5-3.2.2-3]), no queued
// message and no subscription.
#[test]
fn offline_session_ends_when_its_expiry_interval_passes_mqtt5_3_1_2_23() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("session-expiry");
    let (mut c, _) = V5Connect::new(&id)
        .clean(false)
        .expiry(1)
        .connect(broker.addr);
    c.sub(&t, 1);
    c.disconnect();
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "queued", 1);
    sleep(PAST_ONE_SECOND);
    let (mut c, present) = V5Connect::new(&id)
        .clean(false)
        .expiry(1)
        .connect(broker.addr);
    assert!(!present, "[MQTT5-3.2.2-3] the session expired");
    c.expect_nothing(QUIET);
    publisher.publish_qos(&t, "live", 1);
    c.expect_nothing(QUIET);
    c.disconnect();
}

// 3.1.2.11.2: a Session Expiry Interval of 0xFFFFFFFF never expires
// ([MQTT5-3.1.2-23], [MQTT5-3.1.2-5] resumed with its queued message).
#[test]
fn session_with_max_expiry_is_kept_mqtt5_3_1_2_23() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("session-forever");
    let (mut c, _) = V5Connect::new(&id)
        .clean(false)
        .expiry(u32::MAX)
        .connect(broker.addr);
    c.sub(&t, 1);
    c.disconnect();
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "queued", 1);
    sleep(PAST_ONE_SECOND);
    let (mut c, present) = V5Connect::new(&id)
        .clean(false)
        .expiry(u32::MAX)
        .connect(broker.addr);
    assert!(present, "[MQTT5-3.2.2-3] still there");
    assert_eq!(c.recv_acked().payload, b"queued");
    c.disconnect();
    forget(broker.addr, &id);
}

// [MQTT5-3.1.2-5] [MQTT5-4.1.0-1]: a session resumed before it expires keeps
// its subscriptions, and the expiry scheduled at the earlier close does not
// end it later.
#[test]
fn session_resumed_before_expiry_keeps_its_subscriptions_mqtt5_3_1_2_5() {
    let broker = Broker::start();
    let id = client_id();
    let t = topic("session-resumed");
    let connect = V5Connect::new(&id).clean(false).expiry(2);
    let (mut c, _) = connect.connect(broker.addr);
    c.sub(&t, 1);
    c.disconnect();
    sleep(Duration::from_millis(500));
    let (mut c, present) = connect.connect(broker.addr);
    assert!(present, "resumed within the interval");
    // Past the deadline of the first close, while connected.
    sleep(Duration::from_millis(2500));
    let mut publisher = Client::v311(broker.addr);
    publisher.publish_qos(&t, "live", 1);
    assert_eq!(c.recv_acked().payload, b"live");
    c.disconnect();
    let (c, present) = connect.connect(broker.addr);
    assert!(present, "the session outlived the first deadline");
    c.disconnect();
    forget(broker.addr, &id);
}

// [MQTT5-3.1.3-9] [MQTT5-3.1.2-8]: a will with a Will Delay Interval of 1 s is
// published about 1 s after an abnormal close, not at once.
#[test]
fn delayed_will_is_published_after_its_delay_mqtt5_3_1_3_9() {
    let broker = Broker::start();
    let will_topic = topic("will-delay");
    let mut w = watcher(broker.addr, &will_topic);
    let id = client_id();
    let connect = V5Connect::new(&id)
        .expiry(10)
        .will(&will_topic, b"late", Some(1));
    let (victim, _) = connect.connect(broker.addr);
    let closed = Instant::now();
    victim.abort();
    w.expect_nothing(Duration::from_millis(700));
    let after = will_arrives(&mut w, &will_topic, b"late", closed);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "will published {after:?} after the close, expected about 1 s"
    );
    forget(broker.addr, &id);
}

// [MQTT5-3.1.3-9] [MQTT5-3.1.2-8]: a new connection that resumes the session
// within the Will Delay Interval cancels the will. The resumed session then
// ends after 1 s; a will still pending would be published then (the session
// ends first), so the quiet spell after that proves it was cancelled.
#[test]
fn delayed_will_is_cancelled_by_a_resuming_connection_mqtt5_3_1_3_9() {
    let broker = Broker::start();
    let will_topic = topic("will-cancel");
    let mut w = watcher(broker.addr, &will_topic);
    let id = client_id();
    let connect = V5Connect::new(&id)
        .clean(false)
        .expiry(60)
        .will(&will_topic, b"no", Some(10));
    let (victim, _) = connect.connect(broker.addr);
    victim.abort();
    sleep(Duration::from_millis(300));
    let (again, present) = V5Connect::new(&id)
        .clean(false)
        .expiry(1)
        .connect(broker.addr);
    assert!(present);
    again.disconnect();
    w.expect_nothing(PAST_ONE_SECOND);
    let (c, present) = V5Connect::new(&id).clean(false).connect(broker.addr);
    assert!(!present, "the resumed session has expired meanwhile");
    c.disconnect();
}

// [MQTT5-3.1.3-9] [MQTT5-3.1.2-8] [MQTT5-4.1.0-2]: the will is published when
// the session ends, if that comes before the Will Delay Interval (here 1 s
// vs 10 s), and the session is gone.
#[test]
fn delayed_will_is_published_when_the_session_expires_first_mqtt5_3_1_3_9() {
    let broker = Broker::start();
    let will_topic = topic("will-session-end");
    let mut w = watcher(broker.addr, &will_topic);
    let id = client_id();
    let connect = V5Connect::new(&id)
        .clean(false)
        .expiry(1)
        .will(&will_topic, b"end", Some(10));
    let (victim, _) = connect.connect(broker.addr);
    let closed = Instant::now();
    victim.abort();
    let after = will_arrives(&mut w, &will_topic, b"end", closed);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "will published {after:?} after the close, expected at the session's end (1 s)"
    );
    let (c, present) = V5Connect::new(&id).clean(false).connect(broker.addr);
    assert!(!present, "the session ended");
    c.disconnect();
}

// [MQTT5-3.1.2-8] [MQTT5-3.1.2-4] 3.1.3.2.2: a new connection with Clean Start
// 1 ends the old session, so its pending delayed will is published at once.
#[test]
fn clean_start_publishes_the_pending_will_mqtt5_3_1_2_8() {
    let broker = Broker::start();
    let will_topic = topic("will-clean-start");
    let mut w = watcher(broker.addr, &will_topic);
    let id = client_id();
    let connect = V5Connect::new(&id)
        .clean(false)
        .expiry(60)
        .will(&will_topic, b"ended", Some(30));
    let (victim, _) = connect.connect(broker.addr);
    victim.abort();
    w.expect_nothing(QUIET);
    let started = Instant::now();
    let (c, present) = V5Connect::new(&id).connect(broker.addr);
    assert!(!present, "[MQTT5-3.2.2-2]");
    let after = will_arrives(&mut w, &will_topic, b"ended", started);
    assert!(
        after < Duration::from_secs(2),
        "will {after:?} after the new session"
    );
    c.disconnect();
}

// [MQTT5-3.1.2-8] [MQTT5-3.1.3-9]: DISCONNECT 0x04 (Disconnect with Will
// Message) publishes the will, after its delay.
#[test]
fn disconnect_with_will_message_publishes_the_delayed_will_mqtt5_3_1_2_8() {
    let broker = Broker::start();
    let will_topic = topic("will-0x04");
    let mut w = watcher(broker.addr, &will_topic);
    let id = client_id();
    let connect = V5Connect::new(&id)
        .expiry(10)
        .will(&will_topic, b"asked", Some(1));
    let (victim, _) = connect.connect(broker.addr);
    let closed = Instant::now();
    disconnect_v5(victim, 0x04, None);
    let after = will_arrives(&mut w, &will_topic, b"asked", closed);
    assert!(after >= Duration::from_millis(900), "delay kept: {after:?}");
    forget(broker.addr, &id);
}

// [MQTT5-3.3.2-5] 3.3.1.3: a retained message whose Message Expiry Interval
// has passed is not sent to new subscribers (it is discarded).
#[test]
fn expired_retained_message_is_not_delivered_mqtt5_3_3_2_5() {
    let broker = Broker::start();
    let t = topic("retained-expiry");
    let (mut publisher, _) = V5Connect::new(&client_id()).connect(broker.addr);
    publish1(&mut publisher, &t, b"short-lived", true, Some(1));
    let mut early = watcher(broker.addr, &t);
    let p = early.read();
    assert_eq!(
        Message::decode(&p, V5).expect("PUBLISH").payload,
        b"short-lived"
    );
    assert!(Message::decode(&p, V5).unwrap().retain, "{p:?}");
    sleep(PAST_ONE_SECOND);
    let mut late = watcher(broker.addr, &t);
    late.expect_nothing(QUIET);
    publisher.disconnect();
}

// [MQTT5-3.3.2-6]: a retained message sent to a new subscriber carries its
// Message Expiry Interval minus the time it has waited in the server.
#[test]
fn retained_message_carries_the_remaining_interval_mqtt5_3_3_2_6() {
    let broker = Broker::start();
    let t = topic("retained-remaining");
    let (mut publisher, _) = V5Connect::new(&client_id()).connect(broker.addr);
    publish1(&mut publisher, &t, b"kept", true, Some(10));
    sleep(Duration::from_millis(2100));
    let mut late = watcher(broker.addr, &t);
    let p = late.read();
    let remaining = message_expiry(&p).expect("[MQTT5-3.3.2-6] interval present");
    assert!(
        (7..=8).contains(&remaining),
        "10 s interval after about 2 s: got {remaining}"
    );
    publish1(&mut publisher, &t, b"", true, None); // clean up
    publisher.disconnect();
}

// [MQTT5-3.3.2-6] [MQTT5-3.3.2-5]: a message published on one worker to a
// subscriber on the other (two workers; the acceptor gives each new
// connection to the worker with fewer connections) carries the interval
// counted from when the broker received it: here it waits 2 s in the
// subscriber's session queue behind an unacknowledged message (Receive
// Maximum 1), and arrives with 10 − 2 seconds left.
#[test]
fn routed_message_counts_its_interval_from_receipt_mqtt5_3_3_2_6() {
    let Some(broker) = Broker::spawn_only(&["--workers", "2"]) else {
        return;
    };
    let t = topic("routed-expiry");
    let mut connect = V5Connect::new(&client_id());
    connect.receive_maximum = Some(1);
    let (mut sub, _) = connect.connect(broker.addr);
    sub.sub(&t, 1);
    let (mut publisher, _) = V5Connect::new(&client_id()).connect(broker.addr);
    publish1(&mut publisher, &t, b"first", false, None);
    publish1(&mut publisher, &t, b"second", false, Some(10));
    let first = sub.read();
    assert_eq!(Message::decode(&first, V5).unwrap().payload, b"first");
    sub.expect_nothing(QUIET);
    sleep(Duration::from_millis(1700));
    sub.ack(&Message::decode(&first, V5).unwrap());
    let second = sub.read();
    assert_eq!(Message::decode(&second, V5).unwrap().payload, b"second");
    let remaining = message_expiry(&second).expect("interval present");
    assert!(
        (7..=8).contains(&remaining),
        "10 s interval after about 2 s in the server: got {remaining}"
    );
    sub.ack(&Message::decode(&second, V5).unwrap());
    publisher.disconnect();
    sub.disconnect();
}

// [MQTT5-3.1.2-8] 3.1.2.5: at shutdown every session ends, so a will still
// waiting for its Will Delay Interval is published then, before the
// connections close (the watcher gets it before its DISCONNECT 0x8B).
#[test]
fn pending_delayed_will_is_published_at_shutdown_mqtt5_3_1_2_8() {
    let Some(broker) = Broker::spawn_only(&[]) else {
        return;
    };
    let will_topic = topic("will-shutdown");
    let mut w = watcher(broker.addr, &will_topic);
    let connect =
        V5Connect::new(&client_id())
            .clean(false)
            .expiry(60)
            .will(&will_topic, b"bye", Some(30));
    let (victim, _) = connect.connect(broker.addr);
    victim.abort();
    w.expect_nothing(QUIET);
    drop(broker); // SIGTERM, and waits for the process to exit
    let before = w.expect_closed(WAIT);
    let publishes: Vec<Message> = before
        .iter()
        .filter_map(|p| Message::decode(p, V5))
        .collect();
    assert_eq!(publishes.len(), 1, "one will before the close: {before:?}");
    assert_eq!(
        (publishes[0].topic.as_str(), publishes[0].payload.as_slice()),
        (will_topic.as_str(), &b"bye"[..])
    );
    let last = before.last().expect("packets");
    assert_eq!(
        (last.kind(), last.body.first()),
        (DISCONNECT, Some(&0x8B)),
        "then DISCONNECT 0x8B: {before:?}"
    );
}
