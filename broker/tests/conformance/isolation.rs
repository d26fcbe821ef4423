//! A subscriber that stops reading must not stall the publisher or any other
//! subscriber (ARCHITECTURE.md, "The path of a PUBLISH", step 8).

use crate::common::*;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MESSAGES: u32 = 200;
const SIZE: usize = 64 * 1024;

/// A connection with a 4 KiB receive buffer, so that it stops accepting
/// data almost at once when it does not read.
fn small_buffer_client(addr: SocketAddr) -> Client {
    let mut client = Client::tcp_small_buffer(addr);
    client.send(&Connect::v311(&client_id()).bytes());
    assert_eq!(client.read().bytes(), connack_v3(false, 0));
    client
}

/// Two subscribers that never read (granted QoS 0 and QoS 1), one that
/// reads everything at QoS 1, and an unrelated client. The publisher sends
/// 200 messages of 64 KiB at QoS 1, waiting for each PUBACK: the broker must
/// keep acknowledging, and the reading subscriber must get every message in
/// order. The QoS 0 non-reader gets its 200 deliveries at QoS 0 (and may lose
/// them); the QoS 1 non-reader's session queue fills up.
fn slow_consumers_do_not_stall_the_others(broker: &Broker) {
    let t = topic("slow");
    let mut slow0 = small_buffer_client(broker.addr);
    slow0.sub(&t, 0);
    let mut slow1 = small_buffer_client(broker.addr);
    slow1.sub(&t, 1);
    let mut fast = Client::v311(broker.addr);
    fast.sub(&t, 1);
    let mut bystander = Healthy::new(broker.addr);

    let (done_tx, done_rx) = mpsc::channel();
    let addr = broker.addr;
    let topic_name = t.clone();
    let publisher = std::thread::spawn(move || {
        let mut publisher = Client::v311(addr);
        let start = Instant::now();
        for i in 0..MESSAGES {
            let mut payload = vec![b'p'; SIZE];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            publisher.publish_qos(&topic_name, payload, 1); // PUBACK within 5 s each
        }
        let _ = done_tx.send(start.elapsed());
    });

    for i in 0..MESSAGES {
        let msg = fast.recv_acked();
        assert_eq!(msg.payload.len(), SIZE, "message {i}");
        assert_eq!(
            msg.payload[..4],
            i.to_be_bytes(),
            "message {i} lost or out of order"
        );
    }
    let elapsed = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the publisher stalled behind the slow consumers");
    publisher.join().expect("publisher thread");
    assert!(
        elapsed < Duration::from_secs(10),
        "publishing took {elapsed:?}"
    );
    bystander.round_trip();
    slow0.abort();
    slow1.abort();
}

// 200 messages of 64 KiB to clients that never read, while another
// subscriber receives all of them in order and an unrelated client works.
#[test]
fn slow_consumer_does_not_stall_publisher_or_other_subscribers() {
    let broker = Broker::start();
    slow_consumers_do_not_stall_the_others(&broker);
}

// Same with one worker: the slow and the fast connection share a thread.
#[test]
fn slow_consumer_on_the_same_worker_does_not_stall_it() {
    let Some(broker) = Broker::spawn_only(&["--workers", "1"]) else {
        return;
    };
    slow_consumers_do_not_stall_the_others(&broker);
}

/// A QoS 1 publisher that outruns a subscriber which keeps reading, with a
/// session queue of only 20 messages: the broker must slow the publisher
/// (hold back its PUBACKs and stop reading it) rather than drop at the
/// subscriber's queue. Every message arrives, in order.
fn fast_publisher_is_paced_to_a_reading_subscriber(workers: &str) {
    const COUNT: u32 = 1000;
    let Some(broker) = Broker::spawn_only(&[
        "--workers",
        workers,
        "--max-queued-messages",
        "20",
        "--max-inflight",
        "4",
    ]) else {
        return;
    };
    let t = topic("paced");
    let mut sub = Client::v311(broker.addr);
    sub.sub(&t, 1);
    let addr = broker.addr;
    let topic_name = t.clone();
    let publisher = std::thread::spawn(move || {
        let mut publisher = Client::v311(addr);
        for i in 0..COUNT {
            publisher.publish_qos(&topic_name, i.to_be_bytes(), 1);
        }
    });
    for i in 0..COUNT {
        let msg = sub.recv_acked();
        assert_eq!(
            msg.payload[..],
            i.to_be_bytes(),
            "message {i} lost or out of order"
        );
        if i % 10 == 9 {
            // Slower than the publisher: a few thousand messages a second at most.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    publisher.join().expect("publisher thread");
    sub.expect_nothing(Duration::from_millis(200));
}

// Publisher and subscriber on one worker: the publishing task waits.
#[test]
fn fast_publisher_is_paced_on_the_same_worker() {
    fast_publisher_is_paced_to_a_reading_subscriber("1");
}

// On two workers (the acceptor puts the second connection on the other
// worker): the subscriber's worker stops draining its inbox, and the full
// inbox holds the publisher back.
#[test]
fn fast_publisher_is_paced_across_workers() {
    fast_publisher_is_paced_to_a_reading_subscriber("2");
}
