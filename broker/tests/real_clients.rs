//! Interoperability with real third-party clients: Eclipse Mosquitto's
//! `mosquitto_pub` and `mosquitto_sub` (Debian package `mosquitto-clients`)
//! in MQTT 3.1, 3.1.1 and 5.0. The tests fail, naming the package, when the
//! tools are not installed.
//!
//! Each test is an interoperability check with a stock client that uses no
//! extension, over TCP: [MQTT-7.0.0-2] [MQTT-7.1.1-1] in every test below.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `-V` values of the Mosquitto tools.
const VERSIONS: [&str; 3] = ["mqttv31", "mqttv311", "5"];

/// Output format of `mosquitto_sub`: QoS, retain flag, topic, payload.
const FORMAT: &str = "%q %r %t %p";

/// Fails the test with the package to install when `tool` is missing.
fn require(tool: &str, package: &str) {
    match Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "`{tool}` cannot be run ({e}): install the Debian package `{package}` \
             (apt-get install {package})"
        ),
    }
}

fn require_tools() {
    require("mosquitto_pub", "mosquitto-clients");
    require("mosquitto_sub", "mosquitto-clients");
    require("stdbuf", "coreutils");
}

fn host_args(broker: &Broker) -> Vec<String> {
    vec![
        "-h".into(),
        broker.addr.ip().to_string(),
        "-p".into(),
        broker.addr.port().to_string(),
    ]
}

/// One received message as `mosquitto_sub -F '%q %r %t %p'` prints it.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    qos: u8,
    retain: bool,
    topic: String,
    payload: String,
}

/// A running `mosquitto_sub -d` (line-buffered through `stdbuf`), killed
/// on drop.
struct Sub {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sub {
    /// Starts `mosquitto_sub` with `args` and waits until its subscription
    /// is acknowledged.
    fn start(broker: &Broker, args: &[&str]) -> Self {
        require_tools();
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-F", FORMAT])
            .args(host_args(broker))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mosquitto_sub");
        let (tx, lines) = mpsc::channel();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (pipe, tx) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                tx.clone(),
            ),
            (Box::new(stderr), tx),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line.clone());
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let sub = Self { child, lines, log };
        sub.wait_line("`Subscribed (mid: …)`", |l| {
            l.starts_with("Subscribed (mid")
        });
        sub
    }

    /// Waits for a line satisfying `want`; messages seen meanwhile fail the
    /// test (call it only where no message is expected).
    fn wait_line(&self, what: &str, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "mosquitto_sub: no {what} within {WAIT:?}; output: {:#?}",
                    self.log()
                ),
            }
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The next message line within `timeout`, skipping debug output.
    fn try_message(&self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if line.starts_with("Client ") || line.starts_with("Subscribed") {
                continue;
            }
            let mut parts = line.splitn(4, ' ');
            let (Some(qos), Some(retain), Some(topic)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("unexpected mosquitto_sub output {line:?}");
            };
            return Some(Received {
                qos: qos
                    .parse()
                    .unwrap_or_else(|_| panic!("bad QoS in {line:?}")),
                retain: retain == "1",
                topic: topic.to_owned(),
                payload: parts.next().unwrap_or("").to_owned(),
            });
        }
    }

    fn message(&self) -> Received {
        self.try_message(WAIT).unwrap_or_else(|| {
            panic!(
                "mosquitto_sub received nothing in {WAIT:?}; output: {:#?}",
                self.log()
            )
        })
    }

    fn expect_no_message(&self) {
        if let Some(m) = self.try_message(QUIET) {
            panic!("expected no message, mosquitto_sub got {m:?}");
        }
    }

    /// Kills the process with SIGKILL (no DISCONNECT is sent).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a Mosquitto tool to completion (at most [`WAIT`]) and returns its output.
fn run(tool: &str, broker: &Broker, args: &[&str]) -> Output {
    require_tools();
    let child = Command::new(tool)
        .args(host_args(broker))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.expect("wait for the tool"),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("{tool} {args:?} did not finish within {WAIT:?}");
        }
    }
}

