//! The worker's 500 ms tick: counters and gauges to their shared slots,
//! parked keep-alive deadlines, session expiry, the heartbeat for
//! `/readyz`, the settings in force after a reload, worker 0's `$SYS`
//! topics, and the idle sweep.

use super::Worker;
use crate::client::{ClientState, SYS_ORIGIN};
use crate::shared::Shared;
use crate::sys::Totals;
use bytestring::ByteString;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tern_codec::{Publish, QoS};

/// Every how many 500 ms ticks idle connections are swept (2 s).
const IDLE_SWEEP_TICKS: u64 = 4;

impl Worker {
    /// One tick (`ticks` counts them from 1).
    pub(crate) fn tick(&self, ticks: u64) {
        self.sample_gauges(ticks);
        if let Some(slot) = self.shared.worker_stats.get(self.id) {
            self.stats.publish_to(slot);
        }
        let now = Instant::now();
        self.parking.expire(now);
        self.expire(now);
        self.beat(now);
        if ticks.is_multiple_of(IDLE_SWEEP_TICKS) {
            self.sweep_idle();
        }
    }

    /// The operational part: heartbeat, subscription count, the settings in
    /// force after a reload, and (worker 0) `$SYS`.
    fn beat(&self, now: Instant) {
        let health = &self.shared.health;
        health.beat(self.id, now);
        if let (Some(slot), Ok(subs)) = (health.subscriptions.get(self.id), self.subs.try_borrow())
        {
            slot.store(subs.subscription_count() as u64, Relaxed);
        }
        self.live.refresh(&self.shared.live);
        if self.id == 0 {
            self.publish_sys(now);
        }
    }

    /// Asks connections that were quiet for a whole sweep interval to give
    /// back their buffers; marks the others for the next sweep.
    fn sweep_idle(&self) {
        for c in self.clients.borrow().values() {
            if let ClientState::Online(cell) = &c.state {
                let Ok(mut cs) = cell.try_borrow_mut() else {
                    continue;
                };
                if cs.quiet && cs.out.is_empty() && !cs.parked {
                    // Quiet for a whole interval: give back what can be
                    // given back here; the task releases its read buffer.
                    cs.out.release_if_drained();
                    if let Some(conn) = cs.conn.as_mut() {
                        conn.release_memory();
                    }
                    cs.trim = true;
                    cs.wake();
                }
                cs.quiet = true;
            }
        }
    }

    /// Worker 0's part of the tick: publishes the `$SYS` topics when due.
    fn publish_sys(&self, now: Instant) {
        let interval = self.live.borrow().config.sys_interval;
        if interval == 0 {
            return;
        }
        let shared = &self.shared;
        let topics = {
            let mut state = shared.sys.lock().unwrap_or_else(|e| e.into_inner());
            if !state.due(now, interval) {
                return;
            }
            state.last_publish = Some(now);
            let totals = gather(shared);
            state.update(now, &totals);
            let uptime = now.saturating_duration_since(shared.health.started());
            state.topics(uptime, &totals)
        };
        // The broker's own messages are not messages received from clients,
        // nor dropped ones when nobody subscribes to `$SYS`: put those
        // counters back (nothing else runs on this thread meanwhile).
        let stats = &self.stats;
        let (received, unrouted) = (
            stats.publish_in_qos0.get(),
            stats.dropped_no_subscribers.get(),
        );
        for (topic, value) in topics {
            let publish = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: ByteString::from(topic),
                packet_id: None,
                properties: Default::default(),
                payload: bytes::Bytes::from(value),
            };
            self.publish_detached(now, SYS_ORIGIN, publish);
        }
        stats.publish_in_qos0.set(received);
        stats.dropped_no_subscribers.set(unrouted);
    }
}

/// Broker-wide totals for `$SYS`, from what the metrics read.
fn gather(shared: &Shared) -> Totals {
    let mut t = Totals::default();
    for ws in &shared.worker_stats {
        t.connected += ws.connections_current.load(Relaxed);
        t.received += ws.publish_in_qos0.load(Relaxed)
            + ws.publish_in_qos1.load(Relaxed)
            + ws.publish_in_qos2.load(Relaxed);
        t.sent += crate::stats::WorkerStats::published_out(ws);
        t.bytes_received += ws.bytes_in.load(Relaxed);
        t.bytes_sent += ws.bytes_out.load(Relaxed);
    }
    t.subscriptions = shared
        .health
        .subscriptions
        .iter()
        .map(|s| s.load(Relaxed))
        .sum();
    t.sessions = shared.registry.len() as u64;
    t.retained = shared
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len() as u64;
    t.rss = crate::sys::resident_bytes();
    t
}
