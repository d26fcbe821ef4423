//! The change journal is complete: a backend that applies every recorded
//! change to a copy of its own, and rebuilds the session from that copy
//! with `Session::restore`, gets a session that behaves as the original
//! (same inflight packet ids and states, same queue, same subscriptions,
//! same QoS 2 ids), after random runs of deliveries, acks, expiry,
//! reconnects, shared-subscription hand-offs and subscription changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use bytestring::ByteString;
use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::*;
use tern_session::*;

/// Where a message is, as the backend's copy knows it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Queued,
    Sent(PacketId, u64),
    Released(PacketId, u64),
}

/// What a backend keeps, built only from the journal.
#[derive(Default)]
struct Mirror {
    expiry: u32,
    subs: BTreeMap<ByteString, (SubscriptionOptions, Option<u32>)>,
    messages: BTreeMap<u64, (Message, Stage)>,
    by_pid: HashMap<PacketId, u64>,
    incoming: BTreeSet<u16>,
    /// One counter for PUBLISHes sent and PUBRECs received.
    order: u64,
    last_pid: Option<PacketId>,
}

impl Mirror {
    fn apply(&mut self, change: SessionChange) {
        match change {
            SessionChange::Subscribed {
                filter,
                options,
                subscription_identifier,
            } => {
                self.subs.insert(filter, (options, subscription_identifier));
            }
            SessionChange::Unsubscribed { filter } => {
                assert!(self.subs.remove(&filter).is_some(), "unknown {filter}");
            }
            SessionChange::Queued { message } => {
                let id = message.id;
                assert!(self.messages.insert(id, (message, Stage::Queued)).is_none());
            }
            SessionChange::Sent { id, packet_id } => {
                let entry = self.messages.get_mut(&id).expect("sent: known id");
                assert_eq!(entry.1, Stage::Queued);
                self.order += 1;
                self.last_pid = Some(packet_id);
                entry.1 = Stage::Sent(packet_id, self.order);
                assert!(self.by_pid.insert(packet_id, id).is_none(), "pid in use");
            }
            SessionChange::Removed { id } => {
                let (_, stage) = self.messages.remove(&id).expect("removed: known id");
                assert_eq!(stage, Stage::Queued);
            }
            SessionChange::Acked { packet_id } => {
                let id = self.by_pid.remove(&packet_id).expect("acked: known pid");
                assert!(self.messages.remove(&id).is_some());
            }
            SessionChange::Released { packet_id } => {
                let id = self.by_pid[&packet_id];
                let entry = self.messages.get_mut(&id).expect("released: known id");
                self.order += 1;
                entry.1 = Stage::Released(packet_id, self.order);
            }
            SessionChange::InboundQos2 { packet_id, done } => {
                if done {
                    self.incoming.remove(&packet_id.get());
                } else {
                    self.incoming.insert(packet_id.get());
                }
            }
            SessionChange::ExpiryChanged { secs } => self.expiry = secs,
        }
    }

