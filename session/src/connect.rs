//! CONNECT semantics: client identifier rules, keep-alive cap, CONNACK and will.

use crate::auth::{AuthPolicy, Authenticated};
use crate::{Connection, Identity, SessionConfig};
use bytes::Bytes;
use bytestring::ByteString;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tern_codec::{
    ConnAck, ConnAckProperties, Connect, LastWill, ProtocolVersion, Publish, PublishProperties,
    QoS, ReasonCode,
};

/// Outcome of [`Connection::check_connect`], passed on to [`Connection::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectCheck {
    /// The client identifier the server assigned to a client that sent an
    /// empty one ([MQTT-3.1.3-6]); the broker registers the session under it.
    pub assigned_client_id: Option<ByteString>,
    /// The outcome of the enhanced authentication exchange
    /// ([`AuthExchange`](crate::auth::AuthExchange)) the broker ran after
    /// `check_connect`, for a v5 CONNECT with an Authentication Method. Its
    /// method and data go into the CONNACK ([MQTT-4.12.0-5]), and the
    /// connection accepts re-authentication with that method.
    pub authenticated: Option<Authenticated>,
    /// Name or bind address of the listener the client came in on, for the
    /// connection's [`Identity`]; the broker fills it in (`check_connect`
    /// leaves it `None`). Pass compact copies: the identity lives as long
    /// as the connection.
    pub listener: Option<ByteString>,
    /// The client's address, for the [`Identity`]; the broker fills it in.
    pub peer: Option<SocketAddr>,
    /// Subject of the client's TLS certificate, for the [`Identity`]; the
    /// broker fills it in.
    pub cert_subject: Option<ByteString>,
}

/// The CONNACK refusing a connection with `code` (session present 0 [MQTT-3.2.2-6]).
/// For v3 the codec maps the code to a return code (0x85 → 2 …).
pub fn reject_connack(code: ReasonCode) -> ConnAck {
    ConnAck {
        session_present: false,
        code,
        properties: ConnAckProperties::default(),
    }
}

/// The CONNACK sending every client elsewhere when the broker is configured
/// with a Server Reference (4.11 Server redirection): v5 gets 0x9C (Use
/// another server) or 0x9D (Server moved) with the reference; the codec
/// turns either into return code 3 (server unavailable) for 3.1/3.1.1.
pub fn redirect_connack(cfg: &SessionConfig) -> Option<ConnAck> {
    if cfg.server_reference.is_empty() {
        return None;
    }
    let mut ack = reject_connack(if cfg.server_moved {
        ReasonCode::SERVER_MOVED
    } else {
        ReasonCode::USE_ANOTHER_SERVER
    });
    ack.properties.server_reference = Some(cfg.server_reference.clone());
    Some(ack)
}

/// Longest client identifier MQTT 3.1 allows.
const V31_MAX_CLIENT_ID: usize = 23;

impl Connection {
    /// Semantic CONNECT checks (syntax was checked by the codec):
    /// * v3.1: the client id must be 1..=23 bytes, else 0x85 (return code 2);
    /// * v3.1.1: an empty client id requires Clean Session = 1, else 0x85
    ///   ([MQTT-3.1.3-8]); with Clean Session = 1 the server assigns one
    ///   ([MQTT-3.1.3-6]);
    /// * v5: an empty client id gets an assigned one, returned in CONNACK
    ///   ([MQTT-3.2.2-16]); Receive Maximum or Maximum Packet Size of 0 is a
    ///   protocol error (0x82);
    /// * then authentication by `cfg.auth` ([`AuthPolicy::check_connect`](crate::auth::AuthPolicy::check_connect)):
    ///   bad user name or password 0x86 (v3: 4), anonymous when not allowed
    ///   0x87 (v3: 5), an unsupported Authentication Method 0x8C
    ///   ([MQTT-4.12.0-1]). A supported one passes: the caller then runs
    ///   [`AuthExchange::for_connect`](crate::auth::AuthExchange::for_connect);
    /// * then, any version: a will above the broker's Maximum QoS gets 0x9B
    ///   ([MQTT5-3.2.2-12]), a retained will while retained messages are off
    ///   0x9A ([MQTT5-3.2.2-13]), a will payload marked UTF-8 that is not
    ///   0x99 when payloads are validated (3.1.3.2.3).
    ///   The codec maps these to a v3 return code.
    pub fn check_connect(
        connect: &Connect,
        cfg: &SessionConfig,
    ) -> Result<ConnectCheck, ReasonCode> {
        Self::check_connect_with(connect, cfg, &cfg.auth)
    }

