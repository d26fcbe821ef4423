//! Messages that came through a shared subscription (`$share/{group}/…`,
//! MQTT 5.0 section 4.8.2): tagged with their group ([`Offer::group`](crate::Offer::group)),
//! so that when the member leaves, the broker can hand the unacknowledged
//! ones to another member of the group.

use crate::session::{InflightState, Message};
use crate::{Connection, Session, SessionChange};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{Publish, QoS};

/// A QoS > 0 message of a shared subscription that its member received
/// (or had queued) but did not acknowledge, taken out of its session by
/// [`Session::take_shared_unacked`].
#[derive(Clone, PartialEq, Eq)]
pub struct SharedOrphan {
    /// The shared subscription's full filter `$share/{group}/{filter}`.
    pub group: ByteString,
    /// The message as published.
    pub msg: Arc<Publish>,
    /// The QoS it had for the member that left (the lower of the message's
    /// and that member's granted QoS).
    pub qos: QoS,
    /// The RETAIN flag it had for the member that left.
    pub retain: bool,
    /// The subscription identifiers it had for the member that left.
    pub subscription_identifiers: SmallVec<[u32; 1]>,
    /// When the broker received it (its Message Expiry Interval counts from here).
    pub received_at: Instant,
}

/// Shows the group, topic and payload length, never the payload.
impl fmt::Debug for SharedOrphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedOrphan")
            .field("group", &self.group)
            .field("topic", &self.msg.topic)
            .field("payload_len", &self.msg.payload.len())
            .field("qos", &self.qos)
            .finish_non_exhaustive()
    }
}

impl SharedOrphan {
    fn from_message(m: Message, group: ByteString) -> Self {
        Self {
            group,
            msg: m.msg,
            qos: m.qos,
            retain: m.retain,
            subscription_identifiers: m.sub_ids,
            received_at: m.received_at,
        }
    }
}

impl Session {
    /// Takes out every QoS > 0 message of a shared subscription that the
    /// client has not acknowledged: QoS 1 messages in flight and QoS 1/2
    /// messages still queued, in the order they would have been sent
    /// (inflight first). Their packet ids are freed.
    ///
    /// QoS 2 messages already sent stay: the server must complete their
    /// delivery to this client when it reconnects ([MQTT5-4.8.2-4]) and must
    /// not send them to another client if the session ends first
    /// ([MQTT5-4.8.2-5]). Queued QoS 0 messages stay as well.
    pub fn take_shared_unacked(&mut self) -> Vec<SharedOrphan> {
        self.take_shared_unacked_for(|_| true)
    }

    /// [`take_shared_unacked`](Self::take_shared_unacked) for the groups
    /// `take` accepts (it is given each group's full filter); messages of
    /// other groups stay in the session.
    pub fn take_shared_unacked_for(
        &mut self,
        mut take: impl FnMut(&str) -> bool,
    ) -> Vec<SharedOrphan> {
        let mut out = Vec::new();
        if self.inflight.len() == 0 && self.queue.is_empty() {
            return out;
        }
        let mut sent: Vec<_> = self
            .inflight
            .iter()
            .filter(|e| e.state == InflightState::AwaitPubAck)
            .filter_map(|e| {
                let m = e.message.as_ref()?;
                let group = m.share.as_ref().filter(|g| take(g))?;
                Some((e.seq, e.pid, group.clone()))
            })
            .collect();
        sent.sort_unstable_by_key(|(seq, _, _)| *seq);
        for (_, pid, group) in sent {
            let message = self.inflight.get(pid).and_then(|e| e.message.clone());
            if let Some(m) = message {
                self.inflight.remove(pid, None);
                self.record(|| SessionChange::Acked { packet_id: pid });
                out.push(SharedOrphan::from_message(m, group));
            }
        }
        if self.queue.iter().any(|m| m.share.is_some()) {
            let mut kept = std::collections::VecDeque::with_capacity(self.queue.len());
            let mut queue = std::mem::take(&mut self.queue);
            for mut m in queue.drain(..) {
                let group = match m.share.take() {
                    Some(g) if m.qos != QoS::AtMostOnce && take(&g) => g,
                    other => {
                        m.share = other;
                        kept.push_back(m);
                        continue;
                    }
                };
                self.queued_bytes -= m.bytes();
                self.forget(m.id);
                out.push(SharedOrphan::from_message(m, group));
            }
            self.queue = kept;
        }
        out
    }
}

