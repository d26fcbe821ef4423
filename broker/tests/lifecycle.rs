//! The daemon's lifecycle with the Prometheus endpoint on: it serves counters
//! that move with traffic by exactly what the traffic did, and SIGTERM ends
//! the process cleanly (status 0) within `shutdown_grace`, sending MQTT 5
//! clients DISCONNECT 0x8B (server shutting down).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// The sum of the samples of metric `name` (exactly) whose labels include
/// every one of `labels` (written `key="value"`).
fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The samples of metric `name`, one per line, for failure messages.
fn samples(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A config file for one test, removed on drop.
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tern-lifecycle-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write the config file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The spawned broker; killed on drop if a failed assertion left it running.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A CONNECT as user `alice` with the wrong password.
fn wrong_password(version: u8) -> Connect {
    Connect {
        username: Some("alice".into()),
        password: Some(b"guess".to_vec()),
        ..Connect::new(version, &client_id())
    }
}

// The metrics move by exactly what the traffic did: refusals by reason
// (wrong passwords [MQTT-3.1.4-2] [MQTT5-3.2.2-8] with return code 4 / 0x86, an
// unsupported protocol level [MQTT-3.1.2-2] with return code 1, one
// connection over max_connections), authentication failures, malformed
// packets by reason, messages sent by QoS, inflight and queued messages,
// sessions online, the delivery latency histogram and worker busy time.
// [MQTT5-3.14.2-1] SIGTERM: v5 clients get DISCONNECT 0x8B (server shutting
// down) and the process exits 0.
#[test]
fn metrics_move_with_traffic_and_sigterm_exits_cleanly() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    let config =
        TempConfig::new("[auth]\nusers = [{ username = \"alice\", password = \"secret\" }]\n");
    let metrics_port = free_port();
    let started = Instant::now();
    let mut tern = Reap(
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--log-level",
                "warn",
            ])
            .args(["--metrics-bind", &format!("127.0.0.1:{metrics_port}")])
            .args(["--config", config.path()])
            // Four clients below, and one too many.
            .args(["--max-connections", "4"])
            // The second subscriber's window: 2 in flight, the rest queued.
            .args(["--max-inflight", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tern"),
    );
    let child = &mut tern.0;
    let addr = listening_addr(child);

    // Refused at CONNECT: two wrong passwords, one unsupported protocol level.
    let (mut c, ack) = Client::connect(addr, &wrong_password(V311));
    assert_eq!(ack.connack_code(), 4, "v3.1.1: bad user name or password");
    c.expect_closed(WAIT);
    let (mut c, ack) = Client::connect(addr, &wrong_password(V5));
    assert_eq!(ack.connack_code(), 0x86, "v5: bad user name or password");
    c.expect_closed(WAIT);
    let (mut c, ack) = Client::connect(addr, &Connect::new(9, &client_id()));
    assert_eq!(
        ack.connack_code(),
        0x84,
        "unacceptable protocol version above 5: a v5 CONNACK 0x84"
    );
    c.expect_closed(WAIT);
    // Once the workers have seen them close, their connection slots are free.
    let early = wait_for(
        Duration::from_secs(5),
        "metrics to show 3 refused connections, all closed",
        || {
            let m = scrape(metrics_port);
            let rejected = |reason: &str| {
                sum(
                    &m,
                    "tern_connections_rejected_total",
                    &[&format!("reason=\"{reason}\"")],
                )
            };
            (rejected("auth") == 2.0
                && rejected("protocol") == 1.0
                && sum(&m, "tern_connections_current", &[]) == 0.0)
                .then_some(m)
        },
    );
    assert_eq!(sum(&early, "tern_auth_failures_total", &[]), 2.0);
    assert_eq!(
        sum(
            &early,
            "tern_malformed_packets_total",
            &["reason=\"unsupported_protocol\""]
        ),
        1.0
    );
    assert_eq!(sum(&early, "tern_malformed_packets_total", &[]), 1.0);
    assert_eq!(
        sum(
            &early,
            "tern_connections_rejected_total",
            &["reason=\"limit\""]
        ),
        0.0
    );
    let busy_early = sum(&early, "tern_worker_busy_seconds_total", &[]);

    let mut v5 = Client::connect(addr, &Connect::v5(&client_id())).0;
    let mut sub = Client::v311(addr);
    let topic = topic("metrics");
    sub.sub(&topic, 1);
    // Reads but never acknowledges: 2 messages in flight, 3 queued.
    let mut slow = Client::v311(addr);
    slow.sub(&topic, 1);
    let mut publisher = Client::v311(addr);
    for i in 0..5u16 {
        publisher.publish(&Message::new(&topic, b"m").qos(1, i + 1));
        sub.recv_acked();
    }
    slow.recv();
    slow.recv();
    // Over max_connections: the acceptor closes it before any worker sees it.
    Client::tcp(addr).expect_closed_silently(WAIT);

    let metrics = wait_for(
        Duration::from_secs(5),
        "metrics to show the traffic",
        || {
            let m = scrape(metrics_port);
            // Each worker copies its counters on its own tick: wait for
            // every figure asserted below, not only some of them.
            (sum(&m, "tern_messages_received_total", &["qos=\"1\""]) == 5.0
                && sum(&m, "tern_messages_sent_total", &["qos=\"1\""]) == 7.0
                && sum(&m, "tern_delivery_latency_seconds_count", &[]) == 7.0
                && sum(&m, "tern_connections_rejected_total", &["reason=\"limit\""]) == 1.0
                && sum(&m, "tern_inflight_messages", &[]) == 2.0
                && sum(&m, "tern_session_queue_depth_count", &[]) == 4.0
                && sum(&m, "tern_sessions", &["state=\"online\""]) == 4.0)
                .then_some(m)
        },
    );
    // 5 to `sub`, 2 to `slow` (3 wait in its session queue, unsent).
    assert_eq!(
        sum(&metrics, "tern_messages_sent_total", &["qos=\"1\""]),
        7.0
    );
    assert_eq!(sum(&metrics, "tern_messages_sent_total", &[]), 7.0);
    // Every message written at once is timed; queued ones are not (yet).
    assert_eq!(
        sum(&metrics, "tern_delivery_latency_seconds_count", &[]),
        7.0,
        "{}",
        samples(&metrics, "tern_delivery_latency_seconds")
    );
    assert_eq!(
        sum(
            &metrics,
            "tern_delivery_latency_seconds_bucket",
            &["le=\"+Inf\""]
        ),
        7.0
    );
    let latency = sum(&metrics, "tern_delivery_latency_seconds_sum", &[]);
    assert!(
        (0.0..7.0 * 5.0).contains(&latency),
        "7 deliveries within this test's time: {latency} s"
    );
    // Queue depths of the 4 sessions: 0, 0, 0 and 3 (`slow`).
    let depth = |le: &str| {
        sum(
            &metrics,
            "tern_session_queue_depth_bucket",
            &[&format!("le=\"{le}\"")],
        )
    };
    assert_eq!((depth("0"), depth("1"), depth("10")), (3.0, 3.0, 4.0));
    assert_eq!(sum(&metrics, "tern_session_queue_depth_sum", &[]), 3.0);
    assert_eq!(sum(&metrics, "tern_sessions", &["state=\"offline\""]), 0.0);
    // 3 refused at CONNECT + 4 clients; the one over the limit never reached a worker.
    assert_eq!(sum(&metrics, "tern_connections_accepted_total", &[]), 7.0);
    assert_eq!(sum(&metrics, "tern_connections_rejected_total", &[]), 4.0);
    assert_eq!(sum(&metrics, "tern_auth_failures_total", &[]), 2.0);
    // Packets by type. CONNECT: 2 wrong passwords + 4 clients (the bad
    // protocol level never decoded as a CONNECT). CONNACK: those 6 + the
    // return code 1. PUBLISH are the messages above.
    let packets = |name: &str, kind: &str| sum(&metrics, name, &[&format!("type=\"{kind}\"")]);
    let received = |kind| packets("tern_packets_received_total", kind);
    let sent = |kind| packets("tern_packets_sent_total", kind);
    assert_eq!(
        (
            received("CONNECT"),
            received("SUBSCRIBE"),
            received("PUBACK")
        ),
        (6.0, 2.0, 5.0),
        "{}",
        samples(&metrics, "tern_packets_received_total")
    );
    assert_eq!(received("PUBLISH"), 5.0);
    assert_eq!(
        (
            sent("CONNACK"),
            sent("SUBACK"),
            sent("PUBACK"),
            sent("PUBLISH")
        ),
        (7.0, 2.0, 5.0, 7.0),
        "{}",
        samples(&metrics, "tern_packets_sent_total")
    );
    // Two SUBSCRIBEs to one filter: one route snapshot rebuild per worker
    // that got a subscriber (the acceptor spreads connections).
    let rebuilds = sum(&metrics, "tern_route_rebuilds_total", &[]);
    assert!((1.0..=2.0).contains(&rebuilds), "{rebuilds} rebuilds");
    // Each worker thread used some CPU, never more than the wall time it
    // lived, and more since the first scrape.
    let elapsed = started.elapsed().as_secs_f64();
    for worker in ["0", "1"] {
        let label = format!("worker=\"{worker}\"");
        let busy = sum(&metrics, "tern_worker_busy_seconds_total", &[&label]);
        assert!(
            busy > 0.0 && busy <= elapsed,
            "worker {worker}: {busy} s busy in {elapsed} s"
        );
    }
    assert!(
        sum(&metrics, "tern_worker_busy_seconds_total", &[]) > busy_early,
        "{}",
        samples(&metrics, "tern_worker_busy_seconds_total")
    );

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

// `shutdown_grace` is the grace period the binary gives a shutdown: the
// configured value, and after a reload the reloaded one (no spec statement;
// issue 5, graceful shutdown).
#[test]
fn shutdown_grace_is_configured_and_reloads() {
    let config = tern_config::Config {
        listeners: vec!["127.0.0.1:0".parse().expect("addr")],
        metrics_bind: None,
        workers: 1,
        shutdown_grace: 7,
        ..Default::default()
    };
    let mut reloaded = config.clone();
    reloaded.shutdown_grace = 1;
    let source = tern_broker::ReloadSource {
        load: Box::new(move || Ok(reloaded.clone())),
        set_log_level: Box::new(|_| Ok(())),
    };
    let handle = tern_broker::start_reloadable(config, source).expect("start");
    assert_eq!(handle.shutdown_grace(), Duration::from_secs(7));
    let report = handle.reload().expect("reload");
    assert_eq!(report.to_string(), "applied shutdown_grace: 7 -> 1\n");
    assert_eq!(handle.shutdown_grace(), Duration::from_secs(1));
    let started = Instant::now();
    let grace = handle.shutdown_grace();
    handle.shutdown(grace);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle shutdown is quick"
    );
}

