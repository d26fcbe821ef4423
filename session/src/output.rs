//! What a [`Connection`](crate::Connection) hands back to the broker.

use crate::Session;
use bytestring::ByteString;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::{Packet, PacketId, PubResp, Publish, QoS, ReasonCode, SubscriptionOptions};

/// A packet to write to the client, in order.
// `Packet` is large (~264 bytes) but the shape is the broker contract; boxing
// it would shrink every queued transmit to the size of `OutboundPublish`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Any control packet (CONNACK, acks, SUBACK, PINGRESP, DISCONNECT, …).
    Packet(Packet),
    /// An application message: encode its header per receiver and append the shared payload.
    Publish(OutboundPublish),
}

/// How a [`Connection`](crate::Connection) holds a [`Transmit`] until it is
/// polled: a PUBLISH and the plain acknowledgements inline, any other
/// control packet boxed. An entry is a fraction of the size of a `Transmit`
/// (whose `Packet` is large), so queueing one per delivery moves little.
pub(crate) enum Queued {
    Publish(OutboundPublish),
    /// PUBACK, PUBREC, PUBREL or PUBCOMP with reason Success and no properties.
    Ack(AckKind, PacketId),
    PingResp,
    Other(Box<Packet>),
}

/// Which acknowledgement a [`Queued::Ack`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckKind {
    /// PUBACK.
    Ack,
    /// PUBREC.
    Rec,
    /// PUBREL.
    Rel,
    /// PUBCOMP.
    Comp,
}

impl From<Transmit> for Queued {
    fn from(t: Transmit) -> Self {
        let p = match t {
            Transmit::Publish(o) => return Self::Publish(o),
            Transmit::Packet(p) => p,
        };
        let plain = |r: &PubResp| {
            r.reason == ReasonCode::SUCCESS
                && r.properties.reason_string.is_none()
                && r.properties.user_properties.is_empty()
        };
        match &p {
            Packet::PubAck(r) if plain(r) => Self::Ack(AckKind::Ack, r.packet_id),
            Packet::PubRec(r) if plain(r) => Self::Ack(AckKind::Rec, r.packet_id),
            Packet::PubRel(r) if plain(r) => Self::Ack(AckKind::Rel, r.packet_id),
            Packet::PubComp(r) if plain(r) => Self::Ack(AckKind::Comp, r.packet_id),
            Packet::PingResp => Self::PingResp,
            _ => Self::Other(Box::new(p)),
        }
    }
}

impl From<Queued> for Transmit {
    fn from(q: Queued) -> Self {
        let ack = |kind, pid| {
            let r = PubResp::new(pid);
            match kind {
                AckKind::Ack => Packet::PubAck(r),
                AckKind::Rec => Packet::PubRec(r),
                AckKind::Rel => Packet::PubRel(r),
                AckKind::Comp => Packet::PubComp(r),
            }
        };
        match q {
            Queued::Publish(o) => Self::Publish(o),
            Queued::Ack(kind, pid) => Self::Packet(ack(kind, pid)),
            Queued::PingResp => Self::Packet(Packet::PingResp),
            Queued::Other(p) => Self::Packet(*p),
        }
    }
}

/// One outgoing PUBLISH: the shared message plus this receiver's header fields.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundPublish {
    /// The routed message; its own `qos`, `dup`, `retain` and `packet_id` are ignored.
    pub msg: Arc<Publish>,
    /// Effective QoS for this receiver.
    pub qos: QoS,
    /// Present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// Set on retransmission after reconnect ([MQTT-3.3.1-1]); never for QoS 0.
    pub dup: bool,
    /// RETAIN flag to send.
    pub retain: bool,
    /// v5 Subscription Identifiers of the matching subscriptions (empty for v3).
    pub subscription_identifiers: SmallVec<[u32; 1]>,
    /// v5 Message Expiry Interval to send: the received value minus the whole
    /// seconds the message waited in the server ([MQTT-3.3.2-6]); `None` when
    /// the message has none, and always for v3 receivers.
    pub message_expiry_interval: Option<u32>,
}

