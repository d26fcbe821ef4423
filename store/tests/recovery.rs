//! The store against real sessions: what a worker records is what a new
//! process reads back, across a reopen of the same data dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use bytestring::ByteString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::*;
use tern_session::*;
use tern_store::{open, StoreConfig, WorkerStore};

fn cfg() -> SessionConfig {
    SessionConfig {
        record_changes: true,
        max_inflight: 2,
        ..SessionConfig::default()
    }
}

fn connect(client_id: &str, clean: bool, expiry: u32) -> Connect {
    let properties = ConnectProperties {
        session_expiry_interval: Some(expiry),
        ..Default::default()
    };
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: clean,
        keep_alive: 0,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties,
    }
}

fn conn(client_id: &str, existing: Option<Session>, now: Instant) -> Connection {
    let c = connect(client_id, false, 3600);
    let check = Connection::check_connect(&c, &cfg()).unwrap();
    Connection::new(now, c, existing, check, cfg())
}

fn message(topic: &str, payload: &'static [u8], qos: QoS) -> Arc<Publish> {
    let properties = PublishProperties {
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    Arc::new(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: None,
        properties,
        payload: Bytes::from_static(payload),
    })
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn drain(store: &mut WorkerStore, conn: &mut Connection) {
    while let Some(c) = conn.poll_change() {
        store.session_changed(&conn.client_id().clone(), c);
    }
    while conn.poll_transmit().is_some() {}
}

fn subscribe(conn: &mut Connection, now: Instant, filter: &str) {
    conn.handle_packet(
        now,
        Packet::Subscribe(Subscribe {
            packet_id: pid(100),
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    ..Default::default()
                },
            )],
            properties: SubscribeProperties {
                subscription_identifier: Some(7),
                ..Default::default()
            },
        }),
    )
    .unwrap();
    while conn.poll_event().is_some() {}
    conn.complete_subscribe(pid(100), vec![ReasonCode(2)]);
}

/// Two sessions share a message (stored once); one has a QoS 2 message
/// released and a QoS 1 inflight, both have queued messages; a retained
/// message is set and another cleared; after a reopen everything is back,
/// and the shared message is one record.
#[test]
fn sessions_retained_and_wills_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        data_dir: dir.path().to_owned(),
        repair: false,
    };
    let now = Instant::now();
    let mut rec = open(&config, 2).unwrap();
    assert_eq!(rec.report.sessions, 0);
    let store = &mut rec.workers[1].store;
    let mut a = conn("a", None, now);
    let mut b = conn("b", None, now);
    store.session_opened(a.session(), false);
    store.session_opened(b.session(), false);
    subscribe(&mut a, now, "t/#");
    subscribe(&mut b, now, "t/+");
    drain(store, &mut a);
    drain(store, &mut b);
    let shared = message("t/1", b"shared", QoS::ExactlyOnce);
    for (m, q) in [
        (shared.clone(), QoS::ExactlyOnce),
        (message("t/2", b"two", QoS::AtLeastOnce), QoS::AtLeastOnce),
        (message("t/3", b"three", QoS::AtLeastOnce), QoS::AtLeastOnce),
    ] {
        let ids = [7u32];
        let mut offer = Offer::new(&m, now, q);
        offer.subscription_identifiers = &ids;
        a.deliver(now, &offer);
        b.deliver(now, &Offer::new(&m, now, q));
    }
    // a: PUBREC for 1 (now awaiting PUBCOMP), 2 inflight, 3 queued.
    a.handle_packet(now, Packet::PubRec(PubResp::new(pid(1))))
        .unwrap();
    // b: the first two acked; the third moves into the window.
    b.handle_packet(now, Packet::PubRec(PubResp::new(pid(1))))
        .unwrap();
    b.handle_packet(now, Packet::PubComp(PubResp::new(pid(1))))
        .unwrap();
    b.handle_packet(now, Packet::PubAck(PubResp::new(pid(2))))
        .unwrap();
    drain(store, &mut a);
    drain(store, &mut b);
    let a_inflight = a.session().inflight();
    let b_inflight = b.session().inflight();
    let closed = Instant::now();
    let a_session = a
        .handle_close(closed, CloseReason::ClientDisconnect)
        .session
        .unwrap();
    let b_session = b
        .handle_close(closed, CloseReason::ClientDisconnect)
        .session
        .unwrap();
    store.session_offline(&a_session, closed);
    store.session_offline(&b_session, closed);
    let will = message("w", b"bye", QoS::AtLeastOnce);
    store.will_scheduled("a", &will, now + Duration::from_secs(30));
    let kept = message("r/kept", b"R", QoS::AtLeastOnce);
    store.retained_set(&kept, 5, Some(now + Duration::from_secs(3600)));
    let gone = message("r/gone", b"G", QoS::AtMostOnce);
    rec.workers[0].store.retained_set(&gone, 3, None);
    let store = &mut rec.workers[1].store;
    store.retained_cleared("r/gone", 4);
    assert_eq!(store.counts(), (2, 3), "the shared message is stored once");
    for w in &mut rec.workers {
        w.store.commit().unwrap();
        w.store.sync_handle().sync().unwrap();
    }
    drop(rec);

    let rec = open(&config, 2).unwrap();
    assert_eq!(rec.report.sessions, 2, "{:?}", rec.report);
    assert_eq!(
        rec.report.damaged + rec.report.orphans,
        0,
        "{:?}",
        rec.report
    );
    assert_eq!(rec.retained.len(), 1, "the later clear wins");
    assert_eq!(rec.retained[0].publish.topic, "r/kept");
    assert_eq!(rec.retained[0].publish.payload, Bytes::from_static(b"R"));
    assert!(rec.retained_order >= 5);
    let left = rec.retained[0]
        .expires_at
        .expect("its expiry is kept")
        .saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(3590),
        "still about an hour to go: {left:?}"
    );
    let w = &rec.workers[1];
    assert_eq!(w.wills.len(), 1);
    assert_eq!(w.wills[0].will.payload, will.payload);
    let due_in = w.wills[0].due.saturating_duration_since(Instant::now());
    assert!(
        due_in > Duration::from_secs(25),
        "the will is still due in ~30 s: {due_in:?}"
    );
    let find = |id: &str| {
        w.sessions
            .iter()
            .find(|s| s.session.client_id() == id)
            .unwrap()
    };
    let (ra, rb) = (find("a"), find("b"));
    assert_eq!(ra.session.inflight(), a_inflight);
    assert_eq!(rb.session.inflight(), b_inflight);
    assert_eq!(ra.session.queued_len(), a_session.queued_len());
    assert_eq!(
        (b_inflight.len(), rb.session.queued_len()),
        (1, 0),
        "b's third moved inflight"
    );
    assert_eq!(
        ra.session
            .subscription("t/#")
            .map(|(o, i)| (o.qos, o.no_local, i)),
        Some((QoS::ExactlyOnce, true, Some(7)))
    );
    let closed_at = ra.closed_at.unwrap();
    let off = closed_at.max(closed).duration_since(closed_at.min(closed));
    assert!(off < Duration::from_millis(5), "{off:?}");
    assert_eq!(rec.workers[1].store.counts(), (2, 3));

    // Resumed, a re-sends in the order it sent and got PUBRECs: the QoS 1
    // PUBLISH 2 with DUP, its user property and subscription id, then
    // PUBREL 1 (PUBREC'd after 2 was sent); the third waits for room in
    // the window of 2.
    let session = rec
        .workers
        .into_iter()
        .nth(1)
        .unwrap()
        .sessions
        .into_iter()
        .find(|s| s.session.client_id() == "a")
        .unwrap()
        .session;
    let mut a = conn("a", Some(session), Instant::now());
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit() {
        match t {
            Transmit::Packet(Packet::PubRel(r)) => out.push(format!("PUBREL {}", r.packet_id)),
            Transmit::Publish(p) => out.push(format!(
                "PUBLISH {:?} dup={} {} {:?} ids={:?}",
                p.packet_id.map(PacketId::get),
                p.dup,
                p.msg.topic,
                p.msg.properties.user_properties,
                p.subscription_identifiers
            )),
            _ => {}
        }
    }
    assert_eq!(
        out,
        [
            "PUBLISH Some(2) dup=true t/2 [(\"k\", \"v\")] ids=[7]",
            "PUBREL 1",
        ]
    );
}

