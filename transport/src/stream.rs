//! The connection stream type every transport slots into.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::listener::ensure_runtime;
use crate::tls::{CertSubject, Socket};
use crate::ws::{ReadReady, UpgradeError, WsSettings, WsStream};
use crate::{Accepted, ListenerKind, TransportError};

/// A TLS session over a socket that can move between runtimes. Boxed: the
/// rustls state is a kilobyte or so, a parked TCP connection stays small.
pub(crate) type TlsIo = Box<tokio_rustls::server::TlsStream<Socket>>;

/// A client connection, registered with the runtime of the thread that
/// serves it. Every transport is a variant of its inner enum, so the
/// broker's connection task is written once against `AsyncRead +
/// AsyncWrite`. Vectored writes are forwarded to the inner stream.
///
/// It remembers the listener it came from, through [`Stream::detach`] and
/// [`Stream::attach`]. The client's address is the broker's to keep (a
/// PROXY header may change it); the socket's own is [`Stream::peer_addr`].
#[derive(Debug)]
pub struct Stream {
    pub(crate) io: Io,
    pub(crate) listener: Arc<str>,
}

/// The transports, registered with a runtime. A layer (WebSocket) wraps
/// another `Io`, so one variant covers it over every transport below.
#[derive(Debug)]
pub(crate) enum Io {
    /// Plain TCP.
    Tcp(tokio::net::TcpStream),
    /// TLS over TCP, after its handshake.
    Tls(TlsIo),
    /// WebSocket over the inner transport (TCP for ws, TLS for wss).
    Ws(Box<WsStream<Self>>),
}

/// A connection detached from any runtime, on its way to another worker
/// thread (a new connection is handed to the worker that holds its
/// client's session). `Send`; nothing is read or written while detached.
///
/// This is where a transport's own state travels with the socket: a TCP
/// stream is only its socket; a WebSocket stream carries its framing state
/// (a partly read or written frame, the masking key, undecoded bytes,
/// queued control frames); a TLS stream travels whole (keys, buffered
/// plaintext and records), only its socket is deregistered; so the
/// receiving worker continues the byte stream exactly where it stopped.
#[derive(Debug)]
pub struct DetachedStream {
    io: DetachedIo,
    listener: Arc<str>,
}

/// The transports, detached.
#[derive(Debug)]
enum DetachedIo {
    /// A non-blocking std TCP stream.
    Tcp(std::net::TcpStream),
    /// A TLS session whose socket is detached.
    Tls(TlsIo),
    /// WebSocket framing state over the detached inner transport.
    Ws(Box<WsStream<Self>>),
}

impl DetachedIo {
    fn kind(&self) -> ListenerKind {
        match self {
            Self::Tcp(_) => ListenerKind::Tcp,
            Self::Tls(_) => ListenerKind::Tls,
            Self::Ws(ws) => match ws.get_ref() {
                Self::Tls(_) => ListenerKind::Wss,
                _ => ListenerKind::Ws,
            },
        }
    }

    fn attach(self) -> Result<Io, TransportError> {
        Ok(match self {
            Self::Tcp(stream) => {
                stream
                    .set_nonblocking(true)
                    .map_err(TransportError::Register)?;
                let stream =
                    tokio::net::TcpStream::from_std(stream).map_err(TransportError::Register)?;
                Io::Tcp(stream)
            }
            Self::Tls(mut s) => {
                s.get_mut().0.attach().map_err(TransportError::Register)?;
                Io::Tls(s)
            }
            Self::Ws(ws) => Io::Ws(Box::new(ws.map_inner(Self::attach)?)),
        })
    }
}

impl DetachedStream {
    /// The transport.
    pub fn kind(&self) -> ListenerKind {
        self.io.kind()
    }

    /// The name of the listener that accepted the connection.
    pub fn listener(&self) -> &Arc<str> {
        &self.listener
    }
}

impl Stream {
    /// Registers an accepted connection with the current runtime. Must be
    /// called inside a tokio runtime (returns [`TransportError::Register`]
    /// otherwise), normally on the worker that will own the connection. The
    /// stream is non-blocking already (see [`Accepted::stream`]): no system
    /// call is spent on it here besides the registration.
    ///
    /// Every kind starts as TCP: `Stream::establish` runs the PROXY and
    /// TLS steps, [`Stream::accept_websocket`] the WebSocket upgrade.
    pub fn from_accepted(accepted: Accepted) -> Result<Self, TransportError> {
        ensure_runtime()?;
        let stream =
            tokio::net::TcpStream::from_std(accepted.stream).map_err(TransportError::Register)?;
        Ok(Self {
            io: Io::Tcp(stream),
            listener: accepted.listener,
        })
    }

