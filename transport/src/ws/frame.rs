//! RFC 6455 framing, sans-IO: the server side's decoder of client frames
//! and its encoder of (unmasked) frame headers.
//!
//! The decoder presents the payload of binary data frames as one byte
//! stream: frame and message boundaries are not MQTT's (an MQTT packet may
//! span frames, a frame may carry several packets). It unmasks in place in
//! the caller's raw buffer, frame by frame, and keeps the masking key and
//! position of a partly read frame so decoding resumes on any byte boundary.

use bytes::{Buf, Bytes, BytesMut};

/// Opcodes (RFC 6455 §5.2).
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
/// Binary data frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Connection close.
pub(crate) const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
/// Answer to a ping.
pub(crate) const OP_PONG: u8 = 0xA;

/// A control frame's payload is at most this long (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// Close status codes (RFC 6455 §7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint does not accept (text frames here).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame larger than the endpoint accepts.
    pub const TOO_BIG: u16 = 1009;
}

/// A client frame the server cannot accept. Each is answered with a close
/// frame carrying [`FrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A text frame: MQTT over WebSocket is binary only ([MQTT-6.0.0-1]).
    #[error("[MQTT-6.0.0-1] text frame received; MQTT uses binary frames")]
    TextFrame,
    /// A client frame without a mask (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// RSV bits set without a negotiated extension.
    #[error("reserved bits set in frame header")]
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A fragmented or over-long control frame.
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControlFrame,
    /// A continuation frame with no message to continue, or a new data
    /// frame inside a fragmented message.
    #[error("continuation frame out of sequence")]
    BadContinuation,
    /// A data frame longer than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooBig {
        /// The frame's payload length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A close frame with a one-byte payload.
    #[error("malformed close frame")]
    BadClose,
}

impl FrameError {
    /// The close status the server answers this error with.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::TextFrame => close_code::UNSUPPORTED_DATA,
            Self::TooBig { .. } => close_code::TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// A control frame the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (unsolicited or not): nothing to do.
    Pong,
    /// The peer closes, with its status code (none when the frame had no
    /// payload).
    Close(Option<u16>),
}

/// What one [`FrameDecoder::decode`] call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// This many payload bytes, unmasked, at the front of the raw buffer:
    /// the caller takes them (and advances the buffer past them).
    Data(usize),
    /// A control frame, consumed from the raw buffer.
    Control(Control),
    /// The raw buffer holds no whole header (or control frame): read more.
    NeedMore,
}

/// The decoder of client frames. See the module documentation.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: u64,
    /// Payload bytes of the current data frame not yet decoded.
    remaining: u64,
    mask: [u8; 4],
    /// Offset into `mask` of the next payload byte.
    mask_pos: usize,
    /// Inside a fragmented binary message (its last frame had FIN = 0).
    in_message: bool,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
    size: usize,
}

impl FrameDecoder {
    /// A decoder refusing data frames longer than `max_frame` bytes.
    pub fn new(max_frame: u64) -> Self {
        Self {
            max_frame,
            remaining: 0,
            mask: [0; 4],
            mask_pos: 0,
            in_message: false,
        }
    }

    /// True inside a frame or a fragmented message: an end of stream here
    /// cuts a message short.
    pub fn mid_message(&self) -> bool {
        self.remaining > 0 || self.in_message
    }

