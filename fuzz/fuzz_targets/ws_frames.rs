//! Feeds arbitrary bytes to the WebSocket frame decoder (and the upgrade
//! request parser) of `tern_transport::ws`. Decoding must never panic, never
//! hand out more payload than asked for, and give the same payload bytes,
//! control frames and error whether the input arrives at once or in pieces
//! with small reads (the chunk and read sizes come from the first bytes).
//!
//! Run: `cargo fuzz run ws_frames` (seeds in `corpus/ws_frames/`).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_transport::ws::{parse_request, Control, Decoded, FrameDecoder, FrameError};

/// Everything one decoding run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    controls: Vec<Control>,
    error: Option<FrameError>,
}

/// Decodes `data` arriving `chunk` bytes at a time, taking at most `room`
/// payload bytes per call.
fn run(data: &[u8], max_frame: u64, chunk: usize, room: usize) -> Outcome {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut raw = BytesMut::new();
    let mut out = Outcome {
        payload: Vec::new(),
        controls: Vec::new(),
        error: None,
    };
    let mut fed = 0;
    loop {
        match decoder.decode(&mut raw, room) {
            Ok(Decoded::Data(n)) => {
                assert!(n > 0 && n <= room && n <= raw.len());
                out.payload.extend_from_slice(&raw.split_to(n));
            }
            Ok(Decoded::Control(c)) => {
                if let Control::Ping(p) = &c {
                    assert!(p.len() <= 125);
                }
                out.controls.push(c);
            }
            Ok(Decoded::NeedMore) => {
                assert!(!decoder.ready(&raw), "ready but needs more");
                if fed == data.len() {
                    return out;
                }
                let end = (fed + chunk).min(data.len());
                raw.extend_from_slice(&data[fed..end]);
                fed = end;
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
}

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
