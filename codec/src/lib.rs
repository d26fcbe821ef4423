//! Tern's MQTT codec: strict, zero-copy decode and encode of every packet of
//! MQTT 3.1, 3.1.1 and 5.0. No IO and no async: callers own the buffers.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

mod types;

pub use types::*;
