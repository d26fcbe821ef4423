//! Feeds arbitrary bytes to a server-side decoder and to a decoder for each
//! protocol version. Decoding must never panic, and every packet that
//! decodes must re-encode and decode back to itself.
//!
//! Run: `cargo fuzz run decode` (seeds in `corpus/decode/`). Crash inputs
//! land in `artifacts/decode/`; `codec/tests/corpus.rs` replays both.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_codec::{encode, encoded_len, Decoder, ProtocolVersion};

fn check(decoder: &mut Decoder, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        let version = decoder
            .version()
            .expect("a decoded packet fixes the version");
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out).expect("a decoded packet re-encodes");
        assert_eq!(encoded_len(&packet, version), out.len());
        let again = Decoder::with_version(version, u32::MAX).decode(&mut out);
        assert_eq!(again, Ok(Some(packet)), "re-decoding");
        assert!(out.is_empty(), "re-encoded packet has extra bytes");
    }
}

fuzz_target!(|data: &[u8]| {
    check(&mut Decoder::new(1 << 20), data);
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        check(&mut Decoder::with_version(version, 1 << 20), data);
    }
});
