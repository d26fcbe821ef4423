//! A blocking raw MQTT client: sends bytes, reads whole packets with bounded
//! waits, and knows just enough of the QoS flows to drive the broker.

use super::wire::*;
use super::{client_id, topic, WAIT};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a read returned no packet.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing complete arrived in time.
    Timeout,
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// The broker sent bytes that are not a packet.
    Malformed(String),
    /// Any other socket error.
    Io(io::Error),
}

/// One raw MQTT connection.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pending: VecDeque<RawPacket>,
    /// Protocol level used to parse PUBLISH and SUBACK (set by `connect`).
    pub version: u8,
    next_pid: u16,
}

impl Client {
    /// A TCP connection with nothing sent yet.
    pub fn tcp(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|e| panic!("cannot connect to the broker at {addr}: {e}"));
        Self::from_stream(stream)
    }

    /// A TCP connection with a 4 KiB receive buffer, nothing sent yet: it
    /// stops accepting data almost at once when it does not read.
    pub fn tcp_small_buffer(addr: SocketAddr) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket.connect_timeout(&addr.into(), WAIT).expect("connect");
        Self::from_stream(TcpStream::from(socket))
    }

    /// Wraps an already connected stream (e.g. one with small socket buffers).
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        Self {
            stream,
            buf: Vec::with_capacity(4096),
            pending: VecDeque::new(),
            version: V311,
            next_pid: 0,
        }
    }

    /// Sends `connect` and returns the first packet the broker answers
    /// with, which must be a CONNACK ([MQTT-3.2.0-1]).
    pub fn connect(addr: SocketAddr, connect: &Connect) -> (Self, RawPacket) {
        let mut client = Self::tcp(addr);
        client.version = connect.version;
        client.send(&connect.bytes());
        let connack = client.read();
        assert_eq!(
            connack.kind(),
            CONNACK,
            "[MQTT-3.2.0-1] first packet: {connack:?}"
        );
        (client, connack)
    }

    /// Connects and asserts the connection was accepted; returns the client
    /// and the Session Present flag.
    pub fn accepted(addr: SocketAddr, connect: &Connect) -> (Self, bool) {
        let (client, connack) = Self::connect(addr, connect);
        assert_eq!(connack.connack_code(), 0, "CONNACK refused: {connack:?}");
        let present = connack.session_present();
        (client, present)
    }

    /// A clean-session client of `version` with a fresh client id.
    pub fn fresh(addr: SocketAddr, version: u8) -> Self {
        Self::accepted(addr, &Connect::new(version, &client_id())).0
    }

    /// A clean-session MQTT 3.1.1 client with a fresh client id.
    pub fn v311(addr: SocketAddr) -> Self {
        Self::fresh(addr, V311)
    }

    /// Writes `bytes`; panics when the write fails.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", bytes.len()));
    }

    /// Writes `bytes`, returning the error instead of panicking (the broker
    /// may already have closed the connection).
    pub fn send_lossy(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Half-closes the write side, as a client that stops sending.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Drops the connection without DISCONNECT (an abnormal close).
    pub fn abort(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Sends DISCONNECT and waits until the broker has closed the
    /// connection: by then it has detached the session (a persistent one is
    /// offline, and messages published after this return are queued for it).
    pub fn disconnect_and_wait(mut self) {
        self.send(&DISCONNECT_BYTES);
        self.expect_closed_silently(WAIT);
    }

    /// Sends DISCONNECT and closes the socket.
    pub fn disconnect(mut self) {
        let _ = self.send_lossy(&DISCONNECT_BYTES);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The next packet identifier (1, 2, …; never 0).
    pub fn next_pid(&mut self) -> u16 {
        self.next_pid = self.next_pid.wrapping_add(1).max(1);
        self.next_pid
    }

    /// Reads the next packet (stashed ones first) within `timeout`.
    pub fn try_read(&mut self, timeout: Duration) -> Result<RawPacket, ReadError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        self.read_socket(timeout)
    }

    fn read_socket(&mut self, timeout: Duration) -> Result<RawPacket, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            match RawPacket::parse(&self.buf) {
                Ok(Some((p, used))) => {
                    self.buf.drain(..used);
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadError::Malformed(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Timeout);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(left))
                .expect("read timeout");
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(ReadError::Timeout)
                    }
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        return Err(ReadError::Closed)
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => return Err(ReadError::Io(e)),
                },
            }
        }
    }

    /// Reads the next packet; panics if none arrives within [`WAIT`].
    pub fn read(&mut self) -> RawPacket {
        match self.try_read(WAIT) {
            Ok(p) => p,
            Err(e) => panic!("expected a packet within {WAIT:?}, got {e:?}"),
        }
    }

    /// Reads the next packet and asserts its exact bytes.
    pub fn expect_bytes(&mut self, expected: &[u8]) {
        let p = self.read();
        assert_eq!(p.bytes(), expected, "unexpected packet {p:?}");
    }

    /// Reads the next packet, which must be a v5 DISCONNECT with reason
    /// `code` (its properties, such as a Reason String, are not checked).
    pub fn expect_disconnect(&mut self, code: u8) -> RawPacket {
        let p = self.read();
        assert_eq!(
            p.kind(),
            DISCONNECT,
            "expected DISCONNECT 0x{code:02X}, got {p:?}"
        );
        assert_eq!(p.body.first(), Some(&code), "DISCONNECT reason code: {p:?}");
        p
    }

    /// Reads until a packet satisfying `want` arrives, stashing the others
    /// (they are returned by later reads, in order).
    pub fn read_until(&mut self, what: &str, want: impl Fn(&RawPacket) -> bool) -> RawPacket {
        let deadline = Instant::now() + WAIT;
        let mut stashed = VecDeque::new();
        // Look at already stashed packets first.
        while let Some(p) = self.pending.pop_front() {
            if want(&p) {
                stashed.extend(self.pending.drain(..));
                self.pending = stashed;
                return p;
            }
            stashed.push_back(p);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_socket(left) {
                Ok(p) if want(&p) => {
                    self.pending = stashed;
                    return p;
                }
                Ok(p) => stashed.push_back(p),
                Err(e) => panic!("waiting for {what}: {e:?}; received meanwhile: {stashed:?}"),
            }
        }
    }

    /// Asserts that no packet arrives within `quiet`.
    pub fn expect_nothing(&mut self, quiet: Duration) {
        match self.try_read(quiet) {
            Err(ReadError::Timeout) => {}
            Ok(p) => panic!("expected no packet, got {p:?}"),
            Err(e) => panic!("expected no packet and an open connection, got {e:?}"),
        }
    }

    /// Waits up to `timeout` for the broker to close the connection; returns
    /// the packets it sent before closing, or why it did not close.
    pub fn closed_within(&mut self, timeout: Duration) -> Result<Vec<RawPacket>, String> {
        let deadline = Instant::now() + timeout;
        let mut before: Vec<RawPacket> = self.pending.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_socket(left) {
                Err(ReadError::Closed) => return Ok(before),
                Ok(p) => before.push(p),
                Err(ReadError::Timeout) => {
                    return Err(format!(
                        "connection still open after {timeout:?}; received meanwhile: {before:?}"
                    ))
                }
                Err(ReadError::Malformed(e)) => {
                    return Err(format!("broker sent garbage ({e}) after {before:?}"))
                }
                Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Ok(before)
                }
                Err(ReadError::Io(e)) => {
                    return Err(format!("socket error {e} instead of a close"))
                }
            }
        }
    }

    /// Like [`Self::closed_within`], but also fails when the broker sent any
    /// packet before closing (except a v5 DISCONNECT, which is allowed).
    pub fn closed_silently_within(&mut self, timeout: Duration) -> Result<(), String> {
        let before = self.closed_within(timeout)?;
        let version = self.version;
        let unexpected: Vec<_> = before
            .iter()
            .filter(|p| !(version == V5 && p.kind() == DISCONNECT))
            .collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(format!("closed, but sent first: {unexpected:?}"))
        }
    }

    /// Asserts that the broker closes the connection within `timeout`;
    /// returns the packets it sent before closing.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<RawPacket> {
        self.closed_within(timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts that the broker closes the connection without sending any
    /// packet first (v5 brokers may send a DISCONNECT, which is allowed).
    pub fn expect_closed_silently(&mut self, timeout: Duration) {
        self.closed_silently_within(timeout)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Subscribes and returns the SUBACK return codes ([MQTT-3.8.4-1/2]).
    pub fn subscribe(&mut self, filters: &[(&str, u8)]) -> Vec<u8> {
        let pid = self.next_pid();
        self.send(&subscribe(self.version, pid, filters));
        let suback = self.read_until("SUBACK", |p| p.kind() == SUBACK);
        assert_eq!(suback.pid(), pid, "[MQTT-3.8.4-2] SUBACK packet id");
        let codes = suback.suback_codes(self.version);
        assert_eq!(
            codes.len(),
            filters.len(),
            "[MQTT-3.8.4-5] one code per filter"
        );
        codes
    }

    /// Subscribes to one filter and asserts it was granted `qos`.
    pub fn sub(&mut self, filter: &str, qos: u8) {
        assert_eq!(
            self.subscribe(&[(filter, qos)]),
            vec![qos],
            "SUBACK for {filter}"
        );
    }

    /// Unsubscribes and waits for the matching UNSUBACK ([MQTT-3.10.4-4]).
    pub fn unsubscribe(&mut self, filters: &[&str]) {
        let pid = self.next_pid();
        self.send(&unsubscribe(self.version, pid, filters));
        let unsuback = self.read_until("UNSUBACK", |p| p.kind() == UNSUBACK);
        assert_eq!(unsuback.pid(), pid, "[MQTT-3.10.4-4] UNSUBACK packet id");
    }

    /// Publishes `msg` and completes its QoS flow (PUBACK, or PUBREC →
    /// PUBREL → PUBCOMP), stashing any other packet that arrives meanwhile.
    pub fn publish(&mut self, msg: &Message) {
        self.send(&msg.encode(self.version));
        let Some(pid) = msg.pid else { return };
        if msg.qos == 1 {
            let puback = self.read_until("PUBACK", |p| p.kind() == PUBACK);
            assert_eq!(puback.pid(), pid, "[MQTT-2.3.1-6] PUBACK packet id");
        } else {
            let pubrec = self.read_until("PUBREC", |p| p.kind() == PUBREC);
            assert_eq!(pubrec.pid(), pid, "[MQTT-2.3.1-6] PUBREC packet id");
            self.send(&ack(PUBREL, pid));
            let pubcomp = self.read_until("PUBCOMP", |p| p.kind() == PUBCOMP);
            assert_eq!(pubcomp.pid(), pid, "PUBCOMP packet id");
        }
    }

    /// Publishes a QoS 0 message.
    pub fn publish0(&mut self, topic: &str, payload: impl AsRef<[u8]>) {
        self.publish(&Message::new(topic, payload));
    }

    /// Publishes with `qos`, choosing the packet id, and completes the flow.
    pub fn publish_qos(&mut self, topic: &str, payload: impl AsRef<[u8]>, qos: u8) {
        let pid = self.next_pid();
        self.publish(&Message::new(topic, payload).qos(qos, pid));
    }

    /// Reads the next packet, which must be a PUBLISH; does not acknowledge.
    pub fn recv(&mut self) -> Message {
        let p = self.read();
        Message::decode(&p, self.version).unwrap_or_else(|| panic!("expected PUBLISH, got {p:?}"))
    }

    /// Reads the next PUBLISH and completes its QoS flow as the receiver.
    pub fn recv_acked(&mut self) -> Message {
        let msg = self.recv();
        self.ack(&msg);
        msg
    }

    /// Completes the receiver side of `msg`'s QoS flow: PUBACK, or PUBREC
    /// then (after the broker's PUBREL) PUBCOMP.
    pub fn ack(&mut self, msg: &Message) {
        let Some(pid) = msg.pid else { return };
        if msg.qos == 1 {
            self.send(&ack(PUBACK, pid));
        } else {
            self.send(&ack(PUBREC, pid));
            let pubrel = self.read_until("PUBREL", |p| p.kind() == PUBREL);
            if self.version == V5 {
                // v5 may append a reason code and properties.
                assert_eq!((pubrel.header, pubrel.pid()), (0x62, pid), "{pubrel:?}");
            } else {
                assert_eq!(
                    pubrel.bytes(),
                    ack(PUBREL, pid),
                    "PUBREL (flags 0010) for {pid}"
                );
            }
            self.send(&ack(PUBCOMP, pid));
        }
    }

    /// PINGREQ, then waits for PINGRESP ([MQTT-3.12.4-1]); other packets are
    /// stashed. Proves the broker has processed everything sent before.
    pub fn ping(&mut self) {
        self.send(&PINGREQ_BYTES);
        let p = self.read_until("PINGRESP", |p| p.kind() == PINGRESP);
        assert_eq!(p.bytes(), PINGRESP_BYTES, "PINGRESP bytes");
    }
}

/// A well-behaved client, connected before a misbehaving one, that must keep
/// working after the broker dropped the other connection.
#[derive(Debug)]
pub struct Healthy {
    client: Client,
    topic: String,
}

impl Healthy {
    /// Connects (MQTT 3.1.1) and subscribes to a private topic at QoS 1.
    pub fn new(addr: SocketAddr) -> Self {
        let mut client = Client::v311(addr);
        let topic = topic("healthy");
        client.sub(&topic, 1);
        Self { client, topic }
    }

    /// Publishes a QoS 1 message to itself and receives it.
    pub fn round_trip(&mut self) {
        let payload = format!("alive-{}", client_id());
        self.client.publish_qos(&self.topic, &payload, 1);
        let msg = self.client.recv_acked();
        assert_eq!(msg.topic, self.topic, "healthy client got {msg:?}");
        assert_eq!(
            msg.payload,
            payload.as_bytes(),
            "healthy client got {msg:?}"
        );
    }
}
