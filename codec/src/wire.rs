//! Wire primitives: Variable Byte Integers, a bounds-checked reader over one
//! frame's [`Bytes`], and write helpers. Every read checks its bounds first, so
//! decoding never panics; strings and binary fields are zero-copy slices.

use bytes::{Buf, BufMut, Bytes};
use bytestring::ByteString;
use std::num::NonZeroU16;

use crate::error::{DecodeError, EncodeError};
use crate::types::PacketId;

/// Largest value a Variable Byte Integer can hold (1.5.5).
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// Parses a Variable Byte Integer at the start of `buf`.
///
/// `Ok(None)` when `buf` ends before the last byte; `Ok(Some((value, len)))`
/// otherwise. More than 4 bytes, or an encoding that is not minimal (a last
/// byte of 0 after a continuation), is [`DecodeError::MalformedVarInt`].
pub(crate) fn parse_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &b) in buf.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(DecodeError::MalformedVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::MalformedVarInt)
    } else {
        Ok(None)
    }
}

/// Number of bytes of the Variable Byte Integer encoding of `v` (`v <= MAX_VARINT`).
pub(crate) const fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `v` (`<= MAX_VARINT`) as a Variable Byte Integer.
pub(crate) fn put_varint(dst: &mut impl BufMut, mut v: usize) {
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        dst.put_u8(byte);
        if v == 0 {
            return;
        }
    }
}

/// Encoded length of a length-prefixed string or binary field of `n` bytes.
pub(crate) fn field_len(n: usize) -> Result<usize, EncodeError> {
    if n > usize::from(u16::MAX) {
        Err(EncodeError::FieldTooLong(n))
    } else {
        Ok(2 + n)
    }
}

/// Writes a length-prefixed field whose length was checked by [`field_len`].
pub(crate) fn put_field(dst: &mut impl BufMut, data: &[u8]) {
    dst.put_u16(data.len() as u16);
    dst.put_slice(data);
}

/// Turns a slice of the frame into a string: no U+0000, well-formed UTF-8.
pub(crate) fn to_string(bytes: Bytes) -> Result<ByteString, DecodeError> {
    // In UTF-8 a 0 byte only ever encodes U+0000, so a byte scan is exact.
    if memchr::memchr(0, &bytes).is_some() {
        return Err(DecodeError::NullCharacter);
    }
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

/// A bounds-checked cursor over the body of one packet.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    packet: &'static str,
}

impl Reader {
    /// A reader over `buf`, naming `packet` in its errors.
    pub(crate) fn new(buf: Bytes, packet: &'static str) -> Self {
        Self { buf, packet }
    }

    /// The packet name used in errors.
    pub(crate) fn packet(&self) -> &'static str {
        self.packet
    }

    /// Bytes left to read.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            packet: self.packet,
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(self.truncated());
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(self.truncated());
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(self.truncated());
        }
        Ok(self.buf.get_u32())
    }

    /// A Variable Byte Integer inside the packet (property length, subscription id).
    pub(crate) fn varint(&mut self) -> Result<usize, DecodeError> {
        match parse_varint(&self.buf)? {
            Some((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            None => Err(self.truncated()),
        }
    }

    /// The next `n` bytes as a zero-copy slice.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.buf.len() {
            return Err(self.truncated());
        }
        Ok(self.buf.split_to(n))
    }

    /// A reader over the next `n` bytes (a hard boundary, e.g. the properties).
    pub(crate) fn sub(&mut self, n: usize) -> Result<Self, DecodeError> {
        let buf = self.take(n)?;
        Ok(Self {
            buf,
            packet: self.packet,
        })
    }

    /// Binary Data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// A UTF-8 Encoded String.
    pub(crate) fn string(&mut self) -> Result<ByteString, DecodeError> {
        let bytes = self.binary()?;
        to_string(bytes)
    }

    /// A non-zero packet identifier.
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        NonZeroU16::new(self.u16()?).ok_or(DecodeError::PacketIdZero)
    }

    /// Everything that is left (the PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails when bytes are left after the packet's last field.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet: self.packet,
                extra: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn varint_vectors_round_trip() {
        // Table 1-1 / 2.2.3 boundaries.
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX_VARINT, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in cases {
            let mut out = BytesMut::new();
            put_varint(&mut out, value);
            assert_eq!(&out[..], bytes, "encode {value}");
            assert_eq!(varint_len(value), bytes.len());
            assert_eq!(parse_varint(bytes), Ok(Some((value, bytes.len()))));
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_varint(&bytes[..cut]),
                    Ok(None),
                    "prefix {cut} of {value}"
                );
            }
        }
    }

    #[test]
    fn varint_more_than_four_bytes_is_malformed_mqtt_1_5_5_1() {
        assert_eq!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            parse_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::MalformedVarInt)
        );
    }

    #[test]
    fn varint_non_minimal_is_malformed_mqtt_1_5_5_1() {
        for bytes in [
            &[0x80, 0x00][..],
            &[0xFF, 0x80, 0x00],
            &[0x80, 0x80, 0x80, 0x00],
        ] {
            assert_eq!(
                parse_varint(bytes),
                Err(DecodeError::MalformedVarInt),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn reader_checks_bounds() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a']), "TEST");
        assert_eq!(r.binary(), Err(DecodeError::Truncated { packet: "TEST" }));
        let mut r = Reader::new(Bytes::from_static(&[0x01]), "TEST");
        assert!(r.u16().is_err());
        assert!(r.u32().is_err());
        assert_eq!(r.u8(), Ok(1));
        assert!(r.u8().is_err());
        assert!(r.varint().is_err());
        let r = Reader::new(Bytes::from_static(&[0x01, 0x02]), "TEST");
        assert_eq!(
            r.finish(),
            Err(DecodeError::TrailingBytes {
                packet: "TEST",
                extra: 2
            })
        );
    }

    #[test]
    fn strings_reject_nul_and_bad_utf8_mqtt_1_5_3() {
        assert_eq!(
            to_string(Bytes::from_static(b"a\0b")),
            Err(DecodeError::NullCharacter)
        );
        // An encoded surrogate (U+D800) is ill-formed UTF-8 [MQTT-1.5.3-1].
        assert_eq!(
            to_string(Bytes::from_static(&[0xED, 0xA0, 0x80])),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            to_string(Bytes::from_static(&[0xC0, 0x80])),
            Err(DecodeError::InvalidUtf8)
        );
        // U+FEFF is kept, not stripped [MQTT5-1.5.4-3].
        let s = to_string(Bytes::from_static("\u{feff}a".as_bytes())).unwrap();
        assert_eq!(&*s, "\u{feff}a");
    }

    #[test]
    fn string_is_a_slice_of_the_frame() {
        let frame = Bytes::from(vec![0x00, 0x03, b'a', b'b', b'c', 9]);
        let base = frame.as_ptr() as usize;
        let mut r = Reader::new(frame, "TEST");
        let s = r.string().unwrap();
        assert_eq!(s.as_bytes().as_ptr() as usize, base + 2);
        assert_eq!(r.rest().as_ptr() as usize, base + 5);
    }

    #[test]
    fn field_len_limit() {
        assert_eq!(field_len(65_535), Ok(65_537));
        assert_eq!(field_len(65_536), Err(EncodeError::FieldTooLong(65_536)));
    }
}
