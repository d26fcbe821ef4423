//! One nonblocking client socket: a reused read buffer feeding the streaming
//! parser and a reused write buffer flushed with as few `write` calls as the
//! socket allows.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::frame::{self, Frame, FrameError};
use crate::ws::{WsClient, WsError};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// TCP handshake in progress.
    Connecting,
    /// CONNECT written, waiting for CONNACK.
    AwaitConnAck,
    /// SUBSCRIBE written, waiting for SUBACK.
    AwaitSubAck,
    /// Usable.
    Ready,
    /// Closed (error, broker hang-up or end of run).
    Closed,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Subscriber(u32),
    Publisher(u32),
    Idle,
}

/// Result of one `read` into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// New bytes are buffered; more may be waiting.
    Data,
    /// New bytes are buffered and the read was short, so the socket is
    /// drained: epoll (edge-triggered) reports any later arrival, and the
    /// `read` that would only return `WouldBlock` is skipped.
    Drained,
    /// Nothing more to read now.
    WouldBlock,
    /// The broker closed the connection.
    Eof,
}

/// A connection error worth reporting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed frame from broker: {0}")]
    Frame(#[from] FrameError),
    #[error("frame of {0} bytes exceeds the MQTT maximum")]
    TooLarge(usize),
    #[error("{0}")]
    Ws(#[from] WsError),
}

/// The TLS client side of `--tls`: the rustls configuration (the CAs of
/// `--cafile`) and the name the broker's certificate must carry.
#[derive(Debug, Clone)]
pub(crate) struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    pub(crate) fn new(cafile: &std::path::Path, name: &str) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(cafile)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", cafile.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", cafile.display()))?;
        }
        // ring, as the broker (no aws-lc build).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).map_err(|e| format!("{name}: {e}"))?;
        Ok(Self {
            config: Arc::new(config),
            name,
        })
    }

    fn connect(&self) -> io::Result<Box<rustls::ClientConnection>> {
        let mut conn = rustls::ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(io::Error::other)?;
        // `wbuf` is the bound on what is queued; rustls takes all of it.
        conn.set_buffer_limit(None);
        Ok(Box::new(conn))
    }
}

/// A client connection and its buffers.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) sock: TcpStream,
    /// TLS over `sock` (--tls): `wbuf` is plaintext handed to it, `rbuf`
    /// the plaintext it decrypted.
    tls: Option<Box<rustls::ClientConnection>>,
    pub(crate) state: ConnState,
    pub(crate) role: Role,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Bytes queued for the socket; `wpos..` is not yet written.
    pub(crate) wbuf: Vec<u8>,
    wpos: usize,
    /// The last write hit `WouldBlock`; wait for a writable event.
    pub(crate) write_blocked: bool,
    /// Listed in the engine's flush list.
    pub(crate) dirty: bool,
    /// When bytes were last written (for keep-alive).
    pub(crate) last_tx_ns: u64,
    /// When the TCP connect started.
    pub(crate) started_ns: u64,
    /// MQTT over WebSocket (`--ws`): `wbuf` is framed into it on flush.
    ws: Option<Box<WsClient>>,
}

/// Source address of connection `i` when connections are spread over
/// `spread` loopback addresses: 127.0.0.1 … 127.0.0.`spread`, round-robin.
/// `None` (the kernel picks) for an IPv6 target or `spread` ≤ 1.
///
/// With one source address, every `connect` searches the ephemeral port
/// range for a free (source port, destination) pair, and that search grows
/// with the connections already open: at 19,000 connections it costs the
/// generator about 0.5 ms of kernel CPU per connect. Spreading keeps each
/// address's share of the range small.
pub(crate) fn source_addr(target: SocketAddr, spread: u8, i: usize) -> Option<IpAddr> {
    if spread <= 1 || !target.is_ipv4() {
        return None;
    }
    let host = 1 + (i % usize::from(spread)) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)))
}