    fn stored(&self, client_id: &str) -> StoredSession {
        let mut stored = StoredSession {
            client_id: client_id.into(),
            expiry_interval: self.expiry,
            subscriptions: self
                .subs
                .iter()
                .map(|(f, (o, i))| (f.clone(), *o, *i))
                .collect(),
            incoming_qos2: self.incoming.iter().map(|&p| pid(p)).collect(),
            last_packet_id: self.last_pid,
            ..Default::default()
        };
        for (message, stage) in self.messages.values() {
            let (packet_id, state, resend_order) = match *stage {
                Stage::Queued => {
                    stored.queue.push(message.clone());
                    continue;
                }
                Stage::Sent(p, order) if message.qos == QoS::AtLeastOnce => {
                    (p, InflightState::AwaitPubAck, order)
                }
                Stage::Sent(p, order) => (p, InflightState::AwaitPubRec, order),
                Stage::Released(p, order) => (p, InflightState::AwaitPubComp, order),
            };
            stored.inflight.push(StoredInflight {
                packet_id,
                state,
                message: message.clone(),
                resend_order,
            });
        }
        stored
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn cfg() -> SessionConfig {
    SessionConfig {
        record_changes: true,
        max_inflight: 3,
        max_queued_messages: 6,
        queue_qos0_offline: true,
        ..SessionConfig::default()
    }
}

fn message(i: u64, expiring: bool) -> Arc<Publish> {
    let mut p = (*m(usize::try_from(i % 10).unwrap())).clone();
    if expiring {
        p.properties.message_expiry_interval = Some(1);
    }
    Arc::new(p)
}

/// Packet ids of the PUBLISH and PUBREL packets sent, by kind.
fn sent(ts: Vec<Transmit>, acks: &mut Vec<(u16, bool)>) {
    for t in ts {
        match t {
            Transmit::Publish(p) if p.qos != QoS::AtMostOnce => {
                let id = p.packet_id.unwrap().get();
                acks.retain(|(pid, _)| *pid != id);
                acks.push((id, p.qos == QoS::ExactlyOnce));
            }
            _ => {}
        }
    }
}

/// Resumes `session` on a fresh connection and returns everything it
/// sends, as packet ids, DUP flags and payload names.
fn resumed_output(session: Session, now: Instant) -> (Vec<Out>, usize, usize) {
    let mut conn = open_at(now, v5("c", false, Some(600)), Some(session), cfg());
    assert!(matches!(
        conn.poll_transmit(),
        Some(Transmit::Packet(Packet::ConnAck(ConnAck {
            session_present: true,
            ..
        })))
    ));
    let pubrel = conn.session().pending_pubrel_len();
    let subs = conn.session().subscriptions().count();
    (out(&mut conn), pubrel, subs)
}

fn check(session: Session, mirror: &Mirror, now: Instant, round: u64) {
    let (restored, report) = Session::restore(mirror.stored("c"));
    assert_eq!(report, RestoreReport::default());
    assert_eq!(restored.inflight(), session.inflight(), "round {round}");
    assert_eq!(restored.queued_len(), session.queued_len(), "round {round}");
    assert_eq!(
        restored.queued_bytes(),
        session.queued_bytes(),
        "round {round}"
    );
    let subs = |s: &Session| -> Vec<String> {
        let mut v: Vec<String> = s
            .subscriptions()
            .map(|(f, o, i)| format!("{f} {o:?} {i:?}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(subs(&restored), subs(&session), "round {round}");
    assert_eq!(
        resumed_output(restored, now),
        resumed_output(session, now),
        "round {round}"
    );
}

#[test]
fn a_session_rebuilt_from_its_journal_behaves_as_the_original() {
    for round in 0..200u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (round + 1));
        let mut mirror = Mirror::default();
        let mut now = t0();
        let mut conn = open_at(now, v5("c", false, Some(600)), None, cfg());
        mirror.expiry = 600;
        let mut online = true;
        let mut offline: Option<Session> = None;
        let mut acks: Vec<(u16, bool)> = Vec::new();
        let mut rels: Vec<u16> = Vec::new();
        let group: ByteString = "$share/g/t".into();
        let mut next_pid = 1u16;
        for step in 0..60u64 {
            now += Duration::from_millis(rng.below(400));
            if online {
                match rng.below(9) {
                    0..=2 => {
                        let qos = QoS::from_u8(u8::try_from(rng.below(3)).unwrap()).unwrap();
                        let msg = message(step, rng.below(4) == 0);
                        let mut offer = Offer::new(&msg, now, qos);
                        let shared = rng.below(3) == 0;
                        if shared {
                            offer.group = Some(&group);
                        }
                        conn.deliver(now, &offer);
                    }
                    3 if !acks.is_empty() => {
                        let (id, qos2) =
                            acks.remove(usize::try_from(rng.below(acks.len() as u64)).unwrap());
                        if qos2 {
                            conn.handle_packet(now, pubrec(id)).unwrap();
                            rels.push(id);
                        } else {
                            conn.handle_packet(now, puback(id)).unwrap();
                        }
                    }
                    4 if !rels.is_empty() => {
                        let id = rels.remove(0);
                        conn.handle_packet(now, pubcomp(id)).unwrap();
                    }
                    5 => {
                        let f = ["a", "b/+", "c/#"][usize::try_from(rng.below(3)).unwrap()];
                        if rng.below(2) == 0 {
                            conn.handle_packet(now, subscribe(next_pid, &[(f, QoS::AtLeastOnce)]))
                                .unwrap();
                            let _ = events(&mut conn);
                            conn.complete_subscribe(pid(next_pid), vec![ReasonCode(1)]);
                        } else {
                            conn.handle_packet(
                                now,
                                Packet::Unsubscribe(Unsubscribe {
                                    packet_id: pid(next_pid),
                                    filters: vec![f.into()],
                                    user_properties: vec![],
                                }),
                            )
                            .unwrap();
                        }
                        next_pid = next_pid % 1000 + 1;
                    }
                    6 => {
                        let p = next_pid;
                        next_pid = next_pid % 1000 + 1;
                        conn.handle_packet(now, publish(QoS::ExactlyOnce, Some(p), "in"))
                            .unwrap();
                        conn.complete_publish(
                            QoS::ExactlyOnce,
                            Some(pid(p)),
                            PublishOutcome::Routed,
                        );
                        if rng.below(2) == 0 {
                            conn.handle_packet(now, pubrel(p)).unwrap();
                        }
                    }
                    7 => {
                        // The connection drops: the session goes offline.
                        sent(drain(&mut conn), &mut acks);
                        while let Some(c) = conn.poll_change() {
                            mirror.apply(c);
                        }
                        let placeholder = open_at(now, v5("x", true, None), None, cfg());
                        let old = std::mem::replace(&mut conn, placeholder);
                        let mut session = old
                            .handle_close(now, CloseReason::KeepAliveTimeout)
                            .session
                            .expect("persistent");
                        while let Some(c) = session.poll_change() {
                            mirror.apply(c);
                        }
                        offline = Some(session);
                        online = false;
                        acks.clear();
                        rels.clear();
                    }
                    _ => {}
                }
                sent(drain(&mut conn), &mut acks);
                let _ = events(&mut conn);
                while let Some(c) = conn.poll_change() {
                    mirror.apply(c);
                }
            } else {
                let session = offline.as_mut().expect("offline");
                match rng.below(4) {
                    0 | 1 => {
                        let qos = QoS::from_u8(u8::try_from(rng.below(3)).unwrap()).unwrap();
                        let msg = message(step, rng.below(4) == 0);
                        let mut offer = Offer::new(&msg, now, qos);
                        if rng.below(3) == 0 {
                            offer.group = Some(&group);
                        }
                        session.enqueue(now, &offer, &cfg());
                    }
                    2 => {
                        let _ = session.take_shared_unacked();
                    }
                    _ => {
                        // Resume on a new connection (its CONNECT sets the expiry again).
                        let session = offline.take().expect("offline");
                        conn = open_at(now, v5("c", false, Some(600)), Some(session), cfg());
                        online = true;
                        sent(drain(&mut conn), &mut acks);
                        while let Some(c) = conn.poll_change() {
                            mirror.apply(c);
                        }
                        continue;
                    }
                }
                while let Some(c) = session.poll_change() {
                    mirror.apply(c);
                }
            }
        }
        let session = if online {
            let mut session = conn
                .handle_close(now, CloseReason::KeepAliveTimeout)
                .session
                .expect("persistent");
            while let Some(c) = session.poll_change() {
                mirror.apply(c);
            }
            session
        } else {
            offline.take().expect("offline")
        };
        check(session, &mirror, now, round);
    }
}
