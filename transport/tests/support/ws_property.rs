// The WebSocket decoding property, shared by the fuzz target
// (`fuzz/fuzz_targets/ws_frames.rs`, which `include!`s this file) and the
// corpus replay (`transport/tests/ws_corpus.rs`), so the two cannot drift.

use bytes::BytesMut;
use tern_transport::ws::{Control, Decoded, FrameDecoder, FrameError};

/// Everything one decoding run produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) payload: Vec<u8>,
    pub(crate) controls: Vec<Control>,
    pub(crate) error: Option<FrameError>,
}

/// Decodes `data` arriving `chunk` bytes at a time, taking at most `room`
/// payload bytes per call.
pub(crate) fn run(data: &[u8], max_frame: u64, chunk: usize, room: usize) -> Outcome {
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
