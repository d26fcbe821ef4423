//! Resource limits: one table below defines each limit's type, default, doc,
//! flag (`--max-…`), environment variable (`TERN_MAX_…`) and `[limits]` key.

use std::fmt::Display;

use serde::Deserialize;

use crate::env::{self, Lookup};
use crate::ConfigError;

/// Defines a settings table (such as [`Limits`]) and its layer (the same
/// fields, each optional, read from flags, environment or the file) from one
/// list, so a key is added in one place.
macro_rules! settings {
    (
        $(#[doc = $sdoc:literal])+
        $name:ident, $layer:ident;
        $(
            $(#[doc = $doc:literal])+
            [$($arg:tt)*]
            $field:ident: $ty:ty = $default:expr;
        )+
    ) => {
        $(#[doc = $sdoc])+
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        /// One source's values (command line, environment or file), each optional.
        #[derive(Debug, Default, Clone, PartialEq, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $layer {
            $(
                $(#[doc = $doc])+
                #[arg(long, $($arg)*)]
                pub(crate) $field: Option<$ty>,
            )+
        }

        impl $layer {
            /// Every key name, in table order.
            #[cfg(test)]
            pub(crate) const KEYS: &'static [&'static str] = &[$( stringify!($field), )+];

            /// Reads `TERN_<KEY>` for every limit.
            pub(crate) fn from_env(env: Lookup<'_>) -> Result<Self, ConfigError> {
                Ok(Self { $( $field: env::get(env, stringify!($field))?, )+ })
            }

            /// `self`'s values where given, `lower`'s elsewhere.
            pub(crate) fn or(self, lower: Self) -> Self {
                Self { $( $field: self.$field.or(lower.$field), )+ }
            }

            /// Overwrites the given values in `target`.
            pub(crate) fn apply(self, target: &mut $name) {
                $( if let Some(v) = self.$field { target.$field = v; } )+
            }

            /// Keys without a value.
            #[cfg(test)]
            pub(crate) fn missing(&self) -> Vec<&'static str> {
                let mut missing = Vec::new();
                $( if self.$field.is_none() { missing.push(stringify!($field)); } )+
                missing
            }
        }

        impl $name {
            /// `(key, value)` for every key, for help texts.
            pub(crate) fn entries(&self) -> Vec<(&'static str, String)> {
                vec![$( (stringify!($field), self.$field.to_string()), )+]
            }
        }
    };
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The MQTT maximum: the largest Remaining Length plus the fixed header fits
/// in 268,435,455 + 5 bytes; brokers cap the whole packet at this.
pub const MAX_PACKET_SIZE_CAP: u32 = 268_435_455;

settings! {
    /// Resource limits, the `[limits]` table of the config file. Each is
    /// also a `--<key>` flag and a `TERN_<KEY>` environment variable.
    Limits, LimitsLayer;

    /// Largest packet accepted from a client, in bytes (16..=268435455).
    ///
    /// Bigger packets are refused before they are buffered; v5 clients are
    /// told this as Maximum Packet Size in CONNACK.
    [value_name = "BYTES"]
    max_packet_size: u32 = 1_048_576;

    /// Outgoing QoS 1/2 messages per client awaiting acknowledgement (>= 1).
    ///
    /// Further messages wait in the client's queue. A v5 client's smaller
    /// Receive Maximum wins.
    [value_name = "N"]
    max_inflight: u16 = 32;

    /// Incoming QoS 1/2 publishes per client not yet acknowledged (>= 1).
    ///
    /// Announced to v5 clients as Receive Maximum in CONNACK.
    [value_name = "N"]
    max_incoming_inflight: u16 = 64;

    /// Messages queued per client behind the inflight window or while its
    /// session is offline (>= 1).
    ///
    /// When full, new QoS 1/2 messages for that client are dropped and counted.
    [value_name = "N"]
    max_queued_messages: usize = 1000;

    /// Payload bytes queued per client, the byte twin of max_queued_messages (>= 1).
    [value_name = "BYTES"]
    max_queued_bytes: usize = 16 * MIB;

    /// Live connections in total; 0 = unlimited.
    ///
    /// Connections beyond it are closed right after accept.
    [value_name = "N"]
    max_connections: usize = 100_000;

    /// Live connections from one source IP address; 0 = unlimited.
    [value_name = "N"]
    max_connections_per_ip: usize = 0;

    /// New connections per minute one source IP address may keep up (a
    /// token bucket refilled at this rate); 0 = unlimited.
    ///
    /// Connections over it are closed right after accept and counted
    /// (`tern_connections_rejected_total{reason="rate"}`).
    [value_name = "N"]
    connect_rate_per_ip: u32 = 0;

    /// New connections one source IP address may open at once, the size of
    /// the connect_rate_per_ip bucket (>= 1).
    [value_name = "N"]
    connect_burst_per_ip: u32 = 10;

    /// Connections from one source IP address within flap_window after
    /// which the address is banned for flap_ban seconds; 0 = no ban.
    ///
    /// Up to this many are let through per window, the next one is refused
    /// and starts the ban (`reason="banned"`). Connects during a ban are
    /// refused and do not extend it.
    [value_name = "N"]
    flap_connects: u32 = 0;

    /// The window flap_connects counts in, in seconds (1..=86400).
    [value_name = "SECS"]
    flap_window: u32 = 10;

    /// How long a flapping address stays banned, in seconds (1..=86400).
    [value_name = "SECS"]
    flap_ban: u32 = 60;

    /// Source addresses the connect rate and flapping ban remember at most
    /// (1..=16777216).
    ///
    /// When full, addresses with nothing to remember are forgotten first,
    /// then the least recently seen unbanned ones; memory stays bounded
    /// under a flood of distinct addresses.
    [value_name = "N"]
    max_tracked_ips: usize = 65_536;

    /// Leading bits by which IPv6 source addresses count for
    /// connect_rate_per_ip and the flapping ban (1..=128): 64 counts a whole
    /// /64, usually one host or site, which could otherwise cycle through
    /// its addresses. IPv4 addresses count whole.
    [value_name = "BITS"]
    ipv6_prefix_len: u8 = 64;

    /// Seconds a new connection may take to send its whole CONNECT packet
    /// (1..=3600); a listener may set its own.
    ///
    /// A client that has not (a slow or trickling one) is closed and counted
    /// (`reason="connect_timeout"`).
    [value_name = "SECS"]
    connect_timeout: u32 = 10;

    /// Levels (`/`-separated parts) in a topic name or filter (>= 1).
    [value_name = "N"]
    max_topic_levels: usize = 128;

    /// Bytes in a topic name or filter (1..=65535).
    [value_name = "BYTES"]
    max_topic_length: usize = 65535;

    /// Subscriptions one client may hold; 0 = unlimited.
    [value_name = "N"]
    max_subscriptions_per_client: usize = 0;

    /// Largest keep-alive a client may ask for, in seconds (>= 1).
    ///
    /// A larger request is lowered to this; v5 clients are told via Server
    /// Keep Alive.
    [value_name = "SECS"]
    max_keep_alive: u16 = 65535;

    /// Retained messages kept in total; 0 = unlimited.
    ///
    /// When full, a retained message on a new topic is not stored (it is
    /// still delivered); replacing or deleting an existing one always works.
    /// The broker's own `$SYS` topics are not counted.
    [value_name = "N"]
    max_retained_messages: usize = 100_000;

    /// Topic plus payload bytes of all retained messages; 0 = unlimited.
    /// The broker's own `$SYS` topics are not counted.
    [value_name = "BYTES"]
    max_retained_bytes: usize = 256 * MIB;

    /// Outbound bytes buffered per connection before QoS 0 messages to it are
    /// dropped (>= 1).
    ///
    /// QoS 1/2 messages are never dropped here: they stay in the client's
    /// queue until the socket drains.
    [value_name = "BYTES"]
    writer_buffer_bytes: usize = MIB;

    /// Capacity, in messages, of each worker's inbox from the other workers
    /// (1..=16777216).
    ///
    /// A publisher whose message finds an inbox full waits for room: for
    /// QoS 1/2 until there is room, for QoS 0 at most 500 ms, after which
    /// the message is dropped for that worker and counted. Larger absorbs
    /// longer bursts; smaller keeps latency low under sustained overload.
    [value_name = "N"]
    worker_queue_len: usize = 4096;

    /// Also queue QoS 0 messages for offline persistent sessions.
    ///
    /// MQTT allows but does not require it. Give the flag alone or
    /// `--queue-qos0-offline=false`.
    [value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true"]
    queue_qos0_offline: bool = false;
}

impl Limits {
    /// Checks every range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("limits.max_packet_size", self.max_packet_size, 16)?;
        at_most(
            "limits.max_packet_size",
            self.max_packet_size,
            MAX_PACKET_SIZE_CAP,
        )?;
        at_least("limits.max_inflight", self.max_inflight, 1)?;
        at_least(
            "limits.max_incoming_inflight",
            self.max_incoming_inflight.into(),
            1,
        )?;
        at_least("limits.max_queued_messages", self.max_queued_messages, 1)?;
        at_least("limits.max_queued_bytes", self.max_queued_bytes, 1)?;
        at_least("limits.max_topic_levels", self.max_topic_levels, 1)?;
        at_least("limits.max_topic_length", self.max_topic_length, 1)?;
        at_most("limits.max_topic_length", self.max_topic_length, 65535)?;
        at_least("limits.max_keep_alive", self.max_keep_alive, 1)?;
        at_least("limits.writer_buffer_bytes", self.writer_buffer_bytes, 1)?;
        at_least("limits.worker_queue_len", self.worker_queue_len, 1)?;
        at_most("limits.worker_queue_len", self.worker_queue_len, 1 << 24)?;
        at_least("limits.connect_burst_per_ip", self.connect_burst_per_ip, 1)?;
        at_least("limits.flap_window", self.flap_window, 1)?;
        at_most("limits.flap_window", self.flap_window, MAX_FLAP_SECS)?;
        at_least("limits.flap_ban", self.flap_ban, 1)?;
        at_most("limits.flap_ban", self.flap_ban, MAX_FLAP_SECS)?;
        at_least("limits.max_tracked_ips", self.max_tracked_ips, 1)?;
        at_most("limits.max_tracked_ips", self.max_tracked_ips, 1 << 24)?;
        at_least("limits.ipv6_prefix_len", self.ipv6_prefix_len, 1)?;
        at_most("limits.ipv6_prefix_len", self.ipv6_prefix_len, 128)?;
        validate_connect_timeout("limits.connect_timeout", self.connect_timeout)?;
        Ok(())
    }
}

pub(crate) use settings;

/// The longest `flap_window` and `flap_ban`: a day.
pub const MAX_FLAP_SECS: u32 = 86_400;

/// The longest `connect_timeout`, in seconds (an hour).
pub const MAX_CONNECT_TIMEOUT: u32 = 3600;

/// `connect_timeout` (global or a listener's) is 1..=[`MAX_CONNECT_TIMEOUT`].
pub(crate) fn validate_connect_timeout(key: &'static str, secs: u32) -> Result<(), ConfigError> {
    at_least(key, secs, 1)?;
    at_most(key, secs, MAX_CONNECT_TIMEOUT)
}

pub(crate) fn at_least<T: PartialOrd + Display>(
    key: &'static str,
    value: T,
    min: T,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("must be at least {min}, got {value}"),
        });
    }
    Ok(())
}