/// Debug for a PUBLISH: topic and payload length, never the payload.
struct PublishSummary<'a>(&'a Publish);

impl fmt::Debug for PublishSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        f.debug_struct("Publish")
            .field("topic", &p.topic)
            .field("payload_len", &p.payload.len())
            .field("qos", &p.qos)
            .field("packet_id", &p.packet_id)
            .field("dup", &p.dup)
            .field("retain", &p.retain)
            .field(
                "message_expiry_interval",
                &p.properties.message_expiry_interval,
            )
            .finish_non_exhaustive()
    }
}

/// Control packets as usual; a PUBLISH without its payload.
impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Packet(Packet::Publish(p)) => {
                f.debug_tuple("Packet").field(&PublishSummary(p)).finish()
            }
            Self::Packet(p) => f.debug_tuple("Packet").field(p).finish(),
            Self::Publish(o) => f.debug_tuple("Publish").field(o).finish(),
        }
    }
}

/// Shows the topic and payload length, never the payload.
impl fmt::Debug for OutboundPublish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundPublish")
            .field("topic", &self.msg.topic)
            .field("payload_len", &self.msg.payload.len())
            .field("qos", &self.qos)
            .field("packet_id", &self.packet_id)
            .field("dup", &self.dup)
            .field("retain", &self.retain)
            .field("subscription_identifiers", &self.subscription_identifiers)
            .field("message_expiry_interval", &self.message_expiry_interval)
            .finish()
    }
}

/// Something the broker must act on.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// An application message from this client to route. QoS 2: emitted
    /// once, on first receipt ([MQTT-4.3.3-10]).
    ///
    /// No acknowledgement is queued yet: route the message, then call
    /// [`Connection::complete_publish`](crate::Connection::complete_publish)
    /// with what routing found, before handling the client's next packet,
    /// so that acknowledgements stay in the order of the PUBLISH packets
    /// ([MQTT-4.6.0-2]).
    Publish(Publish),
    /// The authorizer denied this client's PUBLISH to `topic`
    /// ([`Authorizer::publish`](crate::Authorizer::publish)): it is not
    /// routed, and the session has already answered it (QoS 1/2: v5 0x87,
    /// v3 a plain ack). For the broker's counters and logs.
    PublishDenied {
        /// The topic name (inbound Topic Alias applied).
        topic: ByteString,
        /// The PUBLISH's QoS.
        qos: QoS,
    },
    /// The session has recorded these subscriptions; update routing (and send
    /// retained messages), then call `complete_subscribe` with one reason code
    /// per filter of this event, in order.
    Subscribe {
        /// SUBSCRIBE packet id, to pass back to `complete_subscribe`.
        packet_id: PacketId,
        /// Accepted filters (filters refused by `max_subscriptions` are left out
        /// and answered with 0x97 by the session itself).
        filters: Vec<(ByteString, SubscriptionOptions)>,
        /// v5 Subscription Identifier for all of them.
        subscription_identifier: Option<u32>,
        /// Per filter: a subscription with this filter already existed (Retain Handling 1).
        existed: Vec<bool>,
    },
    /// The session has removed these subscriptions; update routing, then call
    /// `complete_unsubscribe`.
    Unsubscribe {
        /// UNSUBSCRIBE packet id, to pass back to `complete_unsubscribe`.
        packet_id: PacketId,
        /// The filters, in packet order.
        filters: Vec<ByteString>,
        /// Per filter: a subscription existed and was removed.
        existed: Vec<bool>,
    },
    /// Close the network connection after flushing the queued transmits, then
    /// call `handle_close` with this reason. Emitted at most once.
    Close(CloseReason),
}

