//! Feeds arbitrary bytes to the WebSocket frame decoder (and the upgrade
//! request parser) of `tern_transport::ws`. Decoding must never panic, never
//! hand out more payload than asked for, and give the same payload bytes,
//! control frames and error whether the input arrives at once or in pieces
//! with small reads (the chunk and read sizes come from the first bytes).
//!
//! Run: `cargo fuzz run ws_frames` (seeds in `corpus/ws_frames/`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_transport::ws::parse_request;

include!("../../transport/tests/support/ws_property.rs");

fuzz_target!(|data: &[u8]| {
    let [a, b, c, rest @ ..] = data else {
        return;
    };
    let max_frame = 1u64 << (a % 24);
    let whole = run(rest, max_frame, rest.len().max(1), usize::MAX);
    let pieces = run(rest, max_frame, usize::from(*b % 16) + 1, usize::from(*c % 32) + 1);
    assert_eq!(whole, pieces);

    let _ = parse_request(rest, "/mqtt");
});
