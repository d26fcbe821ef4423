//! The authorization seam: an `Authorizer` in `SessionConfig` decides CONNECT,
//! PUBLISH (and the will), each SUBSCRIBE filter and each delivery. Byte-level
//! where the answer goes on the wire (v5 reason codes, v3 plain acks).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use bytes::BytesMut;
use common::*;
use std::sync::Arc;
use tern_codec::*;
use tern_session::*;

/// Denies everything under `secret/` (publish, subscribe, receive), and
/// refuses to connect the user `banned` with 0x8A.
#[derive(Debug)]
struct DenySecret;

impl Authorizer for DenySecret {
    fn connect(&self, id: &Identity) -> Result<(), ReasonCode> {
        if id.username.as_deref() == Some("banned") {
            return Err(ReasonCode::BANNED);
        }
        Ok(())
    }
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        !topic.starts_with("secret/")
    }
    fn subscribe(&self, _id: &Identity, filter: &str, _qos: QoS) -> bool {
        !filter.starts_with("secret/")
    }
    fn receive(&self, _id: &Identity, topic: &str) -> bool {
        !topic.starts_with("secret/")
    }
    fn checks_receive(&self) -> bool {
        true
    }
}

fn deny_secret() -> SessionConfig {
    SessionConfig {
        authorizer: Arc::new(DenySecret),
        ..SessionConfig::default()
    }
}

/// The transmits, encoded for `version`.
fn wire(conn: &mut Connection, version: ProtocolVersion) -> Vec<Vec<u8>> {
    drain(conn)
        .into_iter()
        .map(|t| {
            let Transmit::Packet(p) = t else {
                panic!("expected a control packet, got {t:?}")
            };
            let mut buf = BytesMut::new();
            encode(&p, version, &mut buf).unwrap();
            buf.to_vec()
        })
        .collect()
}

fn denied_topics(events: &[Event]) -> Vec<(&str, QoS)> {
    events
        .iter()
        .map(|e| match e {
            Event::PublishDenied { topic, qos } => (&**topic, *qos),
            other => panic!("expected PublishDenied only, got {other:?}"),
        })
        .collect()
}

// [MQTT5-3.4.2-1] [MQTT5-3.5.2-1]: a denied v5 PUBLISH is answered 0x87 (Not
// authorized) and not routed; QoS 0 gets nothing. [MQTT5-4.3.3-9]: the
// refused QoS 2 id is not kept.
#[test]
fn denied_v5_publish_gets_0x87_and_is_not_routed() {
    let (mut conn, _) = open(v5("p", true, None), None, deny_secret());
    for (qos, id) in [
        (QoS::AtMostOnce, None),
        (QoS::AtLeastOnce, Some(1)),
        (QoS::ExactlyOnce, Some(2)),
    ] {
        conn.handle_packet(t0(), publish(qos, id, "secret/x"))
            .unwrap();
    }
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V5),
        vec![vec![0x40, 3, 0, 1, 0x87], vec![0x50, 3, 0, 2, 0x87]],
        "PUBACK 0x87, PUBREC 0x87, nothing for QoS 0"
    );
    let ev = events(&mut conn);
    assert_eq!(
        denied_topics(&ev),
        [
            ("secret/x", QoS::AtMostOnce),
            ("secret/x", QoS::AtLeastOnce),
            ("secret/x", QoS::ExactlyOnce)
        ]
    );
    assert_eq!(conn.session().pending_pubrel_len(), 0);
    assert_eq!(conn.session().stats().publish_in_refused, 3);
    assert_eq!(conn.session().stats().publish_in, 3);

    // Other topics are routed as usual, their ack waits for the broker.
    conn.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(3), "open/x"))
        .unwrap();
    assert!(
        drain(&mut conn).is_empty(),
        "no ack before complete_publish"
    );
    assert!(matches!(&events(&mut conn)[..], [Event::Publish(p)] if p.topic == "open/x"));
    conn.complete_publish(QoS::AtLeastOnce, Some(pid(3)), PublishOutcome::Routed);
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V5),
        vec![vec![0x40, 2, 0, 3]]
    );
    assert_eq!(conn.session().stats().publish_in_refused, 3);
}

