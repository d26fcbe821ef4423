//! Tern's MQTT codec: strict, zero-copy decode and encode of every packet of
//! MQTT 3.1, 3.1.1 and 5.0. No IO and no async: callers own the buffers.
//!
//! * Reading: [`Decoder::new`] on the server (the first packet must be
//!   CONNECT, which fixes the version), then [`Decoder::decode`] on the read
//!   buffer until it returns `Ok(None)`. Decoded strings, topics and payloads
//!   are slices of the read buffer. On `Err`, answer with
//!   [`DecodeError::reason_code`] where the version allows and close.
//! * Writing: [`encode`] for control packets; for PUBLISH fan-out build one
//!   [`PublishTemplate`] per message and version, write each receiver's header
//!   with [`PublishTemplate::write_header`] and send the payload `Bytes`
//!   after it.
//! * Topics: [`topic`] validates names and filters and splits shared
//!   subscriptions.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod decode;
mod encode;
mod error;
mod inline_str;
mod properties;
#[cfg(test)]
mod samples;
mod template;
pub mod topic;
mod types;
mod wire;

pub use decode::Decoder;
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use inline_str::{InlineStr, INLINE_MAX};
pub use template::{Delivery, PublishTemplate};
pub use topic::TopicError;
pub use types::*;
