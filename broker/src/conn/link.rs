//! A connection's transport side: the socket, its read buffer and decoder,
//! its connection permit, and the guard that counts its task in and out of
//! the worker.

use crate::client::ClientKey;
use crate::deliver::ConnCell;
use crate::stats::WorkerStats;
use crate::worker::Worker;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tern_codec::{encode, Decoder, Packet, ProtocolVersion};
use tern_session::CloseReason;
use tern_transport::{ConnectionPermit, Stream};
use tokio::io::AsyncWriteExt;

/// How long a new connection on `listener` may take to send its CONNECT:
/// the listener's own `connect_timeout`, else `[limits]`'s (the settings in
/// force when the connection starts).
pub(super) fn connect_timeout(config: &tern_config::Config, listener: &str) -> Duration {
    let global = config.limits.connect_timeout;
    let secs = config
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .map_or(global, |l| l.limits.connect_timeout_or(global));
    Duration::from_secs(secs.into())
}

/// How long a closing connection may take to flush what is queued for it.
pub(super) const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Read sizes: start small (an idle or slow client), double while reads fill
/// the buffer, up to `MAX_READ` for a busy publisher.
pub(super) const MIN_READ: usize = 1024;
pub(super) const MAX_READ: usize = 64 * 1024;
/// How many times a connection may be handed between workers.
pub(super) const MAX_HOPS: u8 = 3;

/// Counts a connection task in and out of the worker, even when it panics.
pub(super) struct TaskGuard {
    pub(super) worker: Rc<Worker>,
    pub(super) attached: Option<(ClientKey, Rc<ConnCell>)>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some((key, cell)) = self.attached.take() {
            if std::thread::panicking() {
                tracing::error!("connection task panicked; closing it");
            }
            if let Ok(cs) = cell.try_borrow() {
                if cs.conn.is_some() {
                    drop(cs);
                    self.worker
                        .detach(Instant::now(), key, &cell, CloseReason::NetworkError);
                }
            }
        }
        let w = &self.worker;
        w.live_tasks.set(w.live_tasks.get().saturating_sub(1));
        if let Some(link) = w.shared.workers.get(w.id) {
            link.connections
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        w.stats.connections_current.set(w.live_tasks.get() as u64);
        w.tasks_done.notify_waiters();
    }
}

pub(super) fn start_task(worker: &Rc<Worker>) -> TaskGuard {
    worker.live_tasks.set(worker.live_tasks.get() + 1);
    worker
        .stats
        .connections_current
        .set(worker.live_tasks.get() as u64);
    TaskGuard {
        worker: Rc::clone(worker),
        attached: None,
    }
}

/// A connection's transport side, boxed once for its whole life so the
/// task's future stays a few words (see `run`). Dropped in field order: the
/// socket and the connection slot go before the task is counted out.
pub(super) struct Link {
    pub(super) stream: Stream,
    pub(super) rbuf: BytesMut,
    pub(super) decoder: Decoder,
    pub(super) permit: Option<ConnectionPermit>,
    pub(super) peer: SocketAddr,
    pub(super) guard: TaskGuard,
}

impl Link {
    pub(super) fn new(
        stream: Stream,
        peer: SocketAddr,
        rbuf: BytesMut,
        permit: Option<ConnectionPermit>,
        guard: TaskGuard,
    ) -> Box<Self> {
        let max_packet = guard.worker.live.borrow().session.max_packet_size;
        Box::new(Self {
            stream,
            rbuf,
            decoder: Decoder::new(max_packet),
            permit,
            peer,
            guard,
        })
    }
}

/// Writes one packet straight to the socket (before the connection has a
/// writer: refusals, CONNACK of an exchange).
pub(super) async fn write_packet(
    stream: &mut Stream,
    version: ProtocolVersion,
    packet: &Packet,
    stats: &WorkerStats,
) -> std::io::Result<()> {
    stats.packet_out(packet);
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).map_err(std::io::Error::other)?;
    stream.write_all(&buf).await?;
    stream.flush().await
}

/// How long a connection the server closes with a reason lingers.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// After the server's last word on a connection (an error DISCONNECT or a
/// refusing CONNACK): shuts the write side down, then discards what the
/// client still sends until it closes or [`LINGER`] passes. Closing at once
/// while the client is still writing makes the kernel answer with a reset,
/// and the client may never read the reason.
pub(super) async fn linger(stream: &mut Stream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 256];
        while let Ok(n) = tokio::io::AsyncReadExt::read(stream, &mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;
    use std::time::Duration;

    #[test]
    fn connect_timeout_is_the_listeners_or_the_global_one() {
        let config = tern_config::parse_str(
            "[limits]\nconnect_timeout = 7\n\
             [[listener]]\nname = \"strict\"\nbind = \"127.0.0.1:1\"\nlimits = { connect_timeout = 2 }\n\
             [[listener]]\nname = \"plain\"\nbind = \"127.0.0.1:2\"\n",
        )
        .unwrap();
        let timeout = |name| super::connect_timeout(&config, name);
        assert_eq!(timeout("strict"), Duration::from_secs(2));
        assert_eq!(timeout("plain"), Duration::from_secs(7));
        assert_eq!(timeout("unknown"), Duration::from_secs(7));
    }

    // What every parked connection keeps: keep it from growing unnoticed.
    #[test]
    fn parked_state_stays_small() {
        assert!(
            // 184: 168 plus the name of the listener the connection came
            // in on (`Stream`, an `Arc<str>`), for its identity.
            size_of::<super::Link>() <= 184,
            "{}",
            size_of::<super::Link>()
        );
        // 680: 672 plus the session's pointer to enhanced-authentication
        // state (`Option<Box<_>>`, null unless the client used it); 696:
        // plus the connection's own authorization policy (an `Arc<dyn
        // Authorizer>`, shared by every connection without an ACL) and the
        // pointer to a running retained replay (`Option<Box<_>>`); 704: plus
        // the acknowledgements held for the store (`Option<Box<_>>`, null
        // unless durability = "sync" made one wait).
        assert!(
            size_of::<crate::deliver::ConnShared>() <= 704,
            "{}",
            size_of::<crate::deliver::ConnShared>()
        );
    }
}
