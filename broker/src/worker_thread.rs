//! A worker's thread: its current-thread runtime and the loops it runs — the
//! 500 ms tick, the parked connections' resume loop, the data inbox
//! (messages routed from other workers) and the control inbox (new and
//! handed-over connections, shutdown). See `worker` for what it owns.

use crate::conn;
use crate::deliver;
use crate::shared::{Control, Routed, Shared};
use crate::worker::Worker;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Starts worker `id` on its own thread.
pub(crate) fn spawn(
    id: usize,
    shared: Arc<Shared>,
    mut data: mpsc::Receiver<Routed>,
    mut control: mpsc::UnboundedReceiver<Control>,
    ready: std::sync::mpsc::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tern-worker-{id}"))
        .spawn(move || {
            let Some(rt) = crate::runtime::current_thread_runtime("worker") else {
                return;
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let worker = Rc::new(Worker::new(id, Arc::clone(&shared)));
                // What the store kept is in place before anyone connects.
                worker.restore().await;
                let _ = ready.send(());
                let ticker = Rc::clone(&worker);
                tokio::task::spawn_local(async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
                    let mut ticks = 0u64;
                    loop {
                        every.tick().await;
                        ticks += 1;
                        ticker.tick(ticks);
                    }
                });
                let parking = Rc::clone(&worker);
                tokio::task::spawn_local(async move { parking.parking.run().await });
                let w = Rc::clone(&worker);
                tokio::task::spawn_local(async move {
                    let mut batch = Vec::with_capacity(256);
                    let mut congested = Vec::new();
                    while data.recv_many(&mut batch, 256).await > 0 {
                        w.stats.events.add(batch.len() as u64);
                        let mut now = Instant::now();
                        for routed in batch.drain(..) {
                            let passed = match &routed.share {
                                None => {
                                    w.deliver_local_at(
                                        now,
                                        &routed.msg,
                                        routed.received_at,
                                        routed.origin,
                                        &mut congested,
                                    );
                                    false
                                }
                                Some(hop) => {
                                    w.deliver_routed_share(now, &routed, hop, &mut congested)
                                }
                            };
                            if let (Some(token), false) = (routed.durable, passed) {
                                w.took_durable(routed.origin.worker, token);
                            }
                            // Let congested subscribers drain before taking
                            // more: meanwhile the inbox fills and holds back
                            // the other workers' publishers (bounded by the pause).
                            if !congested.is_empty() {
                                deliver::wait_for_room(&congested, w.marks, &w.stats).await;
                                congested.clear();
                                now = Instant::now();
                            }
                        }
                    }
                });
                while let Some(msg) = control.recv().await {
                    match msg {
                        Control::Accepted(accepted, permit) => {
                            conn::spawn_accepted(&worker, accepted, permit)
                        }
                        Control::Adopt(adopted) => conn::spawn_adopted(&worker, adopted),
                        Control::Synced { commit } => worker.synced(commit),
                        Control::StoreFailed => worker.store_failed(),
                        Control::Durable { tokens, ok } => {
                            for token in tokens {
                                if ok {
                                    worker.durable_done(token);
                                } else {
                                    worker.durable_failed(token);
                                }
                            }
                        }
                        Control::PublishWills { done } => {
                            worker.begin_shutdown(Instant::now());
                            let _ = done.send(());
                        }
                        Control::Shutdown { grace } => {
                            worker.begin_shutdown(Instant::now());
                            // Wills other workers published just before
                            // reach this worker's subscribers before they close.
                            worker.drain_inbox().await;
                            worker.close_all();
                            let drained = tokio::time::timeout(grace, async {
                                while worker.live_tasks.get() > 0 {
                                    worker.tasks_done.notified().await;
                                }
                            })
                            .await;
                            if drained.is_err() {
                                tracing::warn!(
                                    worker = id,
                                    open = worker.live_tasks.get(),
                                    "grace period over; closing remaining connections"
                                );
                            }
                            break;
                        }
                    }
                }
                // What the grace period left parked is closed as if the
                // network had failed (and the worker's cycle through the
                // parked connections' guards is broken).
                worker.parking.clear();
                // The loop turns no more: what the store was told goes to
                // disk now.
                worker.store.close();
            });
        })
}
