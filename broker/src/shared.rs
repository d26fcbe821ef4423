//! What the threads of one broker share: the configuration (the startup
//! one, and the one in force, which a reload swaps), the route snapshot, the
//! client-id registry, the retained store, each worker's inboxes, and what
//! the health endpoints and `$SYS` read.

use crate::client::Origin;
use crate::registry::Registry;
use crate::route_writer::RouteRequest;
use crate::stats::SharedWorkerStats;
use bytes::BytesMut;
use bytestring::ByteString;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tern_codec::{Connect, Publish};
use tern_config::Config;
use tern_routing::{RetainedStore, RouteTable, WorkerSet};
use tern_transport::{
    Accepted, ConnectRate, ConnectionLimiter, ConnectionPermit, DetachedStream, RateLimits,
    RateRefusal,
};
use tokio::sync::mpsc;

/// Deliveries to other workers that did not fit in their inbox now.
pub(crate) type PendingSends = Vec<(mpsc::Sender<Routed>, Routed)>;

/// What a `Routed` message for one member of a shared subscription carries.
#[derive(Debug)]
pub(crate) struct ShareHop {
    /// The shared subscription's full filter `$share/{group}/{filter}`.
    pub(crate) group: ByteString,
    /// Workers already found without a member: passing on skips them.
    pub(crate) tried: WorkerSet,
}

/// A message routed to another worker.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) msg: Arc<Publish>,
    pub(crate) origin: Origin,
    /// When the publishing worker received the message: a v5 Message Expiry
    /// Interval counts from here on every worker ([MQTT5-3.3.2-6]).
    pub(crate) received_at: std::time::Instant,
    /// `None`: for the receiving worker's ordinary subscribers. `Some`: for
    /// one member of this shared subscription only (see `share`); boxed so
    /// that ordinary messages stay small.
    pub(crate) share: Option<Box<ShareHop>>,
    /// With `durability = "sync"`: the publishing worker's token for this
    /// message; the receiving worker reports it (`Control::Durable`) once
    /// what it did with the message is durable.
    pub(crate) durable: Option<u64>,
}

impl Routed {
    /// A message for one member of the shared subscription `hop.group` on
    /// the receiving worker.
    pub(crate) fn for_share(
        msg: Arc<Publish>,
        origin: Origin,
        received_at: std::time::Instant,
        hop: ShareHop,
        durable: Option<u64>,
    ) -> Self {
        Self {
            msg,
            origin,
            received_at,
            share: Some(Box::new(hop)),
            durable,
        }
    }
}

/// A connection handed to the worker that is home to its client's session.
#[derive(Debug)]
pub(crate) struct Adopted {
    /// The connection, detached from the sending worker's runtime (it
    /// knows its listener).
    pub(crate) stream: DetachedStream,
    /// The client's address (what the first worker took it to be).
    pub(crate) peer: std::net::SocketAddr,
    /// Bytes read after the CONNECT packet.
    pub(crate) rest: BytesMut,
    pub(crate) connect: Box<Connect>,
    pub(crate) permit: Option<ConnectionPermit>,
    /// How many times this connection has been handed on already.
    pub(crate) hops: u8,
    /// The outcome of the enhanced authentication the first worker ran.
    pub(crate) auth: Option<Box<tern_session::auth::Authenticated>>,
}

/// Control messages to a worker.
#[derive(Debug)]
pub(crate) enum Control {
    Accepted(Accepted, Option<ConnectionPermit>),
    Adopt(Adopted),
    Shutdown {
        grace: Duration,
    },
    /// First step of a shutdown: every session is about to end, so publish
    /// the delayed wills now, then answer on `done`. Sent to every worker
    /// before any gets `Shutdown`, so a will reaches subscribers on other
    /// workers before they close.
    PublishWills {
        done: std_mpsc::Sender<()>,
    },
    /// The worker's store made commit `commit` durable: acknowledgements
    /// waiting for it can go (`durability = "sync"`).
    Synced {
        commit: u64,
    },
    /// The worker's store cannot write any more.
    StoreFailed,
    /// Another worker's store made durable (`ok`), or could not keep, the
    /// messages it took from this worker with these tokens (see
    /// `worker::durable`).
    Durable {
        tokens: Vec<u64>,
        ok: bool,
    },
}

