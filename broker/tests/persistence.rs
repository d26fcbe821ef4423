//! `persistence = "on"`: what the protocol promised to keep survives a
//! SIGKILL of the real binary, restarted on the same data dir.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fresh data dir, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tern-store-{}", client_id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn broker(dir: &Path, durability: &str) -> Option<Broker> {
    Broker::spawn_only(&[
        "--persistence",
        "on",
        "--data-dir",
        dir.to_str().unwrap(),
        "--durability",
        durability,
        "--max-queued-messages",
        "100000",
    ])
}

/// Reads PUBLISH packets (acknowledging each) until none comes for `quiet`.
fn drain(c: &mut Client, quiet: Duration) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        match c.try_read(quiet) {
            Ok(p) => {
                let m = Message::decode(&p, c.version)
                    .unwrap_or_else(|| panic!("not a PUBLISH: {p:?}"));
                c.ack(&m);
                got.push(m);
            }
            Err(ReadError::Timeout) => return got,
            Err(e) => panic!("subscriber read failed: {e:?}"),
        }
    }
}

// A v3.1.1 Clean Session 0 subscriber (QoS 1) and a v5 one with a Session
// Expiry Interval (QoS 2) are offline; QoS 1 and QoS 2 messages for them
// and a retained message are acknowledged; SIGKILL; after a restart both
// sessions are present and get every message once, in order, and the
// retained message is there. A v5 session that expires after 1 s is gone.
#[test]
fn sessions_queues_and_retained_messages_survive_sigkill() {
    let dir = DataDir::new();
    let Some(b) = broker(&dir.0, "sync") else {
        return;
    };
    let t = topic("keep");
    let (one, two, brief) = (client_id(), client_id(), client_id());
    let s1 = Connect::v311(&one).clean(false);
    let s2 = Connect::new(V5, &two).clean(false).session_expiry(3600);
    let s3 = Connect::new(V5, &brief).clean(false).session_expiry(1);
    for (c, qos) in [(&s1, 1), (&s2, 2), (&s3, 1)] {
        let (mut sub, present) = Client::accepted(b.addr, c);
        assert!(!present);
        sub.sub(&format!("{t}/#"), qos);
        sub.disconnect_and_wait();
    }
    let mut publisher = Client::v311(b.addr);
    for i in 0..5 {
        publisher.publish_qos(&format!("{t}/q1"), format!("one-{i}"), 1);
        publisher.publish_qos(&format!("{t}/q2"), format!("two-{i}"), 2);
    }
    let retained = format!("{t}-retained");
    publisher.publish(&Message::new(&retained, "kept").qos(1, 900).retain(true));
    b.kill9();
    // The brief session's expiry passes while the broker is down.
    std::thread::sleep(Duration::from_millis(1500));

    let b = broker(&dir.0, "sync").unwrap();
    let (mut sub1, present) = Client::accepted(b.addr, &s1);
    assert!(present, "[MQTT-3.2.2-2] the v3.1.1 session was kept");
    let got: Vec<String> = drain(&mut sub1, Duration::from_millis(500))
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect();
    let want: Vec<String> = (0..5)
        .flat_map(|i| [format!("one-{i}"), format!("two-{i}")])
        .collect();
    assert_eq!(got, want, "QoS 1 subscriber: every message, in order");
    let (mut sub2, present) = Client::accepted(b.addr, &s2);
    assert!(present, "the v5 session was kept");
    let got = drain(&mut sub2, Duration::from_millis(500));
    assert!(
        got.iter().all(|m| m.qos == 2 || m.topic.ends_with("q1")),
        "{got:?}"
    );
    let got: Vec<String> = got
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect();
    assert_eq!(got, want, "QoS 2 subscriber: every message once, in order");
    let (_s3, present) = Client::accepted(b.addr, &s3.clean(false));
    assert!(
        !present,
        "the 1 s session expired while the broker was down"
    );
    let mut fresh = Client::v311(b.addr);
    fresh.sub(&retained, 1);
    let m = fresh.recv_acked();
    assert_eq!((m.payload.as_slice(), m.retain), (&b"kept"[..], true));
}

/// Numbers a publisher saw acknowledged, and whether it is still running.
#[derive(Default)]
struct Acked {
    numbers: Mutex<Vec<u32>>,
}

/// Publishes `tag-N` with `qos` until the connection fails; records each N
/// whose PUBACK/PUBCOMP arrived.
fn publish_until_killed(
    addr: std::net::SocketAddr,
    t: String,
    qos: u8,
    acked: Arc<Acked>,
    stop: Arc<AtomicBool>,
) {
    let mut c = Client::v311(addr);
    for n in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let pid = c.next_pid();
        let msg = Message::new(&t, n.to_string()).qos(qos, pid);
        if c.send_lossy(&msg.encode(c.version)).is_err() {
            return;
        }
        let want = if qos == 1 { PUBACK } else { PUBREC };
        match read_kind(&mut c, want) {
            Some(()) if qos == 1 => {}
            Some(()) => {
                if c.send_lossy(&ack(PUBREL, pid)).is_err() || read_kind(&mut c, PUBCOMP).is_none()
                {
                    return;
                }
            }
            None => return,
        }
        acked.numbers.lock().unwrap().push(n);
    }
}