/// Runs `mosquitto_pub` with `args` and asserts it succeeded.
fn publish(broker: &Broker, args: &[&str]) {
    let out = run("mosquitto_pub", broker, args);
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// QoS 0, 1 and 2 from mosquitto_pub to mosquitto_sub, in each version.
// [MQTT-7.0.0-2] [MQTT-7.1.1-1] [MQTT-3.3.4-1] [MQTT-3.8.4-6]
#[test]
fn qos_0_1_2_round_trip() {
    let broker = Broker::start();
    for version in VERSIONS {
        let t = topic("real-qos");
        let sub = Sub::start(&broker, &["-V", version, "-q", "2", "-t", &t]);
        for qos in ["0", "1", "2"] {
            let payload = format!("{version}-q{qos}");
            publish(
                &broker,
                &["-V", version, "-q", qos, "-t", &t, "-m", &payload],
            );
            let m = sub.message();
            let want = Received {
                qos: qos.parse().unwrap(),
                retain: false,
                topic: t.clone(),
                payload,
            };
            assert_eq!(m, want, "version {version}");
        }
    }
}

// `-r` stores a retained message; `-n -r` deletes it.
// [MQTT-7.0.0-2] [MQTT-3.3.1-5] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
#[test]
fn retained_set_and_delete() {
    let broker = Broker::start();
    for version in VERSIONS {
        let t = topic("real-retain");
        publish(
            &broker,
            &["-V", version, "-q", "1", "-r", "-t", &t, "-m", "kept"],
        );
        let sub = Sub::start(&broker, &["-V", version, "-q", "1", "-t", &t]);
        let m = sub.message();
        assert_eq!(
            (m.qos, m.retain, m.payload.as_str()),
            (1, true, "kept"),
            "{version}"
        );
        publish(&broker, &["-V", version, "-r", "-n", "-t", &t]);
        let live = sub.message();
        assert_eq!(
            (live.retain, live.payload.as_str()),
            (false, ""),
            "{version}"
        );
        let late = Sub::start(&broker, &["-V", version, "-q", "1", "-t", &t]);
        late.expect_no_message();
    }
}

// The will of a client killed with SIGKILL is published.
// [MQTT-7.0.0-2] [MQTT-3.1.2-8]
#[test]
fn will_published_when_the_client_is_killed() {
    let broker = Broker::start();
    for version in VERSIONS {
        let will_topic = topic("real-will");
        let watcher = Sub::start(&broker, &["-V", version, "-q", "1", "-t", &will_topic]);
        let mut victim = Sub::start(
            &broker,
            &[
                "-V",
                version,
                "-t",
                &topic("real-will-idle"),
                "--will-topic",
                &will_topic,
                "--will-payload",
                "gone",
                "--will-qos",
                "1",
            ],
        );
        victim.kill();
        let m = watcher.message();
        assert_eq!(
            (m.qos, m.retain, m.payload.as_str()),
            (1, false, "gone"),
            "{version}"
        );
    }
}

// `-c -i ID -q 1`: messages published while the client is away arrive when
// it reconnects. [MQTT-7.0.0-2] [MQTT-3.1.2-4] [MQTT-3.1.2-5]
#[test]
fn persistent_session_receives_messages_queued_while_offline() {
    let broker = Broker::start();
    for version in VERSIONS {
        let id = client_id();
        let t = topic("real-persist");
        let out = run(
            "mosquitto_sub",
            &broker,
            &["-V", version, "-c", "-i", &id, "-q", "1", "-t", &t, "-E"],
        );
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        publish(
            &broker,
            &["-V", version, "-q", "1", "-t", &t, "-m", "while-away"],
        );
        let out = run(
            "mosquitto_sub",
            &broker,
            &[
                "-V", version, "-c", "-i", &id, "-q", "1", "-t", &t, "-C", "1", "-W", "4", "-F",
                FORMAT,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            format!("1 0 {t} while-away"),
            "{version}: {out:?}"
        );
        // Drop the session (clean session) so a shared broker keeps nothing.
        let out = run(
            "mosquitto_sub",
            &broker,
            &["-V", version, "-i", &id, "-t", &t, "-E"],
        );
        assert!(out.status.success());
    }
}

// A second client with the same id takes over: the first connection is
// closed by the broker (mosquitto_sub then reconnects or exits).
// [MQTT-7.0.0-2] [MQTT-3.1.4-2]
#[test]
fn same_client_id_takes_over() {
    let broker = Broker::start();
    for version in VERSIONS {
        let id = client_id();
        let t = topic("real-takeover");
        let mut first = Sub::start(&broker, &["-V", version, "-i", &id, "-t", &t]);
        let _second = Sub::start(&broker, &["-V", version, "-i", &id, "-t", &t]);
        let deadline = Instant::now() + WAIT;
        loop {
            let connects = first
                .log()
                .iter()
                .filter(|l| l.contains("sending CONNECT"))
                .count();
            let exited = matches!(first.child.try_wait(), Ok(Some(_)));
            if connects >= 2 || exited {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{version}: first client was not disconnected: {:#?}",
                first.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A spawned broker with the user alice/wonderland and anonymous clients
/// refused; `None` (skipped) against `TERN_TEST_BROKER`.
fn auth_broker() -> Option<Broker> {
    let path = std::env::temp_dir().join(format!("tern-real-auth-{}.toml", std::process::id()));
    let text = "[auth]\nallow_anonymous = false\n\
                users = [{ username = \"alice\", password = \"wonderland\" }]\n";
    std::fs::write(&path, text).unwrap();
    let broker = Broker::spawn_only(&["--config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    broker
}

// `mosquitto_pub` / `mosquitto_sub -u alice -P wonderland` against a broker
// with a user table, in each version; a wrong password and a client without
// a user name are refused, and nothing they send arrives.
// [MQTT-7.0.0-2] [MQTT-7.1.1-1] [MQTT5-3.1.4-2] [MQTT5-3.1.3-12] [MQTT-3.2.2-5]
#[test]
fn user_name_and_password_with_mosquitto_clients() {
    let Some(broker) = auth_broker() else { return };
    let login = ["-u", "alice", "-P", "wonderland"];
    for version in VERSIONS {
        let t = topic("real-auth");
        let mut args = vec!["-V", version, "-q", "1", "-t", &t];
        args.extend(login);
        let sub = Sub::start(&broker, &args);
        let payload = format!("{version}-authenticated");
        let mut args = vec!["-V", version, "-q", "1", "-t", &t, "-m", &payload];
        args.extend(login);
        publish(&broker, &args);
        assert_eq!(sub.message().payload, payload, "version {version}");
        let refusals: [(&[&str], &str); 2] = [
            (
                &["-u", "alice", "-P", "wonderlanD"],
                "bad user name or password",
            ),
            (&[], "not author"),
        ];
        for (refused, why) in refusals {
            let mut args = vec!["-V", version, "-q", "1", "-t", &t, "-m", "refused"];
            args.extend(refused);
            let out = run("mosquitto_pub", &broker, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "mosquitto_pub {args:?} was accepted: {stderr}"
            );
            assert!(
                stderr.to_lowercase().contains(why),
                "mosquitto_pub {args:?}: expected `{why}` in {stderr}"
            );
        }
        sub.expect_no_message();
    }
}

/// `mosquitto_sub -V 5` output format with the v5 properties: QoS, retain
/// flag, topic, then `[user properties] [message expiry] [content type]
/// [payload format]` and the payload, all in `Received::payload`.
const FORMAT_V5: &str = "%q %r %t [%P] [%E] [%C] [%F] %p";

// `mosquitto_pub -D publish user-property …` (a repeated name included),
// content-type and payload-format-indicator reach `mosquitto_sub -V 5`
// unaltered, the user properties in order.
// [MQTT-7.0.0-2] [MQTT5-3.3.2-17] [MQTT5-3.3.2-18] [MQTT5-3.3.2-20] [MQTT5-3.3.2-4]
#[test]
fn v5_user_properties_are_forwarded_in_order() {
    let broker = Broker::start();
    let t = topic("real-v5-user");
    let sub = Sub::start(&broker, &["-V", "5", "-q", "1", "-t", &t, "-F", FORMAT_V5]);
    publish(
        &broker,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &t,
            "-m",
            "hello",
            "-D",
            "publish",
            "user-property",
            "zone",
            "eu",
            "-D",
            "publish",
            "user-property",
            "id",
            "42",
            "-D",
            "publish",
            "user-property",
            "zone",
            "us",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    );
    let m = sub.message();
    assert_eq!(
        (m.qos, m.topic.as_str(), m.payload.as_str()),
        (
            1,
            t.as_str(),
            "[zone:eu id:42 zone:us] [] [text/plain] [1] hello"
        )
    );
}

// Message Expiry Interval: forwarded to a live subscriber (minus the time
// waited), and a queued message of an offline `-c -x 60` session whose
// interval passed is not delivered, while one without an interval is.
// [MQTT-7.0.0-2] [MQTT5-3.3.2-5] [MQTT5-3.3.2-6] [MQTT5-3.1.2-23]
#[test]
fn v5_message_expiry() {
    let broker = Broker::start();
    let t = topic("real-v5-expiry");
    let id = client_id();
    let live = Sub::start(&broker, &["-V", "5", "-q", "1", "-t", &t, "-F", FORMAT_V5]);
    let away = ["-V", "5", "-c", "-x", "60", "-i", &id, "-q", "1", "-t", &t];
    let out = run("mosquitto_sub", &broker, &[&away[..], &["-E"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expiring = ["-D", "publish", "message-expiry-interval"];
    publish(
        &broker,
        &[
            &["-V", "5", "-q", "1", "-t", &t, "-m", "short"],
            &expiring[..],
            &["1"],
        ]
        .concat(),
    );
    publish(&broker, &["-V", "5", "-q", "1", "-t", &t, "-m", "forever"]);
    publish(
        &broker,
        &[
            &["-V", "5", "-q", "1", "-t", &t, "-m", "long"],
            &expiring[..],
            &["300"],
        ]
        .concat(),
    );
    let short = live.message();
    assert!(short.payload.ends_with("short"), "{short:?}");
    assert!(
        short.payload.starts_with("[] [1] ") || short.payload.starts_with("[] [0] "),
        "{short:?}"
    );
    assert_eq!(live.message().payload, "[] [] [] [] forever");
    let long = live.message();
    assert!(
        long.payload.starts_with("[] [300] ") || long.payload.starts_with("[] [299] "),
        "{long:?}"
    );
    std::thread::sleep(Duration::from_millis(2200));
    let out = run(
        "mosquitto_sub",
        &broker,
        &[&away[..], &["-C", "3", "-W", "2", "-F", FORMAT_V5]].concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "the expired message must not arrive: {out:?}"
    );
    assert_eq!(lines[0], format!("1 0 {t} [] [] [] [] forever"));
    let left: u32 = lines[1]
        .split(['[', ']'])
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no expiry in {:?}", lines[1]));
    assert!((290..=298).contains(&left), "{:?}", lines[1]);
    // End the session.
    let out = run(
        "mosquitto_sub",
        &broker,
        &["-V", "5", "-i", &id, "-t", &t, "-E"],
    );
    assert!(out.status.success());
}

// Retained messages with `mosquitto_sub -V 5`: the retained message arrives
// on subscribe with RETAIN 1 (Retain Handling 0, the only one the tool
// sends); a live retained PUBLISH keeps RETAIN 1 only for
// `--retain-as-published`.
// [MQTT-7.0.0-2] [MQTT5-3.3.1-9] [MQTT5-3.3.1-12] [MQTT5-3.3.1-13]
#[test]
fn v5_retain_as_published() {
    let broker = Broker::start();
    let t = topic("real-v5-rap");
    publish(
        &broker,
        &["-V", "5", "-q", "1", "-r", "-t", &t, "-m", "old"],
    );
    let plain = Sub::start(&broker, &["-V", "5", "-q", "1", "-t", &t]);
    let rap = Sub::start(
        &broker,
        &["-V", "5", "-q", "1", "-t", &t, "--retain-as-published"],
    );
    for sub in [&plain, &rap] {
        let m = sub.message();
        assert_eq!((m.retain, m.payload.as_str()), (true, "old"));
    }
    publish(
        &broker,
        &["-V", "5", "-q", "1", "-r", "-t", &t, "-m", "new"],
    );
    let m = plain.message();
    assert_eq!((m.retain, m.payload.as_str()), (false, "new"));
    let m = rap.message();
    assert_eq!((m.retain, m.payload.as_str()), (true, "new"));
    publish(&broker, &["-V", "5", "-r", "-n", "-t", &t]);
}

// `mosquitto_pub -D publish topic-alias 1 --repeat 3`: the client sends a
// Topic Alias (within the Topic Alias Maximum of CONNACK); every message
// reaches the subscriber under the full topic name.
// [MQTT-7.0.0-2] [MQTT5-3.3.2-12] [MQTT5-3.2.2-17]
#[test]
fn v5_topic_alias_from_mosquitto_pub() {
    let broker = Broker::start();
    let t = topic("real-v5-alias");
    let sub = Sub::start(&broker, &["-V", "5", "-q", "1", "-t", &t]);
    publish(
        &broker,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &t,
            "-m",
            "aliased",
            "-D",
            "publish",
            "topic-alias",
            "1",
            "--repeat",
            "3",
            "--repeat-delay",
            "0",
        ],
    );
    for _ in 0..3 {
        let m = sub.message();
        assert_eq!(
            (m.topic.as_str(), m.payload.as_str()),
            (t.as_str(), "aliased")
        );
    }
    sub.expect_no_message();
}

/// `GET /metrics` from the broker's metrics listener on `port`.
fn scrape_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(WAIT));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The sum of the samples of `name` whose labels include `label` ("" = all).
fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// The Prometheus counters move by what a real client did: one
// `mosquitto_pub -V 5 -q 1 --repeat 3` is 1 connection, 1 CONNECT, 3 QoS 1
// messages received (no subscriber: dropped as no_subscribers) and 3
// PUBACKs sent.
#[test]
fn metrics_count_a_real_clients_traffic() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let bind = format!("127.0.0.1:{port}");
    let Some(broker) = Broker::spawn_only(&["--metrics-bind", &bind]) else {
        return;
    };
    let t = topic("real-metrics");
    publish(
        &broker,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            &t,
            "-m",
            "x",
            "--repeat",
            "3",
            "--repeat-delay",
            "0",
        ],
    );
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = scrape_metrics(port);
        let received = metric(&text, "tern_messages_received_total", "qos=\"1\"");
        if received == 3.0 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let seen = |name: &str, label: &str| metric(&text, name, label);
    assert_eq!(
        seen("tern_messages_received_total", "qos=\"1\""),
        3.0,
        "{text}"
    );
    assert_eq!(seen("tern_connections_accepted_total", ""), 1.0);
    assert_eq!(seen("tern_packets_received_total", "type=\"CONNECT\""), 1.0);
    assert_eq!(seen("tern_packets_sent_total", "type=\"PUBACK\""), 3.0);
    assert_eq!(
        seen("tern_messages_dropped_total", "reason=\"no_subscribers\""),
        3.0
    );
}
