//! Session state that outlives a network connection: subscriptions, inflight
//! messages, QoS 2 ids awaiting PUBREL and the bounded message queue.

use crate::changes::Journal;
use crate::inflight::InflightWindow;
use crate::subscriptions::Subscriptions;
use crate::{stats::SessionStats, Offer, SessionChange, SessionConfig};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::{PacketId, Publish, QoS, SubscriptionOptions};

/// Hashing for maps keyed by packet id or topic alias: aHash with keys drawn
/// once per process (not per map), so an empty map is 32 bytes and a new
/// connection draws no random seed. The keys are 16-bit ids, at most 65535
/// per map.
pub(crate) type FixedState = BuildHasherDefault<ahash::AHasher>;

/// Where an outgoing QoS > 0 message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// Result of [`Session::enqueue`]. Callers count and log drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Held until the client reconnects.
    Queued,
    /// QoS 0 while offline and `queue_qos0_offline` is off.
    DroppedQos0,
    /// The queue is at `max_queued_messages` or `max_queued_bytes`.
    DroppedQueueFull,
    /// The message's Message Expiry Interval has already passed ([MQTT-3.3.2-5]).
    DroppedExpired,
}

/// True once `msg`, received at `received_at`, has waited at least its
/// Message Expiry Interval (and waited at all) at `now` ([MQTT-3.3.2-5]).
pub(crate) fn is_expired(msg: &Publish, received_at: Instant, now: Instant) -> bool {
    let Some(secs) = msg.properties.message_expiry_interval else {
        return false;
    };
    let waited = now.saturating_duration_since(received_at);
    waited > Duration::ZERO && waited >= Duration::from_secs(u64::from(secs))
}

/// A message bound for this client, with its per-receiver header fields:
/// what a session's queue and inflight window hold, and what a persistence
/// backend stores ([`SessionChange::Queued`]) and gives back
/// ([`Session::restore`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The message as the broker received it (shared by every receiver).
    pub msg: Arc<Publish>,
    /// Its QoS for this client.
    pub qos: QoS,
    /// The RETAIN flag to send (Retain As Published, or a retained replay).
    pub retain: bool,
    /// v5 Subscription Identifiers of the matching subscriptions.
    pub sub_ids: SmallVec<[u32; 1]>,
    /// When the broker received the message: its Message Expiry Interval
    /// counts from here.
    pub received_at: Instant,
    /// The shared subscription (`$share/{group}/{filter}`) it came through,
    /// if any: unacknowledged, it may go to another member when this
    /// client leaves (see `Session::take_shared_unacked`).
    pub share: Option<ByteString>,
    /// Its number in this session, given when it entered (queue or
    /// inflight window), increasing in arrival order; journal changes name
    /// the message by it.
    pub id: u64,
}

impl fmt::Debug for Message {
    /// Shows the topic and payload length, never the payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("topic", &self.msg.topic)
            .field("payload_len", &self.msg.payload.len())
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

impl Message {
    /// Bytes counted against `max_queued_bytes`: topic plus payload.
    pub(crate) fn bytes(&self) -> usize {
        self.msg.topic.len() + self.msg.payload.len()
    }

    /// When this message expires, if it has an expiry interval.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        let secs = self.msg.properties.message_expiry_interval?;
        Some(self.received_at + Duration::from_secs(u64::from(secs)))
    }

    /// True once the message's Message Expiry Interval has passed
    /// ([MQTT-3.3.2-5]): it has waited at least that many seconds. A message
    /// that has not waited at all is never expired (an interval of 0 is
    /// forwarded as 0 when delivered at once).
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        is_expired(&self.msg, self.received_at, now)
    }

    /// The Message Expiry Interval to send at `now`: the received value minus
    /// the whole seconds the message has waited in the server ([MQTT-3.3.2-6]).
    /// At least 1 while the message has not expired; 0 once it has (only an
    /// inflight message is ever re-sent after expiring, [MQTT-4.3.3-7]).
    pub(crate) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let secs = self.msg.properties.message_expiry_interval?;
        let waited = now.saturating_duration_since(self.received_at).as_secs();
        Some(secs.saturating_sub(u32::try_from(waited).unwrap_or(u32::MAX)))
    }
}

