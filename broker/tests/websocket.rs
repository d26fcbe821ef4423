//! MQTT over WebSocket against the real `tern` binary: a `ws` listener next
//! to a tcp one, driven by a hand-written blocking WebSocket client (masked
//! frames built here, not by the broker's code). Upgrade refusals (wrong
//! path, no MQTT subprotocol) and their metrics; packets split over frames
//! and sharing frames; ping/pong; text frames; the close handshake; a
//! persistent session resumed over WebSocket on another worker (hand-over).
//! Real clients (MQTT.js, paho) are in tests/clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tern with a tcp and a ws listener (and metrics), from a config file.
struct Tern {
    child: Child,
    tcp: SocketAddr,
    ws: SocketAddr,
    http: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tern {
    fn start(ws_table: &str) -> Option<Self> {
        if Broker::is_external() {
            println!("SKIPPED: needs a spawned tern with a ws listener");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("tern-ws-{}", client_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tern.toml");
        std::fs::write(
            &file,
            format!(
                "metrics_bind = \"127.0.0.1:0\"\nsys_interval = 0\n\
                 [[listener]]\nbind = \"127.0.0.1:0\"\n\
                 [[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"ws\"\n{ws_table}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--config", file.to_str().unwrap(), "--workers", "2"])
            .args(["--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addr = |prefix: &str| -> SocketAddr {
            let line = lines.next().unwrap().unwrap();
            line.strip_prefix(prefix)
                .and_then(|a| a.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        };
        let tcp = addr("tern: listening on ");
        let ws = addr("tern: listening on ");
        let http = addr("tern: http on ");
        Some(Self {
            child,
            tcp,
            ws,
            http,
            log,
            _dir: TempDir(dir),
        })
    }

    /// The value of the Prometheus series named `series` (summed over
    /// workers), once it reaches `want`; panics after the wait.
    fn wait_metric(&self, series: &str, want: u64) {
        wait_for(Duration::from_secs(10), series, || {
            let mut s = TcpStream::connect(self.http).ok()?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).ok()?;
            let sum: u64 = body
                .lines()
                .filter(|l| l.starts_with("tern_ws_upgrade_failures_total") && l.contains(series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            (sum >= want).then_some(())
        });
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter().rev().take(100).rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn upgrade_request(path: &str, protocols: Option<&str>) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = protocols {
        r.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    r + "\r\n"
}

/// A blocking WebSocket client speaking MQTT in binary frames.
struct Ws {
    stream: TcpStream,
    /// Bytes read, not yet parsed as frames.
    raw: Vec<u8>,
    /// Payload bytes of binary frames, not yet parsed as MQTT packets.
    mqtt: Vec<u8>,
}

/// A server frame: (opcode, payload).
type Frame = (u8, Vec<u8>);

impl Ws {
    /// Sends the upgrade request; returns the client, or the HTTP response
    /// of a refusal.
    fn open(addr: SocketAddr, path: &str, protocols: Option<&str>) -> Result<Self, String> {
        let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .write_all(upgrade_request(path, protocols).as_bytes())
            .unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).unwrap();
            if n == 0 {
                return Err(String::from_utf8_lossy(&raw).into_owned());
            }
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101 ") {
            return Err(head);
        }
        // RFC 6455 §1.3's example key and answer.
        assert!(
            head.contains("Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"),
            "{head}"
        );
        let protocol = protocols.unwrap_or_default().split(',').next().unwrap();
        assert!(
            head.contains(&format!("Sec-WebSocket-Protocol: {}\r\n", protocol.trim())),
            "{head}"
        );
        raw.drain(..end);
        Ok(Self {
            stream,
            raw,
            mqtt: Vec::new(),
        })
    }

    fn open_mqtt(addr: SocketAddr) -> Self {
        Self::open(addr, "/mqtt", Some("mqtt")).unwrap()
    }

    /// Sends one masked frame.
    fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = [0x5a, 0x0f, 0xc3, 0x81];
        let mut f = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).unwrap();
    }

    fn binary(&mut self, payload: &[u8]) {
        self.frame(true, 0x2, payload);
    }

    /// The next server frame; `None` at end of stream.
    fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if self.raw.len() >= 2 {
                assert_eq!(self.raw[1] & 0x80, 0, "server frames are unmasked");
                let (len, at) = match self.raw[1] & 0x7f {
                    126 if self.raw.len() >= 4 => {
                        (u16::from_be_bytes([self.raw[2], self.raw[3]]) as usize, 4)
                    }
                    127 if self.raw.len() >= 10 => (
                        u64::from_be_bytes(self.raw[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.raw.len() >= at + len {
                    assert_ne!(self.raw[0] & 0x80, 0, "the server sends whole frames");
                    let opcode = self.raw[0] & 0x0f;
                    let payload = self.raw[at..at + len].to_vec();
                    self.raw.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.raw.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next MQTT packet (first byte, body) from binary frames.
    fn packet(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some((first, body, used)) = parse_packet(&self.mqtt) {
                self.mqtt.drain(..used);
                return (first, body);
            }
            match self.read_frame() {
                Some((0x2, payload)) => self.mqtt.extend(payload),
                other => panic!("expected a binary frame, got {other:?}"),
            }
        }
    }

    /// Reads until the server's close frame; returns its status code.
    fn close_code(&mut self) -> u16 {
        loop {
            match self.read_frame() {
                Some((0x8, p)) => return u16::from_be_bytes([p[0], p[1]]),
                Some(_) => continue,
                None => panic!("closed without a close frame"),
            }
        }
    }
}

/// (first byte, body, bytes used) of a whole MQTT packet at the front.
fn parse_packet(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let body = buf.get(at..at + len)?.to_vec();
    Some((buf[0], body, at + len))
}

fn subscribe(pid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend(string(filter));
    body.push(qos);
    packet(0x82, &body)
}

/// An upgrade to another path gets 404, one offering no MQTT subprotocol
/// 400; both are counted by reason. [MQTT-6.0.0-3] [MQTT5-6.0.0-3]
#[test]
fn wrong_path_and_missing_subprotocol_are_refused() {
    let Some(tern) = Tern::start("") else { return };
    let err = Ws::open(tern.ws, "/other", Some("mqtt")).err().unwrap();
    assert!(err.starts_with("HTTP/1.1 404 "), "{err}");
    let err = Ws::open(tern.ws, "/mqtt", None).err().unwrap();
    assert!(err.starts_with("HTTP/1.1 400 "), "{err}");
    let err = Ws::open(tern.ws, "/mqtt", Some("wamp.2.json"))
        .err()
        .unwrap();
    assert!(err.starts_with("HTTP/1.1 400 "), "{err}");
    // Plain MQTT on the ws port is not HTTP.
    let mut answer = String::new();
    let _ = c_read_to_string(tern.ws, &Connect::v311(&client_id()).bytes(), &mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    tern.wait_metric("reason=\"path\"", 1);
    tern.wait_metric("reason=\"subprotocol\"", 2);
    tern.wait_metric("reason=\"malformed\"", 1);
    // The tcp listener is unaffected and speaks no HTTP.
    Healthy::new(tern.tcp).round_trip();
}

fn c_read_to_string(addr: SocketAddr, bytes: &[u8], out: &mut String) -> std::io::Result<usize> {
    let mut s = TcpStream::connect_timeout(&addr, WAIT)?;
    s.set_read_timeout(Some(WAIT))?;
    s.write_all(bytes)?;
    s.read_to_string(out)
}

/// A configured path is the only one upgraded. The subprotocol for MQTT
/// 3.1 is `mqttv3.1`, answered as offered.
#[test]
fn configured_path_and_mqttv31_subprotocol() {
    let Some(tern) = Tern::start("ws = { path = \"/broker\" }") else {
        return;
    };
    let err = Ws::open(tern.ws, "/mqtt", Some("mqtt")).err().unwrap();
    assert!(err.starts_with("HTTP/1.1 404 "), "{err}");
    let mut ws = Ws::open(tern.ws, "/broker?x=1", Some("mqttv3.1")).unwrap();
    ws.binary(&Connect::v31(&client_id()).bytes());
    assert_eq!(ws.packet(), (0x20, vec![0, 0]));
}

/// A CONNECT split over three frames (one fragmented message and a
/// separate frame), SUBSCRIBE and PINGREQ sharing one frame, a ping
/// answered with a pong between packets, a message from a tcp client
/// delivered in a binary frame, and a clean close handshake. The server
/// answers the subprotocol `mqtt` (checked by `Ws::open`).
/// [MQTT-6.0.0-2] [MQTT5-6.0.0-2] [MQTT-6.0.0-4] [MQTT5-6.0.0-4]
#[test]
fn packets_span_frames_and_frames_carry_packets() {
    let Some(tern) = Tern::start("") else { return };
    let t = topic("ws");
    let mut ws = Ws::open_mqtt(tern.ws);
    let connect = Connect::v311(&client_id()).bytes();
    ws.frame(false, 0x2, &connect[..3]);
    ws.frame(true, 0x0, &connect[3..7]);
    ws.binary(&connect[7..]);
    assert_eq!(ws.packet(), (0x20, vec![0, 0]));
    let mut two = subscribe(1, &t, 1);
    two.extend_from_slice(&PINGREQ_BYTES);
    ws.binary(&two);
    assert_eq!(ws.packet(), (0x90, vec![0, 1, 1]));
    assert_eq!(ws.packet(), (0xd0, vec![]));
    ws.frame(true, 0x9, b"hello?");
    assert_eq!(ws.read_frame(), Some((0xA, b"hello?".to_vec())));

    // 100 kB from tcp: the server's frame has a 64-bit length.
    let payload = vec![b'z'; 100_000];
    let mut publisher = Client::v311(tern.tcp);
    publisher.publish_qos(&t, &payload, 1);
    let (first, body) = ws.packet();
    assert_eq!(first & 0xf0, 0x30);
    assert!(body.ends_with(&payload));
    let pid = [body[2 + t.len()], body[3 + t.len()]];
    ws.binary(&packet(0x40, &pid));
    // And back: a PUBLISH from ws in two frames reaches the tcp client.
    publisher.sub(&format!("{t}/back"), 0);
    let mut body = string(&format!("{t}/back"));
    body.extend_from_slice(b"from ws");
    let publish = packet(0x30, &body);
    ws.binary(&publish[..5]);
    ws.binary(&publish[5..]);
    assert_eq!(publisher.recv().payload, b"from ws");

    // Close: the server answers with the same status and closes.
    ws.frame(true, 0x8, &1000u16.to_be_bytes());
    assert_eq!(ws.close_code(), 1000);
    assert!(ws.read_frame().is_none());
    publisher.disconnect();
}

/// A text frame closes the connection with 1003; a frame over
/// `max_frame_size` with 1009. [MQTT-6.0.0-1] [MQTT5-6.0.0-1]
#[test]
fn text_and_oversize_frames_close_the_connection() {
    let Some(tern) = Tern::start("ws = { max_frame_size = 2048 }") else {
        return;
    };
    let mut ws = Ws::open_mqtt(tern.ws);
    ws.binary(&Connect::v311(&client_id()).bytes());
    assert_eq!(ws.packet(), (0x20, vec![0, 0]));
    ws.frame(true, 0x1, b"\xc0\x00");
    assert_eq!(ws.close_code(), 1003);

    let mut ws = Ws::open_mqtt(tern.ws);
    ws.binary(&Connect::v311(&client_id()).bytes());
    assert_eq!(ws.packet(), (0x20, vec![0, 0]));
    ws.binary(&[0u8; 2049]);
    assert_eq!(ws.close_code(), 1009);
}

/// A persistent session over WebSocket, resumed while another connection
/// keeps one worker busy, so the acceptor gives the reconnect to the
/// worker that is not the session's home: the ws connection is handed over
/// with its framing state (the SUBSCRIBE sent in the CONNECT's frame is
/// answered after the move), and the message queued while it was offline
/// arrives.
#[test]
fn persistent_session_resumes_over_websocket_on_another_worker() {
    let Some(tern) = Tern::start("") else { return };
    let id = client_id();
    let t = topic("ws-handover");
    let mut ws = Ws::open_mqtt(tern.ws);
    ws.binary(&Connect::v311(&id).clean(false).bytes());
    assert_eq!(ws.packet().0, 0x20);
    ws.binary(&subscribe(1, &t, 1));
    assert_eq!(ws.packet(), (0x90, vec![0, 1, 1]));
    ws.binary(&DISCONNECT_BYTES);
    drop(ws);

    let mut publisher = Client::v311(tern.tcp);
    // Which worker takes a connection depends on the live connections of
    // each at that moment (they drop asynchronously): go on until one
    // reconnect was handed over, or 16 rounds.
    for round in 0..16u16 {
        publisher.publish_qos(&t, format!("offline {round}"), 1);
        // One more connection somewhere, so the reconnect may land on the
        // other worker.
        let occupy = Client::v311(tern.tcp);
        let mut ws = Ws::open_mqtt(tern.ws);
        let mut first = Connect::v311(&id).clean(false).bytes();
        first.extend(subscribe(100 + round, &format!("{t}/more"), 0));
        ws.binary(&first);
        assert_eq!(ws.packet(), (0x20, vec![1, 0]), "session present");
        let mut got = Vec::new();
        let mut suback = false;
        while got.is_empty() || !suback {
            let (first, body) = ws.packet();
            match first & 0xf0 {
                0x30 => {
                    let pid = [body[2 + t.len()], body[3 + t.len()]];
                    got.push(body[4 + t.len()..].to_vec());
                    ws.binary(&packet(0x40, &pid));
                }
                0x90 => {
                    assert_eq!(
                        body,
                        [(100 + round).to_be_bytes().as_slice(), &[0]].concat()
                    );
                    suback = true;
                }
                other => panic!("unexpected packet {other:#x}"),
            }
        }
        assert_eq!(got, [format!("offline {round}").into_bytes()]);
        ws.binary(&DISCONNECT_BYTES);
        drop(ws);
        drop(occupy);
        if tern.logged("handing connection to the session's worker") {
            break;
        }
    }
    assert!(
        tern.logged("handing connection to the session's worker"),
        "no reconnect was handed to the session's worker"
    );
    publisher.disconnect();
}