    /// [`check_connect`](Self::check_connect) for a client whose user name
    /// a verified TLS client certificate gave (Mosquitto's
    /// `use_identity_as_username`): the certificate stands for the
    /// password, so the user name and password are not checked; every
    /// other check is the same.
    pub fn check_connect_certified(
        connect: &Connect,
        cfg: &SessionConfig,
    ) -> Result<ConnectCheck, ReasonCode> {
        Self::check_connect_with(connect, cfg, &AuthPolicy::default())
    }

    /// [`check_connect`](Self::check_connect) with `auth` in place of
    /// `cfg.auth`: for a broker whose listeners have authentication
    /// settings of their own, or that verified the password itself (a
    /// password file, off its message loop) and passes a policy that
    /// accepts the user name.
    pub fn check_connect_with(
        connect: &Connect,
        cfg: &SessionConfig,
        auth: &AuthPolicy,
    ) -> Result<ConnectCheck, ReasonCode> {
        let empty = connect.client_id.is_empty();
        match connect.protocol {
            ProtocolVersion::V31 => {
                if empty || connect.client_id.len() > V31_MAX_CLIENT_ID {
                    return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
                }
            }
            ProtocolVersion::V311 => {
                if empty && !connect.clean_start {
                    return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
                }
            }
            ProtocolVersion::V5 => {
                let p = &connect.properties;
                if p.receive_maximum == Some(0) || p.maximum_packet_size == Some(0) {
                    return Err(ReasonCode::PROTOCOL_ERROR);
                }
            }
        }
        auth.check_connect(connect)?;
        if let Some(will) = &connect.will {
            if will.qos > cfg.max_qos {
                return Err(ReasonCode::QOS_NOT_SUPPORTED);
            }
            if will.retain && !cfg.retain_available {
                return Err(ReasonCode::RETAIN_NOT_SUPPORTED);
            }
            if cfg.validate_payload_format
                && will.properties.payload_format_indicator == Some(1)
                && std::str::from_utf8(&will.payload).is_err()
            {
                return Err(ReasonCode::PAYLOAD_FORMAT_INVALID);
            }
        }
        Ok(ConnectCheck {
            assigned_client_id: empty.then(assign_client_id),
            ..ConnectCheck::default()
        })
    }

    /// Asks `cfg.authorizer` whether the client of `connect` may connect
    /// ([`Authorizer::connect`](crate::Authorizer::connect)), with the
    /// [`Identity`] that [`Connection::new`] will give it: the client id
    /// after assignment, the user name, and the listener, peer and
    /// certificate subject the broker put in `check`.
    ///
    /// The broker calls it after [`check_connect`](Self::check_connect) and
    /// any enhanced authentication, before `Connection::new`; on `Err(code)`
    /// it sends [`reject_connack`]`(code)` and closes. The default
    /// authorizer always allows.
    pub fn authorize_connect(
        connect: &Connect,
        check: &ConnectCheck,
        cfg: &SessionConfig,
    ) -> Result<(), ReasonCode> {
        cfg.authorizer
            .connect(&Identity::of_connect(connect, check))
    }
}

/// A client identifier unique in this process ([MQTT-3.2.2-16]): a counter,
/// salted with a per-process random value so ids differ across restarts.
fn assign_client_id() -> ByteString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = std::collections::hash_map::RandomState::new().hash_one(n) as u32;
    ByteString::from(format!("tern-{salt:08x}-{n}"))
}

/// The keep-alive to enforce, and the Server Keep Alive to announce (v5 only):
/// a v5 client asking for 0 or more than `max_keep_alive` gets the cap.
pub(crate) fn keep_alive(connect: &Connect, cfg: &SessionConfig) -> (u16, Option<u16>) {
    let (ka, cap) = (connect.keep_alive, cfg.max_keep_alive);
    if connect.protocol.is_v5() && cap != 0 && (ka == 0 || ka > cap) {
        (cap, Some(cap))
    } else {
        (ka, None)
    }
}

/// The v5 Session Expiry Interval of a CONNECT; v3: Clean Session = 0 keeps
/// the session forever, 1 ends it with the connection.
pub(crate) fn session_expiry(connect: &Connect) -> u32 {
    if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    }
}