// v3.1.1 acks have no reason code: a denied PUBLISH gets a plain ack, and
// QoS 2 goes on to PUBREL / PUBCOMP ([MQTT-4.3.3-2]); still not routed.
#[test]
fn denied_v3_publish_gets_a_plain_ack() {
    let (mut conn, _) = open(v311("p3", true), None, deny_secret());
    conn.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(1), "secret/x"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::ExactlyOnce, Some(2), "secret/x"))
        .unwrap();
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V311),
        vec![vec![0x40, 2, 0, 1], vec![0x50, 2, 0, 2]]
    );
    assert_eq!(denied_topics(&events(&mut conn)).len(), 2);
    conn.handle_packet(t0(), pubrel(2)).unwrap();
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V311),
        vec![vec![0x70, 2, 0, 2]]
    );
    assert_eq!(conn.session().stats().publish_in_refused, 2);
}

// [MQTT-4.7.2-1]: the default authorizer refuses a client's PUBLISH to
// `$SYS` and below it, nothing else.
#[test]
fn default_authorizer_refuses_sys_publishes_only() {
    let mut conn = open_v5("d");
    conn.handle_packet(t0(), publish(QoS::AtLeastOnce, Some(1), "$SYS/x"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, "$SYS"))
        .unwrap();
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V5),
        vec![vec![0x40, 3, 0, 1, 0x87]]
    );
    assert_eq!(
        denied_topics(&events(&mut conn)),
        [("$SYS/x", QoS::AtLeastOnce), ("$SYS", QoS::AtMostOnce)]
    );
    for topic in ["$SYSTEM", "a/$SYS", "secret/x"] {
        conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, topic))
            .unwrap();
        assert!(
            matches!(&events(&mut conn)[..], [Event::Publish(p)] if p.topic == topic),
            "{topic}"
        );
    }
    assert_eq!(conn.session().stats().publish_in_refused, 2);
}

// Each denied filter gets 0x87 (v3: 0x80 Failure) and is neither stored nor
// routed; the other filters of the same SUBSCRIBE are granted.
#[test]
fn denied_subscribe_filters_are_refused_one_by_one() {
    for (version, refused) in [(ProtocolVersion::V5, 0x87), (ProtocolVersion::V311, 0x80)] {
        let c = connect(version, "s", true);
        let (mut conn, _) = open(c, None, deny_secret());
        conn.handle_packet(
            t0(),
            subscribe(
                1,
                &[
                    ("open/a", QoS::AtLeastOnce),
                    ("secret/#", QoS::AtLeastOnce),
                    ("open/b", QoS::AtMostOnce),
                ],
            ),
        )
        .unwrap();
        let ev = events(&mut conn);
        let [Event::Subscribe { filters, .. }] = &ev[..] else {
            panic!("{ev:?}")
        };
        let names: Vec<&str> = filters.iter().map(|(f, _)| &**f).collect();
        assert_eq!(names, ["open/a", "open/b"], "{version:?}");
        conn.complete_subscribe(pid(1), vec![ReasonCode(1), ReasonCode(0)]);
        let sent = wire(&mut conn, version);
        let props: &[u8] = if version.is_v5() { &[0] } else { &[] };
        let expected = [
            &[0x90, 2 + props.len() as u8 + 3, 0, 1][..],
            props,
            &[1, refused, 0],
        ]
        .concat();
        assert_eq!(sent, vec![expected], "{version:?}");
        let mut subs: Vec<String> = conn
            .session()
            .subscriptions()
            .map(|(f, _, _)| f.to_string())
            .collect();
        subs.sort();
        assert_eq!(subs, ["open/a", "open/b"], "{version:?}");
    }
}

// A SUBSCRIBE whose every filter is denied is answered at once.
#[test]
fn subscribe_with_only_denied_filters_is_answered_by_the_session() {
    let (mut conn, _) = open(v5("s", true, None), None, deny_secret());
    conn.handle_packet(t0(), subscribe(4, &[("secret/a", QoS::AtMostOnce)]))
        .unwrap();
    assert!(events(&mut conn).is_empty());
    assert_eq!(
        wire(&mut conn, ProtocolVersion::V5),
        vec![vec![0x90, 4, 0, 4, 0, 0x87]]
    );
}

