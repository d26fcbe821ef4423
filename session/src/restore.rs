//! Rebuilding a persistent session from what a persistence backend kept
//! ([`Session::restore`]), the inverse of the change journal.

use crate::session::{InflightState, Message, Session};
use crate::subscriptions::Subscription;
use bytestring::ByteString;
use std::fmt;
use tern_codec::{PacketId, SubscriptionOptions};

/// What a backend kept of one persistent session.
#[derive(Default)]
pub struct StoredSession {
    /// The client identifier.
    pub client_id: ByteString,
    /// The Session Expiry Interval in seconds (`u32::MAX`: never expires).
    pub expiry_interval: u32,
    /// Filter, options (granted QoS), v5 subscription identifier.
    pub subscriptions: Vec<(ByteString, SubscriptionOptions, Option<u32>)>,
    /// Messages sent and not yet acknowledged, in the order their packet
    /// ids were taken (their [`Message::id`] order).
    pub inflight: Vec<StoredInflight>,
    /// Queued messages, oldest first.
    pub queue: Vec<Message>,
    /// Incoming QoS 2 packet ids waiting for PUBREL.
    pub incoming_qos2: Vec<PacketId>,
    /// The packet id of the last [`SessionChange::Sent`](crate::SessionChange::Sent),
    /// if the backend kept it: new ids continue after it, as they would have.
    pub last_packet_id: Option<PacketId>,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("client_id", &self.client_id)
            .field("expiry_interval", &self.expiry_interval)
            .field("subscriptions", &self.subscriptions.len())
            .field("inflight", &self.inflight.len())
            .field("queue", &self.queue.len())
            .field("incoming_qos2", &self.incoming_qos2.len())
            .finish()
    }
}

/// One inflight message of a [`StoredSession`].
#[derive(Debug)]
pub struct StoredInflight {
    /// The packet id it was sent under.
    pub packet_id: PacketId,
    /// Waiting for PUBACK, PUBREC, or (PUBREL sent) PUBCOMP.
    pub state: InflightState,
    /// The message.
    pub message: Message,
    /// Any number that increases with each PUBLISH sent and each PUBREC
    /// received, taken when this message was sent or, waiting for PUBCOMP,
    /// when its PUBREC arrived: entries are re-sent in this order
    /// ([MQTT-4.6.0-1], [MQTT-4.6.0-3]).
    pub resend_order: u64,
}

/// What [`Session::restore`] could not take back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    /// Inflight entries whose packet id was already taken by an earlier
    /// entry (a damaged store): dropped.
    pub duplicate_packet_ids: usize,
}

impl Session {
    /// A session as a backend kept it: no connection, no journal pending
    /// (but recording, as the backend that restores it wants).
    /// Inflight messages are re-sent with DUP set when a connection
    /// resumes it ([MQTT-4.4.0-1]). New messages get ids after the largest
    /// one restored.
    pub fn restore(stored: StoredSession) -> (Self, RestoreReport) {
        let mut report = RestoreReport::default();
        let mut session = Self::new(stored.client_id, true);
        session.set_expiry_interval(stored.expiry_interval);
        for (filter, options, id) in stored.subscriptions {
            session
                .subscriptions
                .insert(&filter, Subscription::new(options, id));
        }
        let mut last = 0;
        let mut order = Vec::with_capacity(stored.inflight.len());
        for e in stored.inflight {
            last = last.max(e.message.id);
            let (pid, key) = (e.packet_id, e.resend_order);
            if session.inflight.restore(pid, e.state, e.message).is_err() {
                report.duplicate_packet_ids += 1;
            } else {
                order.push((key, pid));
            }
        }
        if let Some(pid) = stored.last_packet_id {
            session.inflight.set_pointer(pid);
        }
        order.sort_unstable();
        session
            .inflight
            .set_resend_order(order.into_iter().map(|(_, pid)| pid));
        for message in stored.queue {
            last = last.max(message.id);
            session.queued_bytes += message.bytes();
            session.queue.push_back(message);
        }
        session.refresh_next_expiry();
        session.incoming_qos2.extend(stored.incoming_qos2);
        session.arm_journal(true);
        session.set_next_message_id(last + 1);
        (session, report)
    }
}