/// The success CONNACK ([MQTT-3.2.2-1..3] session present; v5 capabilities;
/// after enhanced authentication its method and final data, [MQTT-4.12.0-5]).
pub(crate) fn connack(
    version: ProtocolVersion,
    session_present: bool,
    assigned_client_id: Option<ByteString>,
    server_keep_alive: Option<u16>,
    cfg: &SessionConfig,
    auth: Option<&Authenticated>,
) -> ConnAck {
    let properties = if version.is_v5() {
        ConnAckProperties {
            receive_maximum: Some(cfg.receive_maximum()),
            // Absent means 2 ([MQTT5-3.2.2-9]: sent only below 2).
            maximum_qos: (cfg.max_qos < QoS::ExactlyOnce).then_some(cfg.max_qos),
            retain_available: Some(cfg.retain_available),
            maximum_packet_size: Some(cfg.max_packet_size),
            assigned_client_identifier: assigned_client_id,
            // Absent means 0: the client must not send aliases ([MQTT-3.2.2-18]).
            topic_alias_maximum: (cfg.topic_alias_maximum > 0).then_some(cfg.topic_alias_maximum),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(true),
            server_keep_alive,
            authentication_method: auth.map(|a| a.method.clone()),
            authentication_data: auth.map(|a| a.data.clone()),
            ..ConnAckProperties::default()
        }
    } else {
        ConnAckProperties::default()
    };
    ConnAck {
        session_present,
        code: ReasonCode::SUCCESS,
        properties,
    }
}

/// The will as an application message, and its v5 Will Delay Interval.
///
/// Every field is copied: the decoded will is a slice of the read buffer
/// that held the CONNECT, and a will lives as long as the connection, so
/// keeping the slices would pin that whole buffer.
pub(crate) fn will_publish(will: &LastWill) -> (Publish, Option<u32>) {
    let p = &will.properties;
    let publish = Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: compact_str(&will.topic),
        packet_id: None,
        properties: PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: None,
            response_topic: p.response_topic.as_ref().map(compact_str),
            correlation_data: p.correlation_data.as_deref().map(Bytes::copy_from_slice),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (compact_str(k), compact_str(v)))
                .collect(),
            subscription_identifiers: Vec::new(),
            content_type: p.content_type.as_ref().map(compact_str),
        },
        payload: Bytes::copy_from_slice(&will.payload),
    };
    (publish, p.will_delay_interval)
}

/// A copy of `s` in an allocation of its own, sized to fit (none when empty).
pub fn compact_str(s: &ByteString) -> ByteString {
    ByteString::from(&**s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_does_not_share_the_read_buffer() {
        let frame = Bytes::from_static(b"will/topicgoodbyectxresp/tckv");
        let s = |r: std::ops::Range<usize>| ByteString::try_from(frame.slice(r)).unwrap();
        let will = LastWill {
            topic: s(0..10),
            payload: frame.slice(10..17),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: tern_codec::WillProperties {
                will_delay_interval: Some(5),
                content_type: Some(s(17..20)),
                response_topic: Some(s(20..26)),
                correlation_data: Some(frame.slice(26..27)),
                user_properties: vec![(s(27..28), s(28..29))],
                ..Default::default()
            },
        };
        let (p, delay) = will_publish(&will);
        assert_eq!(delay, Some(5));
        assert_eq!((&*p.topic, &p.payload[..]), ("will/topic", &b"goodbye"[..]));
        let inside = |b: &[u8]| frame.as_ptr_range().contains(&b.as_ptr());
        let pp = &p.properties;
        let (k, v) = &pp.user_properties[0];
        for field in [
            p.topic.as_bytes(),
            &p.payload,
            pp.content_type.as_ref().unwrap().as_bytes(),
            pp.response_topic.as_ref().unwrap().as_bytes(),
            pp.correlation_data.as_ref().unwrap(),
            k.as_bytes(),
            v.as_bytes(),
        ] {
            assert!(!inside(field), "a will field still points into the frame");
        }
        assert_eq!(&**k, "k");
        assert!(p.retain);
    }

    #[test]
    fn compact_str_copies() {
        let frame = ByteString::from_static("client-1 and more");
        let id = ByteString::try_from(frame.as_bytes().slice(0..8)).unwrap();
        let c = compact_str(&id);
        assert_eq!(c, "client-1");
        assert_ne!(c.as_ptr(), id.as_ptr());
    }

    #[test]
    fn assigned_ids_are_unique_and_prefixed() {
        let a = assign_client_id();
        let b = assign_client_id();
        assert_ne!(a, b);
        assert!(a.starts_with("tern-"));
    }
}
