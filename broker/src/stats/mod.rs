//! Worker-local counters and histograms. Each worker increments plain cells
//! on its own thread (no atomics, no locks, no allocation on the message
//! path); a snapshot is copied into the worker's shared atomic slot on a
//! timer for readers elsewhere (`prom`, `sys`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tern_codec::{DecodeError, Packet, QoS, ReasonCode};

/// A worker-local counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(Cell<u64>);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.set(self.0.get().wrapping_add(1));
    }
    pub(crate) fn add(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }
    pub(crate) fn set(&self, v: u64) {
        self.0.set(v);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The fixed buckets of a histogram: inclusive upper bounds (Prometheus
/// `le`) in the recorded unit, and how many recorded units make one
/// exported base unit.
#[derive(Debug)]
pub(crate) struct Buckets {
    pub(crate) bounds: &'static [u64],
    pub(crate) per_unit: f64,
}

/// Publish→deliver latency, recorded in nanoseconds, exported in seconds:
/// 50 µs … 1 s.
pub(crate) static LATENCY: Buckets = Buckets {
    bounds: &[
        50_000,
        100_000,
        250_000,
        500_000,
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
    ],
    per_unit: 1e9,
};

/// Messages waiting in one session's queue.
pub(crate) static QUEUE_DEPTH: Buckets = Buckets {
    bounds: &[0, 1, 10, 100, 1_000, 10_000],
    per_unit: 1.0,
};

/// The bucket of `value`: the first bound at or above it, or `bounds.len()`
/// (the `+Inf` bucket). A binary search over a handful of bounds.
pub(crate) fn bucket_index(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&b| b < value)
}

/// A worker-local histogram: one plain cell per bucket (not cumulative) and
/// the sum of the values. The cells are allocated once, with the worker.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: &'static Buckets,
    /// `bounds.len() + 1` cells; the last one is `+Inf`.
    counts: Box<[Cell<u64>]>,
    sum: Cell<u64>,
}

impl Histogram {
    pub(crate) fn new(buckets: &'static Buckets) -> Self {
        Self {
            buckets,
            counts: (0..=buckets.bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0),
        }
    }

    /// Counts one value: a bucket search and two cell updates.
    pub(crate) fn record(&self, value: u64) {
        if let Some(c) = self.counts.get(bucket_index(self.buckets.bounds, value)) {
            c.set(c.get().wrapping_add(1));
        }
        self.sum.set(self.sum.get().wrapping_add(value));
    }

    /// Forgets every value (for a distribution sampled afresh each time).
    pub(crate) fn reset(&self) {
        for c in self.counts.iter() {
            c.set(0);
        }
        self.sum.set(0);
    }

    fn publish_to(&self, dst: &SharedHistogram) {
        for (c, d) in self.counts.iter().zip(dst.counts.iter()) {
            d.store(c.get(), Relaxed);
        }
        dst.sum.store(self.sum.get(), Relaxed);
    }
}

