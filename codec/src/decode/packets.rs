//! Bodies of every packet but CONNECT/CONNACK.

use bytes::Bytes;

use super::kind;
use crate::error::DecodeError;
use crate::properties::decode as props;
use crate::topic::{split_shared, validate_topic_filter, TopicError};
use crate::types::{
    AckProperties, Auth, Disconnect, ProtocolVersion, PubResp, Publish, PublishProperties, QoS,
    ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use crate::wire::Reader;

/// PUBLISH (3.3). `flags` passed `check_first_byte` (QoS 0..=2, no DUP at QoS 0).
pub(super) fn publish(flags: u8, body: Bytes, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::PublishQoS3)?;
    let mut r = Reader::new(body, "PUBLISH");
    let raw_topic = r.binary()?;
    // One SIMD scan for U+0000 and wildcards [MQTT-4.7.3-2] [MQTT-3.3.2-2].
    if let Some(i) = memchr::memchr3(0, b'+', b'#', &raw_topic) {
        return Err(if raw_topic.get(i) == Some(&0) {
            DecodeError::NullCharacter
        } else {
            DecodeError::TopicName(TopicError::WildcardInName)
        });
    }
    // The scan above already excluded U+0000; only UTF-8 is left to check.
    let topic =
        bytestring::ByteString::try_from(raw_topic).map_err(|_| DecodeError::InvalidUtf8)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    let properties = if v.is_v5() {
        props::publish(&mut r)?
    } else {
        PublishProperties::default()
    };
    if topic.is_empty() {
        if !v.is_v5() {
            return Err(DecodeError::TopicName(TopicError::Empty));
        }
        if properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicWithoutAlias);
        }
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// True when `code` is a valid v5 reason code for packet type `t`, with the
/// statement that requires it.
fn valid_v5_code(t: u8, code: u8) -> (bool, &'static str) {
    match t {
        // 3.4.2.1 / 3.5.2.1
        kind::PUBACK => (
            matches!(
                code,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            ),
            "MQTT-3.4.2-1",
        ),
        kind::PUBREC => (
            matches!(
                code,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            ),
            "MQTT-3.5.2-1",
        ),
        kind::PUBREL => (matches!(code, 0x00 | 0x92), "MQTT-3.6.2-1"),
        kind::PUBCOMP => (matches!(code, 0x00 | 0x92), "MQTT-3.7.2-1"),
        kind::SUBACK => (
            matches!(
                code,
                0x00 | 0x01 | 0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
            ),
            "MQTT-3.9.3-2",
        ),
        kind::UNSUBACK => (
            matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
            "MQTT-3.11.3-2",
        ),
        kind::DISCONNECT => (
            matches!(
                code,
                0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B..=0x90 | 0x93..=0xA2
            ),
            "MQTT-3.14.2-1",
        ),
        kind::AUTH => (matches!(code, 0x00 | 0x18 | 0x19), "MQTT-3.15.2-1"),
        _ => (false, "2.4"),
    }
}

