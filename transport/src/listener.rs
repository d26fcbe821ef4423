//! Binding listeners and accepting connections.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::{Establish, TransportError};

/// The transport a listener speaks; a PROXY header is a step of any kind
/// ([`Establish::proxy_protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenerKind {
    /// Plain MQTT over TCP.
    Tcp,
    /// TLS over TCP ([`Establish::tls`] holds its configuration).
    Tls,
    /// MQTT over WebSocket over TCP (the upgrade runs on the worker, see
    /// [`crate::Stream::accept_websocket`]).
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        })
    }
}

/// What to listen on.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The listener's name, carried by every connection it accepts
    /// ([`Accepted::listener`]).
    pub name: Arc<str>,
    /// Local address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The transport.
    pub kind: ListenerKind,
    /// The `listen(2)` backlog (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// What each connection goes through before the application reads
    /// from it (PROXY header, TLS handshake), carried by every
    /// [`Accepted`].
    pub establish: Establish,
}

impl ListenerSpec {
    /// The default `listen(2)` backlog.
    pub const DEFAULT_BACKLOG: u32 = 1024;

    /// A plain TCP listener on `bind` named `tcp:{bind}`, with the default backlog.
    pub fn tcp(bind: SocketAddr) -> Self {
        Self {
            name: format!("{}:{bind}", ListenerKind::Tcp).into(),
            bind,
            kind: ListenerKind::Tcp,
            backlog: Self::DEFAULT_BACKLOG,
            establish: Establish::default(),
        }
    }
}

