//! The per-connection state machine: owns a [`Session`] while connected.

use crate::alias::OutboundAliases;
use crate::auth::reauth::ConnAuth;
use crate::connect::{compact_str, connack, keep_alive, session_expiry, will_publish};
use crate::output::Queued;
use crate::session::{is_expired, FixedState, InflightState, Message};
use crate::subscriptions::Subscription;
use crate::{
    Authorizer, CloseReason, Closed, ConnectCheck, ConnectionStats, DeliverOutcome, DropReason,
    Event, Identity, Offer, OutboundPublish, Session, SessionChange, SessionConfig, Transmit, Will,
};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::{
    Connect, Disconnect, Packet, PacketId, ProtocolVersion, PubResp, Publish, QoS, ReasonCode,
    SubAck, UnsubAck,
};

/// One network connection's MQTT state. Sans-IO: feed it with `handle_*` and
/// `deliver`, drain it with `poll_transmit`, `poll_event` and `poll_timeout`
/// (see the crate docs for the call order).
pub struct Connection {
    pub(crate) version: ProtocolVersion,
    pub(crate) session: Session,
    /// Shared by every connection of a broker (one copy, not one each).
    pub(crate) cfg: Arc<SessionConfig>,
    /// Keep-alive in seconds actually enforced (0 = none).
    keep_alive: u16,
    pub(crate) last_received: Instant,
    /// The will and its v5 delay; removed on DISCONNECT 0x00 ([MQTT-3.1.2-10]).
    /// Boxed: most clients have none, and the connection stays small.
    pub(crate) will: Option<Box<(Publish, Option<u32>)>>,
    /// Outgoing QoS > 0 window: min(max_inflight, client Receive Maximum).
    send_window: u16,
    client_max_packet_size: Option<u32>,
    /// v5 Request Problem Information (default 1): reason strings and user
    /// properties may go on packets other than PUBLISH, CONNACK, DISCONNECT.
    pub(crate) problem_info: bool,
    /// Most outbound Topic Aliases: min(client's Topic Alias Maximum,
    /// `cfg.outbound_topic_alias_maximum`); 0 = none (v3, or not allowed).
    out_alias_max: u16,
    /// Session Expiry Interval from CONNECT (v5), to police DISCONNECT.
    pub(crate) connect_expiry: u32,
    transmits: VecDeque<Queued>,
    events: VecDeque<Event>,
    /// SUBSCRIBEs waiting for `complete_subscribe`, by packet id (rarely
    /// more than one: the broker completes each before reading on).
    /// Boxed, allocated at the first such SUBSCRIBE: a connection that has
    /// none pending pays one pointer.
    pub(crate) pending_subscribes: Option<Box<PendingSubscribes>>,
    /// Topic Alias mappings in both directions. Never part of the
    /// [`Session`]: they end with the network connection ([MQTT5-3.3.2-7]).
    /// Allocated at the first alias, so most connections hold none.
    pub(crate) aliases: Option<Box<Aliases>>,
    pub(crate) closing: bool,
    pub(crate) stats: ConnectionStats,
    /// Enhanced authentication state, when CONNECT used it (re-authentication).
    pub(crate) auth: Option<Box<ConnAuth>>,
    /// Who the client is, for the authorizer. Built at CONNECT when it has
    /// more than the client id (a user name, or what the broker put in the
    /// [`ConnectCheck`]); otherwise on first use, so an idle connection
    /// keeps no heap for it.
    identity: OnceCell<Box<Identity>>,
    /// This client's own policy ([`Authorizer::for_client`](crate::Authorizer::for_client)),
    /// asked instead of `cfg.authorizer` when there is one.
    client_authorizer: Option<Arc<dyn Authorizer>>,
    /// `checks_receive()` of the authorizer in force, asked when it is set.
    checks_receive: bool,
}

/// The Topic Alias mappings of one network connection (v5).
#[derive(Debug, Default)]
pub(crate) struct Aliases {
    /// Inbound Topic Alias → Topic Name, keys 1..=`cfg.topic_alias_maximum`.
    pub(crate) inbound: HashMap<u16, ByteString, FixedState>,
    /// Topics the broker has given aliases on its own PUBLISH packets.
    pub(crate) outbound: Option<OutboundAliases>,
}

