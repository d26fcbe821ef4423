//! Why the broker could not start.

use std::net::SocketAddr;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: tern_transport::TransportError,
    },
    /// A listener kind the transport does not have yet (validation
    /// refuses it first; this guards a `Config` built by hand).
    #[error("listener `{name}`: kind \"{kind}\" is not supported yet")]
    ListenerKind {
        name: String,
        kind: tern_config::ListenerKindConfig,
    },
    /// A TLS listener's certificate, key or client CAs did not load.
    #[error("listener `{name}`: {source}")]
    Tls {
        name: String,
        source: tern_transport::TlsError,
    },
    #[error("cannot start the metrics endpoint: {0}")]
    Metrics(String),
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The admin endpoint's token file cannot be read or holds no valid token.
    #[error("{0}")]
    AdminToken(String),
    #[error("cannot load an access file: {0}")]
    Access(#[from] crate::access::AccessLoadError),
    #[error("cannot prepare the [auth] user table: {0}")]
    Auth(#[from] tern_session::auth::ScramError),
    /// The store (`persistence = "on"`) cannot be opened or read back.
    #[error("{0}")]
    Store(#[from] tern_store::StoreError),
}
