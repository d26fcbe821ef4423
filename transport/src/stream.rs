//! The connection stream type every transport slots into.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::listener::ensure_runtime;
use crate::tls::{CertSubject, Socket};
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

/// The transports, registered with a runtime.
#[derive(Debug)]
pub(crate) enum Io {
    /// Plain TCP.
    Tcp(tokio::net::TcpStream),
    /// TLS over TCP, after its handshake.
    Tls(TlsIo),
}

/// A connection detached from any runtime, on its way to another worker
/// thread (a new connection is handed to the worker that holds its
/// client's session). `Send`; nothing is read or written while detached.
///
/// This is where a transport's own state travels with the socket: today a
/// TCP stream is only its socket; a TLS stream will carry its session state
/// (keys, buffered plaintext and records) and a WebSocket stream its
/// framing state (a partly read frame, the masking key), so that the
/// receiving worker continues the byte stream exactly where it stopped.
/// A TLS stream travels whole (keys, buffered plaintext and records), only
/// its socket is deregistered.
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
}

impl DetachedStream {
    /// The transport.
    pub fn kind(&self) -> ListenerKind {
        match self.io {
            DetachedIo::Tcp(_) => ListenerKind::Tcp,
            DetachedIo::Tls(_) => ListenerKind::Tls,
        }
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
    pub fn from_accepted(accepted: Accepted) -> Result<Self, TransportError> {
        ensure_runtime()?;
        // Every kind starts as TCP; `Stream::establish` runs its handshakes.
        let stream =
            tokio::net::TcpStream::from_std(accepted.stream).map_err(TransportError::Register)?;
        let io = Io::Tcp(stream);
        Ok(Self {
            io,
            listener: accepted.listener,
        })
    }

    /// Detaches the connection from the current runtime so it can move to
    /// another worker thread; register it there with [`Stream::attach`].
    /// Every transport must be able to do this, taking its protocol state
    /// along (see [`DetachedStream`]).
    pub fn detach(self) -> io::Result<DetachedStream> {
        let io = match self.io {
            Io::Tcp(s) => DetachedIo::Tcp(s.into_std()?),
            Io::Tls(mut s) => {
                s.get_mut().0.detach()?;
                DetachedIo::Tls(s)
            }
        };
        Ok(DetachedStream {
            io,
            listener: self.listener,
        })
    }

    /// Registers a stream detached by [`Stream::detach`] with the current
    /// runtime. Returns [`TransportError::Register`] outside a runtime.
    pub fn attach(detached: DetachedStream) -> Result<Self, TransportError> {
        ensure_runtime()?;
        let io = match detached.io {
            DetachedIo::Tcp(stream) => {
                stream
                    .set_nonblocking(true)
                    .map_err(TransportError::Register)?;
                let stream =
                    tokio::net::TcpStream::from_std(stream).map_err(TransportError::Register)?;
                Io::Tcp(stream)
            }
            DetachedIo::Tls(mut s) => {
                s.get_mut().0.attach().map_err(TransportError::Register)?;
                Io::Tls(s)
            }
        };
        Ok(Self {
            io,
            listener: detached.listener,
        })
    }

    /// The transport.
    pub fn kind(&self) -> ListenerKind {
        match self.io {
            Io::Tcp(_) => ListenerKind::Tcp,
            Io::Tls(_) => ListenerKind::Tls,
        }
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

    /// The TCP socket under the transport.
    pub(crate) fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        match &self.io {
            Io::Tcp(s) => Some(s),
            Io::Tls(s) => s.get_ref().0.live(),
        }
    }

    /// The subject of the certificate the client presented in its TLS
    /// handshake (verified against the listener's client CAs), if any.
    pub fn peer_certificate(&self) -> Option<CertSubject> {
        match &self.io {
            Io::Tcp(_) => None,
            Io::Tls(s) => {
                let cert = s.get_ref().1.peer_certificates()?.first()?;
                CertSubject::from_der(cert)
            }
        }
    }

    /// The ALPN protocol agreed in the TLS handshake, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.io {
            Io::Tcp(_) => None,
            Io::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }

    /// Ready when a read would make progress, without reading. Lets an idle
    /// connection wait without holding a read buffer. Transports that buffer
    /// decrypted or decoded bytes themselves must report those as ready.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::Tcp(s) => s.poll_read_ready(cx),
            Io::Tls(s) => {
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
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