/// SUBSCRIBEs waiting for `complete_subscribe`, by packet id.
pub(crate) type PendingSubscribes = Vec<(PacketId, PendingSubscribe)>;

/// A SUBSCRIBE waiting for `complete_subscribe`.
pub(crate) struct PendingSubscribe {
    /// One per filter of the packet: `Some(code)` = refused by the session,
    /// `None` = accepted, answered by the broker.
    pub(crate) slots: Vec<Option<ReasonCode>>,
    /// Accepted filters with the subscription each replaced, to restore on failure.
    pub(crate) accepted: Vec<(ByteString, Option<Subscription>)>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("version", &self.version)
            .field("session", &self.session)
            .field("keep_alive", &self.keep_alive)
            .field("send_window", &self.send_window)
            .field("aliases", &self.aliases)
            .field("transmits", &self.transmits.len())
            .field("events", &self.events.len())
            .field("closing", &self.closing)
            .finish()
    }
}

impl Connection {
    /// Starts a connection after [`Connection::check_connect`] accepted it.
    ///
    /// `existing` is the stored session for this client id. It is resumed when
    /// Clean Start is 0 and it is persistent (session present = 1,
    /// [MQTT-3.2.2-3]); otherwise it is discarded ([MQTT-3.1.2-4], session
    /// present = 0 [MQTT-3.2.2-1/2]). Queues the CONNACK, then re-sends every
    /// inflight PUBLISH with DUP = 1 and every PUBREL in their original order
    /// ([MQTT-4.4.0-1], [MQTT-4.6.0-1]), then releases queued messages up to the window.
    ///
    /// The will is copied out of the read buffer the CONNECT was decoded
    /// from. The client id is kept as given: pass a compact one
    /// ([`compact_str`](crate::compact_str)), or it pins that buffer for as
    /// long as the session lives. Pass the broker's one `Arc<SessionConfig>`
    /// so connections share it.
    pub fn new(
        now: Instant,
        connect: Connect,
        existing: Option<Session>,
        check: ConnectCheck,
        cfg: impl Into<Arc<SessionConfig>>,
    ) -> Self {
        let cfg: Arc<SessionConfig> = cfg.into();
        let version = connect.protocol;
        let client_id = check
            .assigned_client_id
            .clone()
            .unwrap_or_else(|| connect.client_id.clone());
        let resumed = existing.filter(|s| !connect.clean_start && s.is_persistent());
        let session_present = resumed.is_some();
        let mut session = resumed.unwrap_or_else(|| Session::new(client_id, false));
        session.arm_journal(cfg.record_changes);
        let connect_expiry = session_expiry(&connect);
        session.set_expiry_interval(connect_expiry);
        let (keep_alive, server_keep_alive) = keep_alive(&connect, &cfg);
        let (client_receive_max, client_max_packet_size) = if version.is_v5() {
            let p = &connect.properties;
            (p.receive_maximum.unwrap_or(u16::MAX), p.maximum_packet_size)
        } else {
            (u16::MAX, None)
        };
        let p = &connect.properties;
        let problem_info = p.request_problem_information.unwrap_or(true);
        let alias_max = p
            .topic_alias_maximum
            .unwrap_or(0)
            .min(cfg.outbound_topic_alias_maximum);
        let out_alias_max = if version.is_v5() { alias_max } else { 0 };
        let send_window = cfg.max_inflight.max(1).min(client_receive_max.max(1));
        // MQTT 3.1 has no Session Present flag: that CONNACK byte is reserved.
        let mut ack = connack(
            version,
            session_present && version != ProtocolVersion::V31,
            check.assigned_client_id.filter(|_| version.is_v5()),
            server_keep_alive,
            &cfg,
            check.authenticated.as_ref().filter(|_| version.is_v5()),
        );
        // [MQTT5-3.1.2-28]: only when asked for (absent means 0).
        if version.is_v5()
            && p.request_response_information == Some(true)
            && !cfg.response_information.is_empty()
        {
            let info = format!("{}{}", cfg.response_information, session.client_id());
            ack.properties.response_information = Some(ByteString::from(info));
        }
        let auth = check
            .authenticated
            .as_ref()
            .filter(|_| version.is_v5())
            .map(ConnAuth::new);
        let identity = OnceCell::new();
        if connect.username.is_some()
            || check.listener.is_some()
            || check.peer.is_some()
            || check.cert_subject.is_some()
        {
            // The user name is a slice of the read buffer: keep a copy.
            let _ = identity.set(Box::new(Identity {
                client_id: session.client_id().clone(),
                username: connect.username.as_ref().map(compact_str),
                listener: check.listener,
                peer: check.peer,
                cert_subject: check.cert_subject,
            }));
        }
        let mut conn = Self {
            version,
            session,
            cfg,
            keep_alive,
            last_received: now,
            will: connect.will.as_ref().map(|w| Box::new(will_publish(w))),
            send_window,
            client_max_packet_size,
            problem_info,
            out_alias_max,
            connect_expiry,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pending_subscribes: None,
            aliases: None,
            closing: false,
            stats: ConnectionStats::default(),
            auth,
            identity,
            client_authorizer: None,
            checks_receive: false,
        };
        // Without an identity built yet, ask with one on the stack: an idle
        // connection under the default authorizer keeps no heap for it.
        conn.client_authorizer = match conn.identity.get() {
            Some(id) => conn.cfg.authorizer.for_client(id),
            None => conn.cfg.authorizer.for_client(&Identity {
                client_id: conn.session.client_id().clone(),
                ..Identity::default()
            }),
        };
        conn.checks_receive = conn.authorizer().checks_receive();
        if conn.checks_receive && conn.session.queued_len() > 0 {
            conn.drop_unreadable_queued();
        }
        conn.push(Transmit::Packet(Packet::ConnAck(ack)));
        if session_present {
            conn.retransmit(now);
        }
        conn.release_queued(now);
        conn
    }

