//! What the threads of one broker share: the configuration (the startup
//! one, and the one in force, which a reload swaps), the route snapshot, the
//! client-id registry, the retained store, each worker's inboxes, and what
//! the health endpoints and `$SYS` read.

use crate::registry::Registry;
use crate::route_writer::RouteRequest;
use crate::stats::SharedWorkerStats;
use crate::worker::Origin;
use bytes::BytesMut;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tern_codec::{Connect, Publish};
use tern_config::Config;
use tern_routing::{RetainedStore, RouteTable};
use tern_transport::{Accepted, ConnectionLimiter, ConnectionPermit};
use tokio::sync::mpsc;

/// A message routed to another worker.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) msg: Arc<Publish>,
    pub(crate) origin: Origin,
}

/// A connection handed to the worker that is home to its client's session.
#[derive(Debug)]
pub(crate) struct Adopted {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: std::net::SocketAddr,
    /// Bytes read after the CONNECT packet.
    pub(crate) rest: BytesMut,
    pub(crate) connect: Box<Connect>,
    pub(crate) permit: Option<ConnectionPermit>,
    /// How many times this connection has been handed on already.
    pub(crate) hops: u8,
}

/// Control messages to a worker.
#[derive(Debug)]
pub(crate) enum Control {
    Accepted(Accepted, Option<ConnectionPermit>),
    Adopt(Adopted),
    Shutdown { grace: Duration },
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
}