pub(crate) fn at_most<T: PartialOrd + Display>(
    key: &'static str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("must be at most {max}, got {value}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Limits::default().validate().unwrap();
    }

    #[test]
    fn ranges_are_checked() {
        type Case = (fn(&mut Limits), &'static str, &'static str);
        let cases: &[Case] = &[
            (
                |l| l.max_packet_size = 15,
                "limits.max_packet_size",
                "at least 16, got 15",
            ),
            (
                |l| l.max_packet_size = MAX_PACKET_SIZE_CAP + 1,
                "limits.max_packet_size",
                "at most 268435455",
            ),
            (
                |l| l.max_inflight = 0,
                "limits.max_inflight",
                "at least 1, got 0",
            ),
            (
                |l| l.max_incoming_inflight = 0,
                "limits.max_incoming_inflight",
                "at least 1",
            ),
            (
                |l| l.max_queued_messages = 0,
                "limits.max_queued_messages",
                "at least 1",
            ),
            (
                |l| l.max_queued_bytes = 0,
                "limits.max_queued_bytes",
                "at least 1",
            ),
            (
                |l| l.max_topic_levels = 0,
                "limits.max_topic_levels",
                "at least 1",
            ),
            (
                |l| l.max_topic_length = 0,
                "limits.max_topic_length",
                "at least 1",
            ),
            (
                |l| l.max_topic_length = 65536,
                "limits.max_topic_length",
                "at most 65535",
            ),
            (
                |l| l.max_keep_alive = 0,
                "limits.max_keep_alive",
                "at least 1",
            ),
            (
                |l| l.writer_buffer_bytes = 0,
                "limits.writer_buffer_bytes",
                "at least 1",
            ),
            (
                |l| l.worker_queue_len = 0,
                "limits.worker_queue_len",
                "at least 1",
            ),
            (
                |l| l.worker_queue_len = (1 << 24) + 1,
                "limits.worker_queue_len",
                "at most 16777216",
            ),
            (
                |l| l.connect_burst_per_ip = 0,
                "limits.connect_burst_per_ip",
                "at least 1",
            ),
            (|l| l.flap_window = 0, "limits.flap_window", "at least 1"),
            (
                |l| l.flap_window = 86_401,
                "limits.flap_window",
                "at most 86400",
            ),
            (|l| l.flap_ban = 0, "limits.flap_ban", "at least 1"),
            (|l| l.flap_ban = 86_401, "limits.flap_ban", "at most 86400"),
            (
                |l| l.max_tracked_ips = 0,
                "limits.max_tracked_ips",
                "at least 1",
            ),
            (
                |l| l.max_tracked_ips = (1 << 24) + 1,
                "limits.max_tracked_ips",
                "at most 16777216",
            ),
            (
                |l| l.ipv6_prefix_len = 0,
                "limits.ipv6_prefix_len",
                "at least 1",
            ),
            (
                |l| l.ipv6_prefix_len = 129,
                "limits.ipv6_prefix_len",
                "at most 128",
            ),
            (
                |l| l.connect_timeout = 0,
                "limits.connect_timeout",
                "at least 1, got 0",
            ),
            (
                |l| l.connect_timeout = 3601,
                "limits.connect_timeout",
                "at most 3600",
            ),
        ];
        for (edit, key, reason) in cases {
            let mut limits = Limits::default();
            edit(&mut limits);
            let err = limits.validate().unwrap_err();
            let ConfigError::Invalid { key: k, reason: r } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(k, key);
            assert!(r.contains(reason), "{key}: {r}");
        }
    }

    #[test]
    fn zero_means_unlimited_where_documented() {
        let limits = Limits {
            max_connections: 0,
            max_connections_per_ip: 0,
            max_subscriptions_per_client: 0,
            max_retained_messages: 0,
            max_retained_bytes: 0,
            connect_rate_per_ip: 0,
            flap_connects: 0,
            ..Limits::default()
        };
        limits.validate().unwrap();
    }

    #[test]
    fn layer_merge_and_apply() {
        let high = LimitsLayer {
            max_inflight: Some(5),
            ..LimitsLayer::default()
        };
        let low = LimitsLayer {
            max_inflight: Some(7),
            max_keep_alive: Some(60),
            ..LimitsLayer::default()
        };
        let merged = high.or(low);
        let mut limits = Limits::default();
        merged.clone().apply(&mut limits);
        assert_eq!(limits.max_inflight, 5);
        assert_eq!(limits.max_keep_alive, 60);
        assert_eq!(limits.max_packet_size, Limits::default().max_packet_size);
        assert_eq!(merged.missing().len(), LimitsLayer::KEYS.len() - 2);
    }
}
