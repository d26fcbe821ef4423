//! The WebSocket upgrade of a connection accepted on a `ws` or `wss`
//! listener (after the TLS handshake for `wss`): the
//! HTTP handshake runs in the connection's task, bounded in time, before
//! the CONNECT is read. One call, [`upgrade`], so it slots into the
//! transport pipeline that runs before `connect::attach` (PROXY header →
//! TLS handshake → WebSocket upgrade).

use super::link::connect_timeout;
use crate::worker::Worker;
use std::net::SocketAddr;
use tern_transport::{Stream, WsSettings};

/// Runs the upgrade with the settings of the listener `stream` came from;
/// `None` when it failed (counted by reason, logged at debug; the client
/// got an HTTP error where it still listened).
pub(super) async fn upgrade(worker: &Worker, stream: Stream, peer: SocketAddr) -> Option<Stream> {
    let settings = settings_of(worker, stream.listener());
    // How long a client may take to send its upgrade request (and read the
    // answer): the listener's bound for the CONNECT that follows.
    let timeout = connect_timeout(&worker.live.runtime().config, stream.listener());
    match tokio::time::timeout(timeout, stream.accept_websocket(&settings)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            worker.stats.ws_upgrade_failed(Some(&e));
            tracing::debug!(%peer, reason = e.reason(), error = %e, "WebSocket upgrade failed");
            None
        }
        Err(_) => {
            worker.stats.ws_upgrade_failed(None);
            tracing::debug!(%peer, "no WebSocket upgrade within {timeout:?}");
            None
        }
    }
}

/// The transport's settings for the listener named `listener` (its `ws`
/// table; the defaults if the listener is not in the configuration).
fn settings_of(worker: &Worker, listener: &str) -> WsSettings {
    let live = worker.live.runtime();
    let ws = live
        .config
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .map(|l| l.ws.clone())
        .unwrap_or_default();
    WsSettings {
        path: ws.path,
        max_frame_size: ws.max_frame_size,
        ..WsSettings::default()
    }
}