impl Connection {
    /// [`Session::take_shared_unacked_for`] on this connection's session,
    /// before [`handle_close`](Self::handle_close) (which drops a session
    /// that is not persistent).
    pub fn take_shared_unacked_for(&mut self, take: impl FnMut(&str) -> bool) -> Vec<SharedOrphan> {
        self.session.take_shared_unacked_for(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::msg;
    use crate::{ConnectCheck, DeliverOutcome, EnqueueOutcome, Offer, SessionConfig, Transmit};
    use tern_codec::{Connect, Packet, PacketId, ProtocolVersion, PubResp};

    const G: &str = "$share/g/t";

    fn group() -> ByteString {
        ByteString::from_static(G)
    }

    fn open(window: u16) -> Connection {
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: "c".into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        };
        let cfg = SessionConfig {
            max_inflight: window,
            ..Default::default()
        };
        let mut conn = Connection::new(Instant::now(), connect, None, ConnectCheck::default(), cfg);
        while conn.poll_transmit().is_some() {}
        conn
    }

    fn with_payload(payload: &'static [u8], qos: QoS) -> Arc<Publish> {
        let mut p = (*msg("t", payload)).clone();
        p.qos = qos;
        Arc::new(p)
    }

    fn payloads(orphans: &[SharedOrphan]) -> Vec<&[u8]> {
        orphans.iter().map(|o| &o.msg.payload[..]).collect()
    }

    fn pid(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    // [MQTT5-4.8.2-4] [MQTT5-4.8.2-5]: unacknowledged QoS 1 (inflight or
    // queued) and queued QoS 2 messages of a shared subscription are taken
    // out in send order; sent QoS 2 ones, acknowledged ones, QoS 0 ones and
    // messages of ordinary subscriptions stay.
    #[test]
    fn takes_unacked_shared_messages_in_send_order() {
        let now = Instant::now();
        let mut conn = open(3);
        let g = group();
        let q1 = QoS::AtLeastOnce;
        let q2 = QoS::ExactlyOnce;
        let acked = with_payload(b"acked", q1);
        conn.deliver(
            now,
            &Offer {
                group: Some(&g),
                ..Offer::new(&acked, now, q1)
            },
        );
        let sent1 = with_payload(b"sent1", q1);
        conn.deliver(
            now,
            &Offer {
                retain: true,
                subscription_identifiers: &[7],
                group: Some(&g),
                ..Offer::new(&sent1, now, q1)
            },
        );
        let sent2 = with_payload(b"sent2", q2);
        conn.deliver(
            now,
            &Offer {
                group: Some(&g),
                ..Offer::new(&sent2, now, q2)
            },
        );
        // The window (3) is full from here on: the rest is queued.
        let queued1 = with_payload(b"queued1", q1);
        let normal = with_payload(b"normal", q1);
        let queued2 = with_payload(b"queued2", q2);
        let qos0 = with_payload(b"qos0", QoS::AtMostOnce);
        assert_eq!(
            conn.deliver(
                now,
                &Offer {
                    group: Some(&g),
                    ..Offer::new(&queued1, now, q1)
                }
            ),
            DeliverOutcome::Queued
        );
        conn.deliver(now, &Offer::new(&normal, now, q1));
        conn.deliver(
            now,
            &Offer {
                group: Some(&g),
                ..Offer::new(&queued2, now, q2)
            },
        );
        conn.deliver(
            now,
            &Offer {
                group: Some(&g),
                ..Offer::new(&qos0, now, QoS::AtMostOnce)
            },
        );
        conn.handle_packet(now, Packet::PubAck(PubResp::new(pid(1))))
            .unwrap();
        // The ack released `queued1` into the window.
        let sent: Vec<_> = std::iter::from_fn(|| conn.poll_transmit())
            .filter_map(|t| match t {
                Transmit::Publish(p) => Some(p.msg.payload.clone()),
                Transmit::Packet(_) => None,
            })
            .collect();
        assert_eq!(sent.last().map(|b| &b[..]), Some(&b"queued1"[..]));
        assert_eq!(conn.session().inflight_len(), 3);

        let orphans = conn.take_shared_unacked_for(|_| true);
        assert_eq!(
            payloads(&orphans),
            [&b"sent1"[..], b"queued1", b"queued2"],
            "{orphans:?}"
        );
        assert!(orphans.iter().all(|o| o.group == G));
        assert_eq!(
            (
                orphans[0].qos,
                orphans[0].retain,
                &orphans[0].subscription_identifiers[..]
            ),
            (q1, true, &[7][..])
        );
        assert_eq!(orphans[2].qos, q2);
        let s = conn.session();
        assert_eq!(
            s.inflight()
                .iter()
                .map(|(p, st)| (p.get(), *st))
                .collect::<Vec<_>>(),
            [(3, InflightState::AwaitPubRec)],
            "the sent QoS 2 message stays with this client"
        );
        assert_eq!(s.queued_len(), 1, "the ordinary message stays queued");
        assert_eq!(s.queued_bytes(), "t".len() + "normal".len());
        assert!(
            conn.take_shared_unacked_for(|_| true).is_empty(),
            "taken once"
        );
    }

    // [MQTT5-4.8.2-4]: a QoS 2 message that got its PUBREC stays too.
    #[test]
    fn qos2_after_pubrec_stays() {
        let now = Instant::now();
        let mut conn = open(10);
        let m = with_payload(b"two", QoS::ExactlyOnce);
        conn.deliver(
            now,
            &Offer {
                group: Some(&group()),
                ..Offer::new(&m, now, QoS::ExactlyOnce)
            },
        );
        conn.handle_packet(now, Packet::PubRec(PubResp::new(pid(1))))
            .unwrap();
        assert!(conn.take_shared_unacked_for(|_| true).is_empty());
        assert_eq!(
            conn.session().inflight(),
            [(pid(1), InflightState::AwaitPubComp)]
        );
    }

    #[test]
    fn only_the_accepted_groups_are_taken() {
        let now = Instant::now();
        let mut conn = open(10);
        let other = ByteString::from_static("$share/h/t");
        let a = with_payload(b"a", QoS::AtLeastOnce);
        let b = with_payload(b"b", QoS::AtLeastOnce);
        conn.deliver(
            now,
            &Offer {
                group: Some(&group()),
                ..Offer::new(&a, now, QoS::AtLeastOnce)
            },
        );
        conn.deliver(
            now,
            &Offer {
                group: Some(&other),
                ..Offer::new(&b, now, QoS::AtLeastOnce)
            },
        );
        let taken = conn.take_shared_unacked_for(|g| g == "$share/h/t");
        assert_eq!(payloads(&taken), [&b"b"[..]]);
        assert_eq!(taken[0].group, "$share/h/t");
        assert_eq!(conn.session().inflight_len(), 1);
        let rest = conn.take_shared_unacked_for(|_| true);
        assert_eq!(payloads(&rest), [&b"a"[..]]);
        assert_eq!(conn.session().inflight_len(), 0);
    }

    // An offline member's queue: `enqueue_shared` tags, and the messages
    // come out of the kept session.
    #[test]
    fn offline_queue_of_a_kept_session() {
        let now = Instant::now();
        let cfg = SessionConfig::default();
        let mut s = Session::new("c".into(), true);
        let a = with_payload(b"a", QoS::AtLeastOnce);
        let b = with_payload(b"b", QoS::AtLeastOnce);
        let plain = with_payload(b"plain", QoS::AtLeastOnce);
        let g = group();
        assert_eq!(
            s.enqueue(
                now,
                &Offer {
                    group: Some(&g),
                    ..Offer::new(&a, now, QoS::AtLeastOnce)
                },
                &cfg
            ),
            EnqueueOutcome::Queued
        );
        s.enqueue(now, &Offer::new(&plain, now, QoS::AtLeastOnce), &cfg);
        s.enqueue(
            now,
            &Offer {
                group: Some(&g),
                ..Offer::new(&b, now, QoS::AtLeastOnce)
            },
            &cfg,
        );
        assert_eq!(
            s.enqueue(
                now,
                &Offer {
                    group: Some(&g),
                    ..Offer::new(&a, now, QoS::AtMostOnce)
                },
                &cfg
            ),
            EnqueueOutcome::DroppedQos0
        );
        let taken = s.take_shared_unacked();
        assert_eq!(payloads(&taken), [&b"a"[..], b"b"]);
        assert_eq!((s.queued_len(), s.queued_bytes()), (1, "tplain".len()));
        assert!(format!("{taken:?}").contains("payload_len"));
        assert!(!format!("{taken:?}").contains("plain"));
    }

    // Messages delivered with plain `deliver` carry no group: never taken.
    #[test]
    fn untagged_deliveries_are_never_taken() {
        let now = Instant::now();
        let mut conn = open(1);
        let a = with_payload(b"a", QoS::AtLeastOnce);
        let b = with_payload(b"b", QoS::AtLeastOnce);
        conn.deliver(now, &Offer::new(&a, now, QoS::AtLeastOnce));
        conn.deliver(now, &Offer::new(&b, now, QoS::AtLeastOnce));
        assert!(conn.take_shared_unacked_for(|_| true).is_empty());
        assert_eq!(conn.session().inflight_len(), 1);
        assert_eq!(conn.session().queued_len(), 1);
    }
}
