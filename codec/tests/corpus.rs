//! Replays the fuzz seed corpus (`fuzz/corpus/decode/`) and any crash
//! artifacts (`fuzz/artifacts/decode/`) through every decoder: no input may
//! panic, and whatever decodes must round-trip (the fuzz target's property).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use std::fs;
use std::path::{Path, PathBuf};
use tern_codec::Decoder;

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

/// True when a server decoder or a decoder for some version decodes all of
/// `data` without error.
fn decodes_completely(data: &[u8]) -> bool {
    let mut decoders = vec![Decoder::new(1 << 20)];
    decoders.extend(common::VERSIONS.map(|v| Decoder::with_version(v, 1 << 20)));
    decoders.into_iter().any(|mut d| {
        let mut buf = BytesMut::from(data);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => return buf.is_empty(),
                Err(_) => return false,
            }
        }
    })
}

#[test]
fn seed_corpus_replays() {
    let seeds = files(&fuzz_dir().join("corpus/decode"));
    assert!(
        seeds.len() >= 20,
        "expected the seed corpus, found {} files",
        seeds.len()
    );
    for path in seeds {
        let data = fs::read(&path).unwrap();
        let decoded = common::check_all_decoders(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Valid seeds decode completely with at least one decoder.
        if !name.starts_with("bad_") {
            assert!(decoded > 0, "{name}: nothing decoded");
            assert!(
                decodes_completely(&data),
                "{name}: no decoder consumed it all"
            );
        }
    }
}

#[test]
fn crash_artifacts_replay() {
    // Present only after a fuzzing run found something; each must now pass.
    for path in files(&fuzz_dir().join("artifacts/decode")) {
        let data = fs::read(&path).unwrap();
        common::check_all_decoders(&data);
    }
}