/// Persistent session state; a plain `Send` value that can move between
/// worker threads (session takeover).
pub struct Session {
    client_id: ByteString,
    expiry_interval: u32,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) inflight: InflightWindow,
    pub(crate) incoming_qos2: HashSet<PacketId, FixedState>,
    pub(crate) queue: VecDeque<Message>,
    pub(crate) queued_bytes: usize,
    /// No queued message expires before this (it may be earlier than the
    /// true minimum after pops): a full queue is scanned for expired
    /// messages only once it has passed, not on every dropped message.
    next_expiry: Option<Instant>,
    pub(crate) stats: SessionStats,
    /// Changes recorded for a persistence backend (see `changes`); `None`
    /// unless the broker asked for them.
    pub(crate) changes: Journal,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.client_id)
            .field("expiry_interval", &self.expiry_interval)
            .field("subscriptions", &self.subscriptions.len())
            .field("inflight", &self.inflight.len())
            .field("incoming_qos2", &self.incoming_qos2.len())
            .field("queued", &self.queue.len())
            .field("queued_bytes", &self.queued_bytes)
            .finish()
    }
}

impl Session {
    /// An empty session. A persistent session built here never expires
    /// (the v3 meaning); v5 connections set the interval from CONNECT.
    pub fn new(client_id: ByteString, persistent: bool) -> Self {
        Self {
            client_id,
            expiry_interval: if persistent { u32::MAX } else { 0 },
            subscriptions: Subscriptions::default(),
            inflight: InflightWindow::default(),
            incoming_qos2: HashSet::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_expiry: None,
            stats: SessionStats::default(),
            changes: None,
        }
    }

    /// The client identifier.
    pub fn client_id(&self) -> &ByteString {
        &self.client_id
    }

    /// True when the session must be kept after the connection closes.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// Seconds to keep the session after its connection closes; 0 = not kept,
    /// `u32::MAX` = never expires.
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// When this session ends if its network connection closed at
    /// `closed_at` and no new connection resumes it first: `closed_at` plus
    /// the Session Expiry Interval in force at the close (a client's
    /// DISCONNECT may have changed it; 0 → non-zero is refused, 3.14.2.2.2).
    /// `None` = never: 0xFFFFFFFF ([MQTT5-3.1.2-23], 3.1.2.11.2), which is
    /// also what a v3 Clean Session 0 means, or a time past what `Instant`
    /// can hold. An interval of 0 ends the session at `closed_at` (the
    /// session is not kept at all, see [`Connection::handle_close`](crate::Connection::handle_close)).
    pub fn expires_at(&self, closed_at: Instant) -> Option<Instant> {
        if self.expiry_interval == u32::MAX {
            return None;
        }
        closed_at.checked_add(Duration::from_secs(u64::from(self.expiry_interval)))
    }

    pub(crate) fn set_expiry_interval(&mut self, secs: u32) {
        self.expiry_interval = secs;
    }

