//! The store-change journal: what changed in a persistent session, for a
//! persistence backend to write down.
//!
//! With [`SessionConfig::record_changes`](crate::SessionConfig::record_changes)
//! on, a [`Connection`](crate::Connection), and an offline
//! [`Session`](crate::Session) through [`Session::enqueue`](crate::Session::enqueue),
//! record a [`SessionChange`] for each change of a persistent session's
//! state; the broker drains them with
//! [`Connection::poll_change`](crate::Connection::poll_change) /
//! [`Session::poll_change`](crate::Session::poll_change). The journal
//! travels with the session: what a connection recorded and the broker did
//! not drain yet is still there in the [`Session`](crate::Session) that
//! [`handle_close`](crate::Connection::handle_close) returns.
//!
//! Off (the default), or for a session that is not persistent, nothing is
//! recorded: one branch, no allocation. Sessions created, resumed and ended
//! and wills are the broker's own acts (attach, detach), so they have no
//! variant here.

use crate::session::{Message, Session};
use bytestring::ByteString;
use std::collections::VecDeque;
use std::fmt;
use tern_codec::{PacketId, SubscriptionOptions};

/// One change to a persistent session's stored state.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// A subscription was granted (stored with its granted QoS), new or
    /// replacing one with the same filter.
    Subscribed {
        /// The filter as subscribed (a shared one in full, `$share/g/f`).
        filter: ByteString,
        /// The options, with the granted QoS.
        options: SubscriptionOptions,
        /// The v5 Subscription Identifier.
        subscription_identifier: Option<u32>,
    },
    /// A subscription was removed by UNSUBSCRIBE.
    Unsubscribed {
        /// The filter removed.
        filter: ByteString,
    },
    /// A message entered the session: its queue, or directly its inflight
    /// window (then [`SessionChange::Sent`] follows). QoS 0 only when it is
    /// queued. `message.id` names it in later changes.
    Queued {
        /// The message with its per-receiver fields and id.
        message: Message,
    },
    /// The message `id` was sent under `packet_id`: it is in the inflight
    /// window now, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent {
        /// The message's [`Message::id`].
        id: u64,
        /// The packet id it holds.
        packet_id: PacketId,
    },
    /// The message `id` left the queue without taking a packet id: sent at
    /// QoS 0, expired, not readable by the client, or handed to another
    /// member of its shared subscription group.
    Removed {
        /// The message's [`Message::id`].
        id: u64,
    },
    /// A delivery to the client is complete and its packet id free: PUBACK
    /// or PUBCOMP (also an error PUBREC [MQTT-4.4.0-2], a message
    /// discarded as too large for the client [MQTT5-3.1.2-25], and an
    /// unacknowledged message handed to another member of its group).
    Acked {
        /// The packet id freed.
        packet_id: PacketId,
    },
    /// PUBREC received: the QoS 2 delivery now waits for PUBCOMP (PUBREL sent).
    Released {
        /// The packet id of the delivery.
        packet_id: PacketId,
    },
    /// An incoming QoS 2 packet id was stored (`done` false: PUBREC sent,
    /// waiting for PUBREL) or released (`done` true: PUBREL received, or the
    /// message refused).
    InboundQos2 {
        /// The client's packet id.
        packet_id: PacketId,
        /// Released.
        done: bool,
    },
    /// The Session Expiry Interval changed (v5 DISCONNECT).
    ExpiryChanged {
        /// The new interval in seconds (0: the session ends with the connection).
        secs: u32,
    },
}

/// Shows a queued message's topic and payload length, never the payload.
impl fmt::Debug for SessionChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subscribed {
                filter,
                options,
                subscription_identifier,
            } => f
                .debug_struct("Subscribed")
                .field("filter", filter)
                .field("options", options)
                .field("subscription_identifier", subscription_identifier)
                .finish(),
            Self::Unsubscribed { filter } => f
                .debug_struct("Unsubscribed")
                .field("filter", filter)
                .finish(),
            Self::Queued { message } => f.debug_struct("Queued").field("message", message).finish(),
            Self::Sent { id, packet_id } => f
                .debug_struct("Sent")
                .field("id", id)
                .field("packet_id", packet_id)
                .finish(),
            Self::Removed { id } => f.debug_struct("Removed").field("id", id).finish(),
            Self::Acked { packet_id } => f
                .debug_struct("Acked")
                .field("packet_id", packet_id)
                .finish(),
            Self::Released { packet_id } => f
                .debug_struct("Released")
                .field("packet_id", packet_id)
                .finish(),
            Self::InboundQos2 { packet_id, done } => f
                .debug_struct("InboundQos2")
                .field("packet_id", packet_id)
                .field("done", done)
                .finish(),
            Self::ExpiryChanged { secs } => {
                f.debug_struct("ExpiryChanged").field("secs", secs).finish()
            }
        }
    }
}

/// What a recording session carries: the changes not drained yet and the
/// next [`Message::id`]. Boxed, and only when the broker asks for a
/// journal, so a session that records nothing pays one pointer.
#[derive(Default)]
pub(crate) struct JournalState {
    pub(crate) changes: VecDeque<SessionChange>,
    next_id: u64,
}

/// A session's journal: `None` while the broker records nothing.
pub(crate) type Journal = Option<Box<JournalState>>;

impl Session {
    /// Starts recording (when `on`, and not already): called with
    /// `SessionConfig::record_changes` by the connection and the offline
    /// enqueue.
    pub(crate) fn arm_journal(&mut self, on: bool) {
        if on && self.changes.is_none() {
            self.changes = Some(Box::new(JournalState {
                changes: VecDeque::new(),
                next_id: 1,
            }));
        }
    }

    /// The id for a message entering the session: increasing while
    /// recording, 0 otherwise (nobody names messages then).
    pub(crate) fn take_message_id(&mut self) -> u64 {
        let Some(journal) = self.changes.as_mut() else {
            return 0;
        };
        let id = journal.next_id;
        journal.next_id += 1;
        id
    }

    /// Ids given from now on start at `next` (after a restore).
    pub(crate) fn set_next_message_id(&mut self, next: u64) {
        if let Some(journal) = self.changes.as_mut() {
            journal.next_id = next;
        }
    }

    /// Records the change `change` makes, while recording (see
    /// [`arm_journal`](Self::arm_journal)) and this session is persistent.
    /// `change` is only called then.
    pub(crate) fn record(&mut self, change: impl FnOnce() -> SessionChange) {
        if !self.is_persistent() {
            return;
        }
        if let Some(journal) = self.changes.as_mut() {
            journal.changes.push_back(change());
        }
    }

    /// The next recorded change, oldest first (see [`SessionChange`]).
    pub fn poll_change(&mut self) -> Option<SessionChange> {
        self.changes.as_mut()?.changes.pop_front()
    }
}