/// Shows a PUBLISH's topic and payload length, never the payload.
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Publish(p) => f.debug_tuple("Publish").field(&PublishSummary(p)).finish(),
            Self::PublishDenied { topic, qos } => f
                .debug_struct("PublishDenied")
                .field("topic", topic)
                .field("qos", qos)
                .finish(),
            Self::Subscribe {
                packet_id,
                filters,
                subscription_identifier,
                existed,
            } => f
                .debug_struct("Subscribe")
                .field("packet_id", packet_id)
                .field("filters", filters)
                .field("subscription_identifier", subscription_identifier)
                .field("existed", existed)
                .finish(),
            Self::Unsubscribe {
                packet_id,
                filters,
                existed,
            } => f
                .debug_struct("Unsubscribe")
                .field("packet_id", packet_id)
                .field("filters", filters)
                .field("existed", existed)
                .finish(),
            Self::Close(reason) => f.debug_tuple("Close").field(reason).finish(),
        }
    }
}

/// Why a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// DISCONNECT with reason 0x00: the will is discarded ([MQTT-3.14.4-3]).
    ClientDisconnect,
    /// v5 DISCONNECT 0x04 (Disconnect with Will Message): the will is published.
    ClientDisconnectWithWill,
    /// v5 DISCONNECT with an error reason (≥ 0x80) from the client: the will is published.
    ClientDisconnectWithError(ReasonCode),
    /// No packet for 1.5 × keep-alive ([MQTT-3.1.2-24]).
    KeepAliveTimeout,
    /// The client broke the protocol (or sent a malformed packet); the code is
    /// the v5 reason code.
    ProtocolError(ReasonCode),
    /// The socket failed or the peer closed it without DISCONNECT.
    NetworkError,
    /// Another connection took over this client id ([MQTT-3.1.4-2]).
    TakenOver,
    /// The broker is shutting down.
    ServerShutdown,
    /// An administrator or policy closed the connection.
    Administrative,
}

impl CloseReason {
    /// The v5 DISCONNECT reason code the server sends for a close it initiates;
    /// `None` when the server sends no DISCONNECT.
    pub fn server_disconnect_code(self) -> Option<ReasonCode> {
        match self {
            Self::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            Self::ProtocolError(code) => Some(code),
            Self::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            Self::ServerShutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            Self::Administrative => Some(ReasonCode::ADMINISTRATIVE_ACTION),
            Self::ClientDisconnect
            | Self::ClientDisconnectWithWill
            | Self::ClientDisconnectWithError(_)
            | Self::NetworkError => None,
        }
    }
}

/// A will message to publish when the connection ends abnormally.
#[derive(Clone, PartialEq, Eq)]
pub struct Will {
    /// The message (QoS 0..=2, RETAIN as requested [MQTT-3.1.2-16/17]).
    pub publish: Publish,
    /// v5 Will Delay Interval in seconds, already capped by the Session Expiry
    /// Interval ([MQTT-3.1.3-9]); `None` = publish now.
    pub delay: Option<u32>,
}

impl Will {
    /// When to publish the will of a connection that closed at `closed_at`:
    /// after its Will Delay Interval ([MQTT5-3.1.3-9]; already capped by the
    /// Session Expiry Interval, so never after the session ends), or at once.
    /// The broker cancels it if a new connection resumes the session first.
    /// `None` when the delay reaches past what `Instant` can hold: the will
    /// is then published only when the session ends.
    pub fn publish_at(&self, closed_at: Instant) -> Option<Instant> {
        match self.delay {
            None => Some(closed_at),
            Some(d) => closed_at.checked_add(Duration::from_secs(u64::from(d))),
        }
    }
}

/// Shows the topic and payload length, never the payload.
impl fmt::Debug for Will {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Will")
            .field("topic", &self.publish.topic)
            .field("payload_len", &self.publish.payload.len())
            .field("qos", &self.publish.qos)
            .field("retain", &self.publish.retain)
            .field("delay", &self.delay)
            .finish()
    }
}

/// The result of closing a connection.
#[derive(Debug)]
pub struct Closed {
    /// The will to publish (after `delay`), if any.
    pub will: Option<Will>,
    /// The session to store, when it is persistent.
    pub session: Option<Session>,
    /// The topic of a will the authorizer does not allow to be published
    /// ([`Authorizer::publish`](crate::Authorizer::publish)): the will is
    /// not in `will`. For the broker's counters and logs.
    pub will_denied: Option<ByteString>,
}

