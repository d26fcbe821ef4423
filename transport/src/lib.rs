//! Listeners and connection streams for Tern. Knows no MQTT.
//!
//! Call order:
//!
//! 1. On the main thread, [`bind`] every [`ListenerSpec`] (so bind errors surface
//!    before any thread starts). It returns a non-blocking `std::net::TcpListener`.
//! 2. On the acceptor thread, inside its tokio runtime, wrap each one with
//!    [`Listener::from_spec`] and loop on [`Listener::accept`]. Accept errors are
//!    never fatal: they are logged and retried after a short backoff.
//! 3. Check the peer against the shared [`ConnectRate`] (connects per
//!    address, flapping ban) and [`ConnectionLimiter`] (live connections in
//!    total, per address and per listener); keep the [`ConnectionPermit`]
//!    with the connection so the slot frees when it drops. Where the real
//!    client address is known only later (a PROXY header), call
//!    [`ConnectRate::check`] again with it there.
//! 4. Send the [`Accepted`] (its stream is a plain, `Send`, non-blocking
//!    `std::net::TcpStream`) to a worker, which turns it into a [`Stream`] with
//!    [`Stream::from_accepted`] inside its own runtime.
//!
//! 5. In the worker, [`Stream::establish`] runs the listener's
//!    [`Establish`] steps (PROXY header, TLS handshake) with its timeout;
//!    the [`Established`] peer is the client's address (the proxy's report
//!    on a PROXY listener). For a PROXY listener the acceptor takes the
//!    connection slot without a source IP
//!    ([`ConnectionLimiter::acquire_unattributed`]) and the worker charges
//!    the reported address ([`ConnectionPermit::attribute`]).
//!
//! 6. To move a connection to another worker (the one holding its client's
//!    session), [`Stream::detach`] it into a `Send` [`DetachedStream`] and
//!    [`Stream::attach`] it in the other worker's runtime.
//!
//! 4a. On a WebSocket listener, the worker runs the HTTP upgrade with
//!    [`Stream::accept_websocket`] (bounded by the caller's timeout) before
//!    anything else is read.
//!
//! [`Stream`] wraps an enum over transports (TCP, TLS, WebSocket over
//! either) implementing `AsyncRead + AsyncWrite`, with vectored
//! writes forwarded so header + payload go out in one `writev`. It and
//! [`Accepted`] carry the name of the listener they came from
//! ([`ListenerSpec::name`]).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod establish;
mod limiter;
mod listener;
pub mod proxy;
mod rate;
mod stream;
pub mod tls;
pub mod ws;

pub use establish::{Establish, EstablishError, Established, FailureReason};
pub use limiter::{ConnectionLimiter, ConnectionPermit, LimitExceeded};
pub use listener::{bind, set_socket_buffers, Accepted, Listener, ListenerKind, ListenerSpec};
pub use rate::{ConnectRate, RateLimits, RateRefusal, RateStats};
pub use stream::{DetachedStream, Stream};
pub use tls::{CertSubject, TlsError, TlsFiles, TlsServer, TlsVersion};
pub use ws::{UpgradeError, WsSettings};

use std::io;
use std::net::SocketAddr;

/// Errors from binding listeners and setting up streams.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Creating, configuring, binding or listening on a socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the [`ListenerSpec`].
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Setting a socket option failed.
    #[error("cannot set socket option {option}: {source}")]
    SocketOption {
        /// The option, e.g. `SO_SNDBUF`.
        option: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Registering a socket with the tokio runtime failed (for example when
    /// called outside a runtime, or the process is out of file descriptors).
    #[error("cannot register socket with the runtime: {0}")]
    Register(#[source] io::Error),
}