fn read_kind(c: &mut Client, kind: u8) -> Option<()> {
    loop {
        match c.try_read(Duration::from_secs(5)) {
            Ok(p) if p.kind() == kind => return Some(()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

// The crash test: two offline persistent subscribers (QoS 1 and QoS 2),
// a QoS 1 and a QoS 2 publisher sending as fast as the acknowledgements
// come, SIGKILL at a random moment, restart. Every message a publisher saw
// acknowledged is delivered: QoS 1 at least once, QoS 2 exactly once, in
// order per publisher. Several rounds, each with its own kill point.
#[test]
fn nothing_acknowledged_is_lost_at_a_random_kill() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for round in 0..3u32 {
        let dir = DataDir::new();
        let Some(b) = broker(&dir.0, "sync") else {
            return;
        };
        let t = topic("crash");
        let (id1, id2) = (client_id(), client_id());
        let s1 = Connect::v311(&id1).clean(false);
        let s2 = Connect::new(V5, &id2).clean(false).session_expiry(3600);
        for (c, qos) in [(&s1, 1), (&s2, 2)] {
            let (mut sub, _) = Client::accepted(b.addr, c);
            sub.sub(&format!("{t}/#"), qos);
            sub.disconnect_and_wait();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Vec<Arc<Acked>> = (0..2).map(|_| Arc::default()).collect();
        let threads: Vec<_> = [(1u8, "a"), (2u8, "b")]
            .into_iter()
            .zip(&acked)
            .map(|((qos, leg), acked)| {
                let (addr, t, acked, stop) = (
                    b.addr,
                    format!("{t}/{leg}"),
                    Arc::clone(acked),
                    Arc::clone(&stop),
                );
                std::thread::spawn(move || publish_until_killed(addr, t, qos, acked, stop))
            })
            .collect();
        // Both publishers get going first (an fsync may be slow on a loaded
        // machine), then the kill comes at a random point.
        wait_for(
            Duration::from_secs(20),
            "a first acknowledgement for each publisher",
            || {
                acked
                    .iter()
                    .all(|a| !a.numbers.lock().unwrap().is_empty())
                    .then_some(())
            },
        );
        let wait = 50 + (seed.wrapping_mul(round + 7) % 600);
        std::thread::sleep(Duration::from_millis(u64::from(wait)));
        b.kill9();
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        let acked: Vec<Vec<u32>> = acked
            .iter()
            .map(|a| a.numbers.lock().unwrap().clone())
            .collect();
        assert!(
            !acked[0].is_empty() && !acked[1].is_empty(),
            "round {round}: nothing acknowledged in {wait} ms"
        );

        let b = broker(&dir.0, "sync").unwrap();
        for (c, qos) in [(&s1, 1u8), (&s2, 2u8)] {
            let (mut sub, present) = Client::accepted(b.addr, c);
            assert!(present, "round {round}: session kept");
            let got = drain(&mut sub, Duration::from_millis(700));
            let mut by_leg: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for m in got {
                let n = String::from_utf8(m.payload).unwrap().parse().unwrap();
                by_leg.entry(m.topic).or_default().push(n);
            }
            for (leg, acked) in ["a", "b"].into_iter().zip(&acked) {
                let seen = by_leg.remove(&format!("{t}/{leg}")).unwrap_or_default();
                for n in acked {
                    assert!(seen.contains(n), "round {round} (kill after {wait} ms): acknowledged {leg}-{n} lost for the QoS {qos} subscriber; got {} of {}", seen.len(), acked.len());
                }
                let mut dedup = seen.clone();
                dedup.dedup();
                assert!(
                    dedup.windows(2).all(|w| w[0] < w[1]),
                    "round {round}: {leg} out of order: {seen:?}"
                );
                if qos == 2 && leg == "b" {
                    assert_eq!(dedup, seen, "round {round}: QoS 2 delivered twice");
                }
            }
        }
        drop(b);
    }
}

/// A small tmpfs mounted for one test, unmounted when dropped (after the
/// broker using it, which must be declared after this guard, is gone).
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` (the test is skipped, and says why) when this process may not
    /// mount a tmpfs (it needs root).
    fn mount(bytes: u64) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("tern-full-{}", client_id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!(
                "SKIPPED: cannot mount a tmpfs at {} (needs root)",
                dir.display()
            );
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

// A full disk: a QoS 1 message for a persistent session that the store
// cannot keep is refused, with PUBACK 0x97 (v5) or by closing the
// connection (v3, which has no refusing PUBACK), never acknowledged; QoS 0
// still flows to a clean subscriber.
#[test]
fn a_full_disk_refuses_what_it_cannot_keep() {
    let Some(disk) = SmallDisk::mount(2 * 1024 * 1024) else {
        return;
    };
    let data = disk.0.join("data");
    let Some(b) = Broker::spawn_only(&[
        "--workers",
        "1",
        "--persistence",
        "on",
        "--data-dir",
        data.to_str().unwrap(),
    ]) else {
        return;
    };
    let t = topic("full");
    let keeper = Connect::new(V5, &client_id())
        .clean(false)
        .session_expiry(3600);
    let (mut sub, _) = Client::accepted(b.addr, &keeper);
    sub.sub(&format!("{t}/#"), 1);
    sub.disconnect_and_wait();
    let mut clean = Client::v311(b.addr);
    clean.sub("other/x", 0);

    let (mut publisher, _) = Client::accepted(b.addr, &Connect::new(V5, &client_id()));
    let payload = vec![b'x'; 64 * 1024];
    let mut acked = 0;
    let mut refused = None;
    for i in 0..200 {
        let pid = publisher.next_pid();
        publisher.send(
            &Message::new(&format!("{t}/a"), payload.clone())
                .qos(1, pid)
                .encode(V5),
        );
        let ack = publisher.read_until("PUBACK", |p| p.kind() == PUBACK);
        let reason = ack.body.get(2).copied().unwrap_or(0);
        if reason == 0 {
            acked += 1;
            continue;
        }
        refused = Some((i, reason));
        break;
    }
    let (at, reason) = refused.expect("a 2 MiB disk refuses before 200 × 64 KiB");
    assert_eq!(
        reason, 0x97,
        "PUBACK reason 0x97 Quota exceeded (3.4.2.1), after {acked} acknowledged"
    );
    assert!(
        acked > 0 && at == acked,
        "{acked} acknowledged before the refusal at {at}"
    );
    let pid = publisher.next_pid();
    publisher.send(
        &Message::new(&format!("{t}/b"), "small")
            .qos(1, pid)
            .encode(V5),
    );
    let ack = publisher.read_until("PUBACK", |p| p.kind() == PUBACK);
    assert_eq!(
        ack.body.get(2).copied(),
        Some(0x97),
        "still refused: {ack:?}"
    );

    let mut v3 = Client::v311(b.addr);
    let pid = v3.next_pid();
    v3.send(
        &Message::new(&format!("{t}/c"), "v3")
            .qos(1, pid)
            .encode(V311),
    );
    let before = v3.expect_closed(Duration::from_secs(5));
    assert!(
        before.iter().all(|p| p.kind() != PUBACK),
        "a v3 client gets no PUBACK: {before:?}"
    );

    let mut p0 = Client::v311(b.addr);
    p0.publish0("other/x", "still here");
    assert_eq!(clean.recv().payload, b"still here");
    drop(b);
    drop(disk);
}

// [MQTT5-3.1.3-9] a delayed will outlives a graceful restart: the session
// of its client is kept, so the shutdown does not end it and publishes
// nothing; after the restart the will is published when its delay is over.
#[test]
fn a_delayed_will_waits_across_a_restart() {
    let dir = DataDir::new();
    let Some(b) = broker(&dir.0, "sync") else {
        return;
    };
    let will_topic = topic("will-kept");
    let (mut before, _) = Client::accepted(b.addr, &Connect::new(V5, &client_id()));
    before.sub(&will_topic, 1);
    let victim = Connect::new(V5, &client_id())
        .clean(false)
        .session_expiry(3600)
        .will(&will_topic, b"gone", 1, false)
        .will_delay(6);
    let (c, _) = Client::accepted(b.addr, &victim);
    let closed = std::time::Instant::now();
    c.abort();
    before.ping();
    // SIGTERM: a graceful shutdown, which publishes nothing here.
    drop(b);
    let seen = before
        .closed_within(Duration::from_secs(5))
        .unwrap_or_default();
    assert!(
        seen.iter().all(|p| p.kind() != PUBLISH),
        "no will at the shutdown: {seen:?}"
    );
    let b = broker(&dir.0, "sync").unwrap();
    let (mut after, _) = Client::accepted(b.addr, &Connect::new(V5, &client_id()));
    after.sub(&will_topic, 1);
    assert!(
        closed.elapsed() < Duration::from_secs(6),
        "restarted too late for this test"
    );
    let p = loop {
        match after.try_read(Duration::from_secs(10)) {
            Ok(p) if p.kind() == PUBLISH => break p,
            Ok(_) => {}
            Err(e) => panic!("no will within 10 s of the restart: {e:?}"),
        }
    };
    let msg = Message::decode(&p, V5).expect("PUBLISH");
    assert_eq!(
        (msg.topic.as_str(), msg.payload.as_slice()),
        (will_topic.as_str(), &b"gone"[..])
    );
    assert!(
        closed.elapsed() >= Duration::from_millis(5500),
        "published {:?} after the close, before its 6 s delay",
        closed.elapsed()
    );
}