    /// Protocol version fixed by CONNECT.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client identifier (assigned one included).
    pub fn client_id(&self) -> &ByteString {
        self.session.client_id()
    }

    /// The session owned by this connection.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The authorizer this connection asks: its own policy, or `cfg.authorizer`.
    pub(crate) fn authorizer(&self) -> &dyn Authorizer {
        self.client_authorizer
            .as_deref()
            .unwrap_or(&*self.cfg.authorizer)
    }

    /// Drops the queued messages (queued while the session was offline,
    /// unchecked) that the client may not receive; counted as dropped
    /// deliveries. Messages queued while connected were checked by
    /// [`deliver`](Self::deliver) already.
    fn drop_unreadable_queued(&mut self) {
        let mut queue = std::mem::take(&mut self.session.queue);
        let before = queue.len();
        let (authz, id) = (self.authorizer(), self.identity());
        let mut removed: Vec<u64> = Vec::new();
        queue.retain(|m| {
            let readable = authz.receive(id, &m.msg.topic);
            if !readable {
                removed.push(m.id);
            }
            readable
        });
        let dropped = before - queue.len();
        if dropped > 0 {
            self.session.queued_bytes = queue.iter().map(Message::bytes).sum();
            self.stats.deliver_dropped += dropped as u64;
        }
        self.session.queue = queue;
        for id in removed {
            self.session.forget(id);
        }
    }

    /// Replaces the connection's own policy when it says it is stale
    /// ([`Authorizer::renew`](crate::Authorizer::renew)); one call per check.
    pub(crate) fn renew_authorizer(&mut self) {
        let Some(current) = &self.client_authorizer else {
            return;
        };
        if let Some(next) = current.renew(self.identity()) {
            self.checks_receive = next.checks_receive();
            self.client_authorizer = Some(next);
        }
    }

    /// Who the client is, as the authorizer sees it: the client id (after
    /// assignment), the CONNECT user name, and the listener, peer and
    /// certificate subject the broker put in the [`ConnectCheck`].
    pub fn identity(&self) -> &Identity {
        self.identity.get_or_init(|| {
            Box::new(Identity {
                client_id: self.session.client_id().clone(),
                ..Identity::default()
            })
        })
    }

    /// The next change recorded for a persistence backend (see
    /// [`SessionChange`]; only with `cfg.record_changes`, for a persistent
    /// session).
    pub fn poll_change(&mut self) -> Option<SessionChange> {
        self.session.poll_change()
    }

