use super::*;
use bytes::Bytes;
use std::time::Duration;
use tern_codec::QoS;

fn publish(topic: &str, payload: &'static [u8]) -> Arc<Publish> {
    Arc::new(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: topic.into(),
        packet_id: None,
        properties: Default::default(),
        payload: Bytes::from_static(payload),
    })
}

fn msg(topic: &str, payload: &'static [u8]) -> RetainedMessage {
    RetainedMessage {
        publish: publish(topic, payload),
        expires_at: None,
    }
}

fn expiring(topic: &str, payload: &'static [u8], at: Instant) -> RetainedMessage {
    RetainedMessage {
        publish: publish(topic, payload),
        expires_at: Some(at),
    }
}

/// Every unexpired message `filter` matches, the whole replay at once.
fn matching_messages(
    store: &RetainedStore,
    filter: &str,
    now: Instant,
    out: &mut Vec<RetainedMessage>,
) {
    let mut cursor = RetainedCursor::new(filter);
    while !cursor.is_done() {
        store.next_matches(&mut cursor, now, usize::MAX, usize::MAX, out);
    }
}

fn topics(store: &RetainedStore, filter: &str, now: Instant) -> Vec<String> {
    let mut out = Vec::new();
    matching_messages(store, filter, now, &mut out);
    let mut t: Vec<String> = out.iter().map(|m| m.publish.topic.to_string()).collect();
    t.sort();
    t
}

#[test]
fn set_replace_and_delete() {
    let now = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::UNLIMITED);
    assert!(store.is_empty());
    assert_eq!(store.set(msg("a/b", b"one")), Ok(RetainOutcome::Stored));
    assert_eq!(store.len(), 1);
    assert_eq!(store.bytes(), 3 + 3);
    assert_eq!(
        store.set(msg("a/b", b"second")),
        Ok(RetainOutcome::Replaced)
    );
    assert_eq!(store.len(), 1);
    assert_eq!(store.bytes(), 3 + 6);
    assert_eq!(&store.get("a/b", now).unwrap().payload[..], b"second");
    // An empty payload deletes and is not stored itself.
    assert_eq!(store.set(msg("a/b", b"")), Ok(RetainOutcome::Deleted));
    assert_eq!(
        store.set(msg("a/b", b"")),
        Ok(RetainOutcome::NothingToDelete)
    );
    assert!(store.get("a/b", now).is_none());
    assert_eq!(store.len(), 0);
    assert_eq!(store.bytes(), 0);
    assert!(topics(&store, "#", now).is_empty());
}

#[test]
fn wildcard_retrieval() {
    let now = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::default());
    for t in [
        "home/kitchen/temp",
        "home/kitchen/hum",
        "home/hall/temp",
        "home",
        "office/temp",
        "$SYS/broker/uptime",
        "/lead",
    ] {
        store.set(msg(t, b"x")).unwrap();
    }
    assert_eq!(
        topics(&store, "home/+/temp", now),
        vec!["home/hall/temp", "home/kitchen/temp"]
    );
    assert_eq!(
        topics(&store, "home/#", now),
        vec![
            "home",
            "home/hall/temp",
            "home/kitchen/hum",
            "home/kitchen/temp"
        ]
    );
    assert_eq!(topics(&store, "+/temp", now), vec!["office/temp"]);
    assert_eq!(topics(&store, "+/+", now), vec!["/lead", "office/temp"]);
    assert_eq!(topics(&store, "#", now).len(), 6, "no $SYS under #");
    assert!(topics(&store, "+/broker/uptime", now).is_empty());
    assert_eq!(topics(&store, "$SYS/#", now), vec!["$SYS/broker/uptime"]);
    assert_eq!(topics(&store, "home", now), vec!["home"]);
    assert!(topics(&store, "home/kitchen", now).is_empty());
}

