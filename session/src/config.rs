//! Session limits chosen by the broker's configuration.

use crate::auth::AuthPolicy;
use crate::authorize::{default_authorizer, Authorizer};
use bytestring::ByteString;
use std::sync::Arc;
use tern_codec::QoS;

/// Limits applied to every session and connection of a broker.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Outgoing QoS > 0 window: at most this many unacknowledged PUBLISH
    /// packets per connection (further capped by the client's v5 Receive
    /// Maximum). 0 is treated as 1.
    pub max_inflight: u16,
    /// Messages a session may hold in its queue (offline, or behind a full window).
    pub max_queued_messages: usize,
    /// Bytes (topic + payload) a session may hold in its queue.
    pub max_queued_bytes: usize,
    /// Largest keep-alive accepted from a v5 client, in seconds; 0 = no cap.
    /// A v5 client asking for more (or for 0) gets a Server Keep Alive.
    pub max_keep_alive: u16,
    /// Queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0_offline: bool,
    /// Subscriptions per session; 0 = unlimited.
    pub max_subscriptions: usize,
    /// Incoming QoS 2 messages awaiting PUBREL; advertised to v5 clients as
    /// Receive Maximum. 0 is treated as 1.
    pub max_incoming_inflight: u16,
    /// Highest Topic Alias a v5 client may use in PUBLISH, advertised in
    /// CONNACK as Topic Alias Maximum; 0 disables topic aliases.
    pub topic_alias_maximum: u16,
    /// Largest packet the broker accepts, advertised to v5 clients as
    /// Maximum Packet Size in CONNACK (the codec enforces it).
    pub max_packet_size: u32,
    /// Highest QoS the broker accepts in PUBLISH and grants in SUBACK;
    /// below 2 it is advertised as Maximum QoS ([MQTT-3.2.2-9]).
    pub max_qos: QoS,
    /// Retained messages are supported; `false` is advertised as Retain
    /// Available 0, and a retained PUBLISH or will is refused with 0x9A.
    pub retain_available: bool,
    /// Check that a payload marked as UTF-8 (Payload Format Indicator 1)
    /// is valid UTF-8; refused with 0x99 when it is not.
    pub validate_payload_format: bool,
    /// Prefix of the Response Information sent to a v5 client that asks for
    /// it (the client id is appended); empty = never sent.
    pub response_information: ByteString,
    /// Most Topic Aliases the broker assigns on its PUBLISH packets to a v5
    /// client (further capped by the client's Topic Alias Maximum); 0 = none.
    pub outbound_topic_alias_maximum: u16,
    /// Another server every client is sent to ("host:port"); empty = none.
    pub server_reference: ByteString,
    /// The move is permanent: 0x9D (Server moved) instead of 0x9C.
    pub server_moved: bool,
    /// Bytes in a topic name or filter: a longer filter is refused (0x8F),
    /// a longer topic name closes the connection (v5: DISCONNECT 0x90).
    pub max_topic_length: usize,
    /// Levels in a topic name or filter, with the same answers.
    pub max_topic_levels: usize,
    /// Who may connect: credential store and anonymous access.
    pub auth: AuthPolicy,
    /// What a connection may do ([`Authorizer`](crate::Authorizer)):
    /// by default [`DefaultAuthorizer`](crate::DefaultAuthorizer).
    pub authorizer: Arc<dyn Authorizer>,
    /// Keep a journal of the changes to persistent sessions for a
    /// persistence backend ([`SessionChange`](crate::SessionChange)); off by default.
    pub record_changes: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_inflight: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_keep_alive: 65535,
            queue_qos0_offline: false,
            max_subscriptions: 0,
            max_incoming_inflight: 64,
            topic_alias_maximum: 16,
            max_packet_size: 1_048_576,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            validate_payload_format: false,
            response_information: ByteString::new(),
            outbound_topic_alias_maximum: 16,
            server_reference: ByteString::new(),
            server_moved: false,
            max_topic_length: 65535,
            max_topic_levels: 128,
            auth: AuthPolicy::default(),
            authorizer: default_authorizer(),
            record_changes: false,
        }
    }
}

/// Equal when every limit is equal and both share one authorizer (default
/// configs share the same [`DefaultAuthorizer`](crate::DefaultAuthorizer)).
impl PartialEq for SessionConfig {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            max_inflight,
            max_queued_messages,
            max_queued_bytes,
            max_keep_alive,
            queue_qos0_offline,
            max_subscriptions,
            max_incoming_inflight,
            topic_alias_maximum,
            max_packet_size,
            max_qos,
            retain_available,
            validate_payload_format,
            response_information,
            outbound_topic_alias_maximum,
            server_reference,
            server_moved,
            max_topic_length,
            max_topic_levels,
            auth,
            authorizer,
            record_changes,
        } = self;
        *max_inflight == other.max_inflight
            && *max_queued_messages == other.max_queued_messages
            && *max_queued_bytes == other.max_queued_bytes
            && *max_keep_alive == other.max_keep_alive
            && *queue_qos0_offline == other.queue_qos0_offline
            && *max_subscriptions == other.max_subscriptions
            && *max_incoming_inflight == other.max_incoming_inflight
            && *topic_alias_maximum == other.topic_alias_maximum
            && *max_packet_size == other.max_packet_size
            && *max_qos == other.max_qos
            && *retain_available == other.retain_available
            && *validate_payload_format == other.validate_payload_format
            && *response_information == other.response_information
            && *outbound_topic_alias_maximum == other.outbound_topic_alias_maximum
            && *server_reference == other.server_reference
            && *server_moved == other.server_moved
            && *max_topic_length == other.max_topic_length
            && *max_topic_levels == other.max_topic_levels
            && *auth == other.auth
            && Arc::ptr_eq(authorizer, &other.authorizer)
            && *record_changes == other.record_changes
    }
}

impl Eq for SessionConfig {}

impl SessionConfig {
    /// Whether a topic name or filter is longer or deeper than the limits.
    pub fn exceeds_topic_limits(&self, topic: &str) -> bool {
        // A name of n bytes has at most n + 1 levels: count only when that could matter.
        topic.len() > self.max_topic_length
            || (topic.len() >= self.max_topic_levels
                && topic.bytes().filter(|&b| b == b'/').count() + 1 > self.max_topic_levels)
    }

    /// The Receive Maximum advertised to v5 clients (never 0).
    pub fn receive_maximum(&self) -> u16 {
        self.max_incoming_inflight.max(1)
    }
}
