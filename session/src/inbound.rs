//! Packets from the client: `Connection::handle_packet`, and
//! `Connection::complete_publish` for what the broker made of a PUBLISH.

use crate::connection::PendingSubscribe;
use crate::session::InflightState;
use crate::subscriptions::Subscription;
use crate::{CloseReason, Connection, Event, ProtocolError, SessionChange};
use bytestring::ByteString;
use std::time::Instant;
use tern_codec::{
    Disconnect, Packet, PacketId, PubResp, Publish, QoS, ReasonCode, Subscribe, Unsubscribe,
};

/// What the broker made of a client's PUBLISH ([`Event::Publish`]), for
/// [`Connection::complete_publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Routed to at least one subscriber.
    Routed,
    /// No subscription matched (v5 acks say 0x10, 3.4.2.1).
    NoMatchingSubscribers,
    /// Not routed, for this reason (>= 0x80; v5 acks carry it).
    Refused(ReasonCode),
}

impl Connection {
    /// Handles one decoded packet from the client. Responses are queued as
    /// transmits, work for the broker as events. On `Err` the connection is
    /// closing: for v5 a DISCONNECT with [`ProtocolError::reason_code`] is
    /// queued, and [`Event::Close`] is emitted. Packets after close are ignored.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        if self.closing {
            return Ok(());
        }
        self.last_received = now;
        self.stats.packets_in += 1;
        match packet {
            Packet::Publish(p) => self.handle_publish(p),
            Packet::PubAck(r) => {
                self.handle_ack(now, r.packet_id, InflightState::AwaitPubAck, "PUBACK");
                Ok(())
            }
            Packet::PubRec(r) => {
                self.handle_pubrec(now, r);
                Ok(())
            }
            Packet::PubRel(r) => {
                self.handle_pubrel(r.packet_id);
                Ok(())
            }
            Packet::PubComp(r) => {
                self.handle_ack(now, r.packet_id, InflightState::AwaitPubComp, "PUBCOMP");
                Ok(())
            }
            Packet::Subscribe(s) => self.handle_subscribe(s),
            Packet::Unsubscribe(u) => {
                self.handle_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.stats.pings += 1;
                self.push_ack(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.handle_disconnect(d),
            Packet::Connect(_) => self.fail(ProtocolError::SecondConnect),
            Packet::Auth(a) => self.handle_auth(a),
            p @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => self.fail(ProtocolError::UnexpectedPacket(p.name())),
        }
    }

    fn handle_publish(&mut self, mut p: Publish) -> Result<(), ProtocolError> {
        self.session.stats.publish_in += 1;
        if let Some(alias) = p.properties.topic_alias.take() {
            self.resolve_topic_alias(alias.get(), &mut p)?;
        }
        if p.topic.is_empty() {
            return self.fail(ProtocolError::EmptyTopic);
        }
        if self.cfg.exceeds_topic_limits(&p.topic) {
            return self.fail(ProtocolError::TopicNameOverLimit(p.topic.len()));
        }
        if !p.properties.subscription_identifiers.is_empty() {
            return self.fail(ProtocolError::SubscriptionIdentifierFromClient);
        }
        if p.qos > self.cfg.max_qos {
            return self.fail(ProtocolError::QosNotSupported(p.qos as u8));
        }
        if p.retain && !self.cfg.retain_available {
            return self.fail(ProtocolError::RetainNotSupported);
        }
        if self.cfg.validate_payload_format
            && p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            return self.refuse_payload(&p);
        }
        // The codec guarantees a packet id exactly when QoS > 0.
        let qos2_id = p.packet_id.filter(|_| p.qos == QoS::ExactlyOnce);
        if let Some(pid) = qos2_id {
            if self.session.incoming_qos2.contains(&pid) {
                // [MQTT-4.3.3-10] acknowledge again, do not route twice.
                self.session.stats.publish_in_duplicates += 1;
                self.push_ack(Packet::PubRec(PubResp::new(pid)));
                return Ok(());
            }
            // Only v5 clients are told a Receive Maximum; for v3 the
            // pending ids are bounded by the packet-id space itself.
            let limit = self.cfg.receive_maximum();
            if self.version.is_v5() && self.session.incoming_qos2.len() >= usize::from(limit) {
                return self.fail(ProtocolError::ReceiveMaximumExceeded(limit));
            }
        }
        self.renew_authorizer();
        let allowed = self
            .authorizer()
            .publish(self.identity(), &p.topic, p.qos, p.retain);
        if let Some(pid) = qos2_id {
            // A refused v5 id is not kept ([MQTT5-4.3.3-9]); v3 goes on
            // with PUBREL/PUBCOMP after its plain PUBREC.
            if allowed || !self.version.is_v5() {
                self.session.incoming_qos2.insert(pid);
                self.session.record(|| SessionChange::InboundQos2 {
                    packet_id: pid,
                    done: false,
                });
            }
        }
        if !allowed {
            self.deny_publish(p);
            return Ok(());
        }
        // The PUBACK / PUBREC waits for `complete_publish`.
        self.push_event(Event::Publish(p));
        Ok(())
    }

    /// What the broker made of the client's PUBLISH of an
    /// [`Event::Publish`]: queues its PUBACK (QoS 1) or PUBREC (QoS 2) with
    /// the same packet id ([MQTT-4.3.2-4], [MQTT-4.3.3-8]); QoS 0 has none.
    /// Call it before handling the client's next packet, so that
    /// acknowledgements keep the order of the PUBLISH packets ([MQTT-4.6.0-2]).
    ///
    /// A v5 ack carries 0x10 for [`PublishOutcome::NoMatchingSubscribers`]
    /// (3.4.2.1) and the code of [`PublishOutcome::Refused`]; a refused QoS 2
    /// id is released at once, as the client sends no PUBREL after an error
    /// PUBREC, and a later PUBLISH with it is a new message
    /// ([MQTT5-4.3.3-9]). v3 acks have no reason code: they are plain
    /// whatever the outcome (and QoS 2 goes on with PUBREL/PUBCOMP).
    pub fn complete_publish(
        &mut self,
        qos: QoS,
        packet_id: Option<PacketId>,
        outcome: PublishOutcome,
    ) {
        let Some(pid) = packet_id else {
            return;
        };
        let mut resp = PubResp::new(pid);
        if self.version.is_v5() {
            resp.reason = match outcome {
                PublishOutcome::Routed => ReasonCode::SUCCESS,
                PublishOutcome::NoMatchingSubscribers => ReasonCode::NO_MATCHING_SUBSCRIBERS,
                PublishOutcome::Refused(code) => code,
            };
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.push_ack(Packet::PubAck(resp)),
            QoS::ExactlyOnce => {
                if !resp.reason.is_success() && self.session.incoming_qos2.remove(&pid) {
                    self.session.record(|| SessionChange::InboundQos2 {
                        packet_id: pid,
                        done: true,
                    });
                }
                self.push_ack(Packet::PubRec(resp));
            }
        }
    }

    /// A PUBLISH the authorizer denied: answered as
    /// `complete_publish(Refused(0x87))` would, not routed, reported.
    fn deny_publish(&mut self, p: Publish) {
        self.session.stats.publish_in_refused += 1;
        tracing::debug!(client_id = %self.session.client_id(), topic = %p.topic,
            "PUBLISH not authorized: not routed");
        self.complete_publish(
            p.qos,
            p.packet_id,
            PublishOutcome::Refused(ReasonCode::NOT_AUTHORIZED),
        );
        self.push_event(Event::PublishDenied {
            topic: p.topic,
            qos: p.qos,
        });
    }

    /// A PUBLISH whose payload is marked UTF-8 and is not ([MQTT5-3.3.2-4]
    /// lets the receiver check): QoS 1/2 are answered with 0x99 and not
    /// routed, QoS 0 (which has no answer) closes with DISCONNECT 0x99.
    fn refuse_payload(&mut self, p: &Publish) -> Result<(), ProtocolError> {
        let Some(pid) = p.packet_id else {
            return self.fail(ProtocolError::PayloadFormatInvalid);
        };
        tracing::debug!(client_id = %self.session.client_id(), topic = %p.topic,
            "PUBLISH refused: payload is not valid UTF-8");
        self.session.stats.publish_in_refused += 1;
        let mut resp = PubResp::new(pid);
        resp.reason = ReasonCode::PAYLOAD_FORMAT_INVALID;
        resp.properties.reason_string = self.reason_string(ProtocolError::PayloadFormatInvalid);
        self.push_ack(if p.qos == QoS::ExactlyOnce {
            Packet::PubRec(resp)
        } else {
            Packet::PubAck(resp)
        });
        Ok(())
    }

    /// A Reason String for an acknowledgement, when the client allows one
    /// ([MQTT5-3.1.2-29]) and it fits its Maximum Packet Size.
    pub(crate) fn reason_string(&self, why: ProtocolError) -> Option<ByteString> {
        // Fixed header (≤ 5) + packet id + reason + property length (≤ 4).
        self.problem_info
            .then(|| self.reason_string_within(12, why.to_string()))
            .flatten()
    }

    /// Applies an inbound Topic Alias (3.3.4 PUBLISH Actions): 0 never gets
    /// here (the codec rejects it, [MQTT-3.3.2-8]); above the advertised
    /// maximum → 0x94 ([MQTT-3.3.2-9]); with a topic the mapping is set or
    /// replaced, with an empty topic the mapped topic is filled in (unknown
    /// alias → 0x82). The alias property itself is removed from `p` by the caller.
    fn resolve_topic_alias(&mut self, alias: u16, p: &mut Publish) -> Result<(), ProtocolError> {
        if !self.version.is_v5() || alias > self.cfg.topic_alias_maximum {
            return self.fail(ProtocolError::TopicAliasInvalid(alias));
        }
        if p.topic.is_empty() {
            let known = self.aliases.as_ref().and_then(|a| a.inbound.get(&alias));
            let Some(topic) = known else {
                return self.fail(ProtocolError::TopicAliasUnknown(alias));
            };
            p.topic = topic.clone();
        } else {
            // A compact copy: the decoded topic is a slice of the read buffer
            // and would pin that whole frame for the life of the connection.
            self.aliases
                .get_or_insert_with(Box::default)
                .inbound
                .insert(alias, ByteString::from(&*p.topic));
        }
        Ok(())
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for an outgoing message: free the id
    /// and release queued messages. Unknown ids are ignored (counted).
    fn handle_ack(
        &mut self,
        now: Instant,
        pid: PacketId,
        expected: InflightState,
        name: &'static str,
    ) {
        if !self.session.complete_inflight(pid, expected) {
            self.unknown_ack(pid, name);
            return;
        }
        let st = &mut self.session.stats;
        match expected {
            InflightState::AwaitPubAck => st.puback_in += 1,
            _ => st.pubcomp_in += 1,
        }
        self.session
            .record(|| SessionChange::Acked { packet_id: pid });
        self.release_queued(now);
    }

    fn handle_pubrec(&mut self, now: Instant, r: PubResp) {
        let pid = r.packet_id;
        match self.session.inflight_state(pid) {
            Some(InflightState::AwaitPubRec) => {
                self.session.stats.pubrec_in += 1;
                if !r.reason.is_success() {
                    // [MQTT-4.4.0-2] acknowledged, never re-sent; the id is free.
                    self.session.remove_inflight(pid);
                    self.session
                        .record(|| SessionChange::Acked { packet_id: pid });
                    self.release_queued(now);
                    return;
                }
                // [MQTT-4.3.3-4] PUBREL with the same id; PUBRELs follow PUBREC order.
                self.session.mark_pubrel(pid);
                self.session
                    .record(|| SessionChange::Released { packet_id: pid });
                self.push_ack(Packet::PubRel(PubResp::new(pid)));
            }
            Some(InflightState::AwaitPubComp) => {
                // A repeated PUBREC: repeat the PUBREL.
                self.push_ack(Packet::PubRel(PubResp::new(pid)));
            }
            Some(InflightState::AwaitPubAck) | None => {
                self.unknown_ack(pid, "PUBREC");
                // Let the client finish its own QoS 2 state for this id.
                self.push_ack(Packet::PubRel(self.not_found(pid)));
            }
        }
    }

    /// PUBREL for an incoming QoS 2 message: forget the id, answer PUBCOMP
    /// ([MQTT-4.3.3-11]); unknown id → PUBCOMP (v5: 0x92).
    fn handle_pubrel(&mut self, pid: PacketId) {
        let resp = if self.session.incoming_qos2.remove(&pid) {
            self.session.record(|| SessionChange::InboundQos2 {
                packet_id: pid,
                done: true,
            });
            PubResp::new(pid)
        } else {
            tracing::debug!(client_id = %self.session.client_id(), pid, "PUBREL for unknown packet id");
            self.not_found(pid)
        };
        self.push_ack(Packet::PubComp(resp));
    }

    fn not_found(&self, pid: PacketId) -> PubResp {
        let mut resp = PubResp::new(pid);
        if self.version.is_v5() {
            resp.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        resp
    }

    fn unknown_ack(&mut self, pid: PacketId, name: &'static str) {
        self.session.stats.unknown_acks += 1;
        tracing::debug!(client_id = %self.session.client_id(), pid, packet = name,
            "acknowledgement for a packet id not inflight; ignored");
    }

    fn handle_subscribe(&mut self, s: Subscribe) -> Result<(), ProtocolError> {
        if self.version.is_v5()
            && s.filters
                .iter()
                .any(|(f, o)| o.no_local && f.starts_with("$share/"))
        {
            return self.fail(ProtocolError::NoLocalOnSharedSubscription);
        }
        let id = s.properties.subscription_identifier;
        let max = self.cfg.max_subscriptions;
        let mut slots = Vec::with_capacity(s.filters.len());
        let mut accepted = Vec::with_capacity(s.filters.len());
        let mut filters = Vec::with_capacity(s.filters.len());
        let mut existed = Vec::with_capacity(s.filters.len());
        for (filter, mut options) in s.filters {
            if self.cfg.exceeds_topic_limits(&filter) {
                // Refused before the quota counts it ([MQTT5-3.8.4-5]: each
                // filter is handled as if in a SUBSCRIBE of its own).
                slots.push(Some(ReasonCode::TOPIC_FILTER_INVALID));
                continue;
            }
            // Granted at most the server's Maximum QoS ([MQTT5-3.2.2-10]).
            options.qos = options.qos.min(self.cfg.max_qos);
            self.renew_authorizer();
            if !self
                .authorizer()
                .subscribe(self.identity(), &filter, options.qos)
            {
                // 0x87; the codec sends 0x80 (Failure) to v3 clients.
                tracing::debug!(client_id = %self.session.client_id(), %filter,
                    "SUBSCRIBE not authorized");
                slots.push(Some(ReasonCode::NOT_AUTHORIZED));
                continue;
            }
            let subs = &mut self.session.subscriptions;
            let previous = subs.get(&filter).copied();
            if previous.is_none() && max != 0 && subs.len() >= max {
                slots.push(Some(ReasonCode::QUOTA_EXCEEDED));
                continue;
            }
            // [MQTT-3.8.4-3] an identical filter replaces the subscription.
            subs.insert(&filter, Subscription::new(options, id));
            slots.push(None);
            accepted.push((filter.clone(), previous));
            existed.push(previous.is_some());
            filters.push((filter, options));
        }
        if filters.is_empty() {
            // Nothing for the broker to route: answer now ([MQTT-3.8.4-1]).
            let reasons = slots.into_iter().flatten().collect();
            self.push_ack(Packet::SubAck(tern_codec::SubAck {
                packet_id: s.packet_id,
                reasons,
                properties: Default::default(),
            }));
            return Ok(());
        }
        // A packet id reused before its SUBACK replaces the pending entry.
        let pending = self.pending_subscribes.get_or_insert_with(Box::default);
        pending.retain(|(pid, _)| *pid != s.packet_id);
        pending.push((s.packet_id, PendingSubscribe { slots, accepted }));
        self.push_event(Event::Subscribe {
            packet_id: s.packet_id,
            filters,
            subscription_identifier: id,
            existed,
        });
        Ok(())
    }

    fn handle_unsubscribe(&mut self, u: Unsubscribe) {
        let mut existed = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            let removed = self.session.subscriptions.remove(f).is_some();
            if removed {
                // A compact copy: `f` is a slice of the read buffer.
                self.session.record(|| SessionChange::Unsubscribed {
                    filter: crate::compact_str(f),
                });
            }
            existed.push(removed);
        }
        self.push_event(Event::Unsubscribe {
            packet_id: u.packet_id,
            filters: u.filters,
            existed,
        });
    }

    fn handle_disconnect(&mut self, d: Disconnect) -> Result<(), ProtocolError> {
        if self.version.is_v5() {
            if let Some(expiry) = d.properties.session_expiry_interval {
                if self.connect_expiry == 0 && expiry != 0 {
                    return self.fail(ProtocolError::SessionExpiryAfterZero);
                }
                if expiry != self.session.expiry_interval() {
                    // Recorded while the session is still persistent.
                    self.session
                        .record(|| SessionChange::ExpiryChanged { secs: expiry });
                }
                self.session.set_expiry_interval(expiry);
            }
        }
        let reason = match d.reason {
            ReasonCode::NORMAL_DISCONNECTION => {
                // [MQTT-3.14.4-3] discard the will.
                self.will = None;
                CloseReason::ClientDisconnect
            }
            ReasonCode::DISCONNECT_WITH_WILL => CloseReason::ClientDisconnectWithWill,
            code => CloseReason::ClientDisconnectWithError(code),
        };
        // The client closes; the server sends nothing more ([MQTT-3.14.4-1]).
        self.close(reason);
        Ok(())
    }
}
