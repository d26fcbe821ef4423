//! CONNECT (3.1) and CONNACK (3.2) bodies.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::properties::decode as props;
use crate::topic::validate_topic_name;
use crate::types::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, ProtocolVersion, QoS,
    ReasonCode, WillProperties,
};
use crate::wire::Reader;

/// The protocol version named by a CONNECT's protocol name and level.
fn protocol(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V31),
        (b"MQTT", 4) => Ok(ProtocolVersion::V311),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        _ => Err(DecodeError::UnsupportedProtocol {
            name_ok: name == b"MQTT" || name == b"MQIsdp",
            level,
        }),
    }
}

/// The protocol a CONNECT body names, if its name and level are known.
pub(super) fn peek_protocol(body: &[u8]) -> Option<ProtocolVersion> {
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + len)?;
    let level = *body.get(2 + len)?;
    protocol(name, level).ok()
}

/// CONNECT: the version comes from the packet itself, whatever the decoder's.
pub(super) fn connect(body: Bytes) -> Result<Connect, DecodeError> {
    let mut r = Reader::new(body, "CONNECT");
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = protocol(&name, level)?;
    let v5 = protocol.is_v5();

    let flags = r.u8()?;
    if flags & 0b0000_0001 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = flags & 0b0000_0010 != 0;
    let will_flag = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let password_flag = flags & 0b0100_0000 != 0;
    let username_flag = flags & 0b1000_0000 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill);
    }
    let Some(will_qos) = QoS::from_u8(will_qos) else {
        return Err(DecodeError::WillQoS3);
    };
    if !v5 && password_flag && !username_flag {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        props::connect(&mut r)?
    } else {
        ConnectProperties::default()
    };

    // Payload order: client id, will, user name, password [MQTT-3.1.3-1].
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            props::will(&mut r)?
        } else {
            WillProperties::default()
        };
        let topic = r.string()?;
        validate_topic_name(&topic).map_err(DecodeError::TopicName)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// A v3 CONNACK return code as the equivalent v5 reason code.
fn v3_connack_code(code: u8) -> Result<ReasonCode, DecodeError> {
    Ok(match code {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => {
            return Err(DecodeError::InvalidReasonCode {
                packet: "CONNACK",
                code,
                rule: "3.2.2.3",
            })
        }
    })
}

/// True for the v5 Connect Reason Codes (3.2.2.2).
fn v5_connack_code(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
    )
}

/// CONNACK (client side).
pub(super) fn connack(body: Bytes, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let mut r = Reader::new(body, "CONNACK");
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::ConnAckReservedFlags(flags));
    }
    let code = r.u8()?;
    let (code, properties) = if v.is_v5() {
        if !v5_connack_code(code) {
            return Err(DecodeError::InvalidReasonCode {
                packet: "CONNACK",
                code,
                rule: "MQTT-3.2.2-8",
            });
        }
        (ReasonCode(code), props::connack(&mut r)?)
    } else {
        (v3_connack_code(code)?, ConnAckProperties::default())
    };
    r.finish()?;
    Ok(ConnAck {
        session_present: flags & 1 != 0,
        code,
        properties,
    })
}