/// Binds a listening socket: `SO_REUSEADDR` (on Unix), `IPV6_V6ONLY` for IPv6
/// addresses (so `[::]:1883` and `0.0.0.0:1883` can both be bound), the given
/// backlog, and non-blocking mode.
///
/// Returns the std listener so it can be moved to the acceptor thread and
/// registered there with [`Listener::from_std`]. Needs no runtime.
pub fn bind(spec: &ListenerSpec) -> Result<std::net::TcpListener, TransportError> {
    let addr = spec.bind;
    let err = |source| TransportError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    #[cfg(unix)]
    socket.set_reuse_address(true).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    let backlog = i32::try_from(spec.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(err)?;
    Ok(socket.into())
}

/// Sets `SO_SNDBUF` / `SO_RCVBUF` on a stream; `None` leaves the OS default.
/// (Linux doubles the value given and caps it at `net.core.wmem_max`/`rmem_max`.)
pub fn set_socket_buffers(
    stream: &std::net::TcpStream,
    send: Option<usize>,
    recv: Option<usize>,
) -> Result<(), TransportError> {
    let sock = SockRef::from(stream);
    if let Some(size) = send {
        sock.set_send_buffer_size(size)
            .map_err(|source| TransportError::SocketOption {
                option: "SO_SNDBUF",
                source,
            })?;
    }
    if let Some(size) = recv {
        sock.set_recv_buffer_size(size)
            .map_err(|source| TransportError::SocketOption {
                option: "SO_RCVBUF",
                source,
            })?;
    }
    Ok(())
}

/// One accepted connection, ready to be sent to a worker thread.
#[derive(Debug)]
pub struct Accepted {
    /// The connection, in non-blocking mode with `TCP_NODELAY` set.
    pub stream: std::net::TcpStream,
    /// The remote address.
    pub peer: SocketAddr,
    /// The local address the connection arrived on.
    pub local: SocketAddr,
    /// The listener's transport.
    pub kind: ListenerKind,
    /// The listener's name ([`ListenerSpec::name`]).
    pub listener: Arc<str>,
    /// The listener's [`ListenerSpec::establish`]: run it with
    /// [`Stream::establish`](crate::Stream::establish).
    pub establish: Establish,
}

/// A listener registered with the current tokio runtime.
#[derive(Debug)]
pub struct Listener {
    /// The listening socket, registered for readability only: accepted
    /// sockets are created by `accept4(2)` directly (see `accept_now`).
    inner: AsyncFd<std::net::TcpListener>,
    local: SocketAddr,
    kind: ListenerKind,
    name: Arc<str>,
    establish: Establish,
}

/// First backoff after a resource error (EMFILE, ENOBUFS, …); doubles per
/// consecutive error up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Listener {
    /// Registers a listener bound by [`bind`] from `spec` with the current
    /// runtime, under the spec's name and kind. Returns
    /// [`TransportError::Register`] when called outside a tokio runtime.
    pub fn from_spec(
        listener: std::net::TcpListener,
        spec: &ListenerSpec,
    ) -> Result<Self, TransportError> {
        let mut listener = Self::from_std(listener, spec.kind)?;
        listener.name = Arc::clone(&spec.name);
        listener.establish = spec.establish.clone();
        Ok(listener)
    }

    /// [`Listener::from_spec`] without a spec: the listener is named
    /// `{kind}:{local address}`.
    pub fn from_std(
        listener: std::net::TcpListener,
        kind: ListenerKind,
    ) -> Result<Self, TransportError> {
        ensure_runtime()?;
        listener
            .set_nonblocking(true)
            .map_err(TransportError::Register)?;
        let local = listener.local_addr().map_err(TransportError::Register)?;
        // SAFETY: the `AsyncFd` owns the `TcpListener`, which owns its file
        // descriptor: it stays open, and `as_raw_fd` returns the same
        // descriptor, until the `AsyncFd` (and with it the listener) is dropped.
        let inner = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(|e| TransportError::Register(e.into()))?;
        let name = format!("{kind}:{local}").into();
        Ok(Self {
            inner,
            local,
            kind,
            name,
            establish: Establish::default(),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The listener's transport.
    pub fn kind(&self) -> ListenerKind {
        self.kind
    }

    /// The listener's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Accepts one connection and sets `TCP_NODELAY` on it.
    ///
    /// Never fails: errors that concern only the one pending connection
    /// (`ECONNABORTED`, `EPROTO`, …) are retried at once; resource errors
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) and anything unexpected are
    /// logged and retried after a backoff of 10 ms doubling to 1 s, which gives
    /// closing connections time to free descriptors. Cancel-safe: dropping the
    /// future loses no connection.
    pub async fn accept(&self) -> Accepted {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.inner.async_io(Interest::READABLE, accept_now).await {
                Ok((stream, peer)) => match self.prepare(stream, peer) {
                    Ok(accepted) => return accepted,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "dropping accepted connection");
                    }
                },
                Err(error) => match classify(&error) {
                    AcceptError::Connection => {
                        tracing::debug!(listener = %self.local, %error, "accept: connection failed");
                    }
                    AcceptError::Resource | AcceptError::Other => {
                        tracing::warn!(
                            listener = %self.local, %error, backoff_ms = backoff.as_millis() as u64,
                            "accept failed; retrying after backoff"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
            }
        }
    }

    fn prepare(&self, stream: std::net::TcpStream, peer: SocketAddr) -> io::Result<Accepted> {
        stream.set_nodelay(true)?;
        // Bound to one address, the local address is known; bound to a
        // wildcard, ask the socket which one the client reached.
        let local = if self.local.ip().is_unspecified() {
            stream.local_addr().unwrap_or(self.local)
        } else {
            self.local
        };
        Ok(Accepted {
            stream,
            peer,
            local,
            kind: self.kind,
            listener: Arc::clone(&self.name),
            establish: self.establish.clone(),
        })
    }
}

/// Fails with [`TransportError::Register`] instead of letting tokio panic when
/// there is no runtime.
/// One `accept4(2)`, non-blocking and close-on-exec from the start. The new
/// socket is never registered with the acceptor's runtime: the worker that
/// serves it registers it with its own (tokio's `accept` would register it
/// here and deregister it again: two `epoll_ctl` calls per connection for
/// nothing).
fn accept_now(listener: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let (socket, addr) =
        SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a connection that is not TCP/IP"))?;
    Ok((socket.into(), peer))
}

pub(crate) fn ensure_runtime() -> Result<(), TransportError> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|e| TransportError::Register(io::Error::other(e)))
}

/// How an `accept(2)` error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptError {
    /// Concerns only the pending connection: retry at once.
    Connection,
    /// Out of descriptors or memory: back off.
    Resource,
    /// Unexpected: log loudly, back off.
    Other,
}

