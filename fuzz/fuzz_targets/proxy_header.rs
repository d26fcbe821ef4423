//! Feeds arbitrary bytes to the PROXY protocol header parser (v1 and v2),
//! the entry point of every connection on a `proxy_protocol` listener.
//! Parsing must never panic; a header it accepts lies within the input and
//! the bound, parses the same from exactly its own bytes, and every
//! shorter prefix of it asks for more bytes.
//!
//! Run: `cargo fuzz run proxy_header` (seeds in `corpus/proxy_header/`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_transport::proxy::{parse, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(header)) = parse(data) else {
        return;
    };
    assert!(header.len <= data.len());
    assert!(header.len <= V1_MAX.max(V2_MAX));
    let own = &data[..header.len];
    assert_eq!(parse(own), Ok(Some(header)), "the header alone");
    for cut in [0, header.len / 2, header.len - 1] {
        assert_eq!(parse(&own[..cut]), Ok(None), "a prefix of {cut} bytes");
    }
});