    /// Decodes from the front of `raw`. [`Decoded::Data`] unmasks up to
    /// `room` payload bytes in place at the front of `raw` and leaves them
    /// there for the caller to take; control frames are consumed.
    pub fn decode(&mut self, raw: &mut BytesMut, room: usize) -> Result<Decoded, FrameError> {
        loop {
            if self.remaining > 0 {
                if raw.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(raw.len())
                    .min(room);
                if n == 0 {
                    return Ok(Decoded::Data(0));
                }
                self.unmask(&mut raw[..n]);
                self.remaining -= n as u64;
                return Ok(Decoded::Data(n));
            }
            let Some(h) = parse_header(raw)? else {
                return Ok(Decoded::NeedMore);
            };
            match h.opcode {
                OP_BINARY | OP_CONTINUATION => {
                    if (h.opcode == OP_BINARY) == self.in_message {
                        return Err(FrameError::BadContinuation);
                    }
                    if h.len > self.max_frame {
                        return Err(FrameError::TooBig {
                            len: h.len,
                            max: self.max_frame,
                        });
                    }
                    raw.advance(h.size);
                    self.in_message = !h.fin;
                    self.remaining = h.len;
                    self.mask = h.mask;
                    self.mask_pos = 0;
                    // An empty frame: go on with the next one.
                }
                OP_TEXT => return Err(FrameError::TextFrame),
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !h.fin || h.len > MAX_CONTROL_PAYLOAD as u64 {
                        return Err(FrameError::BadControlFrame);
                    }
                    let len = h.len as usize;
                    if raw.len() < h.size + len {
                        return Ok(Decoded::NeedMore);
                    }
                    raw.advance(h.size);
                    let mut payload = raw.split_to(len);
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= h.mask[i % 4];
                    }
                    let control = match h.opcode {
                        OP_PING => Control::Ping(payload.freeze()),
                        OP_PONG => Control::Pong,
                        _ => match len {
                            0 => Control::Close(None),
                            1 => return Err(FrameError::BadClose),
                            _ => Control::Close(Some(u16::from_be_bytes([payload[0], payload[1]]))),
                        },
                    };
                    return Ok(Decoded::Control(control));
                }
                other => return Err(FrameError::UnknownOpcode(other)),
            }
        }
    }

    /// True when [`FrameDecoder::decode`] would make progress on `raw`
    /// without more input: payload bytes, a whole control frame, or an error.
    pub fn ready(&self, raw: &[u8]) -> bool {
        if self.remaining > 0 {
            return !raw.is_empty();
        }
        match parse_header(raw) {
            Err(_) => true,
            Ok(None) => false,
            Ok(Some(h)) => match h.opcode {
                OP_BINARY | OP_CONTINUATION => true,
                OP_CLOSE | OP_PING | OP_PONG if h.len <= MAX_CONTROL_PAYLOAD as u64 => {
                    raw.len() >= h.size + h.len as usize
                }
                _ => true,
            },
        }
    }

    fn unmask(&mut self, data: &mut [u8]) {
        // Rotate the key so it lines up with `data[0]`, then XOR four bytes
        // at a time.
        let mut key = [0u8; 4];
        for (i, k) in key.iter_mut().enumerate() {
            *k = self.mask[(self.mask_pos + i) % 4];
        }
        let word = u32::from_ne_bytes(key);
        let mut chunks = data.chunks_exact_mut(4);
        for c in &mut chunks {
            let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
            c.copy_from_slice(&v.to_ne_bytes());
        }
        for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
            *b ^= key[i];
        }
        self.mask_pos = (self.mask_pos + data.len()) % 4;
    }
}

/// Parses a client frame header at the front of `raw` without consuming
/// it; `None` when it is not all there yet.
fn parse_header(raw: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *raw else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let (len, at) = match b1 & 0x7F {
        126 => {
            let Some(b) = raw.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = raw.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            (u64::from_be_bytes(be), 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(m) = raw.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        len,
        mask: [m[0], m[1], m[2], m[3]],
        size: at + 4,
    }))
}

/// Writes the header of an unmasked server frame with FIN set into `out`;
/// returns its length (2, 4 or 10).
pub fn encode_header(opcode: u8, len: u64, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        10
    }
}

/// Appends a whole unmasked control frame (payload at most 125 bytes; a
/// longer one is cut) to `out`.
pub(crate) fn push_control(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut head = [0u8; MAX_HEADER];
    let n = encode_header(opcode, payload.len() as u64, &mut head);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}
