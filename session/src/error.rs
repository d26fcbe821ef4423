//! Protocol violations detected by the session layer.

use tern_codec::ReasonCode;

/// A semantic protocol violation by the client. Each maps to the v5 reason
/// code sent in DISCONNECT; the connection is always closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A second CONNECT on one network connection.
    #[error("[MQTT-3.1.0-2] second CONNECT packet on one network connection")]
    SecondConnect,
    /// A packet type that only a server sends.
    #[error("[MQTT-4.13.1-1] a client must not send {0}")]
    UnexpectedPacket(&'static str),
    /// AUTH without an Authentication Method in CONNECT.
    #[error("[MQTT-4.12.0-7] AUTH packet without an Authentication Method in CONNECT")]
    UnexpectedAuth,
    /// A topic alias above the Topic Alias Maximum advertised in CONNACK.
    #[error("[MQTT-3.3.2-9] topic alias {0} exceeds the Topic Alias Maximum")]
    TopicAliasInvalid(u16),
    /// A PUBLISH with an empty topic name and a topic alias with no mapping.
    #[error("[3.3.4] PUBLISH with an empty topic name and unknown topic alias {0}")]
    TopicAliasUnknown(u16),
    /// A PUBLISH with an empty topic and no topic alias.
    #[error("[MQTT-3.3.2-1] PUBLISH with an empty topic name and no topic alias")]
    EmptyTopic,
    /// A client PUBLISH carrying a Subscription Identifier.
    #[error("[MQTT-3.3.4-6] a client PUBLISH must not contain a Subscription Identifier")]
    SubscriptionIdentifierFromClient,
    /// More incoming QoS 2 messages awaiting PUBREL than Receive Maximum.
    #[error(
        "[MQTT-3.3.4-9] more than {0} QoS 2 messages awaiting PUBREL (Receive Maximum exceeded)"
    )]
    ReceiveMaximumExceeded(u16),
    /// No Local set on a shared subscription.
    #[error("[MQTT-3.8.3-4] No Local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// DISCONNECT sets a Session Expiry Interval after CONNECT set none.
    #[error("[3.14.2.2.2] non-zero Session Expiry Interval in DISCONNECT after zero in CONNECT")]
    SessionExpiryAfterZero,
    /// A topic name longer, or with more levels, than the broker's limits.
    #[error("topic name of {0} bytes over the configured length or level limit")]
    TopicNameOverLimit(usize),
    /// A PUBLISH above the Maximum QoS advertised in CONNACK.
    #[error("[MQTT5-3.2.2-11] PUBLISH with QoS {0} above the server's Maximum QoS")]
    QosNotSupported(u8),
    /// A retained PUBLISH although Retain Available is 0.
    #[error("[MQTT5-3.2.2-14] retained PUBLISH while Retain Available is 0")]
    RetainNotSupported,
    /// A QoS 0 PUBLISH whose payload is marked UTF-8 but is not.
    #[error("[MQTT5-3.3.2-4] payload marked as UTF-8 is not valid UTF-8")]
    PayloadFormatInvalid,
    /// An Authentication Method the server does not support.
    #[error("[MQTT-4.12.0-1] unsupported Authentication Method")]
    BadAuthenticationMethod,
    /// Enhanced authentication or re-authentication failed (wrong proof,
    /// unknown user, bad SCRAM message).
    #[error("[MQTT-4.12.0-4] authentication failed: {0}")]
    AuthenticationFailed(crate::auth::ScramError),
    /// AUTH with another Authentication Method than CONNECT's.
    #[error(
        "[MQTT-4.12.0-5] [MQTT-4.12.1-1] AUTH with another Authentication Method than CONNECT"
    )]
    AuthMethodMismatch,
    /// An AUTH reason code that does not fit the step of the exchange.
    #[error("[MQTT-4.12.0-3] AUTH reason code {0:?} not expected at this step")]
    UnexpectedAuthReason(ReasonCode),
    /// A packet other than AUTH or DISCONNECT before the CONNACK of an
    /// enhanced authentication.
    #[error("[MQTT-3.1.2-30] {0} during the authentication exchange")]
    AuthInterrupted(&'static str),
}

impl ProtocolError {
    /// The v5 reason code for the DISCONNECT this error causes.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::TopicAliasInvalid(_) => ReasonCode::TOPIC_ALIAS_INVALID,
            Self::ReceiveMaximumExceeded(_) => ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            Self::QosNotSupported(_) => ReasonCode::QOS_NOT_SUPPORTED,
            Self::TopicNameOverLimit(_) => ReasonCode::TOPIC_NAME_INVALID,
            Self::RetainNotSupported => ReasonCode::RETAIN_NOT_SUPPORTED,
            Self::PayloadFormatInvalid => ReasonCode::PAYLOAD_FORMAT_INVALID,
            Self::BadAuthenticationMethod => ReasonCode::BAD_AUTHENTICATION_METHOD,
            Self::AuthenticationFailed(_) => ReasonCode::NOT_AUTHORIZED,
            Self::SecondConnect
            | Self::UnexpectedPacket(_)
            | Self::UnexpectedAuth
            | Self::EmptyTopic
            | Self::TopicAliasUnknown(_)
            | Self::SubscriptionIdentifierFromClient
            | Self::NoLocalOnSharedSubscription
            | Self::SessionExpiryAfterZero
            | Self::AuthMethodMismatch
            | Self::UnexpectedAuthReason(_)
            | Self::AuthInterrupted(_) => ReasonCode::PROTOCOL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_and_messages_name_the_spec() {
        assert_eq!(
            ProtocolError::ReceiveMaximumExceeded(3).reason_code(),
            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
        );
        assert_eq!(
            ProtocolError::TopicAliasInvalid(1).reason_code(),
            ReasonCode(0x94)
        );
        assert_eq!(
            ProtocolError::TopicAliasUnknown(1).reason_code(),
            ReasonCode::PROTOCOL_ERROR
        );
        assert_eq!(
            ProtocolError::SecondConnect.reason_code(),
            ReasonCode::PROTOCOL_ERROR
        );
        assert!(ProtocolError::SecondConnect
            .to_string()
            .starts_with("[MQTT-3.1.0-2]"));
    }
}
