//! The steps a connection goes through between accept and its first
//! application byte, run by the task that serves it (never the acceptor, so
//! a slow client holds up nobody else): the PROXY header when the listener
//! expects one, then the TLS handshake on TLS listeners, all within the
//! listener's handshake timeout.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::{self, ProxyError};
use crate::stream::Io;
use crate::tls::{Socket, TlsServer};
use crate::Stream;

/// How a listener sets up its connections. The default is plain: nothing
/// to do.
#[derive(Debug, Clone)]
pub struct Establish {
    /// Every connection starts with a PROXY protocol v1 or v2 header (and
    /// one without it is refused); the address it reports is the client's.
    pub proxy_protocol: bool,
    /// Run a TLS handshake with this configuration.
    pub tls: Option<Arc<TlsServer>>,
    /// How long the steps together may take.
    pub timeout: Duration,
}

impl Default for Establish {
    fn default() -> Self {
        Self {
            proxy_protocol: false,
            tls: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

impl Establish {
    /// The default handshake timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// True when there is no step to run.
    pub fn is_plain(&self) -> bool {
        !self.proxy_protocol && self.tls.is_none()
    }
}

/// A connection ready for the application.
#[derive(Debug)]
pub struct Established {
    /// The stream, TLS when the listener is.
    pub stream: Stream,
    /// The client's address: the one the PROXY header reported, or the
    /// socket's peer.
    pub peer: SocketAddr,
    /// True when `peer` comes from a PROXY header.
    pub proxied: bool,
}

/// Why setting up a connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstablishError {
    /// The steps did not finish within [`Establish::timeout`].
    #[error("handshake not done within {0:?}")]
    Timeout(Duration),
    /// The PROXY header is missing or malformed.
    #[error("{0}")]
    Proxy(ProxyError),
    /// The TLS handshake failed (bad certificate, no common version or
    /// cipher, not TLS at all, …).
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The connection closed or failed while setting up.
    #[error("connection lost during the handshake: {0}")]
    Io(io::Error),
}

/// The `reason` a failure is counted under; a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// [`EstablishError::Timeout`].
    Timeout,
    /// [`EstablishError::Proxy`].
    Proxy,
    /// [`EstablishError::Tls`].
    Tls,
    /// [`EstablishError::Io`].
    Io,
}

impl EstablishError {
    /// The reason to count it under.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Timeout(_) => FailureReason::Timeout,
            Self::Proxy(_) => FailureReason::Proxy,
            Self::Tls(_) => FailureReason::Tls,
            Self::Io(_) => FailureReason::Io,
        }
    }
}

impl Stream {
    /// Runs the listener's steps on a freshly accepted stream (`peer`: the
    /// socket's remote address). A plain listener's stream comes back as
    /// it is.
    pub async fn establish(
        self,
        how: &Establish,
        peer: SocketAddr,
    ) -> Result<Established, EstablishError> {
        if how.is_plain() {
            return Ok(Established {
                stream: self,
                peer,
                proxied: false,
            });
        }
        tokio::time::timeout(how.timeout, self.run_steps(how, peer))
            .await
            .map_err(|_| EstablishError::Timeout(how.timeout))?
    }

    async fn run_steps(
        self,
        how: &Establish,
        mut peer: SocketAddr,
    ) -> Result<Established, EstablishError> {
        let Self { io, listener } = self;
        let Io::Tcp(mut tcp) = io else {
            return Err(EstablishError::Io(io::Error::other(
                "stream is set up already",
            )));
        };
        let mut proxied = false;
        // 1. PROXY header.
        if how.proxy_protocol {
            let header = proxy::read_header(&mut tcp).await.map_err(|e| match e {
                proxy::ReadError::Proxy(p) => EstablishError::Proxy(p),
                proxy::ReadError::Closed => EstablishError::Io(io::ErrorKind::UnexpectedEof.into()),
                proxy::ReadError::Io(e) => EstablishError::Io(e),
            })?;
            if let Some((source, _)) = header.addrs {
                peer = source;
                proxied = true;
            }
        }
        // 2. TLS handshake.
        let io = match &how.tls {
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let stream =
                    acceptor
                        .accept(Socket::Live(tcp))
                        .await
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
                                EstablishError::Tls(e)
                            }
                            _ => EstablishError::Io(e),
                        })?;
                Io::Tls(Box::new(stream))
            }
            None => Io::Tcp(tcp),
        };
        // 3. The WebSocket upgrade (ws, wss) goes here, over `io`.
        Ok(Established {
            stream: Self { io, listener },
            peer,
            proxied,
        })
    }
}
