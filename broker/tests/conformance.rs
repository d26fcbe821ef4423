//! Black-box conformance tests of the `tern` binary over TCP, grouped by
//! area of the MQTT 3.1.1 specification (with a few MQTT 3.1 checks), and
//! of MQTT 5.0 in the `v5_*` files. Every test names the normative
//! statements it checks as `[MQTT-x.x.x-y]` (3.1.1) or `[MQTT5-x.x.x-y]`
//! (5.0); `tests/spec_coverage.py` collects those tags into
//! `SPEC-COVERAGE.md`.
//!
//! Each test spawns its own broker (`Broker::start`), or uses the broker
//! named by `TERN_TEST_BROKER=host:port`; topics and client ids are unique
//! per test, so the tests also run in parallel against one shared broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

mod conformance {
    mod auth;
    mod connect;
    mod expiry;
    mod idle;
    mod isolation;
    mod malformed;
    mod persistent;
    mod publish;
    mod retain;
    mod retain_replay;
    mod shared;
    mod subscribe;
    mod v5_connect;
    mod v5_options;
    mod v5_publish;
    mod v5_subscribe;
    mod v5_wire;
}
