//! Connections that were idle long enough for the broker to release their
//! buffers and park them (no task per idle connection): everything a live
//! connection does must still happen. A connection is quiet after one idle
//! sweep (every 2 s) and parked at the next, so `PARKED` of silence parks
//! it. (A connection that only connected is parked right after its CONNACK:
//! most other tests cover that case.)

use crate::common::*;
use std::time::{Duration, Instant};

/// Long enough of silence for a connection to be parked.
const PARKED: Duration = Duration::from_millis(5000);

// [MQTT-3.3.4-1] [MQTT-3.12.4-1]: a parked subscriber still gets what is
// published to it, acknowledges it, and answers PINGREQ.
#[test]
fn parked_subscriber_receives_and_answers_pingreq() {
    let broker = Broker::start();
    let t = topic("parked-sub");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let mut publisher = Client::v311(broker.addr);
    publisher.ping();
    std::thread::sleep(PARKED);
    publisher.publish(&Message::new(&t, b"wake up").qos(1, 1));
    let msg = sub.recv_acked();
    assert_eq!(msg.payload, b"wake up");
    // Parked again after the delivery: the next one must arrive too.
    std::thread::sleep(PARKED);
    publisher.publish_qos(&t, b"again", 0);
    assert_eq!(sub.recv().payload, b"again");
    std::thread::sleep(PARKED);
    sub.ping();
    publisher.ping();
}

// [MQTT-3.1.4-2] [MQTT5-3.1.4-3] [MQTT5-3.14.2-1]: a parked MQTT 5 connection is taken over:
// it gets DISCONNECT 0x8E (session taken over) and is closed.
#[test]
fn parked_connection_is_taken_over() {
    let broker = Broker::start();
    let id = client_id();
    let (mut first, _) = Client::accepted(broker.addr, &Connect::v5(&id));
    first.ping();
    std::thread::sleep(PARKED);
    let (mut second, _) = Client::accepted(broker.addr, &Connect::v5(&id));
    let before = first.expect_closed(WAIT);
    let disconnect = before
        .iter()
        .find(|p| p.kind() == DISCONNECT)
        .expect("v5: DISCONNECT before the takeover close");
    assert_eq!(disconnect.body.first().copied(), Some(0x8E));
    second.ping();
}

// [MQTT-3.1.2-24] [MQTT-3.1.2-8]: a parked connection is closed once 1.5 ×
// its keep-alive passes without a packet, and its will is published.
#[test]
fn parked_connection_expires_after_one_and_a_half_keep_alives() {
    let broker = Broker::start();
    let will_topic = topic("parked-will");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id())
        .keep_alive(4)
        .will(&will_topic, b"expired", 1, false);
    let (mut victim, _) = Client::accepted(broker.addr, &connect);
    victim.ping(); // parked only after a sweep released its buffers
    let start = Instant::now();
    victim.expect_closed_silently(Duration::from_secs(9));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(6000),
        "closed after {elapsed:?}, before 1.5 × the keep-alive of 4 s"
    );
    assert!(
        elapsed <= Duration::from_millis(7500),
        "closed only after {elapsed:?}"
    );
    let will = watcher.recv_acked();
    assert_eq!(will.payload, b"expired");
}

// [MQTT5-3.14.2-1]: at shutdown a parked MQTT 5 connection gets DISCONNECT
// 0x8B (server shutting down) before the close.
#[test]
fn parked_connection_gets_server_shutting_down() {
    let Some(broker) = Broker::spawn_only(&[]) else {
        return;
    };
    let (mut c, _) = Client::accepted(broker.addr, &Connect::v5(&client_id()));
    c.sub(&topic("parked-shutdown"), 0);
    std::thread::sleep(PARKED);
    drop(broker); // SIGTERM, waits for the exit
    let before = c.expect_closed(WAIT);
    let disconnect = before
        .iter()
        .find(|p| p.kind() == DISCONNECT)
        .expect("v5: DISCONNECT at shutdown");
    assert_eq!(disconnect.body.first().copied(), Some(0x8B));
}

// A parked client that goes away abnormally is noticed (EOF wakes it) and
// its will is published [MQTT-3.1.2-8].
#[test]
fn parked_connection_notices_the_peer_closing() {
    let broker = Broker::start();
    let will_topic = topic("parked-abort");
    let mut watcher = Client::v311(broker.addr);
    watcher.sub(&will_topic, 1);
    let connect = Connect::v311(&client_id()).will(&will_topic, b"gone", 1, false);
    let (mut victim, _) = Client::accepted(broker.addr, &connect);
    victim.ping();
    std::thread::sleep(PARKED);
    victim.abort();
    assert_eq!(watcher.recv_acked().payload, b"gone");
}