/// Reads a v5 reason code valid for packet type `t`.
fn reason(r: &mut Reader, t: u8) -> Result<ReasonCode, DecodeError> {
    let code = r.u8()?;
    match valid_v5_code(t, code) {
        (true, _) => Ok(ReasonCode(code)),
        (false, rule) => Err(DecodeError::InvalidReasonCode {
            packet: super::kind_name(t),
            code,
            rule,
        }),
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP (3.4-3.7). In v5 a remaining length of 2
/// means Success without properties, 3 a reason code without properties.
pub(super) fn pub_resp(t: u8, body: Bytes, v: ProtocolVersion) -> Result<PubResp, DecodeError> {
    let mut r = Reader::new(body, super::kind_name(t));
    let packet_id = r.packet_id()?;
    let mut out = PubResp::new(packet_id);
    if v.is_v5() && !r.is_empty() {
        out.reason = reason(&mut r, t)?;
        if !r.is_empty() {
            out.properties = props::ack(&mut r)?;
        }
    }
    r.finish()?;
    Ok(out)
}

/// One subscription options byte (3.8.3.1).
fn options(byte: u8, v: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v.is_v5() { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::SubscriptionOptionsReserved(byte));
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::SubscriptionQoS3)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscribe,
        2 => RetainHandling::Never,
        _ => return Err(DecodeError::RetainHandling3),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

/// A topic filter from SUBSCRIBE or UNSUBSCRIBE.
fn filter(r: &mut Reader) -> Result<bytestring::ByteString, DecodeError> {
    let f = r.string()?;
    validate_topic_filter(&f).map_err(DecodeError::TopicFilter)?;
    Ok(f)
}

/// SUBSCRIBE (3.8).
pub(super) fn subscribe(body: Bytes, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let mut r = Reader::new(body, "SUBSCRIBE");
    let packet_id = r.packet_id()?;
    let properties = if v.is_v5() {
        props::subscribe(&mut r)?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let f = filter(&mut r)?;
        let opts = options(r.u8()?, v)?;
        if v.is_v5() && opts.no_local && split_shared(&f).is_some() {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        filters.push((f, opts));
    }
    if filters.is_empty() {
        return Err(DecodeError::SubscribeNoFilters);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// SUBACK (3.9). v3 return codes are 0x00, 0x01, 0x02 or 0x80 [MQTT-3.9.3-2].
pub(super) fn suback(body: Bytes, v: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let mut r = Reader::new(body, "SUBACK");
    let packet_id = r.packet_id()?;
    let properties = if v.is_v5() {
        props::ack(&mut r)?
    } else {
        AckProperties::default()
    };
    let mut reasons = Vec::with_capacity(r.len());
    while !r.is_empty() {
        let code = if v.is_v5() {
            reason(&mut r, kind::SUBACK)?
        } else {
            match r.u8()? {
                code @ (0x00 | 0x01 | 0x02 | 0x80) => ReasonCode(code),
                code => {
                    return Err(DecodeError::InvalidReasonCode {
                        packet: "SUBACK",
                        code,
                        rule: "MQTT-3.9.3-2",
                    })
                }
            }
        };
        reasons.push(code);
    }
    if reasons.is_empty() {
        return Err(DecodeError::NoReasonCodes { packet: "SUBACK" });
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

/// UNSUBSCRIBE (3.10).
pub(super) fn unsubscribe(body: Bytes, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let mut r = Reader::new(body, "UNSUBSCRIBE");
    let packet_id = r.packet_id()?;
    let user_properties = if v.is_v5() {
        props::user_only(&mut r)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(filter(&mut r)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::UnsubscribeNoFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// UNSUBACK (3.11): no payload in v3, one reason code per filter in v5.
pub(super) fn unsuback(body: Bytes, v: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let mut r = Reader::new(body, "UNSUBACK");
    let packet_id = r.packet_id()?;
    let mut out = UnsubAck {
        packet_id,
        reasons: Vec::new(),
        properties: AckProperties::default(),
    };
    if v.is_v5() {
        out.properties = props::ack(&mut r)?;
        out.reasons.reserve(r.len());
        while !r.is_empty() {
            out.reasons.push(reason(&mut r, kind::UNSUBACK)?);
        }
        if out.reasons.is_empty() {
            return Err(DecodeError::NoReasonCodes { packet: "UNSUBACK" });
        }
    }
    r.finish()?;
    Ok(out)
}

/// PINGREQ, PINGRESP, and v3 DISCONNECT: remaining length 0.
pub(super) fn empty(body: Bytes, packet: &'static str) -> Result<(), DecodeError> {
    Reader::new(body, packet).finish()
}

/// DISCONNECT (3.14). v5: remaining length 0 is a normal disconnection, 1 a
/// reason code without properties.
pub(super) fn disconnect(body: Bytes, v: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    let mut out = Disconnect::default();
    let mut r = Reader::new(body, "DISCONNECT");
    if v.is_v5() && !r.is_empty() {
        out.reason = reason(&mut r, kind::DISCONNECT)?;
        if !r.is_empty() {
            out.properties = props::disconnect(&mut r)?;
        }
    }
    r.finish()?;
    Ok(out)
}

/// AUTH (3.15, v5 only). Remaining length 0 means Success without properties;
/// otherwise the reason code and the property length are both present.
pub(super) fn auth(body: Bytes) -> Result<Auth, DecodeError> {
    let mut out = Auth::default();
    let mut r = Reader::new(body, "AUTH");
    if !r.is_empty() {
        out.reason = reason(&mut r, kind::AUTH)?;
        out.properties = props::auth(&mut r)?;
    }
    r.finish()?;
    Ok(out)
}
