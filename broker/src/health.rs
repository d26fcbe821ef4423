//! What `/healthz` and `/readyz` look at, and other operational state that
//! threads other than the workers read: each worker's heartbeat (stamped by
//! its 500 ms tick, so checking it adds nothing to the message path), its
//! subscription count, whether the acceptor is accepting, reload counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// A worker whose last heartbeat is older than this is not ready: four
/// missed ticks.
pub(crate) const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(2);

/// Heartbeats, listener state and reload counts.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    /// Per worker: milliseconds since `started` at its last tick, plus one
    /// (0 = never ticked).
    beats: Vec<AtomicU64>,
    /// Per worker: subscriptions held, copied at each tick.
    pub(crate) subscriptions: Vec<AtomicU64>,
    /// Every listener is registered and the acceptor has not stopped.
    pub(crate) accepting: AtomicBool,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    /// Admin requests refused for a missing or wrong bearer token.
    pub(crate) admin_unauthorized: AtomicU64,
}

impl Health {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            started: Instant::now(),
            beats: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            subscriptions: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            accepting: AtomicBool::new(false),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            admin_unauthorized: AtomicU64::new(0),
        }
    }

    /// When the broker started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Worker `id` is alive at `now`.
    pub(crate) fn beat(&self, id: usize, now: Instant) {
        if let Some(b) = self.beats.get(id) {
            b.store(self.millis(now) + 1, Relaxed);
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// `Ok` when the listeners accept and every worker ticked within
    /// [`HEARTBEAT_DEADLINE`] of `now`; else why not, in one line.
    pub(crate) fn ready(&self, now: Instant) -> Result<(), String> {
        if !self.accepting.load(Relaxed) {
            return Err("MQTT listeners are not accepting".into());
        }
        let now_ms = self.millis(now);
        let deadline = HEARTBEAT_DEADLINE.as_millis() as u64;
        let late: Vec<String> = self
            .beats
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b.load(Relaxed) {
                0 => Some(format!("worker {i} has not started")),
                t if now_ms.saturating_sub(t - 1) > deadline => Some(format!(
                    "worker {i} last answered {} ms ago",
                    now_ms.saturating_sub(t - 1)
                )),
                _ => None,
            })
            .collect();
        if late.is_empty() {
            Ok(())
        } else {
            Err(late.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_listeners_and_fresh_heartbeats() {
        let h = Health::new(2);
        let t0 = h.started();
        assert_eq!(h.ready(t0).unwrap_err(), "MQTT listeners are not accepting");
        h.accepting.store(true, Relaxed);
        assert_eq!(
            h.ready(t0).unwrap_err(),
            "worker 0 has not started; worker 1 has not started"
        );
        h.beat(0, t0);
        h.beat(1, t0 + Duration::from_millis(500));
        assert_eq!(h.ready(t0 + Duration::from_secs(2)), Ok(()));
        let later = t0 + Duration::from_millis(2600);
        h.beat(0, later);
        assert_eq!(
            h.ready(later).unwrap_err(),
            "worker 1 last answered 2100 ms ago"
        );
        h.beat(7, later); // no such worker: ignored
        h.accepting.store(false, Relaxed);
        assert!(h.ready(later).is_err());
    }
}