// The broker's own `$SYS` topics are stored beside the clients' but never
// counted against the limits, nor refused: a store full of client messages
// still takes `$SYS` updates, and `$SYS` topics take no client's room.
#[test]
fn sys_topics_do_not_count_against_the_limits() {
    let now = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits {
        max_messages: 2,
        max_bytes: 12,
    });
    let sys = [
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS",
    ];
    for t in sys {
        assert_eq!(
            store.set(msg(t, b"12345")),
            Ok(RetainOutcome::Stored),
            "{t}"
        );
    }
    assert_eq!(store.usage(), RetainedUsage::default());
    // `$SYSTEM` and `$share`-like `$` topics are not the broker's: counted.
    store.set(msg("a", b"12345")).unwrap(); // 6 bytes
    store.set(msg("$SYSX", b"1")).unwrap(); // 6 bytes
    assert_eq!(
        store.usage(),
        RetainedUsage {
            messages: 2,
            bytes: 12
        }
    );
    assert_eq!(store.set(msg("c", b"1")), Err(RetainError::Full));
    // Full for clients, still open to `$SYS`, new topics and replacements.
    assert_eq!(
        store.set(msg("$SYS/broker/load", b"123456789012345")),
        Ok(RetainOutcome::Stored)
    );
    assert_eq!(
        store.set(msg("$SYS/broker/uptime", b"1234567890123456")),
        Ok(RetainOutcome::Replaced)
    );
    assert_eq!(store.len(), 6);
    assert_eq!(store.usage().messages, 2);
    // Removing `$SYS` frees no client room; removing a client's does.
    assert_eq!(store.set(msg("$SYS", b"")), Ok(RetainOutcome::Deleted));
    assert_eq!(store.set(msg("c", b"1")), Err(RetainError::Full));
    assert_eq!(store.set(msg("$SYSX", b"")), Ok(RetainOutcome::Deleted));
    assert_eq!(store.set(msg("c", b"1")), Ok(RetainOutcome::Stored));
    assert_eq!(
        store.usage(),
        RetainedUsage {
            messages: 2,
            bytes: 8
        }
    );
    assert_eq!(store.bytes(), 8 + (18 + 16) + (29 + 5) + (16 + 15));
    // Expiry keeps both counts.
    let later = now + Duration::from_secs(10);
    store
        .set(expiring(
            "$SYS/broker/version",
            b"1",
            now + Duration::from_secs(1),
        ))
        .unwrap();
    store.set(msg("c", b"")).unwrap();
    store
        .set(expiring("d", b"1", now + Duration::from_secs(1)))
        .unwrap();
    assert_eq!(store.purge_expired(later), 2);
    assert_eq!(store.usage().messages, 1);
    assert_eq!(store.len(), 4);
}

#[test]
fn limits_refuse_new_topics_but_allow_replacements_that_fit() {
    let now = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits {
        max_messages: 2,
        max_bytes: 20,
    });
    store.set(msg("a", b"12345")).unwrap(); // 6 bytes
    store.set(msg("b", b"12345")).unwrap(); // 12 bytes
    assert_eq!(store.set(msg("c", b"1")), Err(RetainError::Full));
    assert_eq!(RetainError::Full.reason_code(), ReasonCode::QUOTA_EXCEEDED);
    assert_eq!(store.len(), 2);
    // Replacing within the byte limit is fine even at the message limit.
    assert_eq!(
        store.set(msg("a", b"123456789")),
        Ok(RetainOutcome::Replaced)
    ); // 16
       // A replacement that would pass the byte limit is refused; the old one stays.
    assert_eq!(store.set(msg("b", b"1234567890")), Err(RetainError::Full));
    assert_eq!(&store.get("b", now).unwrap().payload[..], b"12345");
    assert_eq!(store.bytes(), 16);
    // Deleting always works and frees room.
    assert_eq!(store.set(msg("a", b"")), Ok(RetainOutcome::Deleted));
    assert_eq!(store.set(msg("c", b"1")), Ok(RetainOutcome::Stored));
    assert_eq!(store.bytes(), 6 + 2);

    let mut bytes_only = RetainedStore::new(RetainedLimits {
        max_messages: 100,
        max_bytes: 10,
    });
    assert_eq!(
        bytes_only.set(msg("topic", b"123456")),
        Err(RetainError::Full)
    );
    assert_eq!(
        bytes_only.set(msg("topic", b"12345")),
        Ok(RetainOutcome::Stored)
    );
    assert_eq!(bytes_only.bytes(), 10);
}

#[test]
fn expired_messages_are_skipped_then_purged() {
    let t0 = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::default());
    store
        .set(expiring("a/1", b"x", t0 + Duration::from_secs(10)))
        .unwrap();
    store
        .set(expiring("a/2", b"x", t0 + Duration::from_secs(20)))
        .unwrap();
    store.set(msg("a/3", b"x")).unwrap();
    assert_eq!(topics(&store, "a/+", t0), vec!["a/1", "a/2", "a/3"]);
    let t15 = t0 + Duration::from_secs(15);
    assert_eq!(topics(&store, "a/+", t15), vec!["a/2", "a/3"]);
    assert!(store.get("a/1", t15).is_none());
    assert!(store.get("a/1", t0).is_some());
    // Still counted until purged.
    assert_eq!(store.len(), 3);
    assert_eq!(store.purge_expired(t0), 0);
    assert_eq!(store.purge_expired(t15), 1);
    assert_eq!(store.len(), 2);
    assert_eq!(store.bytes(), 2 * 4);
    // Replacing a message moves its expiry.
    store
        .set(expiring("a/2", b"y", t0 + Duration::from_secs(100)))
        .unwrap();
    assert_eq!(store.purge_expired(t0 + Duration::from_secs(50)), 0);
    assert_eq!(
        topics(&store, "a/2", t0 + Duration::from_secs(50)),
        vec!["a/2"]
    );
    // Replacing with a message that never expires drops the expiry.
    store.set(msg("a/2", b"z")).unwrap();
    assert_eq!(store.purge_expired(t0 + Duration::from_secs(1000)), 0);
    // Deleting removes the expiry too.
    store
        .set(expiring("b", b"x", t0 + Duration::from_secs(5)))
        .unwrap();
    store.set(msg("b", b"")).unwrap();
    assert_eq!(store.purge_expired(t0 + Duration::from_secs(1000)), 0);
    assert_eq!(store.len(), 2);
    assert_eq!(
        store.remove("a/3").map(|m| m.publish.topic.to_string()),
        Some("a/3".into())
    );
    assert_eq!(store.len(), 1);
}

