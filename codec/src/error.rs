//! Decode and encode errors. Every spec violation names its normative
//! statement (`[MQTT-x.x.x-y]`, v3.1.1 id first, then the v5.0 id where it
//! differs) or the spec section when the statement has no id.

use crate::topic::TopicError;
use crate::types::{ProtocolVersion, QoS, ReasonCode};

/// Why a byte stream is not a valid MQTT packet. After any error the
/// connection must be closed; [`DecodeError::reason_code`] gives the v5 reason
/// code for the CONNACK or DISCONNECT sent first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A Variable Byte Integer longer than 4 bytes or not minimally encoded.
    #[error("[MQTT-1.5.5-1] malformed variable byte integer: more than 4 bytes or not minimally encoded")]
    MalformedVarInt,
    /// The whole packet (fixed header included) exceeds the configured maximum.
    #[error(
        "[MQTT-3.2.2-15] packet of {size} bytes exceeds the maximum packet size of {max} bytes"
    )]
    PacketTooLarge {
        /// Size of the whole packet in bytes.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0.
    #[error("malformed packet: packet type {0} is reserved (2.1.2)")]
    ReservedPacketType(u8),
    /// Reserved fixed header flag bits do not have their required value.
    #[error("[MQTT-2.2.2-1] [MQTT-2.1.3-1] invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidFlags {
        /// Packet type name.
        packet: &'static str,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// The server received something other than CONNECT first.
    #[error("[MQTT-3.1.0-1] the first packet must be CONNECT, got {0}")]
    FirstPacketNotConnect(&'static str),
    /// Unknown protocol name or level in CONNECT. When `name_ok` (the name is
    /// `MQTT` or `MQIsdp`) the server answers CONNACK 0x01 (v3) / 0x84 (v5).
    #[error("[MQTT-3.1.2-1] [MQTT-3.1.2-2] unsupported protocol (name recognised: {name_ok}, level {level})")]
    UnsupportedProtocol {
        /// The protocol name is `MQTT` or `MQIsdp`.
        name_ok: bool,
        /// The protocol level byte (0 when the packet ends before it).
        level: u8,
    },
    /// A field runs past the end of the packet (or of the property block).
    #[error("malformed {packet}: a field runs past the end of the packet (4.13)")]
    Truncated {
        /// Packet type name.
        packet: &'static str,
    },
    /// Bytes left over after the last field of the packet.
    #[error("malformed {packet}: {extra} unexpected bytes after the last field (4.13)")]
    TrailingBytes {
        /// Packet type name.
        packet: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// A string is not well-formed UTF-8.
    #[error("[MQTT-1.5.3-1] [MQTT-1.5.4-1] string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("[MQTT-1.5.3-2] [MQTT-1.5.4-2] string contains U+0000")]
    NullCharacter,
    /// A packet identifier of 0.
    #[error("[MQTT-2.3.1-1] [MQTT-2.2.1-3] packet identifier is 0")]
    PacketIdZero,
    /// PUBLISH with both QoS bits set.
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    PublishQoS3,
    /// PUBLISH with DUP set at QoS 0.
    #[error("[MQTT-3.3.1-2] PUBLISH with DUP set at QoS 0")]
    DupWithQoS0,
    /// An invalid topic name (PUBLISH or will topic).
    #[error("invalid topic name: {0}")]
    TopicName(TopicError),
    /// An invalid topic filter (SUBSCRIBE or UNSUBSCRIBE).
    #[error("invalid topic filter: {0}")]
    TopicFilter(TopicError),
    /// v5 PUBLISH with an empty topic name and no Topic Alias.
    #[error("protocol error: PUBLISH with an empty topic name and no topic alias (3.3.2.1)")]
    EmptyTopicWithoutAlias,
    /// CONNECT reserved flag (bit 0) set.
    #[error("[MQTT-3.1.2-3] CONNECT reserved flag is set")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain set while the Will Flag is 0.
    #[error("[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    /// Will QoS 3.
    #[error("[MQTT-3.1.2-14] [MQTT-3.1.2-12] will QoS 3")]
    WillQoS3,
    /// v3 CONNECT with the password flag but not the user name flag.
    #[error("[MQTT-3.1.2-22] password flag set without the user name flag")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags bits 7-1 are not 0.
    #[error("[MQTT-3.2.2-1] CONNACK reserved acknowledge flags in {0:#04x}")]
    ConnAckReservedFlags(u8),
    /// A reason (return) code not allowed in this packet type.
    #[error("[{rule}] reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// Packet type name.
        packet: &'static str,
        /// The code on the wire.
        code: u8,
        /// The normative statement or spec section.
        rule: &'static str,
    },
    /// SUBACK or v5 UNSUBACK without any reason code.
    #[error("malformed {packet}: no reason codes ([MQTT-3.9.3-1], 3.11.3)")]
    NoReasonCodes {
        /// Packet type name.
        packet: &'static str,
    },
    /// SUBSCRIBE without any topic filter.
    #[error("[MQTT-3.8.3-3] [MQTT-3.8.3-2] SUBSCRIBE without topic filters")]
    SubscribeNoFilters,
    /// UNSUBSCRIBE without any topic filter.
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters")]
    UnsubscribeNoFilters,
    /// Reserved bits set in a subscription options byte.
    #[error("[MQTT-3-8.3-4] [MQTT-3.8.3-5] reserved bits set in subscription options {0:#04x}")]
    SubscriptionOptionsReserved(u8),
    /// Requested (maximum) QoS 3 in a subscription.
    #[error("[MQTT-3-8.3-4] requested QoS 3 in SUBSCRIBE (3.8.3.1)")]
    SubscriptionQoS3,
    /// Retain Handling 3 in a v5 subscription.
    #[error("protocol error: retain handling 3 in SUBSCRIBE (3.8.3.1)")]
    RetainHandling3,
    /// No Local on a shared subscription.
    #[error("[MQTT-3.8.3-4] no local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// An unknown v5 property identifier.
    #[error("malformed packet: unknown property identifier {0:#04x} (2.2.2.2)")]
    UnknownProperty(u8),
    /// A v5 property that is not valid in this packet.
    #[error("malformed packet: property {id:#04x} is not valid in {packet} (2.2.2.2)")]
    PropertyNotAllowed {
        /// Property identifier.
        id: u8,
        /// Packet type name (or "will properties").
        packet: &'static str,
    },
    /// A v5 property that may appear once appears twice.
    #[error("protocol error: property {id:#04x} appears more than once in {packet}")]
    DuplicateProperty {
        /// Property identifier.
        id: u8,
        /// Packet type name (or "will properties").
        packet: &'static str,
    },
    /// A v5 property with an out-of-range value (e.g. Receive Maximum 0).
    #[error("protocol error: property {id:#04x} has invalid value {value}")]
    InvalidPropertyValue {
        /// Property identifier.
        id: u8,
        /// The value on the wire.
        value: u32,
    },
    /// Authentication Data without an Authentication Method.
    #[error("protocol error: authentication data without an authentication method (3.1.2.11.10)")]
    AuthDataWithoutMethod,
    /// A Response Topic that is not a valid topic name.
    #[error("[MQTT-3.3.2-14] invalid response topic: {0}")]
    ResponseTopic(TopicError),
}

impl DecodeError {
    /// The v5 reason code to answer with (CONNACK for a bad CONNECT,
    /// DISCONNECT otherwise): 0x81 malformed, 0x82 protocol error, or a more
    /// specific code (0x84, 0x8F, 0x90, 0x94, 0x95) where the spec has one.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::UnsupportedProtocol { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            Self::TopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
            Self::TopicFilter(_) => ReasonCode::TOPIC_FILTER_INVALID,
            Self::InvalidPropertyValue { id, .. } if *id == crate::properties::id::TOPIC_ALIAS => {
                ReasonCode::TOPIC_ALIAS_INVALID
            }
            Self::FirstPacketNotConnect(_)
            | Self::PacketIdZero
            | Self::EmptyTopicWithoutAlias
            | Self::InvalidReasonCode { .. }
            | Self::SubscribeNoFilters
            | Self::UnsubscribeNoFilters
            | Self::SubscriptionQoS3
            | Self::RetainHandling3
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::AuthDataWithoutMethod
            | Self::ResponseTopic(_) => ReasonCode::PROTOCOL_ERROR,
            Self::MalformedVarInt
            | Self::ReservedPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8
            | Self::NullCharacter
            | Self::PublishQoS3
            | Self::DupWithQoS0
            | Self::ConnectReservedFlag
            | Self::WillFlagsWithoutWill
            | Self::WillQoS3
            | Self::PasswordWithoutUsername
            | Self::ConnAckReservedFlags(_)
            | Self::NoReasonCodes { .. }
            | Self::SubscriptionOptionsReserved(_)
            | Self::UnknownProperty(_)
            | Self::PropertyNotAllowed { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The remaining length would exceed 268,435,455 bytes.
    #[error("[MQTT-1.5.5-1] remaining length {0} exceeds 268,435,455 bytes")]
    PacketTooLarge(usize),
    /// A string or binary field longer than 65,535 bytes.
    #[error("string or binary field of {0} bytes exceeds 65,535 bytes (1.5.4, 1.5.6)")]
    FieldTooLong(usize),
    /// The packet type does not exist in this protocol version (AUTH before 5.0).
    #[error("{packet} does not exist in MQTT {version:?}")]
    NotInVersion {
        /// Packet type name.
        packet: &'static str,
        /// The requested version.
        version: ProtocolVersion,
    },
    /// A PUBLISH packet identifier present at QoS 0 or absent at QoS > 0.
    #[error(
        "[MQTT-2.3.1-5] [MQTT-2.2.1-2] PUBLISH at {qos:?} with packet identifier present: {has_id}"
    )]
    PacketIdMismatch {
        /// The QoS of the packet.
        qos: QoS,
        /// Whether a packet identifier was given.
        has_id: bool,
    },
    /// DUP set at QoS 0.
    #[error("[MQTT-3.3.1-2] PUBLISH with DUP set at QoS 0")]
    DupWithQoS0,
    /// A Subscription Identifier of 0 or above 268,435,455.
    #[error("subscription identifier {0} is outside 1..=268,435,455 (3.3.2.3.8)")]
    InvalidSubscriptionIdentifier(u32),
    /// A delivery that omits the topic without giving a topic alias.
    #[error("protocol error: PUBLISH with an empty topic name and no topic alias (3.3.2.1)")]
    OmitTopicWithoutAlias,
    /// A [`crate::PublishTemplate`] built from a PUBLISH whose topic is empty
    /// (an incoming topic alias must be resolved before fan-out).
    #[error("[MQTT-4.7.3-1] PUBLISH fan-out needs the topic name; resolve the incoming topic alias first")]
    EmptyTopic,
    /// A [`crate::PublishTemplate`] used with a PUBLISH it was not built from.
    #[error("PublishTemplate used with a different PUBLISH than the one it was built from")]
    TemplateMismatch,
}
