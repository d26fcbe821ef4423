//! The connection stream type every transport slots into.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::listener::ensure_runtime;
use crate::{Accepted, ListenerKind, TransportError};

/// A client connection. Every transport is a variant, so the broker's
/// connection task is written once against `AsyncRead + AsyncWrite`.
/// Vectored writes are forwarded to the inner stream.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(tokio::net::TcpStream),
}

impl Stream {
    /// Registers an accepted connection with the current runtime. Must be
    /// called inside a tokio runtime (returns [`TransportError::Register`]
    /// otherwise), normally on the worker that will own the connection. The
    /// stream is non-blocking already (see [`Accepted::stream`]): no system
    /// call is spent on it here besides the registration.
    pub fn from_accepted(accepted: Accepted) -> Result<Self, TransportError> {
        ensure_runtime()?;
        match accepted.kind {
            ListenerKind::Tcp => {
                let stream = tokio::net::TcpStream::from_std(accepted.stream)
                    .map_err(TransportError::Register)?;
                Ok(Self::Tcp(stream))
            }
        }
    }

    /// Detaches the connection from the current runtime so it can move to
    /// another worker thread (a new connection is handed to the worker that
    /// holds its client's session). The returned stream is non-blocking;
    /// register it again with [`Stream::from_detached`]. Every transport must
    /// be able to do this: later ones detach their protocol state with it.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self {
            Self::Tcp(s) => s.into_std(),
        }
    }

    /// Registers a stream detached by [`Stream::into_std`] with the current runtime.
    pub fn from_detached(stream: std::net::TcpStream) -> Result<Self, TransportError> {
        ensure_runtime()?;
        stream
            .set_nonblocking(true)
            .map_err(TransportError::Register)?;
        let stream = tokio::net::TcpStream::from_std(stream).map_err(TransportError::Register)?;
        Ok(Self::Tcp(stream))
    }

    /// The remote address, if the socket still knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok(),
        }
    }

    /// The local address, if the socket still knows it.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(s) => s.local_addr().ok(),
        }
    }

    /// Ready when a read would make progress, without reading. Lets an idle
    /// connection wait without holding a read buffer. Transports that buffer
    /// decrypted or decoded bytes themselves must report those as ready.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
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
        };
        let err = Stream::from_accepted(accepted).unwrap_err();
        assert!(matches!(err, TransportError::Register(_)), "{err:?}");
    }
}
