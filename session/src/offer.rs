//! One routed message offered to one receiver: [`Offer`].

use bytestring::ByteString;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{Publish, QoS};

/// A routed message with the header fields of one receiver: what
/// [`Connection::deliver`](crate::Connection::deliver) and
/// [`Session::enqueue`](crate::Session::enqueue) take, one value instead of
/// a list of arguments.
#[derive(Clone, Copy)]
pub struct Offer<'a> {
    /// The message as published; its own `qos`, `dup`, `retain` and
    /// `packet_id` are ignored.
    pub msg: &'a Arc<Publish>,
    /// When the broker received the message (v5 Message Expiry counts from here).
    pub received_at: Instant,
    /// min(message QoS, granted QoS)
    pub qos: QoS,
    /// The RETAIN flag to send (Retain As Published, or a retained message
    /// sent on subscribe).
    pub retain: bool,
    /// v5 Subscription Identifiers of the matching subscriptions (dropped
    /// for v3 receivers).
    pub subscription_identifiers: &'a [u32],
    /// The shared subscription (full filter `$share/g/f`) it is delivered through, if any.
    /// A QoS > 0 message is then tagged with it, so that
    /// [`Session::take_shared_unacked`](crate::Session::take_shared_unacked)
    /// finds it if the member leaves before acknowledging it.
    pub group: Option<&'a ByteString>,
}

impl<'a> Offer<'a> {
    /// `msg` at `qos`, received at `received_at`: not retained, without
    /// subscription identifiers, not through a shared subscription. Set the
    /// other fields with struct update syntax.
    pub fn new(msg: &'a Arc<Publish>, received_at: Instant, qos: QoS) -> Self {
        Self {
            msg,
            received_at,
            qos,
            retain: false,
            subscription_identifiers: &[],
            group: None,
        }
    }
}

/// Shows the topic and payload length, never the payload.
impl fmt::Debug for Offer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offer")
            .field("topic", &self.msg.topic)
            .field("payload_len", &self.msg.payload.len())
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("subscription_identifiers", &self.subscription_identifiers)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