    /// Runs the WebSocket opening handshake on the connection (whatever
    /// transport it is so far: TCP for `ws`, TLS for `wss`) and returns it
    /// framed (see [`crate::ws`]). On failure the client got an HTTP error
    /// and the connection is closed. No timeout: the caller bounds it.
    pub async fn accept_websocket(self, settings: &WsSettings) -> Result<Self, UpgradeError> {
        let ws = crate::ws::accept(self.io, settings).await?;
        Ok(Self {
            io: Io::Ws(Box::new(ws)),
            listener: self.listener,
        })
    }

    /// Detaches the connection from the current runtime so it can move to
    /// another worker thread; register it there with [`Stream::attach`].
    /// Every transport must be able to do this, taking its protocol state
    /// along (see [`DetachedStream`]).
    pub fn detach(self) -> io::Result<DetachedStream> {
        Ok(DetachedStream {
            io: self.io.detach()?,
            listener: self.listener,
        })
    }

    /// Registers a stream detached by [`Stream::detach`] with the current
    /// runtime. Returns [`TransportError::Register`] outside a runtime.
    pub fn attach(detached: DetachedStream) -> Result<Self, TransportError> {
        ensure_runtime()?;
        Ok(Self {
            io: detached.io.attach()?,
            listener: detached.listener,
        })
    }

    /// The transport.
    pub fn kind(&self) -> ListenerKind {
        self.io.kind()
    }

    /// The name of the listener that accepted the connection.
    pub fn listener(&self) -> &Arc<str> {
        &self.listener
    }

    /// The remote address the socket reports now, if it still knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp()?.peer_addr().ok()
    }

    /// The local address the socket reports now, if it still knows it.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp()?.local_addr().ok()
    }

    /// The TCP socket under every layer (none while a TLS socket is detached).
    pub(crate) fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        self.io.tcp()
    }

    /// The subject of the certificate the client presented in its TLS
    /// handshake (verified against the listener's client CAs), if any.
    pub fn peer_certificate(&self) -> Option<CertSubject> {
        let cert = self.io.tls()?.get_ref().1.peer_certificates()?.first()?;
        CertSubject::from_der(cert)
    }

    /// The ALPN protocol agreed in the TLS handshake, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.io.tls()?.get_ref().1.alpn_protocol()
    }

    /// Ready when a read would make progress, without reading. Lets an idle
    /// connection wait without holding a read buffer. Transports that buffer
    /// decrypted or decoded bytes themselves report those as ready.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_read_ready(cx)
    }
}

impl Io {
    fn kind(&self) -> ListenerKind {
        match self {
            Self::Tcp(_) => ListenerKind::Tcp,
            Self::Tls(_) => ListenerKind::Tls,
            Self::Ws(ws) => match ws.get_ref() {
                Self::Tls(_) => ListenerKind::Wss,
                _ => ListenerKind::Ws,
            },
        }
    }

    /// The socket under every layer.
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        match self {
            Self::Tcp(s) => Some(s),
            Self::Tls(s) => s.get_ref().0.live(),
            Self::Ws(ws) => ws.get_ref().tcp(),
        }
    }

    /// The TLS session under every layer, if any.
    fn tls(&self) -> Option<&TlsIo> {
        match self {
            Self::Tcp(_) => None,
            Self::Tls(s) => Some(s),
            Self::Ws(ws) => ws.get_ref().tls(),
        }
    }

    fn detach(self) -> io::Result<DetachedIo> {
        Ok(match self {
            Self::Tcp(s) => DetachedIo::Tcp(s.into_std()?),
            Self::Tls(mut s) => {
                s.get_mut().0.detach()?;
                DetachedIo::Tls(s)
            }
            Self::Ws(ws) => DetachedIo::Ws(Box::new(ws.map_inner(Self::detach)?)),
        })
    }
}