/// What `deliver` did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverOutcome {
    /// Queued as a transmit now.
    Sent,
    /// Held in the session queue (window full, older messages queued, or closing).
    Queued,
    /// Not delivered; the caller counts and logs it.
    Dropped(DropReason),
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The session queue is at its message or byte limit.
    QueueFull,
    /// QoS 0 for a connection that is closing (or an offline session that does not queue QoS 0).
    Qos0NotQueued,
    /// The message's v5 Message Expiry Interval had already passed ([MQTT-3.3.2-5]).
    Expired,
    /// The authorizer does not let this client receive messages on the
    /// topic ([`Authorizer::receive`](crate::Authorizer::receive)).
    NotAuthorized,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn debug_never_prints_payloads() {
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: None,
            properties: Default::default(),
            payload: Bytes::from_static(b"top-secret"),
        };
        let out = OutboundPublish {
            msg: Arc::new(publish.clone()),
            qos: QoS::AtLeastOnce,
            packet_id: None,
            dup: false,
            retain: false,
            subscription_identifiers: SmallVec::new(),
            message_expiry_interval: Some(7),
        };
        let event = Event::Publish(publish.clone());
        let transmit = Transmit::Packet(Packet::Publish(publish.clone()));
        let sent = Transmit::Publish(out.clone());
        let will = Will {
            publish,
            delay: None,
        };
        for s in [
            format!("{out:?}"),
            format!("{will:?}"),
            format!("{event:?}"),
            format!("{transmit:?}"),
            format!("{sent:?}"),
        ] {
            assert!(s.contains("a/b") && !s.contains("top-secret"), "{s}");
            assert!(s.contains("payload_len: 10"), "{s}");
        }
    }

    #[test]
    fn server_disconnect_codes() {
        assert_eq!(
            CloseReason::TakenOver.server_disconnect_code(),
            Some(ReasonCode(0x8E))
        );
        assert_eq!(
            CloseReason::KeepAliveTimeout.server_disconnect_code(),
            Some(ReasonCode(0x8D))
        );
        assert_eq!(CloseReason::NetworkError.server_disconnect_code(), None);
        assert_eq!(CloseReason::ClientDisconnect.server_disconnect_code(), None);
    }

    #[test]
    fn transmits_survive_the_compact_queue_unchanged() {
        let pid = PacketId::new(7).unwrap();
        let mut with_reason = PubResp::new(pid);
        with_reason.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        let mut with_string = PubResp::new(pid);
        with_string.properties.reason_string = Some("why".into());
        let publish = OutboundPublish {
            msg: Arc::new(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "a/b".into(),
                packet_id: None,
                properties: Default::default(),
                payload: Bytes::from_static(b"x"),
            }),
            qos: QoS::ExactlyOnce,
            packet_id: Some(pid),
            dup: true,
            retain: true,
            subscription_identifiers: SmallVec::from_slice(&[3, 4]),
            message_expiry_interval: Some(9),
        };
        let all = [
            Transmit::Publish(publish),
            Transmit::Packet(Packet::PubAck(PubResp::new(pid))),
            Transmit::Packet(Packet::PubRec(PubResp::new(pid))),
            Transmit::Packet(Packet::PubRel(PubResp::new(pid))),
            Transmit::Packet(Packet::PubComp(PubResp::new(pid))),
            Transmit::Packet(Packet::PubRel(with_reason)),
            Transmit::Packet(Packet::PubAck(with_string)),
            Transmit::Packet(Packet::PingResp),
            Transmit::Packet(Packet::Disconnect(Default::default())),
        ];
        for t in all {
            let back = Transmit::from(Queued::from(t.clone()));
            assert!(back == t, "{t:?} came back as {back:?}");
        }
        assert!(size_of::<Queued>() * 3 <= size_of::<Transmit>());
    }
}
