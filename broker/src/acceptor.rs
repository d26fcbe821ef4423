//! The acceptor thread: accepts on every listener, checks the peer against
//! the connect rate, the flapping ban (`Shared::admit`) and the connection
//! caps (global, per IP, the listener's own), and gives each connection it
//! keeps to the worker with the fewest live connections. A refused
//! connection is closed here, before any worker sees it, and counted by
//! reason.
//!
//! Why not SO_REUSEPORT per worker: the kernel spreads connections by a hash
//! of the 4-tuple, which cannot follow load, and a session's home worker is
//! decided by its client id anyway (a reconnecting client is handed to the
//! worker holding its session, see `conn::hand_over`). One acceptor costs one
//! channel send per connection.

use crate::shared::{Control, Shared};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_transport::{ConnectionLimiter, LimitExceeded, Listener, ListenerSpec};
use tokio::sync::watch;

/// Runs the accept loops until `stop` turns true. Each listener comes
/// bound, with the spec it was bound from (its name and kind).
pub(crate) async fn run(
    shared: Arc<Shared>,
    listeners: Vec<(ListenerSpec, std::net::TcpListener)>,
    limiter: ConnectionLimiter,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut registered = true;
    for (index, (spec, l)) in listeners.into_iter().enumerate() {
        let listener = match Listener::from_spec(l, &spec) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listener = %spec.name, error = %e, "cannot register listener");
                registered = false;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let limiter = limiter.clone();
        // Behind a PROXY header the socket's peer is the proxy: the client's
        // address is charged by the worker once the header is read.
        let proxied = spec.establish.proxy_protocol;
        tasks.spawn(async move {
            let mut next = 0usize;
            // Refusals are logged at warn at most once a second (a flood
            // must not become a flood of log lines), the rest at debug.
            let mut warned: Option<Instant> = None;
            let mut warn_now = move || {
                let now = Instant::now();
                let due = warned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
                if due {
                    warned = Some(now);
                }
                due
            };
            loop {
                let accepted = listener.accept().await;
                let ip = accepted.peer.ip();
                // Behind a PROXY header the connection task checks the
                // reported address (`Shared::admit`) once it has read it.
                if !proxied && !shared.admit(ip) {
                    continue;
                }
                let permit = if proxied {
                    limiter.acquire_unattributed(Some(index))
                } else {
                    limiter.acquire_on(Some(index), ip)
                };
                let permit = match permit {
                    Ok(permit) => permit,
                    Err(why) => {
                        let counter = if why == LimitExceeded::Listener {
                            &shared.rejected_listener_limit
                        } else {
                            &shared.rejected_limit
                        };
                        counter.fetch_add(1, Relaxed);
                        if warn_now() {
                            tracing::warn!(peer = %accepted.peer, listener = %spec.name,
                                "{why}; refusing connections (logged at most once a second)");
                        } else {
                            tracing::debug!(peer = %accepted.peer, listener = %spec.name,
                                "{why}; refusing connection");
                        }
                        continue;
                    }
                };
                let live = shared.live.load();
                if let Err(e) = tern_transport::set_socket_buffers(
                    &accepted.stream,
                    live.config.send_buffer(),
                    live.config.recv_buffer(),
                ) {
                    tracing::debug!(error = %e, "cannot set socket buffer sizes");
                }
                let n = shared.workers.len();
                let mut best = next % n;
                let mut best_load = usize::MAX;
                for i in 0..n {
                    let w = (next + i) % n;
                    let load = shared.workers[w].connections.load(Relaxed);
                    if load < best_load {
                        best = w;
                        best_load = load;
                    }
                }
                next = next.wrapping_add(1);
                let link = &shared.workers[best];
                link.connections.fetch_add(1, Relaxed);
                if link
                    .control
                    .send(Control::Accepted(accepted, Some(permit)))
                    .is_err()
                {
                    link.connections.fetch_sub(1, Relaxed);
                }
            }
        });
    }
    // Ready (for `/readyz`) once every listener accepts.
    shared.health.accepting.store(registered, Relaxed);
    let _ = stop.wait_for(|s| *s).await;
    shared.health.accepting.store(false, Relaxed);
    tasks.abort_all();
}
