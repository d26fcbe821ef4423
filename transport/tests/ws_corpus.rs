//! Replays the WebSocket fuzz seeds (`fuzz/corpus/ws_frames/`) and any crash
//! artifacts (`fuzz/artifacts/ws_frames/`) with the fuzz target's property:
//! no panic, and the same payload, control frames and error whether the
//! input arrives at once or in small pieces. The seeds' outcomes are checked
//! too, so a seed that stops exercising what it was written for fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub(crate) mod ws_property;
}

use std::fs;
use std::path::{Path, PathBuf};
use support::ws_property::{run, Outcome};
use tern_transport::ws::{parse_request, Control, FrameError};

/// The fuzz target's check of one input (plus two fixed splits); returns
/// the outcome of the whole-input run.
fn check(data: &[u8]) -> Option<Outcome> {
    let [a, b, c, rest @ ..] = data else {
        return None;
    };
    let max_frame = 1u64 << (a % 24);
    let whole = run(rest, max_frame, rest.len().max(1), usize::MAX);
    for (chunk, room) in [
        (usize::from(*b % 16) + 1, usize::from(*c % 32) + 1),
        (1, 1),
        (3, 5),
    ] {
        assert_eq!(whole, run(rest, max_frame, chunk, room));
    }
    let _ = parse_request(rest, "/mqtt");
    Some(whole)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn seeds_decode_as_written() {
    let dir = fuzz_dir().join("corpus/ws_frames");
    let seed = |name: &str| check(&fs::read(dir.join(name)).unwrap()).unwrap();
    let b = seed("binary");
    assert!(b.payload.starts_with(b"\x10\x0c\x00\x04MQTT") && b.error.is_none());
    let f = seed("fragmented");
    assert_eq!(f.payload, b"\x30\x05\x00\x01ab");
    assert_eq!(
        f.controls,
        [Control::Ping(bytes::Bytes::from_static(b"hi"))]
    );
    assert_eq!(seed("close").controls, [Control::Close(Some(1000))]);
    assert_eq!(seed("text").error, Some(FrameError::TextFrame));
    assert_eq!(seed("unmasked").error, Some(FrameError::Unmasked));
    assert_eq!(seed("long").payload.len(), 300);
    let request = fs::read(dir.join("request")).unwrap();
    let accepted = parse_request(&request[3..], "/mqtt").unwrap().unwrap();
    assert_eq!(accepted.subprotocol, "mqtt");
}

#[test]
fn corpus_and_artifacts_keep_the_fuzz_property() {
    let fuzz = fuzz_dir();
    let mut n = 0;
    for dir in ["corpus/ws_frames", "artifacts/ws_frames"] {
        for path in files(&fuzz.join(dir)) {
            check(&fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 7, "the seed corpus is missing ({n} files)");
}