impl Conn {
    /// Start a nonblocking connect, from `source` (any port) when given, and
    /// register for read and write readiness.
    pub(crate) fn open(
        addr: SocketAddr,
        source: Option<IpAddr>,
        token: Token,
        registry: &Registry,
        role: Role,
        rbuf_size: usize,
        now: u64,
    ) -> io::Result<Self> {
        let mut sock = match source {
            None => TcpStream::connect(addr)?,
            Some(src) => connect_from(src, addr)?,
        };
        registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Self {
            sock,
            tls: None,
            state: ConnState::Connecting,
            role,
            rbuf: vec![0; rbuf_size],
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            write_blocked: false,
            dirty: false,
            last_tx_ns: now,
            started_ns: now,
            ws: None,
        })
    }

    /// Speak TLS over the connection (`--tls`); the handshake starts with
    /// the first write.
    pub(crate) fn with_tls(mut self, tls: Option<&TlsClient>) -> io::Result<Self> {
        self.tls = tls.map(TlsClient::connect).transpose()?;
        Ok(self)
    }

    /// Speak MQTT over WebSocket: the upgrade request for `path` goes out
    /// with the first flush, ahead of the CONNECT.
    pub(crate) fn use_websocket(&mut self, host: &str, path: &str) {
        self.ws = Some(Box::new(WsClient::new(host, path)));
    }

    /// After a writable event in `Connecting`: `Ok(true)` once established,
    /// `Ok(false)` if still in progress.
    pub(crate) fn connect_done(&mut self) -> io::Result<bool> {
        if let Some(e) = self.sock.take_error()? {
            return Err(e);
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.sock.set_nodelay(true)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Bytes queued but not yet accepted by the socket.
    pub(crate) fn pending_write(&self) -> usize {
        let records = self.tls.as_ref().is_some_and(|t| t.wants_write());
        self.wbuf.len() - self.wpos
            + usize::from(records)
            + self.ws.as_ref().map_or(0, |ws| ws.pending())
    }

    /// Write queued bytes until done or the socket is full.
    pub(crate) fn flush(&mut self, now: u64) -> io::Result<()> {
        if self.tls.is_some() {
            return self.flush_tls(now);
        }
        if let Some(ws) = self.ws.as_mut() {
            if self.wpos < self.wbuf.len() {
                ws.frame(&self.wbuf[self.wpos..]);
                self.wbuf.clear();
                self.wpos = 0;
            }
            let (out, pos) = (&ws.out, &mut ws.opos);
            self.write_blocked = !write_out(&mut self.sock, out, pos, &mut self.last_tx_ns, now)?;
            return Ok(());
        }
        let done = write_out(
            &mut self.sock,
            &self.wbuf,
            &mut self.wpos,
            &mut self.last_tx_ns,
            now,
        )?;
        self.write_blocked = !done;
        if done {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// `flush` over TLS: the plaintext goes to rustls whole, its records
    /// to the socket until done or full.
    fn flush_tls(&mut self, now: u64) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        if self.wpos < self.wbuf.len() {
            self.wpos += tls.writer().write(&self.wbuf[self.wpos..])?;
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => self.last_tx_ns = now,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.write_blocked = false;
        Ok(())
    }

    /// `fill` over TLS: plaintext rustls holds first, else records from
    /// the socket. Never `Drained`: a short plaintext read says nothing of
    /// what the socket still holds (edge-triggered readiness).
    fn fill_tls(&mut self) -> Result<Fill, ConnError> {
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Ok(Fill::WouldBlock);
            };
            match tls.reader().read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    self.rend += n;
                    return Ok(Fill::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(_) => {
                    tls.process_new_packets().map_err(io::Error::other)?;
                    // Handshake messages (and alerts) to answer.
                    if tls.wants_write() {
                        let now = self.last_tx_ns;
                        self.flush_tls(now)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Parse the next complete buffered frame, if any.
    pub(crate) fn next_frame(&mut self, v5: bool) -> Result<Option<Frame>, ConnError> {
        match frame::parse(&self.rbuf[self.rstart..self.rend], v5)? {
            Some((f, n)) => {
                self.rstart += n;
                if self.rstart == self.rend {
                    self.rstart = 0;
                    self.rend = 0;
                }
                Ok(Some(f))
            }
            None => Ok(None),
        }
    }

    /// Make room (compacting, or growing for a frame larger than the buffer)
    /// and read once.
    pub(crate) fn fill(&mut self) -> Result<Fill, ConnError> {
        if self.ws.is_some() {
            return self.fill_ws();
        }
        self.make_room()?;
        if self.tls.is_some() {
            return self.fill_tls();
        }
        loop {
            return match self.sock.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => Ok(Fill::Eof),
                Ok(n) => {
                    let short = self.rend + n < self.rbuf.len();
                    self.rend += n;
                    Ok(if short { Fill::Drained } else { Fill::Data })
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// `fill` over WebSocket: one read, whose frames' payloads go to the
    /// MQTT buffer.
    fn fill_ws(&mut self) -> Result<Fill, ConnError> {
        let Some(mut ws) = self.ws.take() else {
            return Ok(Fill::WouldBlock);
        };
        let result = loop {
            match self.sock.read(&mut ws.scratch) {
                Ok(0) => break Ok(Fill::Eof),
                Ok(n) => {
                    let short = n < ws.scratch.len();
                    let mut err = None;
                    if let Err(e) = ws.receive(n, |p| {
                        if err.is_none() {
                            err = self.push_payload(p).err();
                        }
                    }) {
                        break Err(e.into());
                    }
                    if let Some(e) = err {
                        break Err(e);
                    }
                    break Ok(if short { Fill::Drained } else { Fill::Data });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Fill::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e.into()),
            }
        };
        self.ws = Some(ws);
        result
    }

    /// Appends unwrapped MQTT bytes to the read buffer.
    fn push_payload(&mut self, mut p: &[u8]) -> Result<(), ConnError> {
        while !p.is_empty() {
            self.make_room()?;
            let n = p.len().min(self.rbuf.len() - self.rend);
            self.rbuf[self.rend..self.rend + n].copy_from_slice(&p[..n]);
            self.rend += n;
            p = &p[n..];
        }
        Ok(())
    }

    /// Room at the end of the read buffer: compacts, or grows it for a
    /// frame larger than the buffer.
    fn make_room(&mut self) -> Result<(), ConnError> {
        if self.rend == self.rbuf.len() {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            } else {
                // One incomplete frame fills the buffer: grow to fit it.
                let need = match frame::header(&self.rbuf[..self.rend])? {
                    Some((_, hlen, rlen)) => hlen + rlen,
                    None => self.rbuf.len() * 2,
                };
                if need > frame::MAX_REMAINING + 5 {
                    return Err(ConnError::TooLarge(need));
                }
                self.rbuf.resize(need.max(self.rbuf.len() * 2), 0);
            }
        }
        Ok(())
    }
}

/// Nonblocking connect from `src`. The source port is left to `connect`
/// (IP_BIND_ADDRESS_NO_PORT), which only needs the 4-tuple to be unique.
fn connect_from(src: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    crate::sys::bind_address_no_port(&sock)?;
    sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// Writes `buf[*pos..]` to `sock` until done (`Ok(true)`) or the socket is
/// full (`Ok(false)`), advancing `pos` and stamping `last_tx` at `now`.
fn write_out(
    sock: &mut impl Write,
    buf: &[u8],
    pos: &mut usize,
    last_tx: &mut u64,
    now: u64,
) -> io::Result<bool> {
    while *pos < buf.len() {
        match sock.write(&buf[*pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *pos += n;
                *last_tx = now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    use mio::{Events, Poll};

    /// Frames written one byte at a time arrive split across reads and are
    /// reassembled, including one larger than the initial buffer.
    #[test]
    fn partial_reads_and_buffer_growth() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let mut c = Conn::open(addr, None, Token(0), poll.registry(), Role::Idle, 8, 0).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut connected = false;
        for _ in 0..100 {
            if c.connect_done().unwrap() {
                connected = true;
                break;
            }
            poll.poll(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
        }
        assert!(connected);

        let mut bytes = Vec::new();
        frame::ack(&mut bytes, frame::ptype::PUBACK, 7);
        let big = frame::PublishTemplate::new(false, 1, b"t", 100, 3);
        big.write(&mut bytes, 9, 11, 12);
        bytes.extend_from_slice(&[0xd0, 0]);
        let writer = std::thread::spawn(move || {
            for b in bytes {
                server.write_all(&[b]).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
            server
        });

        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 3 && std::time::Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(20)))
                .unwrap();
            loop {
                while let Some(f) = c.next_frame(false).unwrap() {
                    got.push(f);
                }
                match c.fill().unwrap() {
                    Fill::Data => {}
                    Fill::Drained => {
                        while let Some(f) = c.next_frame(false).unwrap() {
                            got.push(f);
                        }
                        break;
                    }
                    Fill::WouldBlock | Fill::Eof => break,
                }
            }
        }
        let _server = writer.join().unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Frame::PubAck { pid: 7, code: 0 });
        let Frame::Publish(p) = got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!((p.pid, p.payload_len, p.stamp.unwrap().seq), (9, 100, 12));
        assert_eq!(got[2], Frame::PingResp);
        assert!(c.rbuf.len() >= 100);
    }

    #[test]
    fn source_addresses_round_robin_over_ipv4_loopback() {
        let v4: SocketAddr = "127.0.0.1:1883".parse().unwrap();
        let v6: SocketAddr = "[::1]:1883".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(source_addr(v4, 4, 0), ip("127.0.0.1"));
        assert_eq!(source_addr(v4, 4, 3), ip("127.0.0.4"));
        assert_eq!(source_addr(v4, 4, 4), ip("127.0.0.1"));
        assert_eq!(source_addr(v4, 254, 253), ip("127.0.0.254"));
        assert_eq!(source_addr(v4, 1, 7), None);
        assert_eq!(source_addr(v4, 0, 7), None);
        assert_eq!(source_addr(v6, 16, 7), None);
    }

    /// The broker sees the connection coming from the chosen address.
    #[test]
    fn connects_from_the_given_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let poll = Poll::new().unwrap();
        let src = source_addr(addr, 16, 6);
        let c = Conn::open(addr, src, Token(0), poll.registry(), Role::Idle, 8, 0).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(Some(peer.ip()), src);
        assert_eq!(c.sock.local_addr().unwrap(), peer);
    }
}