// [MQTT5-3.3.2-5]: an expired retained message is not returned; the ones
// returned carry their expiry, and the time of receipt is recovered from it
// so the remaining interval can be sent ([MQTT5-3.3.2-6]).
#[test]
fn matching_messages_carry_their_expiry_mqtt_3_3_2_6() {
    let t0 = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::default());
    let mut p = (*publish("e/1", b"x")).clone();
    p.properties.message_expiry_interval = Some(10);
    store
        .set(RetainedMessage {
            publish: Arc::new(p),
            expires_at: Some(t0 + Duration::from_secs(10)),
        })
        .unwrap();
    store.set(msg("e/2", b"x")).unwrap();
    let mut out = Vec::new();
    matching_messages(&store, "e/#", t0 + Duration::from_secs(4), &mut out);
    out.sort_by(|a, b| a.publish.topic.cmp(&b.publish.topic));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].expires_at, Some(t0 + Duration::from_secs(10)));
    assert_eq!(out[0].received_at(), Some(t0));
    assert_eq!(out[1].received_at(), None, "never expires");
    out.clear();
    matching_messages(&store, "e/#", t0 + Duration::from_secs(10), &mut out);
    let topics: Vec<&str> = out.iter().map(|m| &*m.publish.topic).collect();
    assert_eq!(topics, vec!["e/2"], "[MQTT5-3.3.2-5] expired one left out");
}

// Purging does bounded work per call, soonest expiry first.
#[test]
fn purge_at_most_is_bounded_and_soonest_first() {
    let t0 = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::default());
    for (i, topic) in ["p/a", "p/b", "p/c"].into_iter().enumerate() {
        let at = t0 + Duration::from_secs(3 - i as u64);
        store.set(expiring(topic, b"x", at)).unwrap();
    }
    let later = t0 + Duration::from_secs(60);
    assert_eq!(store.purge_expired_at_most(later, 2), 2);
    assert_eq!(topics(&store, "p/+", t0), vec!["p/a"], "c and b went first");
    assert_eq!(store.purge_expired_at_most(later, 2), 1);
    assert_eq!(store.purge_expired_at_most(later, 2), 0);
    assert!(store.is_empty());
}

/// Every topic of `topics` that `filter` matches, by brute force, sorted.
fn brute_force(all: &[&str], filter: &str) -> Vec<String> {
    let mut t: Vec<String> = all
        .iter()
        .filter(|t| tern_codec::topic::matches(filter, t))
        .map(|t| t.to_string())
        .collect();
    t.sort();
    t
}

const TOPICS: &[&str] = &[
    "a", "a/b", "a/b/c", "a/bc", "a/b/c/d", "ab", "ab/c", "/", "/a", "//", "a/", "a//b", "$SYS/x",
    "$SYS", "x/y/z", "x/q/z", "x/y", "b/a/b",
];

const FILTERS: &[&str] = &[
    "#",
    "+",
    "a/#",
    "a/+",
    "a/b/#",
    "a/+/c",
    "+/b",
    "+/+/c",
    "/#",
    "/+",
    "+/",
    "a/b",
    "a//b",
    "a/+/+",
    "x/+/z",
    "$SYS/#",
    "$SYS",
    "+/a/+",
    "ab/#",
    "nothing/#",
];