impl ReadReady for Io {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
            Self::Tls(s) => {
                let (socket, conn) = s.get_ref();
                // rustls holds decrypted bytes not read yet (or the peer's
                // close_notify): a read makes progress without the socket.
                if !conn.wants_read() {
                    return Poll::Ready(Ok(()));
                }
                match socket.live() {
                    Some(tcp) => tcp.poll_read_ready(cx),
                    None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                }
            }
            Self::Ws(ws) => ws.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Ws(ws) => Pin::new(&mut **ws).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Ws(ws) => Pin::new(&mut **ws).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::Ws(ws) => Pin::new(&mut **ws).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
            Self::Ws(ws) => ws.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Ws(ws) => Pin::new(&mut **ws).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Ws(ws) => Pin::new(&mut **ws).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bind, Listener, ListenerSpec};
    use std::net::Ipv4Addr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(5);

    /// A connected (server `Stream`, client socket) pair on 127.0.0.1.
    async fn pair() -> (Stream, tokio::net::TcpStream) {
        let spec = ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into());
        let listener = Listener::from_std(bind(&spec).unwrap(), ListenerKind::Tcp).unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr())
            .await
            .unwrap();
        let accepted = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .unwrap();
        (Stream::from_accepted(accepted).unwrap(), client)
    }

    #[tokio::test]
    async fn read_and_write_through_stream() {
        let (mut server, mut client) = pair().await;
        assert_eq!(server.peer_addr(), Some(client.local_addr().unwrap()));
        assert_eq!(server.local_addr(), Some(client.peer_addr().unwrap()));

        client.write_all(b"\x10\x00ping").await.unwrap();
        let mut buf = [0u8; 6];
        tokio::time::timeout(LIMIT, server.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"\x10\x00ping");

        server.write_all(b"pong").await.unwrap();
        server.flush().await.unwrap();
        let mut buf = [0u8; 4];
        tokio::time::timeout(LIMIT, client.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn vectored_writes_are_forwarded() {
        let (mut server, mut client) = pair().await;
        assert!(server.is_write_vectored());

        let header = [0x30u8, 0x0b, 0x00, 0x03, b'a', b'/', b'b'];
        let payload = b"hell";
        let mut slices = [IoSlice::new(&header), IoSlice::new(payload)];
        let mut slices = &mut slices[..];
        let mut sent = 0;
        while !slices.is_empty() {
            let n = server.write_vectored(slices).await.unwrap();
            assert!(n > 0);
            sent += n;
            IoSlice::advance_slices(&mut slices, n);
        }
        assert_eq!(sent, header.len() + payload.len());
        server.shutdown().await.unwrap();

        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, [&header[..], &payload[..]].concat());
    }

    #[tokio::test]
    async fn stream_moves_to_another_runtime() {
        let spec = ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into());
        let listener = Listener::from_std(bind(&spec).unwrap(), ListenerKind::Tcp).unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr())
            .await
            .unwrap();
        let accepted = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .unwrap();

        // A worker thread with its own current-thread runtime takes over.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut stream = Stream::from_accepted(accepted).unwrap();
                stream.write_all(b"hi").await.unwrap();
                stream.shutdown().await.unwrap();
            });
        });
        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"hi");
        worker.join().unwrap();
    }

    #[test]
    fn from_accepted_outside_runtime_is_an_error() {
        let std_listener = bind(&ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        std_listener.set_nonblocking(false).unwrap();
        let (stream, peer) = std_listener.accept().unwrap();
        let accepted = Accepted {
            stream,
            peer,
            local: addr,
            kind: ListenerKind::Tcp,
            listener: "tcp:test".into(),
            establish: crate::Establish::default(),
        };
        let err = Stream::from_accepted(accepted).unwrap_err();
        assert!(matches!(err, TransportError::Register(_)), "{err:?}");
    }

    /// A connection served on one runtime thread is detached, moved to a
    /// second thread with its own runtime, attached there and served on,
    /// keeping its listener name and addresses; bytes flow both ways before
    /// and after the move.
    #[test]
    fn detached_stream_moves_between_runtime_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<DetachedStream>();
        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        }
        let spec = ListenerSpec {
            name: "moving".into(),
            ..ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())
        };
        let std_listener = bind(&spec).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(LIMIT)).unwrap();

        let (tx, rx) = std::sync::mpsc::channel::<DetachedStream>();
        let first = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = Listener::from_spec(std_listener, &spec).unwrap();
                let accepted = tokio::time::timeout(LIMIT, listener.accept())
                    .await
                    .unwrap();
                let mut stream = Stream::from_accepted(accepted).unwrap();
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ping");
                stream.write_all(b"pong").await.unwrap();
                tx.send(stream.detach().unwrap()).unwrap();
            });
        });
        let second = std::thread::spawn(move || {
            let detached = rx.recv_timeout(LIMIT).unwrap();
            assert_eq!(&**detached.listener(), "moving");
            assert_eq!(detached.kind(), ListenerKind::Tcp);
            runtime().block_on(async move {
                let stream = Stream::attach(detached).unwrap();
                assert_eq!(stream.local_addr(), Some(addr));
                let peer = stream.peer_addr().unwrap();
                let mut stream = stream;
                assert_eq!(&**stream.listener(), "moving");
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"more");
                stream.write_all(b"back").await.unwrap();
                stream.shutdown().await.unwrap();
                peer
            })
        });

        use std::io::{Read, Write};
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        first.join().unwrap();
        client.write_all(b"more").unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"back");
        assert_eq!(second.join().unwrap(), client.local_addr().unwrap());
    }

    /// A masked client frame (binary, FIN).
    fn ws_frame(payload: &[u8]) -> Vec<u8> {
        let mask = [0xa1, 0x02, 0xb3, 0x04];
        let mut f = vec![0x82, 0x80 | payload.len() as u8];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// A WebSocket connection is upgraded on one runtime thread, reports
    /// bytes it decoded but nobody read as ready (the socket has nothing
    /// more), is detached in the middle of a frame, attached on another
    /// thread and continues the frame there.
    #[test]
    fn websocket_stream_keeps_its_framing_across_threads() {
        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        }
        let spec = ListenerSpec {
            kind: ListenerKind::Ws,
            ..ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())
        };
        let std_listener = bind(&spec).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(LIMIT)).unwrap();
        use std::io::{Read, Write};
        // The request and the first frame in one write; the frame's payload
        // is 10 bytes of which the server reads 4 before the move.
        let mut hello =
            b"GET /mqtt HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Protocol: mqtt\r\n\r\n"
                .to_vec();
        let frame = ws_frame(b"0123456789");
        hello.extend_from_slice(&frame[..frame.len() - 3]);
        client.write_all(&hello).unwrap();

        let (tx, rx) = std::sync::mpsc::channel::<DetachedStream>();
        let first = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = Listener::from_spec(std_listener, &spec).unwrap();
                let accepted = tokio::time::timeout(LIMIT, listener.accept())
                    .await
                    .unwrap();
                assert_eq!(accepted.kind, ListenerKind::Ws);
                let stream = Stream::from_accepted(accepted).unwrap();
                let mut stream = stream
                    .accept_websocket(&WsSettings::default())
                    .await
                    .unwrap();
                assert_eq!(stream.kind(), ListenerKind::Ws);
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"0123");
                // Three decoded bytes wait in the stream, none in the socket.
                let ready = std::future::poll_fn(|cx| Poll::Ready(stream.poll_read_ready(cx)));
                assert!(matches!(ready.await, Poll::Ready(Ok(()))));
                let mut buf = [0u8; 3];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"456");
                let ready = std::future::poll_fn(|cx| Poll::Ready(stream.poll_read_ready(cx)));
                assert!(ready.await.is_pending(), "nothing buffered, nothing sent");
                stream.write_all(b"\x20\x02\x00\x00").await.unwrap();
                tx.send(stream.detach().unwrap()).unwrap();
            });
        });
        let second = std::thread::spawn(move || {
            let detached = rx.recv_timeout(LIMIT).unwrap();
            assert_eq!(detached.kind(), ListenerKind::Ws);
            runtime().block_on(async move {
                let mut stream = Stream::attach(detached).unwrap();
                assert_eq!(stream.kind(), ListenerKind::Ws);
                assert_eq!(stream.local_addr(), Some(addr));
                let mut buf = [0u8; 5];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"789ab");
                stream.write_all(b"back").await.unwrap();
                stream.shutdown().await.unwrap();
            })
        });
        first.join().unwrap();
        // The rest of the frame, and one more, after the move.
        client.write_all(&frame[frame.len() - 3..]).unwrap();
        client.write_all(&ws_frame(b"ab")).unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        second.join().unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{text}"
        );
        assert!(text.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{text}");
        let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // CONNACK, "back", then a close frame with 1000.
        assert_eq!(
            &answer[at..],
            b"\x82\x04\x20\x02\x00\x00\x82\x04back\x88\x02\x03\xe8"
        );
    }

    #[test]
    fn attach_outside_runtime_is_an_error() {
        let std_listener = bind(&ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let detached = DetachedStream {
            io: DetachedIo::Tcp(client),
            listener: "tcp:test".into(),
        };
        let err = Stream::attach(detached).unwrap_err();
        assert!(matches!(err, TransportError::Register(_)), "{err:?}");
    }
}
