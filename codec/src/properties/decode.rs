//! Per-packet property decoders. Each reads the property length and the
//! block it bounds from the reader, allowing only the ids its packet allows.

use std::num::NonZeroU16;

use super::{id, Props};
use crate::error::DecodeError;
use crate::topic::validate_topic_name;
use crate::types::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, QoS, SubscribeProperties, UserProperty, WillProperties,
};
use crate::wire::Reader;

fn response_topic(p: &mut Props) -> Result<bytestring::ByteString, DecodeError> {
    let topic = p.string(id::RESPONSE_TOPIC)?;
    validate_topic_name(&topic).map_err(DecodeError::ResponseTopic)?;
    Ok(topic)
}

fn payload_format(p: &mut Props) -> Result<u8, DecodeError> {
    p.flag(id::PAYLOAD_FORMAT_INDICATOR).map(u8::from)
}

/// CONNECT properties (3.1.2.11).
pub(crate) fn connect(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let mut p = Props::read(r, "CONNECT")?;
    let mut out = ConnectProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32(pid)?),
            id::RECEIVE_MAXIMUM => out.receive_maximum = Some(p.nonzero_u16(pid)?),
            id::MAXIMUM_PACKET_SIZE => {
                let v = p.u32(pid)?;
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue { id: pid, value: 0 });
                }
                out.maximum_packet_size = Some(v);
            }
            id::TOPIC_ALIAS_MAXIMUM => out.topic_alias_maximum = Some(p.u16(pid)?),
            id::REQUEST_RESPONSE_INFORMATION => {
                out.request_response_information = Some(p.flag(pid)?);
            }
            id::REQUEST_PROBLEM_INFORMATION => {
                out.request_problem_information = Some(p.flag(pid)?);
            }
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::AUTHENTICATION_METHOD => out.authentication_method = Some(p.string(pid)?),
            id::AUTHENTICATION_DATA => out.authentication_data = Some(p.binary(pid)?),
            other => return Err(p.not_allowed(other)),
        }
    }
    if out.authentication_data.is_some() && out.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(out)
}