/// A [`Histogram`]'s values, readable from any thread.
#[derive(Debug)]
pub(crate) struct SharedHistogram {
    pub(crate) buckets: &'static Buckets,
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl SharedHistogram {
    pub(crate) fn new(buckets: &'static Buckets) -> Self {
        Self {
            buckets,
            counts: (0..=buckets.bounds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// The count of each bucket (not cumulative; the last is `+Inf`) and
    /// the sum, in the recorded unit.
    pub(crate) fn snapshot(&self) -> (Vec<u64>, u64) {
        let counts = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        (counts, self.sum.load(Relaxed))
    }
}

macro_rules! worker_stats {
    (
        counters { $($name:ident),* $(,)? }
        histograms { $($hist:ident: $buckets:expr),* $(,)? }
    ) => {
        /// Counters and histograms of one worker.
        #[derive(Debug)]
        pub(crate) struct WorkerStats {
            $(pub(crate) $name: Counter,)*
            $(pub(crate) $hist: Histogram,)*
        }
        impl Default for WorkerStats {
            fn default() -> Self {
                Self {
                    $($name: Counter::default(),)*
                    $($hist: Histogram::new(&$buckets),)*
                }
            }
        }
        /// The same values, readable from any thread.
        #[derive(Debug)]
        pub(crate) struct SharedWorkerStats {
            $(pub(crate) $name: AtomicU64,)*
            $(pub(crate) $hist: SharedHistogram,)*
        }
        impl Default for SharedWorkerStats {
            fn default() -> Self {
                Self {
                    $($name: AtomicU64::default(),)*
                    $($hist: SharedHistogram::new(&$buckets),)*
                }
            }
        }
        impl WorkerStats {
            /// Copies the counters and histograms into `dst`.
            pub(crate) fn publish_to(&self, dst: &SharedWorkerStats) {
                $(dst.$name.store(self.$name.get(), Relaxed);)*
                $(self.$hist.publish_to(&dst.$hist);)*
            }
        }
        impl SharedWorkerStats {
            /// `(name, value)` of every counter.
            pub(crate) fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

worker_stats!(
    counters {
        connections_accepted,
        connections_current,
        rejected_protocol,
        rejected_auth,
        rejected_redirected,
        rejected_other,
        rejected_connect_timeout,
        auth_failures,
        handshake_failed_timeout,
        handshake_failed_proxy,
        handshake_failed_tls,
        handshake_failed_io,
        events,
        publish_in_qos0,
        publish_in_qos1,
        publish_in_qos2,
        publish_out_qos0,
        publish_out_qos1,
        publish_out_qos2,
        packets_in_connect,
        packets_in_puback,
        packets_in_pubrec,
        packets_in_pubrel,
        packets_in_pubcomp,
        packets_in_subscribe,
        packets_in_unsubscribe,
        packets_in_pingreq,
        packets_in_disconnect,
        packets_in_auth,
        packets_out_connack,
        packets_out_puback,
        packets_out_pubrec,
        packets_out_pubrel,
        packets_out_pubcomp,
        packets_out_suback,
        packets_out_unsuback,
        packets_out_pingresp,
        packets_out_disconnect,
        packets_out_auth,
        bytes_in,
        bytes_out,
        dropped_no_subscribers,
        dropped_worker_queue_full,
        dropped_worker_gone,
        worker_queue_waits,
        publisher_pauses,
        slow_subscribers,
        dropped_writer_full,
        dropped_queue_full,
        dropped_qos0_offline,
        dropped_expired,
        dropped_too_large,
        dropped_sys_topic,
        dropped_not_authorized,
        dropped_store_unavailable,
        queued_offline,
        shared_deliveries,
        shared_redeliveries,
        shared_passed_on,
        retained_rejected,
        retained_replayed,
        retained_superseded,
        replay_unordered,
        malformed_packet_too_large,
        malformed_bad_remaining_length,
        malformed_bad_utf8,
        malformed_bad_topic,
        malformed_unsupported_protocol,
        malformed_protocol,
        malformed_other,
        protocol_errors,
        ws_upgrade_failed_malformed,
        ws_upgrade_failed_too_large,
        ws_upgrade_failed_method,
        ws_upgrade_failed_path,
        ws_upgrade_failed_not_upgrade,
        ws_upgrade_failed_version,
        ws_upgrade_failed_subprotocol,
        ws_upgrade_failed_io,
        ws_upgrade_failed_timeout,
        sessions_expired,
        // Gauges, set on the worker's tick.
        sessions_online,
        sessions_offline,
        inflight,
        // The worker thread's CPU time, read on its tick.
        busy_nanos,
    }
    histograms {
        delivery_latency: LATENCY,
        queue_depth: QUEUE_DEPTH,
    }
);

/// Why a connection was refused (the `reason` of
/// `tern_connections_rejected_total`; `limit` is counted by the acceptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectReason {
    /// A CONNECT the broker cannot accept: malformed, an unsupported
    /// protocol version, a bad client id, options the server refuses.
    Protocol,
    /// Bad user name or password, not authorized, bad authentication method.
    Auth,
    /// Sent to another server (`mqtt.server_reference`).
    Redirected,
    /// Anything else (server unavailable, …).
    Other,
    /// No whole CONNECT within `connect_timeout` (a slow or trickling client).
    ConnectTimeout,
}

impl RejectReason {
    /// The reason a CONNACK refusal with `code` counts under.
    pub(crate) fn of_connack(code: ReasonCode) -> Self {
        match code {
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
            | ReasonCode::NOT_AUTHORIZED
            | ReasonCode::BAD_AUTHENTICATION_METHOD => Self::Auth,
            ReasonCode::USE_ANOTHER_SERVER | ReasonCode::SERVER_MOVED => Self::Redirected,
            ReasonCode::UNSPECIFIED_ERROR
            | ReasonCode::MALFORMED_PACKET
            | ReasonCode::PROTOCOL_ERROR
            | ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            | ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
            | ReasonCode::TOPIC_NAME_INVALID
            | ReasonCode::PACKET_TOO_LARGE
            | ReasonCode::PAYLOAD_FORMAT_INVALID
            | ReasonCode::RETAIN_NOT_SUPPORTED
            | ReasonCode::QOS_NOT_SUPPORTED => Self::Protocol,
            _ => Self::Other,
        }
    }

    /// Every reason the workers count, in export order.
    #[cfg(test)]
    pub(crate) const ALL: [Self; 5] = [
        Self::Protocol,
        Self::Auth,
        Self::Redirected,
        Self::Other,
        Self::ConnectTimeout,
    ];

    /// The label value (the counter is `rejected_` + this, whose name `prom`
    /// exports as the label; the tests check the two agree).
    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Protocol => "protocol",
            Self::Auth => "auth",
            Self::Redirected => "redirected",
            Self::Other => "other",
            Self::ConnectTimeout => "connect_timeout",
        }
    }

    /// True for a failed authentication (wrong credentials, not
    /// authorized), which `tern_auth_failures_total` also counts.
    pub(crate) fn is_auth_failure(code: ReasonCode) -> bool {
        matches!(
            code,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD | ReasonCode::NOT_AUTHORIZED
        )
    }
}

/// The `reason` of `tern_malformed_packets_total`: a fixed set, whatever
/// variants the codec adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MalformedReason {
    /// Over the maximum packet size.
    PacketTooLarge,
    /// A Variable Byte Integer (the remaining length, a property length)
    /// longer than 4 bytes or not minimally encoded.
    BadRemainingLength,
    /// A string that is not well-formed UTF-8, or contains U+0000.
    BadUtf8,
    /// An invalid topic name, topic filter or response topic.
    BadTopic,
    /// An unknown protocol name or level in CONNECT.
    UnsupportedProtocol,
    /// A protocol error the codec detects (packet id 0, a duplicate
    /// property, …).
    Protocol,
    /// Any other malformed packet (bad flags, truncated, trailing bytes, …).
    Other,
}

impl MalformedReason {
    /// Every reason, in export order.
    #[cfg(test)]
    pub(crate) const ALL: [Self; 7] = [
        Self::PacketTooLarge,
        Self::BadRemainingLength,
        Self::BadUtf8,
        Self::BadTopic,
        Self::UnsupportedProtocol,
        Self::Protocol,
        Self::Other,
    ];

    /// The reason of a decode error.
    pub(crate) fn of(e: &DecodeError) -> Self {
        match e {
            DecodeError::PacketTooLarge { .. } => Self::PacketTooLarge,
            DecodeError::MalformedVarInt => Self::BadRemainingLength,
            DecodeError::InvalidUtf8 | DecodeError::NullCharacter => Self::BadUtf8,
            DecodeError::TopicName(_)
            | DecodeError::TopicFilter(_)
            | DecodeError::ResponseTopic(_) => Self::BadTopic,
            DecodeError::UnsupportedProtocol { .. } => Self::UnsupportedProtocol,
            other => match other.reason_code() {
                ReasonCode::PROTOCOL_ERROR | ReasonCode::TOPIC_ALIAS_INVALID => Self::Protocol,
                _ => Self::Other,
            },
        }
    }

    /// The label value (the counter is `malformed_` + this, whose name `prom`
    /// exports as the label; the tests check the two agree).
    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PacketTooLarge => "packet_too_large",
            Self::BadRemainingLength => "bad_remaining_length",
            Self::BadUtf8 => "bad_utf8",
            Self::BadTopic => "bad_topic",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::Protocol => "protocol",
            Self::Other => "other",
        }
    }
}

impl WorkerStats {
    pub(crate) fn publish_in(&self, qos: QoS) {
        match qos {
            QoS::AtMostOnce => self.publish_in_qos0.inc(),
            QoS::AtLeastOnce => self.publish_in_qos1.inc(),
            QoS::ExactlyOnce => self.publish_in_qos2.inc(),
        }
    }

