//! Plain counters; the broker exports them as metrics.

/// Message counters over the whole life of a session (they survive reconnects).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// PUBLISH packets received from the client (duplicates included).
    pub publish_in: u64,
    /// QoS 2 duplicates acknowledged but not routed again.
    pub publish_in_duplicates: u64,
    /// PUBLISH packets refused, not routed: answered with a reason code
    /// (payload not valid UTF-8), or denied by the authorizer (QoS 0 too,
    /// see [`Event::PublishDenied`](crate::Event::PublishDenied)).
    pub publish_in_refused: u64,
    /// PUBLISH packets sent for the first time.
    pub publish_out: u64,
    /// PUBLISH (DUP=1) and PUBREL packets re-sent after a reconnect.
    pub retransmitted: u64,
    /// PUBACK received for an inflight message.
    pub puback_in: u64,
    /// PUBREC received for an inflight message.
    pub pubrec_in: u64,
    /// PUBCOMP received for an inflight message.
    pub pubcomp_in: u64,
    /// Acknowledgements for a packet id not inflight (or in another state); ignored.
    pub unknown_acks: u64,
    /// Messages dropped because the queue was at a limit.
    pub dropped_queue_full: u64,
    /// QoS 0 messages dropped because the client was offline or closing.
    pub dropped_qos0: u64,
    /// Messages discarded because they exceed the client's v5 Maximum
    /// Packet Size ([MQTT5-3.1.2-25]).
    pub dropped_too_large: u64,
    /// Messages dropped before being sent because their v5 Message Expiry
    /// Interval had passed ([MQTT-3.3.2-5]).
    pub dropped_expired: u64,
    /// Most messages ever held in the queue.
    pub queue_high_water_messages: u64,
    /// Most bytes ever held in the queue.
    pub queue_high_water_bytes: u64,
}

/// Counters for one network connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Packets passed to `handle_packet`.
    pub packets_in: u64,
    /// Transmits queued (control packets and PUBLISH).
    pub transmits: u64,
    /// PINGREQ packets answered.
    pub pings: u64,
    /// Messages passed to `deliver`.
    pub delivered: u64,
    /// `deliver` calls that dropped the message (the [`DropReason`](crate::DropReason)
    /// is in the outcome).
    pub deliver_dropped: u64,
}