    /// Counters for this connection.
    pub fn stats(&self) -> &ConnectionStats {
        &self.stats
    }

    /// Keep-alive in seconds being enforced (the Server Keep Alive if capped).
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// Outgoing QoS > 0 window: min(max_inflight, the client's Receive Maximum).
    pub fn send_window(&self) -> u16 {
        self.send_window
    }

    /// The client's v5 Maximum Packet Size; the broker must discard larger
    /// packets instead of sending them ([MQTT-3.1.2-24/25]).
    pub fn client_max_packet_size(&self) -> Option<u32> {
        self.client_max_packet_size
    }

    /// True once an [`Event::Close`] has been emitted.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Gives back the memory of drained queues and empty containers, here
    /// and in the session. For a connection that is idle (after its CONNACK
    /// went out, or after a quiet spell); a busy connection would only
    /// allocate again. Changes no state.
    pub fn release_memory(&mut self) {
        if self.transmits.is_empty() {
            self.transmits = VecDeque::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        if self
            .pending_subscribes
            .as_ref()
            .is_some_and(|p| p.is_empty())
        {
            self.pending_subscribes = None;
        }
        self.session.release_memory();
    }

    /// Next packet to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front().map(Transmit::from)
    }

    /// Next event for the broker.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called: the keep-alive deadline,
    /// 1.5 × keep-alive after the last packet received ([MQTT-3.1.2-24]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closing || self.keep_alive == 0 {
            return None;
        }
        let grace = Duration::from_millis(u64::from(self.keep_alive) * 1500);
        Some(self.last_received + grace)
    }

    /// Closes with [`CloseReason::KeepAliveTimeout`] once the deadline has
    /// passed (v5: after queueing DISCONNECT 0x8D).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.close(CloseReason::KeepAliveTimeout);
            }
        }
    }

    /// The broker closes the connection (takeover, shutdown, a codec error…):
    /// for v5 queues the DISCONNECT the reason calls for (0x8E, 0x8B, 0x81…),
    /// then emits [`Event::Close`]. No-op when already closing.
    pub fn close(&mut self, reason: CloseReason) {
        self.close_with(reason, None);
    }

    /// [`close`](Self::close), with a v5 Reason String on the DISCONNECT
    /// when it fits the client's Maximum Packet Size ([MQTT5-3.14.2-3]).
    pub(crate) fn close_with(&mut self, reason: CloseReason, why: Option<String>) {
        if self.closing {
            return;
        }
        if self.version.is_v5() {
            if let Some(code) = reason.server_disconnect_code() {
                let mut d = Disconnect {
                    reason: code,
                    ..Disconnect::default()
                };
                // Fixed header (≤ 5) + reason + property length (≤ 4).
                d.properties.reason_string = why.and_then(|w| self.reason_string_within(10, w));
                self.push(Transmit::Packet(Packet::Disconnect(d)));
            }
        }
        self.closing = true;
        self.events.push_back(Event::Close(reason));
    }

    /// `why` as a Reason String property, when a packet of `header` bytes
    /// with it (3 + its length) fits the client's Maximum Packet Size
    /// ([MQTT5-3.4.2-2], [MQTT5-3.14.2-3]).
    pub(crate) fn reason_string_within(&self, header: usize, why: String) -> Option<ByteString> {
        let fits = self
            .client_max_packet_size
            .is_none_or(|max| header + 3 + why.len() <= max as usize);
        fits.then(|| ByteString::from(why))
    }

    /// The network connection is gone. Returns the will unless the client sent
    /// DISCONNECT 0x00 ([MQTT-3.1.2-10], [MQTT-3.14.4-3]) or the authorizer
    /// does not allow its topic ([`Closed::will_denied`]), and the session
    /// if it is persistent ([MQTT-3.1.2-23]). A delayed v5 will must be
    /// cancelled by the broker if a new connection resumes the session
    /// first ([MQTT-3.1.3-9]).
    pub fn handle_close(mut self, _now: Instant, reason: CloseReason) -> Closed {
        let expiry = self.session.expiry_interval();
        let mut will_denied = None;
        let will = match reason {
            CloseReason::ClientDisconnect => None,
            _ => self.will.take().and_then(|will| {
                let (publish, delay) = *will;
                self.renew_authorizer();
                let allowed = self.authorizer().publish(
                    self.identity(),
                    &publish.topic,
                    publish.qos,
                    publish.retain,
                );
                if !allowed {
                    tracing::debug!(client_id = %self.session.client_id(), topic = %publish.topic,
                        "will not authorized: not published");
                    will_denied = Some(publish.topic);
                    return None;
                }
                Some(Will {
                    publish,
                    delay: delay.map(|d| d.min(expiry)).filter(|d| *d > 0),
                })
            }),
        };
        tracing::debug!(client_id = %self.session.client_id(), ?reason, will = will.is_some(),
            "connection closed");
        let session = self.session.is_persistent().then_some(self.session);
        Closed {
            will,
            session,
            will_denied,
        }
    }

    /// How the next PUBLISH to `topic` uses an outbound Topic Alias (v5,
    /// when the client's Topic Alias Maximum and the broker's limit are
    /// both above 0). Call [`commit_topic_alias`](Self::commit_topic_alias)
    /// once the packet is written.
    pub fn topic_alias(&self, topic: &str) -> crate::AliasUse {
        if self.out_alias_max == 0 {
            return crate::AliasUse::None;
        }
        match self.aliases.as_ref().and_then(|a| a.outbound.as_ref()) {
            Some(out) => out.plan(topic),
            None => crate::AliasUse::New(std::num::NonZeroU16::MIN),
        }
    }

    /// Records the alias a written PUBLISH used (see [`topic_alias`](Self::topic_alias)).
    pub fn commit_topic_alias(&mut self, topic: &ByteString, used: crate::AliasUse) {
        if matches!(used, crate::AliasUse::None) || self.out_alias_max == 0 {
            return;
        }
        let max = self.out_alias_max;
        self.aliases
            .get_or_insert_with(Box::default)
            .outbound
            .get_or_insert_with(|| OutboundAliases::new(max))
            .commit(topic, used);
    }

    /// A PUBLISH handed out by `poll_transmit` is larger than the client's
    /// Maximum Packet Size: it is discarded unsent and the session behaves as
    /// if its delivery had completed ([MQTT5-3.1.2-25]): its packet id is
    /// freed and queued messages move into the window.
    pub fn discard_too_large(&mut self, now: Instant, packet_id: Option<PacketId>) {
        self.session.stats.dropped_too_large += 1;
        self.stats.deliver_dropped += 1;
        if let Some(pid) = packet_id {
            if self.session.remove_inflight(pid) {
                self.session
                    .record(|| SessionChange::Acked { packet_id: pid });
                self.release_queued(now);
            }
        }
    }

    /// Session takeover: hand the session to a new connection, whatever its persistence.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// Sends (or queues) a routed message. `offer.qos` is already
    /// min(message QoS, granted QoS). QoS 0 is sent at once; QoS > 0 takes
    /// the next free packet id when the window has room and nothing is
    /// queued before it ([MQTT-4.6.0-6] ordering), else waits in the bounded
    /// session queue. A message of a shared subscription (`offer.group`) is
    /// tagged with it (inflight or queued), so that
    /// [`Session::take_shared_unacked`] finds it if this client leaves
    /// before acknowledging it.
    ///
    /// `offer.received_at` is when the broker received the message: a v5
    /// Message Expiry Interval counts from there. A message whose interval
    /// has passed is dropped here or when it would leave the queue
    /// ([MQTT-3.3.2-5]); a sent one carries the remaining interval
    /// ([MQTT-3.3.2-6]). Tern applies a publisher's expiry to v3 receivers
    /// too (they just get no property).
    ///
    /// When the authorizer checks receivers
    /// ([`Authorizer::checks_receive`](crate::Authorizer::checks_receive)),
    /// a message the client may not receive is dropped
    /// ([`DropReason::NotAuthorized`]).
    pub fn deliver(&mut self, now: Instant, offer: &Offer<'_>) -> DeliverOutcome {
        self.stats.delivered += 1;
        let (msg, qos) = (offer.msg, offer.qos);
        self.renew_authorizer();
        if self.checks_receive && !self.authorizer().receive(self.identity(), &msg.topic) {
            self.stats.deliver_dropped += 1;
            return DeliverOutcome::Dropped(DropReason::NotAuthorized);
        }
        let ids: &[u32] = if self.version.is_v5() {
            offer.subscription_identifiers
        } else {
            &[]
        };
        let message = || Message {
            msg: Arc::clone(msg),
            qos,
            retain: offer.retain,
            sub_ids: SmallVec::from_slice(ids),
            received_at: offer.received_at,
            share: offer.group.cloned(),
            id: 0,
        };
        if is_expired(msg, offer.received_at, now) {
            self.session.count_expired(1);
            self.stats.deliver_dropped += 1;
            return DeliverOutcome::Dropped(DropReason::Expired);
        }
        if qos == QoS::AtMostOnce {
            if self.closing {
                self.session.stats.dropped_qos0 += 1;
                self.stats.deliver_dropped += 1;
                return DeliverOutcome::Dropped(DropReason::Qos0NotQueued);
            }
            self.send_message(now, message());
            return DeliverOutcome::Sent;
        }
        if self.closing
            || self.session.queued_len() > 0
            || self.session.inflight_len() >= usize::from(self.send_window)
        {
            if !self.session.push_queue(now, message(), &self.cfg) {
                self.stats.deliver_dropped += 1;
                return DeliverOutcome::Dropped(DropReason::QueueFull);
            }
            DeliverOutcome::Queued
        } else {
            let m = self.session.admit(message());
            self.send_message(now, m);
            DeliverOutcome::Sent
        }
    }

    /// Queues the SUBACK for an [`Event::Subscribe`]: `reasons` has one code
    /// per filter of the event (granted QoS or a failure). Failed filters are
    /// removed again (or the replaced subscription restored); granted QoS is stored.
    pub fn complete_subscribe(&mut self, packet_id: PacketId, reasons: Vec<ReasonCode>) {
        let pending = self.pending_subscribes.as_mut().and_then(|p| {
            let i = p.iter().position(|(pid, _)| *pid == packet_id)?;
            Some(p.swap_remove(i).1)
        });
        let Some(pending) = pending else {
            self.push_ack(Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties: Default::default(),
            }));
            return;
        };
        let mut given = reasons.into_iter();
        let mut accepted = pending.accepted.into_iter();
        let mut out = Vec::with_capacity(pending.slots.len());
        for slot in pending.slots {
            if let Some(code) = slot {
                out.push(code);
                continue;
            }
            let code = given.next().unwrap_or(ReasonCode::UNSPECIFIED_ERROR);
            if let Some((filter, previous)) = accepted.next() {
                let subs = &mut self.session.subscriptions;
                if code.is_success() {
                    if let (Some(sub), Some(q)) = (subs.get_mut(&filter), QoS::from_u8(code.0)) {
                        sub.options.qos = q;
                        let sub = *sub;
                        // A compact copy: `filter` is a slice of the read buffer.
                        self.session.record(|| SessionChange::Subscribed {
                            filter: compact_str(&filter),
                            options: sub.options,
                            subscription_identifier: sub.id(),
                        });
                    }
                } else if let Some(prev) = previous {
                    subs.insert(&filter, prev);
                } else {
                    subs.remove(&filter);
                }
            }
            out.push(code);
        }
        self.push_ack(Packet::SubAck(SubAck {
            packet_id,
            reasons: out,
            properties: Default::default(),
        }));
    }

    /// Queues the UNSUBACK for an [`Event::Unsubscribe`] (v3 carries no reason codes).
    pub fn complete_unsubscribe(&mut self, packet_id: PacketId, reasons: Vec<ReasonCode>) {
        let reasons = if self.version.is_v5() {
            reasons
        } else {
            Vec::new()
        };
        self.push_ack(Packet::UnsubAck(UnsubAck {
            packet_id,
            reasons,
            properties: Default::default(),
        }));
    }

    pub(crate) fn push(&mut self, t: impl Into<Queued>) {
        self.stats.transmits += 1;
        self.transmits.push_back(t.into());
    }

    /// A control packet answering the client; nothing is sent once closing
    /// ([MQTT-3.14.4-1]: no packets after DISCONNECT).
    pub(crate) fn push_ack(&mut self, p: Packet) {
        if !self.closing {
            self.push(Transmit::Packet(p));
        }
    }

    pub(crate) fn push_event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    /// Closes for a protocol violation: v5 queues DISCONNECT with its reason code.
    pub(crate) fn fail(&mut self, err: crate::ProtocolError) -> Result<(), crate::ProtocolError> {
        tracing::debug!(client_id = %self.session.client_id(), error = %err, "protocol error");
        // DISCONNECT may carry a Reason String whatever the client's
        // Request Problem Information ([MQTT5-3.1.2-29]).
        self.close_with(
            CloseReason::ProtocolError(err.reason_code()),
            Some(err.to_string()),
        );
        Err(err)
    }

    /// The Message Expiry Interval to send for `m` at `now` (v5 only).
    fn expiry_for(&self, m: &Message, now: Instant) -> Option<u32> {
        if self.version.is_v5() {
            m.remaining_expiry(now)
        } else {
            None
        }
    }

    /// Transmit a message now: QoS 0 without a packet id, QoS > 0 recorded inflight.
    fn send_message(&mut self, now: Instant, m: Message) {
        let message_expiry_interval = self.expiry_for(&m, now);
        let mut out = OutboundPublish {
            msg: Arc::clone(&m.msg),
            qos: m.qos,
            packet_id: None,
            dup: false,
            retain: m.retain,
            subscription_identifiers: SmallVec::new(),
            message_expiry_interval,
        };
        if m.qos == QoS::AtMostOnce {
            out.subscription_identifiers = m.sub_ids;
        } else {
            if !m.sub_ids.is_empty() {
                out.subscription_identifiers = m.sub_ids.clone();
            }
            let state = if m.qos == QoS::AtLeastOnce {
                InflightState::AwaitPubAck
            } else {
                InflightState::AwaitPubRec
            };
            match self.session.insert_inflight(state, m) {
                Ok(pid) => out.packet_id = Some(pid),
                Err(m) => {
                    // Every id is in use: impossible with a window ≤ 65535; keep the order.
                    self.session.requeue_front(m);
                    return;
                }
            }
        }
        self.session.stats.publish_out += 1;
        self.push(Queued::Publish(out));
    }

    /// Moves queued messages out while the window has room (QoS 0 needs
    /// none), dropping those whose Message Expiry Interval has passed
    /// ([MQTT-3.3.2-5]).
    pub(crate) fn release_queued(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        while let Some((qos, expired)) = self
            .session
            .queue_front()
            .map(|m| (m.qos, m.is_expired(now)))
        {
            if expired {
                if let Some(m) = self.session.pop_queue() {
                    self.session.forget(m.id);
                }
                self.session.count_expired(1);
                continue;
            }
            if qos != QoS::AtMostOnce
                && self.session.inflight_len() >= usize::from(self.send_window)
            {
                break;
            }
            let Some(m) = self.session.pop_queue() else {
                break;
            };
            if qos == QoS::AtMostOnce {
                self.session.forget(m.id);
            }
            self.send_message(now, m);
        }
    }

    /// Re-sends inflight PUBLISH (DUP = 1) and PUBREL in order ([MQTT-4.4.0-1]).
    /// Onward delivery of these has started, so expiry no longer removes them
    /// ([MQTT-3.3.2-5], [MQTT-4.3.3-7]); they carry the remaining interval,
    /// 0 once it has passed.
    fn retransmit(&mut self, now: Instant) {
        for (pid, state, m) in self.session.retransmissions() {
            let t = match state {
                InflightState::AwaitPubAck | InflightState::AwaitPubRec => {
                    let message_expiry_interval = self.expiry_for(&m, now);
                    Transmit::Publish(OutboundPublish {
                        msg: m.msg,
                        qos: m.qos,
                        packet_id: Some(pid),
                        dup: true,
                        retain: m.retain,
                        subscription_identifiers: m.sub_ids,
                        message_expiry_interval,
                    })
                }
                InflightState::AwaitPubComp => Transmit::Packet(Packet::PubRel(PubResp::new(pid))),
            };
            self.session.stats.retransmitted += 1;
            self.push(t);
        }
    }
}