    /// A PUBLISH written to a subscriber's writer at `qos`.
    /// A control packet received (PUBLISH is counted by `publish_in`).
    pub(crate) fn packet_in(&self, p: &Packet) {
        let c = match p {
            Packet::Connect(_) => &self.packets_in_connect,
            Packet::PubAck(_) => &self.packets_in_puback,
            Packet::PubRec(_) => &self.packets_in_pubrec,
            Packet::PubRel(_) => &self.packets_in_pubrel,
            Packet::PubComp(_) => &self.packets_in_pubcomp,
            Packet::Subscribe(_) => &self.packets_in_subscribe,
            Packet::Unsubscribe(_) => &self.packets_in_unsubscribe,
            Packet::PingReq => &self.packets_in_pingreq,
            Packet::Disconnect(_) => &self.packets_in_disconnect,
            Packet::Auth(_) => &self.packets_in_auth,
            _ => return,
        };
        c.inc();
    }

    /// A control packet sent (PUBLISH is counted by `publish_out`).
    pub(crate) fn packet_out(&self, p: &Packet) {
        let c = match p {
            Packet::ConnAck(_) => &self.packets_out_connack,
            Packet::PubAck(_) => &self.packets_out_puback,
            Packet::PubRec(_) => &self.packets_out_pubrec,
            Packet::PubRel(_) => &self.packets_out_pubrel,
            Packet::PubComp(_) => &self.packets_out_pubcomp,
            Packet::SubAck(_) => &self.packets_out_suback,
            Packet::UnsubAck(_) => &self.packets_out_unsuback,
            Packet::PingResp => &self.packets_out_pingresp,
            Packet::Disconnect(_) => &self.packets_out_disconnect,
            Packet::Auth(_) => &self.packets_out_auth,
            _ => return,
        };
        c.inc();
    }

