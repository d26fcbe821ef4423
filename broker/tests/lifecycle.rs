//! The daemon's lifecycle with the Prometheus endpoint on: it serves counters
//! that move with traffic, and SIGTERM ends the process cleanly (status 0),
//! sending MQTT 5 clients DISCONNECT 0x8B (server shutting down).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

fn sum(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn metrics_move_with_traffic_and_sigterm_exits_cleanly() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    let metrics_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--log-level",
            "warn",
        ])
        .args(["--metrics-bind", &format!("127.0.0.1:{metrics_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tern");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("tern: listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));

    let mut v5 = Client::connect(addr, &Connect::v5(&client_id())).0;
    let mut sub = Client::v311(addr);
    let topic = topic("metrics");
    sub.sub(&topic, 1);
    let mut publisher = Client::v311(addr);
    for i in 0..5u16 {
        publisher.publish(&Message::new(&topic, b"m").qos(1, i + 1));
        sub.recv_acked();
    }
    let metrics = wait_for(
        Duration::from_secs(5),
        "metrics to show 5 QoS 1 messages",
        || {
            let m = scrape(metrics_port);
            (sum(&m, "tern_messages_received_total", "qos=\"1\"") == 5).then_some(m)
        },
    );
    assert_eq!(sum(&metrics, "tern_messages_sent_total", ""), 5);
    assert_eq!(sum(&metrics, "tern_connections_accepted_total", ""), 3);
    // One SUBSCRIBE, one new filter: exactly one route snapshot rebuild.
    assert_eq!(sum(&metrics, "tern_route_rebuilds_total", ""), 1);

    signal(child.id(), libc::SIGTERM);
    // [MQTT5-3.14.2-1] v5: the server says why it closes: 0x8B server shutting down.
    let packets = v5.expect_closed(WAIT);
    let disconnect = packets
        .iter()
        .find(|p| p.kind() == 14)
        .expect("a v5 client gets DISCONNECT on shutdown");
    assert_eq!(disconnect.body.first().copied(), Some(0x8B));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tern did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "tern exited with {status} after SIGTERM");
}