/// A config file for one test, named by `tag` so tests running at once do
/// not share it; removed on drop.
fn temp_config(tag: &str, text: &str) -> TempConfig {
    let path =
        std::env::temp_dir().join(format!("tern-lifecycle-{}-{tag}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write the config file");
    TempConfig(path)
}

// Listeners from `[[listener]]` tables (issue 10, no spec statement):
// `tern check-config` accepts a table and refuses one that cannot work (a
// wss listener without its certificate), and the broker serves MQTT on a
// table's listener.
#[test]
fn listener_tables_are_checked_and_served() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    let good = temp_config(
        "listener",
        "bind = []\n[[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"tcp\"\nname = \"internal\"\n",
    );
    let tls = temp_config(
        "listener-tls",
        "[[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"wss\"\n",
    );
    let check = |file: &TempConfig| {
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["check-config", file.path()])
            .output()
            .expect("run tern check-config")
    };
    let out = check(&good);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"),
        "{out:?}"
    );
    let out = check(&tls);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`listener.tls`") && stderr.contains("kind \"wss\" needs tls.certfile"),
        "{stderr}"
    );

    let mut tern = Reap(
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--config", good.path(), "--no-metrics", "--workers", "1"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tern"),
    );
    let addr = listening_addr(&mut tern.0);
    let (_c, ack) = Client::connect(addr, &Connect::new(V5, &client_id()));
    assert_eq!(ack.connack_code(), 0, "accepted on the table's listener");
}