// A delivery the client may not receive is dropped and counted; nothing is
// sent and no packet id is taken.
#[test]
fn denied_receive_drops_the_delivery() {
    let (mut conn, _) = open(v5("r", true, None), None, deny_secret());
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let denied = msg("secret/m", b"x");
        assert_eq!(
            conn.deliver(t0(), &Offer::new(&denied, t0(), qos)),
            DeliverOutcome::Dropped(DropReason::NotAuthorized)
        );
    }
    assert!(drain(&mut conn).is_empty());
    assert_eq!(conn.session().inflight_len(), 0);
    assert_eq!(conn.session().queued_len(), 0);
    assert_eq!(conn.stats().deliver_dropped, 2);
    let allowed = msg("open/m", b"x");
    assert_eq!(
        conn.deliver(t0(), &Offer::new(&allowed, t0(), QoS::AtLeastOnce)),
        DeliverOutcome::Sent
    );
    let sent = drain(&mut conn);
    assert!(
        matches!(&sent[..], [Transmit::Publish(p)] if p.packet_id == Some(pid(1))),
        "{sent:?}"
    );

    // An authorizer that does not check receivers is not asked.
    let mut open_conn = open_v5("r2");
    let m = msg("secret/m", b"x");
    assert_eq!(
        open_conn.deliver(t0(), &Offer::new(&m, t0(), QoS::AtMostOnce)),
        DeliverOutcome::Sent
    );
}

// CONNECT: the authorizer sees the identity `Connection::new` will hold
// (assigned client id, user name, what the broker added to the check).
#[test]
fn connect_is_authorized_with_the_connection_identity() {
    let cfg = deny_secret();
    let mut c = v5("", true, None);
    c.username = Some("banned".into());
    let check = Connection::check_connect(&c, &cfg).unwrap();
    assert_eq!(
        Connection::authorize_connect(&c, &check, &cfg),
        Err(ReasonCode::BANNED)
    );
    assert_eq!(
        Connection::authorize_connect(&c, &check, &SessionConfig::default()),
        Ok(()),
        "the default authorizer lets everyone in"
    );

    c.username = Some("alice".into());
    let peer: std::net::SocketAddr = "192.0.2.1:50000".parse().unwrap();
    let check = ConnectCheck {
        listener: Some("tls".into()),
        peer: Some(peer),
        cert_subject: Some("CN=alice".into()),
        ..Connection::check_connect(&c, &cfg).unwrap()
    };
    assert_eq!(Connection::authorize_connect(&c, &check, &cfg), Ok(()));
    let assigned = check.assigned_client_id.clone().unwrap();
    let conn = Connection::new(t0(), c, None, check, cfg);
    let id = conn.identity();
    assert_eq!(id.client_id, assigned);
    assert_eq!(id.username.as_deref(), Some("alice"));
    assert_eq!(id.listener.as_deref(), Some("tls"));
    assert_eq!(id.peer, Some(peer));
    assert_eq!(id.cert_subject.as_deref(), Some("CN=alice"));

    // Without extras the identity is the client id alone.
    let plain = open_v5("bob");
    assert_eq!(plain.identity().client_id, "bob");
    assert_eq!(plain.identity().username, None);
}

// A will to a topic the authorizer denies is never handed out for
// publishing; `Closed::will_denied` tells the broker.
#[test]
fn denied_will_is_not_returned_at_close() {
    for (cfg, topic, published) in [
        (deny_secret(), "secret/w", false),
        (deny_secret(), "open/w", true),
        (SessionConfig::default(), "$SYS/w", false),
        (SessionConfig::default(), "secret/w", true),
    ] {
        let mut c = v5("w", true, None);
        c.will = Some(will(topic));
        let (conn, _) = open(c, None, cfg);
        let closed = conn.handle_close(at_ms(1), CloseReason::NetworkError);
        assert_eq!(closed.will.is_some(), published, "{topic}");
        let denied = (!published).then_some(topic);
        assert_eq!(closed.will_denied.as_deref(), denied, "{topic}");
    }
    // No will, or a discarded one, is not a denied one.
    let mut c = v5("w", true, None);
    c.will = Some(will("secret/w"));
    let (mut conn, _) = open(c, None, deny_secret());
    conn.handle_packet(at_ms(1), Packet::Disconnect(Disconnect::default()))
        .unwrap();
    let closed = conn.handle_close(at_ms(1), CloseReason::ClientDisconnect);
    assert!(closed.will.is_none() && closed.will_denied.is_none());
}