    /// Subscriptions: filter, options (granted QoS), v5 subscription
    /// identifier; in no particular order.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, &SubscriptionOptions, Option<u32>)> {
        self.subscriptions
            .iter()
            .map(|(filter, sub)| (filter, &sub.options, sub.id()))
    }

    /// The subscription for exactly this filter.
    pub fn subscription(&self, filter: &str) -> Option<(&SubscriptionOptions, Option<u32>)> {
        self.subscriptions
            .get(filter)
            .map(|sub| (&sub.options, sub.id()))
    }

    /// Queue a message for an offline client at `now`. `offer.received_at`
    /// is when the broker received the message: its v5 Message Expiry
    /// Interval counts from there ([MQTT-3.3.2-5/6]); a message already
    /// expired is dropped. QoS 0 is dropped unless `cfg.queue_qos0_offline`;
    /// the queue is bounded by messages and bytes (expired messages are
    /// purged first when full). A message of a shared subscription
    /// (`offer.group`) is tagged so that
    /// [`take_shared_unacked`](Self::take_shared_unacked) finds it.
    ///
    /// The authorizer is not asked here: a client's right to receive is
    /// checked by [`Connection::deliver`](crate::Connection::deliver), and for
    /// queued messages when a connection resumes the session.
    pub fn enqueue(
        &mut self,
        now: Instant,
        offer: &Offer<'_>,
        cfg: &SessionConfig,
    ) -> EnqueueOutcome {
        let qos = offer.qos;
        if qos == QoS::AtMostOnce && !cfg.queue_qos0_offline {
            self.stats.dropped_qos0 += 1;
            return EnqueueOutcome::DroppedQos0;
        }
        let message = Message {
            msg: Arc::clone(offer.msg),
            qos,
            retain: offer.retain,
            sub_ids: SmallVec::from_slice(offer.subscription_identifiers),
            received_at: offer.received_at,
            share: offer.group.cloned(),
            id: 0,
        };
        if message.is_expired(now) {
            self.stats.dropped_expired += 1;
            return EnqueueOutcome::DroppedExpired;
        }
        self.arm_journal(cfg.record_changes);
        if !self.push_queue(now, message, cfg) {
            return EnqueueOutcome::DroppedQueueFull;
        }
        EnqueueOutcome::Queued
    }

    /// Messages waiting in the queue.
    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    /// Bytes (topic + payload) waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Outgoing QoS > 0 messages not yet fully acknowledged.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Inflight packet ids and states, in the order they would be re-sent.
    pub fn inflight(&self) -> Vec<(PacketId, InflightState)> {
        let mut v: Vec<_> = self
            .inflight
            .iter()
            .map(|e| (e.seq, e.pid, e.state))
            .collect();
        v.sort_unstable_by_key(|(seq, _, _)| *seq);
        v.into_iter().map(|(_, pid, state)| (pid, state)).collect()
    }

    /// Incoming QoS 2 packet ids awaiting PUBREL.
    pub fn pending_pubrel_len(&self) -> usize {
        self.incoming_qos2.len()
    }

    /// Lifetime counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Gives back the memory of empty containers (inflight, QoS 2 ids,
    /// queue). For a session that has gone quiet; a busy one would only
    /// allocate again.
    pub fn release_memory(&mut self) {
        self.inflight.release_memory();
        if self.incoming_qos2.is_empty() {
            self.incoming_qos2 = HashSet::default();
        }
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if let Some(journal) = self.changes.as_mut().filter(|j| j.changes.is_empty()) {
            journal.changes = VecDeque::new();
        }
    }

    /// Gives `message` its [`Message::id`] and records its arrival.
    pub(crate) fn admit(&mut self, mut message: Message) -> Message {
        message.id = self.take_message_id();
        self.record(|| SessionChange::Queued {
            message: message.clone(),
        });
        message
    }

    /// Append to the queue within the limits (a new message: it is given
    /// its id and recorded); false (and counted) when full. At a limit,
    /// expired messages are purged first to make room.
    pub(crate) fn push_queue(
        &mut self,
        now: Instant,
        message: Message,
        cfg: &SessionConfig,
    ) -> bool {
        let bytes = message.bytes();
        let full = |s: &Self| {
            s.queue.len() >= cfg.max_queued_messages
                || s.queued_bytes.saturating_add(bytes) > cfg.max_queued_bytes
        };
        if full(self) && self.next_expiry.is_some_and(|t| now >= t) {
            self.purge_expired(now);
        }
        if full(self) {
            self.stats.dropped_queue_full += 1;
            tracing::debug!(client_id = %self.client_id, queued = self.queue.len(),
                queued_bytes = self.queued_bytes, "session queue full, message dropped");
            return false;
        }
        let message = self.admit(message);
        self.note_expiry(&message);
        self.queue.push_back(message);
        self.queued_bytes += bytes;
        let len = self.queue.len() as u64;
        let qb = self.queued_bytes as u64;
        let st = &mut self.stats;
        st.queue_high_water_messages = st.queue_high_water_messages.max(len);
        st.queue_high_water_bytes = st.queue_high_water_bytes.max(qb);
        true
    }

    /// Drops every queued message whose Message Expiry Interval has passed
    /// ([MQTT-3.3.2-5]), counting each in `dropped_expired`.
    pub(crate) fn purge_expired(&mut self, now: Instant) {
        let before = self.queue.len();
        let mut freed = 0;
        let mut next: Option<Instant> = None;
        let mut removed: SmallVec<[u64; 8]> = SmallVec::new();
        self.queue.retain(|m| {
            let expired = m.is_expired(now);
            if expired {
                freed += m.bytes();
                removed.push(m.id);
            } else if let Some(t) = m.expires_at() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            !expired
        });
        self.next_expiry = next;
        self.queued_bytes -= freed;
        for id in removed {
            self.record(|| SessionChange::Removed { id });
        }
        self.count_expired(before - self.queue.len());
    }

    /// Counts messages dropped because their Message Expiry Interval passed.
    pub(crate) fn count_expired(&mut self, n: usize) {
        if n > 0 {
            self.stats.dropped_expired += n as u64;
            tracing::debug!(client_id = %self.client_id, expired = n,
                "queued message expired, dropped");
        }
    }

    /// The oldest queued message.
    pub(crate) fn queue_front(&self) -> Option<&Message> {
        self.queue.front()
    }

    /// Takes the oldest queued message out of the queue; the caller sends
    /// it (QoS > 0: [`insert_inflight`](Self::insert_inflight) records
    /// that) or drops it ([`forget`](Self::forget)).
    pub(crate) fn pop_queue(&mut self) -> Option<Message> {
        let m = self.queue.pop_front()?;
        self.queued_bytes -= m.bytes();
        Some(m)
    }

    /// Records that the message `id` left the session without an inflight
    /// entry (sent at QoS 0, expired, not readable, given to another member).
    pub(crate) fn forget(&mut self, id: u64) {
        self.record(|| SessionChange::Removed { id });
    }

    /// Recomputes the earliest expiry of the queue (after a restore).
    pub(crate) fn refresh_next_expiry(&mut self) {
        self.next_expiry = self.queue.iter().filter_map(Message::expires_at).min();
    }

    fn note_expiry(&mut self, m: &Message) {
        if let Some(t) = m.expires_at() {
            self.next_expiry = Some(self.next_expiry.map_or(t, |n| n.min(t)));
        }
    }

    /// Put a message back at the head of the queue.
    pub(crate) fn requeue_front(&mut self, m: Message) {
        self.note_expiry(&m);
        self.queued_bytes += m.bytes();
        self.queue.push_front(m);
    }

    /// Records `message` as inflight under the next packet id not in use
    /// ([MQTT-2.3.1-2]; ids wrap from 65535 to 1) and returns the id. Gives
    /// the message back when every id is in use.
    pub(crate) fn insert_inflight(
        &mut self,
        state: InflightState,
        message: Message,
    ) -> Result<PacketId, Message> {
        let id = message.id;
        let pid = self.inflight.insert(state, message)?;
        self.record(|| SessionChange::Sent { id, packet_id: pid });
        Ok(pid)
    }

    pub(crate) fn inflight_state(&self, pid: PacketId) -> Option<InflightState> {
        self.inflight.get(pid).map(|e| e.state)
    }

    pub(crate) fn remove_inflight(&mut self, pid: PacketId) -> bool {
        self.inflight.remove(pid, None)
    }

    /// Frees `pid` if it is inflight in state `expected`; false otherwise.
    pub(crate) fn complete_inflight(&mut self, pid: PacketId, expected: InflightState) -> bool {
        self.inflight.remove(pid, Some(expected))
    }

    /// PUBREC received: the message now waits for PUBCOMP, ordered by PUBREC arrival.
    pub(crate) fn mark_pubrel(&mut self, pid: PacketId) {
        self.inflight.mark_pubrel(pid);
    }

    /// Inflight entries in re-send order, for retransmission on resume.
    pub(crate) fn retransmissions(&self) -> Vec<(PacketId, InflightState, Message)> {
        let mut v: Vec<_> = self
            .inflight
            .iter()
            .filter_map(|e| Some((e.seq, e.pid, e.state, e.message.clone()?)))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v.into_iter().map(|(_, pid, st, m)| (pid, st, m)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    pub(crate) fn msg(topic: &'static str, payload: &'static [u8]) -> Arc<Publish> {
        Arc::new(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: ByteString::from_static(topic),
            packet_id: None,
            properties: Default::default(),
            payload: Bytes::from_static(payload),
        })
    }

    pub(crate) fn message(m: &Arc<Publish>) -> Message {
        Message {
            msg: Arc::clone(m),
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: SmallVec::new(),
            received_at: Instant::now(),
            share: None,
            id: 0,
        }
    }

    // [MQTT-2.3.1-1] ids are never 0; [MQTT-2.3.1-2] never one in use.
    #[test]
    fn packet_ids_wrap_to_1_and_skip_ids_in_use() {
        let mut s = Session::new("c".into(), true);
        let m = msg("t", b"x");
        let send = |s: &mut Session| {
            s.insert_inflight(InflightState::AwaitPubAck, message(&m))
                .ok()
                .map(PacketId::get)
        };
        assert_eq!(send(&mut s), Some(1));
        assert_eq!(send(&mut s), Some(2));
        assert!(s.remove_inflight(PacketId::new(1).unwrap()));
        assert_eq!(send(&mut s), Some(3));
        assert!(s.remove_inflight(PacketId::new(3).unwrap()));
        s.inflight.set_last_id(u16::MAX - 1);
        assert_eq!(send(&mut s), Some(u16::MAX));
        assert_eq!(send(&mut s), Some(1));
        assert_eq!(send(&mut s), Some(3), "2 is in use");
        assert_eq!(
            s.inflight()
                .iter()
                .map(|(p, _)| p.get())
                .collect::<Vec<_>>(),
            [2, u16::MAX, 1, 3],
            "re-send order is send order"
        );
    }

    #[test]
    fn insert_fails_only_when_every_id_is_in_use() {
        let mut s = Session::new("c".into(), true);
        let m = msg("t", b"");
        for id in 1..=u16::MAX {
            let got = s.insert_inflight(InflightState::AwaitPubAck, message(&m));
            assert_eq!(got.ok().map(PacketId::get), Some(id));
        }
        assert!(s
            .insert_inflight(InflightState::AwaitPubAck, message(&m))
            .is_err());
        s.remove_inflight(PacketId::new(777).unwrap());
        let got = s.insert_inflight(InflightState::AwaitPubAck, message(&m));
        assert_eq!(got.ok().map(PacketId::get), Some(777));
    }

    #[test]
    fn enqueue_bounds_messages_and_bytes_and_tracks_high_water() {
        let now = Instant::now();
        let cfg = SessionConfig {
            max_queued_messages: 3,
            max_queued_bytes: 10,
            ..Default::default()
        };
        let mut s = Session::new("c".into(), true);
        let small = msg("t", b"abc"); // 4 bytes
        assert_eq!(
            s.enqueue(now, &Offer::new(&small, now, QoS::AtLeastOnce), &cfg),
            EnqueueOutcome::Queued
        );
        assert_eq!(
            s.enqueue(now, &Offer::new(&small, now, QoS::ExactlyOnce), &cfg),
            EnqueueOutcome::Queued
        );
        assert_eq!(s.queued_bytes(), 8);
        assert_eq!(
            s.enqueue(now, &Offer::new(&small, now, QoS::AtLeastOnce), &cfg),
            EnqueueOutcome::DroppedQueueFull,
            "12 > 10 bytes"
        );
        let tiny = msg("t", b"");
        assert_eq!(
            s.enqueue(now, &Offer::new(&tiny, now, QoS::AtLeastOnce), &cfg),
            EnqueueOutcome::Queued
        );
        assert_eq!(
            s.enqueue(now, &Offer::new(&tiny, now, QoS::AtLeastOnce), &cfg),
            EnqueueOutcome::DroppedQueueFull,
            "3 messages"
        );
        assert_eq!(s.stats().dropped_queue_full, 2);
        assert_eq!(s.stats().queue_high_water_messages, 3);
        assert_eq!(s.stats().queue_high_water_bytes, 9);
        assert_eq!(s.pop_queue().map(|m| m.qos), Some(QoS::AtLeastOnce));
        assert_eq!((s.queued_len(), s.queued_bytes()), (2, 5));
    }

    #[test]
    fn offline_qos0_dropped_unless_configured() {
        let now = Instant::now();
        let mut s = Session::new("c".into(), true);
        let m = msg("t", b"x");
        let cfg = SessionConfig::default();
        assert_eq!(
            s.enqueue(now, &Offer::new(&m, now, QoS::AtMostOnce), &cfg),
            EnqueueOutcome::DroppedQos0
        );
        assert_eq!(s.stats().dropped_qos0, 1);
        let cfg = SessionConfig {
            queue_qos0_offline: true,
            ..cfg
        };
        assert_eq!(
            s.enqueue(now, &Offer::new(&m, now, QoS::AtMostOnce), &cfg),
            EnqueueOutcome::Queued
        );
        assert_eq!(s.queued_len(), 1);
    }

    // [MQTT5-3.3.2-5] [MQTT5-3.3.2-6] boundaries of the expiry rule.
    #[test]
    fn expiry_is_reached_after_the_full_interval_and_remaining_counts_whole_seconds() {
        let t = Instant::now();
        let with = |secs: Option<u32>| {
            let mut p = (*msg("t", b"x")).clone();
            p.properties.message_expiry_interval = secs;
            Message {
                received_at: t,
                ..message(&Arc::new(p))
            }
        };
        let ms = |n: u64| t + Duration::from_millis(n);
        let five = with(Some(5));
        assert_eq!(
            (five.is_expired(t), five.remaining_expiry(t)),
            (false, Some(5))
        );
        assert_eq!(
            (five.is_expired(ms(999)), five.remaining_expiry(ms(999))),
            (false, Some(5))
        );
        assert_eq!(
            (five.is_expired(ms(1000)), five.remaining_expiry(ms(1000))),
            (false, Some(4))
        );
        assert_eq!(
            (five.is_expired(ms(4999)), five.remaining_expiry(ms(4999))),
            (false, Some(1))
        );
        assert_eq!(
            (five.is_expired(ms(5000)), five.remaining_expiry(ms(5000))),
            (true, Some(0))
        );
        assert_eq!(five.remaining_expiry(ms(99_000)), Some(0), "saturates");
        let earlier = t.checked_sub(Duration::from_secs(1)).unwrap_or(t);
        assert!(
            !five.is_expired(earlier),
            "a clock before reception waits 0"
        );
        let zero = with(Some(0));
        assert_eq!(
            (zero.is_expired(t), zero.remaining_expiry(t)),
            (false, Some(0))
        );
        assert!(zero.is_expired(ms(1)));
        let none = with(None);
        assert_eq!(
            (
                none.is_expired(ms(u64::from(u32::MAX))),
                none.remaining_expiry(ms(1))
            ),
            (false, None)
        );
    }

    #[test]
    fn session_is_send_and_debug_hides_payloads() {
        let now = Instant::now();
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Session>();
        let mut s = Session::new("c".into(), false);
        let m = msg("t", b"secret-payload");
        let cfg = SessionConfig::default();
        s.enqueue(now, &Offer::new(&m, now, QoS::AtLeastOnce), &cfg);
        assert!(!format!("{s:?}").contains("secret"));
        assert!(!s.is_persistent());
    }
}
