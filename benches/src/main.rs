//! `tern-bench`: an MQTT load generator for any broker on this host.
//!
//! One thread runs a mio (epoll) event loop over nonblocking sockets.
//! Publishers copy a pre-encoded PUBLISH per message into a reused buffer,
//! patching packet id, timestamp and sequence in place, and write each
//! connection's batch once per loop turn. Subscribers parse frames in place
//! from a reused read buffer. Latency is CLOCK_MONOTONIC at delivery minus the
//! timestamp in the payload, recorded in a fixed log-linear histogram.
//!
//! Call order: [`cli::Args`] → [`cli::Config`] → [`engine::Engine::run`] →
//! [`report::Summary`] printed as a table + `key=value` line, or JSON.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod conn;
mod engine;
mod frame;
mod hist;
mod report;
mod seq;
mod state;
mod sys;
mod traffic;
mod ws;

use clap::Parser;

fn main() {
    let args = cli::Args::parse();
    let cfg = match cli::Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tern-bench: {e}");
            std::process::exit(1);
        }
    };
    let json = cfg.json;
    let summary = match engine::Engine::new(cfg).and_then(engine::Engine::run) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tern-bench: {e}");
            std::process::exit(1);
        }
    };
    if summary.self_bound() {
        eprintln!(
            "tern-bench: WARNING: used {:.0}% of one core; the generator may be the bottleneck",
            summary.bench_cpu_pct
        );
    }
    if json {
        println!("{}", summary.json_line());
    } else {
        print!("{}", summary.table());
        println!("{}", summary.kv_line());
    }
    std::process::exit(summary.exit_code());
}