/// A per-client policy: the client may publish only under its own client
/// id; `generation` says which rules are in force, and a policy made for
/// an older generation renews itself.
#[derive(Debug)]
struct OwnPrefix {
    generation: Arc<std::sync::atomic::AtomicU32>,
}

#[derive(Debug)]
struct OwnPrefixClient {
    prefix: String,
    made_for: u32,
    generation: Arc<std::sync::atomic::AtomicU32>,
}

impl OwnPrefix {
    fn client(&self, id: &Identity) -> Arc<dyn Authorizer> {
        let g = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        Arc::new(OwnPrefixClient {
            // Generation 1 moves every client under `v1/`.
            prefix: if g == 0 {
                format!("{}/", id.client_id)
            } else {
                format!("v1/{}/", id.client_id)
            },
            made_for: g,
            generation: Arc::clone(&self.generation),
        })
    }
}

impl Authorizer for OwnPrefix {
    fn publish(&self, _id: &Identity, _topic: &str, _qos: QoS, _retain: bool) -> bool {
        false
    }
    fn for_client(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        Some(self.client(id))
    }
}

impl Authorizer for OwnPrefixClient {
    fn publish(&self, _id: &Identity, topic: &str, _qos: QoS, _retain: bool) -> bool {
        topic.starts_with(&self.prefix)
    }
    fn receive(&self, _id: &Identity, topic: &str) -> bool {
        topic.starts_with(&self.prefix)
    }
    fn checks_receive(&self) -> bool {
        true
    }
    fn renew(&self, id: &Identity) -> Option<Arc<dyn Authorizer>> {
        let now = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        (now != self.made_for).then(|| {
            OwnPrefix {
                generation: Arc::clone(&self.generation),
            }
            .client(id)
        })
    }
}

// The connection asks its own policy (not the shared authorizer, which
// refuses everything), and takes the renewed one from the next check.
#[test]
fn per_client_policy_is_kept_and_renewed_at_the_next_check() {
    let generation = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let cfg = SessionConfig {
        authorizer: Arc::new(OwnPrefix {
            generation: Arc::clone(&generation),
        }),
        ..SessionConfig::default()
    };
    let (mut conn, _) = open(v311("c1", true), None, cfg);
    conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, "c1/a"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, "c2/a"))
        .unwrap();
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::Publish(p), Event::PublishDenied { topic, .. }]
        if p.topic == "c1/a" && topic == "c2/a"),
        "{ev:?}"
    );
    let theirs = msg("c2/x", b"x");
    assert_eq!(
        conn.deliver(t0(), &Offer::new(&theirs, t0(), QoS::AtMostOnce)),
        DeliverOutcome::Dropped(DropReason::NotAuthorized)
    );

    generation.store(1, std::sync::atomic::Ordering::Relaxed);
    conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, "c1/a"))
        .unwrap();
    conn.handle_packet(t0(), publish(QoS::AtMostOnce, None, "v1/c1/a"))
        .unwrap();
    let ev = events(&mut conn);
    assert!(
        matches!(&ev[..], [Event::PublishDenied { topic, .. }, Event::Publish(p)]
        if topic == "c1/a" && p.topic == "v1/c1/a"),
        "{ev:?}"
    );
    let mine = msg("v1/c1/x", b"x");
    assert_eq!(
        conn.deliver(t0(), &Offer::new(&mine, t0(), QoS::AtMostOnce)),
        DeliverOutcome::Sent
    );
}

// Messages queued for an offline session are checked as they leave the
// queue when the session resumes: a denied one is dropped, the rest sent.
#[test]
fn queued_messages_are_checked_when_the_session_resumes() {
    let mut old = Session::new("q".into(), true);
    for topic in ["secret/a", "open/b", "secret/c"] {
        old.enqueue(
            t0(),
            &Offer::new(&msg(topic, b"x"), t0(), QoS::AtLeastOnce),
            &SessionConfig::default(),
        );
    }
    assert_eq!(old.queued_len(), 3);
    let (mut conn, ack) = open(v311("q", false), Some(old), deny_secret());
    assert!(ack.session_present);
    let sent = drain(&mut conn);
    assert!(
        matches!(&sent[..], [Transmit::Publish(p)] if p.msg.topic == "open/b"),
        "{sent:?}"
    );
    assert_eq!(conn.session().queued_len(), 0);
    assert_eq!(conn.stats().deliver_dropped, 2);
}
