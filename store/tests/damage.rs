//! A damaged store: a record that fails its checksum stops the start with
//! an error naming the database and the key, unless `repair` is set, which
//! logs, counts and deletes it; a journal cut short (a crash mid-write)
//! opens with what was whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytestring::ByteString;
use std::path::Path;
use std::time::Instant;
use tern_codec::*;
use tern_session::*;
use tern_store::{open, StoreConfig, StoreError};

fn config(dir: &Path, repair: bool) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        repair,
    }
}

/// One persistent session with one subscription, committed and synced.
fn write_one_session(dir: &Path) {
    let cfg = SessionConfig {
        record_changes: true,
        ..SessionConfig::default()
    };
    let c = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: false,
        keep_alive: 0,
        client_id: ByteString::from("dam"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    let now = Instant::now();
    let check = Connection::check_connect(&c, &cfg).unwrap();
    let mut conn = Connection::new(now, c, None, check, cfg);
    let mut rec = open(&config(dir, false), 1).unwrap();
    let store = &mut rec.workers[0].store;
    store.session_opened(conn.session(), false);
    conn.handle_packet(
        now,
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            filters: vec![("d/#".into(), SubscriptionOptions::default())],
            properties: SubscribeProperties::default(),
        }),
    )
    .unwrap();
    while conn.poll_event().is_some() {}
    conn.complete_subscribe(PacketId::new(1).unwrap(), vec![ReasonCode(0)]);
    while let Some(change) = conn.poll_change() {
        store.session_changed("dam", change);
    }
    store.commit().unwrap();
    store.sync_handle().sync().unwrap();
}

#[test]
fn a_damaged_record_stops_the_start_or_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    write_one_session(dir.path());
    {
        // Flip the last byte (the checksum) of the session's record.
        let db = fjall::Database::builder(dir.path().join("worker-0"))
            .open()
            .unwrap();
        let ks = db
            .keyspace("tern", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let mut value = ks
            .get(b"Sdam")
            .unwrap()
            .expect("the session record")
            .to_vec();
        *value.last_mut().unwrap() ^= 0xFF;
        ks.insert(b"Sdam", value).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let err = open(&config(dir.path(), false), 1).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        text.contains("worker-0") && text.contains("--repair") && text.contains("5364616d"),
        "{text}"
    );

    let rec = open(&config(dir.path(), true), 1).unwrap();
    assert_eq!(rec.report.damaged, 1, "{:?}", rec.report);
    assert_eq!(rec.report.sessions, 0, "the damaged session is gone");
    assert!(
        rec.report.orphans >= 1,
        "its subscription went with it: {:?}",
        rec.report
    );
    drop(rec);
    let rec = open(&config(dir.path(), false), 1).unwrap();
    assert_eq!(
        (rec.report.damaged, rec.report.orphans),
        (0, 0),
        "repaired for good"
    );
}

#[test]
fn a_journal_cut_short_opens_with_what_was_whole() {
    let dir = tempfile::tempdir().unwrap();
    write_one_session(dir.path());
    let journal = dir.path().join("worker-0").join("0.jnl");
    let len = std::fs::metadata(&journal).unwrap().len();
    assert!(len > 16, "{len}");
    // A crash in the middle of the last write: its tail is missing.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let rec = open(&config(dir.path(), false), 1).expect("opens");
    assert_eq!(rec.report.damaged, 0);
    assert!(rec.report.sessions <= 1);
}
