//! Session limits chosen by the broker's configuration.

use crate::auth::AuthPolicy;

/// Limits applied to every session and connection of a broker.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Who may connect: credential store and anonymous access.
    pub auth: AuthPolicy,
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
            auth: AuthPolicy::default(),
        }
    }
}

impl SessionConfig {
    /// The Receive Maximum advertised to v5 clients (never 0).
    pub fn receive_maximum(&self) -> u16 {
        self.max_incoming_inflight.max(1)
    }
}