fn classify(error: &io::Error) -> AcceptError {
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock => return AcceptError::Connection,
        _ => {}
    }
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        // accept(2) on Linux: network errors already pending on the new socket
        // are reported by accept and should be treated like EAGAIN.
        const CONNECTION: &[i32] = &[
            libc::EPROTO,
            libc::ENOPROTOOPT,
            libc::EHOSTDOWN,
            libc::EHOSTUNREACH,
            libc::ENETDOWN,
            libc::ENETUNREACH,
            libc::EOPNOTSUPP,
            libc::EPERM, // a firewall rule refused the connection
        ];
        const RESOURCE: &[i32] = &[libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
        if CONNECTION.contains(&code) {
            return AcceptError::Connection;
        }
        if RESOURCE.contains(&code) {
            return AcceptError::Resource;
        }
    }
    AcceptError::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn loopback() -> ListenerSpec {
        ListenerSpec::tcp((Ipv4Addr::LOCALHOST, 0).into())
    }

    #[test]
    fn bind_port_zero_is_nonblocking_with_reuseaddr() {
        let listener = bind(&loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert!(SockRef::from(&listener).reuse_address().unwrap());
        // Non-blocking: accept with nobody connecting returns WouldBlock.
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn bind_conflict_names_the_address() {
        let first = bind(&loopback()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(&ListenerSpec::tcp(addr)).unwrap_err();
        assert!(
            matches!(&err, TransportError::Bind { addr: a, source } if *a == addr && source.kind() == io::ErrorKind::AddrInUse),
            "{err:?}"
        );
        assert!(err.to_string().contains(&addr.to_string()));
    }

    #[test]
    fn ipv6_listener_is_v6only() {
        // Skip quietly where the host has no IPv6 loopback.
        let Ok(listener) = bind(&ListenerSpec::tcp((Ipv6Addr::LOCALHOST, 0).into())) else {
            return;
        };
        assert!(SockRef::from(&listener).only_v6().unwrap());
    }

    #[test]
    fn from_std_outside_runtime_is_an_error_not_a_panic() {
        let listener = bind(&loopback()).unwrap();
        let err = Listener::from_std(listener, ListenerKind::Tcp).unwrap_err();
        assert!(matches!(err, TransportError::Register(_)), "{err:?}");
    }

    #[test]
    fn accept_error_classes() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc::ECONNABORTED)), AcceptError::Connection);
        assert_eq!(classify(&os(libc::EPROTO)), AcceptError::Connection);
        assert_eq!(classify(&os(libc::EMFILE)), AcceptError::Resource);
        assert_eq!(classify(&os(libc::ENFILE)), AcceptError::Resource);
        assert_eq!(classify(&os(libc::ENOBUFS)), AcceptError::Resource);
        assert_eq!(classify(&os(libc::EBADF)), AcceptError::Other);
    }

    #[test]
    fn socket_buffers_are_applied() {
        let listener = bind(&loopback()).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_socket_buffers(&client, Some(64 * 1024), Some(32 * 1024)).unwrap();
        let sock = SockRef::from(&client);
        // Linux doubles the requested size; other systems keep it.
        let send = sock.send_buffer_size().unwrap();
        let recv = sock.recv_buffer_size().unwrap();
        assert!(send >= 64 * 1024, "{send}");
        assert!(recv >= 32 * 1024, "{recv}");
        // `None` leaves what is there.
        set_socket_buffers(&client, None, None).unwrap();
        assert_eq!(sock.send_buffer_size().unwrap(), send);
        assert_eq!(sock.recv_buffer_size().unwrap(), recv);
    }

    #[tokio::test]
    async fn wildcard_listener_reports_the_address_reached() {
        let spec = ListenerSpec::tcp((Ipv4Addr::UNSPECIFIED, 0).into());
        let listener = Listener::from_std(bind(&spec).unwrap(), ListenerKind::Tcp).unwrap();
        let port = listener.local_addr().port();
        let client = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap();
        assert_eq!(accepted.local, client.peer_addr().unwrap());
        assert_eq!(accepted.peer, client.local_addr().unwrap());
    }

    #[tokio::test]
    async fn accept_sets_nodelay_and_reports_addresses() {
        let listener = Listener::from_std(bind(&loopback()).unwrap(), ListenerKind::Tcp).unwrap();
        let addr = listener.local_addr();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap();
        assert_eq!(accepted.peer, client.local_addr().unwrap());
        assert_eq!(accepted.local, addr);
        assert_eq!(accepted.kind, ListenerKind::Tcp);
        assert_eq!(&*accepted.listener, format!("tcp:{addr}"));
        assert!(accepted.stream.nodelay().unwrap());
        // Handed over non-blocking, ready for another runtime.
        let mut buf = [0u8; 1];
        let err = io::Read::read(&mut &accepted.stream, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[tokio::test]
    async fn a_spec_names_its_connections() {
        let spec = ListenerSpec {
            name: "internal".into(),
            ..loopback()
        };
        assert_eq!(&*loopback().name, "tcp:127.0.0.1:0");
        let listener = Listener::from_spec(bind(&spec).unwrap(), &spec).unwrap();
        assert_eq!(&**listener.name(), "internal");
        assert_eq!(listener.kind(), spec.kind);
        assert!(spec.establish.is_plain());
        let _client = tokio::net::TcpStream::connect(listener.local_addr())
            .await
            .unwrap();
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap();
        assert_eq!(&*accepted.listener, "internal");
    }
}
