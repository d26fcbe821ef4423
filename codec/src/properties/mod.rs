//! MQTT 5.0 properties (2.2.2): identifiers, a strict reader for one property
//! block, the per-packet decoders and the encoders.
//!
//! The property length is a hard boundary: a value that runs past it is
//! malformed. An unknown identifier or one not valid in the packet is
//! malformed; a property repeated where it may appear once, or an
//! out-of-range value, is a protocol error.

pub(crate) mod decode;
pub(crate) mod encode;

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::types::UserProperty;
use crate::wire::Reader;

/// Property identifiers (2.2.2.2).
pub(crate) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Every identifier defined by MQTT 5.0, as a bit set over the id.
    pub(crate) const KNOWN: u64 = {
        let ids = [
            PAYLOAD_FORMAT_INDICATOR,
            MESSAGE_EXPIRY_INTERVAL,
            CONTENT_TYPE,
            RESPONSE_TOPIC,
            CORRELATION_DATA,
            SUBSCRIPTION_IDENTIFIER,
            SESSION_EXPIRY_INTERVAL,
            ASSIGNED_CLIENT_IDENTIFIER,
            SERVER_KEEP_ALIVE,
            AUTHENTICATION_METHOD,
            AUTHENTICATION_DATA,
            REQUEST_PROBLEM_INFORMATION,
            WILL_DELAY_INTERVAL,
            REQUEST_RESPONSE_INFORMATION,
            RESPONSE_INFORMATION,
            SERVER_REFERENCE,
            REASON_STRING,
            RECEIVE_MAXIMUM,
            TOPIC_ALIAS_MAXIMUM,
            TOPIC_ALIAS,
            MAXIMUM_QOS,
            RETAIN_AVAILABLE,
            USER_PROPERTY,
            MAXIMUM_PACKET_SIZE,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            SHARED_SUBSCRIPTION_AVAILABLE,
        ];
        let mut set = 0u64;
        let mut i = 0;
        while i < ids.len() {
            set |= 1 << ids[i];
            i += 1;
        }
        set
    };
}

/// A reader over one property block that tracks which ids were seen.
#[derive(Debug)]
pub(crate) struct Props {
    r: Reader,
    seen: u64,
    packet: &'static str,
}

impl Props {
    /// Reads the property length and takes that many bytes from `r`.
    pub(crate) fn read(r: &mut Reader, packet: &'static str) -> Result<Self, DecodeError> {
        let len = r.varint()?;
        Ok(Self {
            r: r.sub(len)?,
            seen: 0,
            packet,
        })
    }

    /// The next property identifier, or `None` at the end of the block.
    pub(crate) fn next_id(&mut self) -> Result<Option<u8>, DecodeError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        let id = self.r.u8()?;
        // Identifiers are Variable Byte Integers, but every defined one is < 0x80.
        if id >= 64 || id::KNOWN & (1u64 << id) == 0 {
            return Err(DecodeError::UnknownProperty(id));
        }
        Ok(Some(id))
    }

    /// The error for a known property that this packet does not allow.
    pub(crate) fn not_allowed(&self, id: u8) -> DecodeError {
        DecodeError::PropertyNotAllowed {
            id,
            packet: self.packet,
        }
    }

    /// Records `id`, failing when it was already seen.
    fn once(&mut self, id: u8) -> Result<(), DecodeError> {
        let bit = 1u64 << (id & 63);
        if self.seen & bit != 0 {
            return Err(DecodeError::DuplicateProperty {
                id,
                packet: self.packet,
            });
        }
        self.seen |= bit;
        Ok(())
    }

    pub(crate) fn byte(&mut self, id: u8) -> Result<u8, DecodeError> {
        self.once(id)?;
        self.r.u8()
    }

    /// A Byte property whose only valid values are 0 and 1.
    pub(crate) fn flag(&mut self, id: u8) -> Result<bool, DecodeError> {
        match self.byte(id)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidPropertyValue {
                id,
                value: u32::from(v),
            }),
        }
    }

    pub(crate) fn u16(&mut self, id: u8) -> Result<u16, DecodeError> {
        self.once(id)?;
        self.r.u16()
    }

    /// A Two Byte Integer that must not be 0.
    pub(crate) fn nonzero_u16(&mut self, id: u8) -> Result<u16, DecodeError> {
        match self.u16(id)? {
            0 => Err(DecodeError::InvalidPropertyValue { id, value: 0 }),
            v => Ok(v),
        }
    }

    pub(crate) fn u32(&mut self, id: u8) -> Result<u32, DecodeError> {
        self.once(id)?;
        self.r.u32()
    }

    /// A Subscription Identifier: 1..=268,435,455. Repeats are checked by
    /// the caller (allowed in PUBLISH, not in SUBSCRIBE).
    pub(crate) fn subscription_id(&mut self) -> Result<u32, DecodeError> {
        let v = self.r.varint()?;
        if v == 0 {
            return Err(DecodeError::InvalidPropertyValue {
                id: id::SUBSCRIPTION_IDENTIFIER,
                value: 0,
            });
        }
        Ok(v as u32)
    }

    /// A Subscription Identifier that may appear only once.
    pub(crate) fn subscription_id_once(&mut self) -> Result<u32, DecodeError> {
        self.once(id::SUBSCRIPTION_IDENTIFIER)?;
        self.subscription_id()
    }

    pub(crate) fn string(&mut self, id: u8) -> Result<ByteString, DecodeError> {
        self.once(id)?;
        self.r.string()
    }

    pub(crate) fn binary(&mut self, id: u8) -> Result<Bytes, DecodeError> {
        self.once(id)?;
        self.r.binary()
    }

    /// A User Property (may repeat; order is kept by the caller).
    pub(crate) fn user_property(&mut self) -> Result<UserProperty, DecodeError> {
        let name = self.r.string()?;
        let value = self.r.string()?;
        Ok((name, value))
    }
}