/// Will properties in the CONNECT payload (3.1.3.2).
pub(crate) fn will(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let mut p = Props::read(r, "will properties")?;
    let mut out = WillProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::WILL_DELAY_INTERVAL => out.will_delay_interval = Some(p.u32(pid)?),
            id::PAYLOAD_FORMAT_INDICATOR => {
                out.payload_format_indicator = Some(payload_format(&mut p)?)
            }
            id::MESSAGE_EXPIRY_INTERVAL => out.message_expiry_interval = Some(p.u32(pid)?),
            id::CONTENT_TYPE => out.content_type = Some(p.string(pid)?),
            id::RESPONSE_TOPIC => out.response_topic = Some(response_topic(&mut p)?),
            id::CORRELATION_DATA => out.correlation_data = Some(p.binary(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// CONNACK properties (3.2.2.3).
pub(crate) fn connack(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let mut p = Props::read(r, "CONNACK")?;
    let mut out = ConnAckProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32(pid)?),
            id::RECEIVE_MAXIMUM => out.receive_maximum = Some(p.nonzero_u16(pid)?),
            id::MAXIMUM_QOS => {
                // 0 or 1 only (3.2.2.3.4).
                let qos = if p.flag(pid)? {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                out.maximum_qos = Some(qos);
            }
            id::RETAIN_AVAILABLE => out.retain_available = Some(p.flag(pid)?),
            id::MAXIMUM_PACKET_SIZE => {
                let v = p.u32(pid)?;
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue { id: pid, value: 0 });
                }
                out.maximum_packet_size = Some(v);
            }
            id::ASSIGNED_CLIENT_IDENTIFIER => {
                out.assigned_client_identifier = Some(p.string(pid)?);
            }
            id::TOPIC_ALIAS_MAXIMUM => out.topic_alias_maximum = Some(p.u16(pid)?),
            id::REASON_STRING => out.reason_string = Some(p.string(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                out.wildcard_subscription_available = Some(p.flag(pid)?);
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                out.subscription_identifiers_available = Some(p.flag(pid)?);
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                out.shared_subscription_available = Some(p.flag(pid)?);
            }
            id::SERVER_KEEP_ALIVE => out.server_keep_alive = Some(p.u16(pid)?),
            id::RESPONSE_INFORMATION => out.response_information = Some(p.string(pid)?),
            id::SERVER_REFERENCE => out.server_reference = Some(p.string(pid)?),
            id::AUTHENTICATION_METHOD => out.authentication_method = Some(p.string(pid)?),
            id::AUTHENTICATION_DATA => out.authentication_data = Some(p.binary(pid)?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// PUBLISH properties (3.3.2.3).
pub(crate) fn publish(r: &mut Reader) -> Result<PublishProperties, DecodeError> {
    let mut p = Props::read(r, "PUBLISH")?;
    let mut out = PublishProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR => {
                out.payload_format_indicator = Some(payload_format(&mut p)?)
            }
            id::MESSAGE_EXPIRY_INTERVAL => out.message_expiry_interval = Some(p.u32(pid)?),
            id::TOPIC_ALIAS => {
                // [MQTT-3.3.2-8]: a Topic Alias of 0 is not permitted.
                let v = p.nonzero_u16(pid)?;
                out.topic_alias = NonZeroU16::new(v);
            }
            id::RESPONSE_TOPIC => out.response_topic = Some(response_topic(&mut p)?),
            id::CORRELATION_DATA => out.correlation_data = Some(p.binary(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::SUBSCRIPTION_IDENTIFIER => out.subscription_identifiers.push(p.subscription_id()?),
            id::CONTENT_TYPE => out.content_type = Some(p.string(pid)?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK properties.
pub(crate) fn ack(r: &mut Reader) -> Result<AckProperties, DecodeError> {
    let packet = r.packet();
    let mut p = Props::read(r, packet)?;
    let mut out = AckProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::REASON_STRING => out.reason_string = Some(p.string(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// SUBSCRIBE properties (3.8.2.1).
pub(crate) fn subscribe(r: &mut Reader) -> Result<SubscribeProperties, DecodeError> {
    let mut p = Props::read(r, "SUBSCRIBE")?;
    let mut out = SubscribeProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::SUBSCRIPTION_IDENTIFIER => {
                out.subscription_identifier = Some(p.subscription_id_once()?)
            }
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// UNSUBSCRIBE properties (3.10.2.1): user properties only.
pub(crate) fn user_only(r: &mut Reader) -> Result<Vec<UserProperty>, DecodeError> {
    let packet = r.packet();
    let mut p = Props::read(r, packet)?;
    let mut out = Vec::new();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::USER_PROPERTY => out.push(p.user_property()?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// DISCONNECT properties (3.14.2.2).
pub(crate) fn disconnect(r: &mut Reader) -> Result<DisconnectProperties, DecodeError> {
    let mut p = Props::read(r, "DISCONNECT")?;
    let mut out = DisconnectProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::SESSION_EXPIRY_INTERVAL => out.session_expiry_interval = Some(p.u32(pid)?),
            id::REASON_STRING => out.reason_string = Some(p.string(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::SERVER_REFERENCE => out.server_reference = Some(p.string(pid)?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}

/// AUTH properties (3.15.2.2).
pub(crate) fn auth(r: &mut Reader) -> Result<AuthProperties, DecodeError> {
    let mut p = Props::read(r, "AUTH")?;
    let mut out = AuthProperties::default();
    while let Some(pid) = p.next_id()? {
        match pid {
            id::AUTHENTICATION_METHOD => out.authentication_method = Some(p.string(pid)?),
            id::AUTHENTICATION_DATA => out.authentication_data = Some(p.binary(pid)?),
            id::REASON_STRING => out.reason_string = Some(p.string(pid)?),
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            other => return Err(p.not_allowed(other)),
        }
    }
    Ok(out)
}