    pub(crate) fn publish_out(&self, qos: QoS) {
        match qos {
            QoS::AtMostOnce => self.publish_out_qos0.inc(),
            QoS::AtLeastOnce => self.publish_out_qos1.inc(),
            QoS::ExactlyOnce => self.publish_out_qos2.inc(),
        }
    }

    /// PUBLISH packets written to subscribers, every QoS.
    pub(crate) fn published_out(shared: &SharedWorkerStats) -> u64 {
        shared.publish_out_qos0.load(Relaxed)
            + shared.publish_out_qos1.load(Relaxed)
            + shared.publish_out_qos2.load(Relaxed)
    }

    /// A connection refused (CONNACK with a failure code, or closed).
    pub(crate) fn rejected(&self, reason: RejectReason) {
        match reason {
            RejectReason::Protocol => self.rejected_protocol.inc(),
            RejectReason::Auth => self.rejected_auth.inc(),
            RejectReason::Redirected => self.rejected_redirected.inc(),
            RejectReason::Other => self.rejected_other.inc(),
            RejectReason::ConnectTimeout => self.rejected_connect_timeout.inc(),
        }
    }

    /// A connection refused with CONNACK `code`; failed credentials also
    /// count as an authentication failure.
    pub(crate) fn refused(&self, code: ReasonCode) {
        self.rejected(RejectReason::of_connack(code));
        if RejectReason::is_auth_failure(code) {
            self.auth_failures.inc();
        }
    }

    /// A connection whose PROXY header or TLS handshake failed.
    pub(crate) fn handshake_failed(&self, reason: tern_transport::FailureReason) {
        use tern_transport::FailureReason;
        match reason {
            FailureReason::Timeout => self.handshake_failed_timeout.inc(),
            FailureReason::Proxy => self.handshake_failed_proxy.inc(),
            FailureReason::Tls => self.handshake_failed_tls.inc(),
            FailureReason::Io => self.handshake_failed_io.inc(),
        }
    }

    /// A WebSocket upgrade that failed (`None`: it timed out).
    pub(crate) fn ws_upgrade_failed(&self, e: Option<&tern_transport::UpgradeError>) {
        use tern_transport::UpgradeError as E;
        match e {
            None => self.ws_upgrade_failed_timeout.inc(),
            Some(E::Malformed(_)) => self.ws_upgrade_failed_malformed.inc(),
            Some(E::TooLarge) => self.ws_upgrade_failed_too_large.inc(),
            Some(E::Method(_)) => self.ws_upgrade_failed_method.inc(),
            Some(E::Path(_)) => self.ws_upgrade_failed_path.inc(),
            Some(E::NotUpgrade(_)) => self.ws_upgrade_failed_not_upgrade.inc(),
            Some(E::Version) => self.ws_upgrade_failed_version.inc(),
            Some(E::Subprotocol) => self.ws_upgrade_failed_subprotocol.inc(),
            // `Io`, and reasons a later transport adds.
            Some(_) => self.ws_upgrade_failed_io.inc(),
        }
    }

    /// A packet that failed to decode.
    pub(crate) fn malformed(&self, e: &DecodeError) {
        match MalformedReason::of(e) {
            MalformedReason::PacketTooLarge => self.malformed_packet_too_large.inc(),
            MalformedReason::BadRemainingLength => self.malformed_bad_remaining_length.inc(),
            MalformedReason::BadUtf8 => self.malformed_bad_utf8.inc(),
            MalformedReason::BadTopic => self.malformed_bad_topic.inc(),
            MalformedReason::UnsupportedProtocol => self.malformed_unsupported_protocol.inc(),
            MalformedReason::Protocol => self.malformed_protocol.inc(),
            MalformedReason::Other => self.malformed_other.inc(),
        }
    }

    /// A message written to a subscriber `latency` after the broker
    /// received it.
    pub(crate) fn delivered_after(&self, latency: std::time::Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.delivery_latency.record(nanos);
    }
}

/// A warning logged at most once a second, saying how many were suppressed.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    last: Cell<Option<std::time::Instant>>,
    suppressed: Cell<u64>,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self {
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }
}

impl RateLimitedLog {
    pub(crate) fn warn(&self, worker: usize, what: &'static str) {
        let now = std::time::Instant::now();
        let due = self
            .last
            .get()
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1));
        if due {
            let suppressed = self.suppressed.replace(0);
            self.last.set(Some(now));
            tracing::warn!(worker, suppressed, "{what}");
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
        }
    }
}

#[cfg(test)]
mod tests;