#[test]
fn replay_in_batches_finds_what_brute_force_finds() {
    let mut store = RetainedStore::new(RetainedLimits::UNLIMITED);
    for t in TOPICS {
        store.set(msg(t, b"v")).unwrap();
    }
    let now = Instant::now();
    for filter in FILTERS {
        let expected = brute_force(TOPICS, filter);
        for (max_out, max_scan) in [
            (1, usize::MAX),
            (usize::MAX, 1),
            (2, 3),
            (usize::MAX, usize::MAX),
        ] {
            let mut cursor = RetainedCursor::new(filter);
            let mut out = Vec::new();
            let mut calls = 0;
            while !cursor.is_done() {
                let before = out.len();
                let n = store.next_matches(&mut cursor, now, max_out, max_scan, &mut out);
                assert_eq!(n, out.len() - before);
                assert!(n <= max_out);
                calls += 1;
                assert!(
                    calls <= TOPICS.len() + 2,
                    "{filter}: the cursor must make progress"
                );
            }
            let got: Vec<String> = out.iter().map(|m| m.publish.topic.to_string()).collect();
            assert_eq!(
                got, expected,
                "{filter} with batches ({max_out}, {max_scan})"
            );
        }
        assert_eq!(topics(&store, filter, now), expected, "matching({filter})");
    }
}

#[test]
fn a_replay_sees_changes_ahead_of_it_and_not_behind() {
    let mut store = RetainedStore::new(RetainedLimits::UNLIMITED);
    for t in ["r/1", "r/3", "r/5", "r/7"] {
        store.set(msg(t, b"old")).unwrap();
    }
    let now = Instant::now();
    let mut cursor = RetainedCursor::new("r/#");
    let mut out = Vec::new();
    store.next_matches(&mut cursor, now, 2, usize::MAX, &mut out);
    assert_eq!(out.len(), 2);
    assert!(cursor.is_ahead("r/4") && !cursor.is_ahead("r/2") && !cursor.is_ahead("q/9"));
    // Behind the cursor: not seen. Ahead: seen as stored now.
    store.set(msg("r/2", b"new")).unwrap();
    store.set(msg("r/4", b"new")).unwrap();
    store.set(msg("r/5", b"new")).unwrap();
    store.remove("r/7");
    while !cursor.is_done() {
        store.next_matches(&mut cursor, now, 2, usize::MAX, &mut out);
    }
    let got: Vec<(String, Bytes)> = out
        .iter()
        .map(|m| (m.publish.topic.to_string(), m.publish.payload.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("r/1".to_string(), Bytes::from_static(b"old")),
            ("r/3".to_string(), Bytes::from_static(b"old")),
            ("r/4".to_string(), Bytes::from_static(b"new")),
            ("r/5".to_string(), Bytes::from_static(b"new")),
        ]
    );
    assert!(
        !cursor.is_ahead("r/9"),
        "a finished cursor has nothing ahead"
    );
}

#[test]
fn replay_skips_expired_messages() {
    let t0 = Instant::now();
    let mut store = RetainedStore::new(RetainedLimits::UNLIMITED);
    store
        .set(expiring("e/1", b"x", t0 + Duration::from_secs(1)))
        .unwrap();
    store.set(msg("e/2", b"y")).unwrap();
    let mut cursor = RetainedCursor::new("e/+");
    let mut out = Vec::new();
    store.next_matches(&mut cursor, t0 + Duration::from_secs(2), 10, 10, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].publish.topic, "e/2");
}

// The seeking scan finds exactly what a look at every topic finds, for
// random topic sets over a small alphabet that includes the bytes around
// `/` in sort order (`!`, `.`, `0`) and empty levels, and random filters,
// in random batch sizes.
mod seek_property {
    use super::*;
    use proptest::prelude::*;

    fn level() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "a", "b", "a!", "a0", "a.", "c", "ab", "b0"])
            .prop_map(str::to_owned)
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|l| l.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        let lvl = prop_oneof![level(), Just("+".to_owned())];
        (prop::collection::vec(lvl, 1..5), any::<bool>()).prop_map(|(mut l, hash)| {
            if hash {
                l.push("#".to_owned());
            }
            l.join("/")
        })
    }

    proptest! {
        #[test]
        fn seeking_finds_what_brute_force_finds(
            topics in prop::collection::btree_set(topic(), 0..60),
            filter in filter(),
            max_out in 1usize..8,
            max_scan in 1usize..8,
        ) {
            let mut store = RetainedStore::new(RetainedLimits::UNLIMITED);
            for t in &topics {
                store.set(msg(t, b"v")).unwrap();
            }
            let all: Vec<&str> = topics.iter().map(String::as_str).collect();
            let expected = brute_force(&all, &filter);
            let now = Instant::now();
            let mut cursor = RetainedCursor::new(&filter);
            let mut out = Vec::new();
            let mut calls = 0;
            while !cursor.is_done() {
                store.next_matches(&mut cursor, now, max_out, max_scan, &mut out);
                calls += 1;
                prop_assert!(calls <= topics.len() + 2, "no progress");
            }
            let got: Vec<String> = out.iter().map(|m| m.publish.topic.to_string()).collect();
            prop_assert_eq!(got, expected, "filter {}", filter);
        }
    }
}
