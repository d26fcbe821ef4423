//! The single writer of the RCU route snapshot.
//!
//! Workers send route updates; this thread drains everything pending, applies
//! the batch with one clone-modify-swap and answers each sender with the
//! version that contains its updates. A burst of SUBSCRIBEs therefore costs
//! one snapshot rebuild per batch, not one per packet.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tern_routing::{RouteTable, RouteUpdate};
use tokio::sync::oneshot;

/// One worker's batch of updates, with where to say it is applied.
#[derive(Debug)]
pub(crate) struct RouteRequest {
    pub(crate) updates: Vec<RouteUpdate>,
    pub(crate) applied: Option<oneshot::Sender<u64>>,
}

/// Counters of the route writer.
#[derive(Debug, Default)]
pub(crate) struct RouteWriterStats {
    pub(crate) rebuilds: std::sync::atomic::AtomicU64,
    pub(crate) last_rebuild_micros: std::sync::atomic::AtomicU64,
}

/// Runs until every sender is dropped.
pub(crate) fn run(
    table: Arc<RouteTable>,
    rx: mpsc::Receiver<RouteRequest>,
    stats: &RouteWriterStats,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut updates = Vec::new();
    let mut waiters = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(req) = next {
            updates.extend(req.updates);
            waiters.extend(req.applied);
            next = rx.try_recv().ok();
        }
        let started = Instant::now();
        let version = table.apply(&updates);
        stats.rebuilds.fetch_add(1, Relaxed);
        stats.last_rebuild_micros.store(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
        tracing::trace!(version, updates = updates.len(), "route snapshot rebuilt");
        updates.clear();
        for w in waiters.drain(..) {
            let _ = w.send(version);
        }
    }
}