/// A session whose expiry passed while nothing ran is gone at the next open.
#[test]
fn a_session_that_expired_while_down_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        data_dir: dir.path().to_owned(),
        repair: false,
    };
    let long_ago = Instant::now()
        .checked_sub(Duration::from_secs(120))
        .unwrap();
    let mut rec = open(&config, 1).unwrap();
    let store = &mut rec.workers[0].store;
    let c = connect("short", false, 60);
    let check = Connection::check_connect(&c, &cfg()).unwrap();
    let mut conn = Connection::new(long_ago, c, None, check, cfg());
    store.session_opened(conn.session(), false);
    subscribe(&mut conn, long_ago, "x");
    drain(store, &mut conn);
    let s = conn
        .handle_close(long_ago, CloseReason::ClientDisconnect)
        .session
        .unwrap();
    store.session_offline(&s, long_ago);
    store.commit().unwrap();
    drop(rec);
    let rec = open(&config, 1).unwrap();
    assert_eq!((rec.report.sessions, rec.report.expired_sessions), (0, 1));
    drop(rec);
    let rec = open(&config, 1).unwrap();
    assert_eq!(rec.report.expired_sessions, 0, "deleted the first time");
    assert_eq!(rec.report.orphans, 0);
}

/// Fewer workers than the data dir was written with: the extra database's
/// sessions move to the others and the extra directory goes.
#[test]
fn fewer_workers_take_over_the_extra_databases() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        data_dir: dir.path().to_owned(),
        repair: false,
    };
    let now = Instant::now();
    let mut rec = open(&config, 3).unwrap();
    for (i, w) in rec.workers.iter_mut().enumerate() {
        let id = format!("c{i}");
        let mut c = conn(&id, None, now);
        w.store.session_opened(c.session(), false);
        subscribe(&mut c, now, "t");
        drain(&mut w.store, &mut c);
        let m = message("t", b"q", QoS::AtLeastOnce);
        c.deliver(now, &Offer::new(&m, now, QoS::AtLeastOnce));
        drain(&mut w.store, &mut c);
        w.store.commit().unwrap();
    }
    drop(rec);
    let rec = open(&config, 1).unwrap();
    assert_eq!(rec.workers.len(), 1);
    assert_eq!(rec.workers[0].sessions.len(), 3);
    assert!(!dir.path().join("worker-2").exists());
    drop(rec);
    let rec = open(&config, 1).unwrap();
    assert_eq!(rec.workers[0].sessions.len(), 3, "moved for good");
    for s in &rec.workers[0].sessions {
        assert_eq!(s.session.inflight().len(), 1, "{}", s.session.client_id());
    }
}