/// A worker's inboxes, as seen from other threads.
#[derive(Debug)]
pub(crate) struct WorkerLink {
    pub(crate) data: mpsc::Sender<Routed>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) connections: AtomicUsize,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration the broker started with (what a reload cannot change).
    pub(crate) config: Config,
    /// The configuration in force (see `live`); workers read their copy.
    pub(crate) live: crate::live::Live,
    /// Password and ACL files in force (see `access`); a reload replaces them.
    pub(crate) access: Arc<crate::access::Access>,
    /// The persistence backend; each worker takes its observer (see `store`).
    pub(crate) store: Arc<dyn crate::store::StoreBackend>,
    /// The last order given to a retained set or clear (taken under the
    /// `retained` lock; see `StoreEvent::RetainedSet`).
    pub(crate) retained_order: std::sync::atomic::AtomicU64,
    /// The connection caps; a reload changes them in place.
    pub(crate) limiter: ConnectionLimiter,
    pub(crate) health: crate::health::Health,
    /// Worker 0's `$SYS` publisher state.
    pub(crate) sys: Mutex<crate::sys::SysState>,
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) route_tx: std_mpsc::Sender<RouteRequest>,
    pub(crate) registry: Registry,
    pub(crate) retained: Mutex<RetainedStore>,
    pub(crate) workers: Vec<WorkerLink>,
    pub(crate) worker_stats: Vec<SharedWorkerStats>,
    pub(crate) route_stats: Arc<crate::route_writer::RouteWriterStats>,
    /// Connections the acceptor refused at `max_connections` or
    /// `max_connections_per_ip` (`tern_connections_rejected_total{reason="limit"}`).
    pub(crate) rejected_limit: std::sync::atomic::AtomicU64,
    /// Connect rate and flapping ban per source address (see [`Shared::admit`]).
    pub(crate) rate: ConnectRate,
    /// Refused at a listener's own `max_connections` (`reason="listener_limit"`).
    pub(crate) rejected_listener_limit: std::sync::atomic::AtomicU64,
    /// Refused by [`Shared::admit`] (`reason="rate"`, `reason="banned"`).
    pub(crate) rejected_rate: std::sync::atomic::AtomicU64,
    pub(crate) rejected_banned: std::sync::atomic::AtomicU64,
    /// The TLS listeners' certificates (reloads, their counters).
    pub(crate) certs: Arc<crate::certs::Certs>,
}

impl Shared {
    /// Counts a new connection from `ip` against the connect rate and the
    /// flapping ban (`[limits] connect_rate_per_ip`, `flap_*`); false means
    /// close it now (the refusal is counted and, when it starts a ban,
    /// logged). One short lock, no allocation for a known address.
    ///
    /// The acceptor calls it with the socket's peer address. A listener
    /// whose client address is known only later (a PROXY protocol header,
    /// read by the connection task) must not be checked on the acceptor
    /// with the proxy's address: it calls this from the connection task
    /// with the address the header reports, and closes the connection when
    /// it returns false, before reading CONNECT.
    pub(crate) fn admit(&self, ip: std::net::IpAddr) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.rate.check(ip, std::time::Instant::now()) {
            Ok(()) => true,
            Err(RateRefusal::Rate) => {
                self.rejected_rate.fetch_add(1, Relaxed);
                tracing::debug!(%ip, "connection rate limit reached; refusing connection");
                false
            }
            Err(RateRefusal::BanStarted) => {
                self.rejected_banned.fetch_add(1, Relaxed);
                let limits = self.rate.limits();
                tracing::warn!(%ip, connects = limits.flap_connects, window = ?limits.flap_window,
                    ban = ?limits.ban, "address connects too often; banned");
                false
            }
            Err(RateRefusal::Banned) => {
                self.rejected_banned.fetch_add(1, Relaxed);
                tracing::debug!(%ip, "address banned; refusing connection");
                false
            }
        }
    }
}

/// The connect rate and flapping ban settings of `[limits]`.
pub(crate) fn rate_limits(limits: &tern_config::Limits) -> RateLimits {
    RateLimits {
        per_minute: limits.connect_rate_per_ip,
        burst: limits.connect_burst_per_ip,
        flap_connects: limits.flap_connects,
        flap_window: Duration::from_secs(limits.flap_window.into()),
        ban: Duration::from_secs(limits.flap_ban.into()),
        max_tracked: limits.max_tracked_ips,
        ipv6_prefix: limits.ipv6_prefix_len,
    }
}

/// The connection caps of a configuration: global, per IP, and per
/// listener (by index in `config.listeners`, the order they are bound in).
pub(crate) fn connection_limiter(config: &Config) -> ConnectionLimiter {
    let per_listener: Vec<usize> = config
        .listeners
        .iter()
        .map(|l| l.limits.max_connections)
        .collect();
    ConnectionLimiter::with_listeners(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
        &per_listener,
    )
}
