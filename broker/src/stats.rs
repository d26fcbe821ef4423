//! Worker-local counters. Each worker increments plain cells on its own
//! thread (no atomics, no locks on the message path); a snapshot is copied
//! into the worker's shared atomic slot on a timer for readers elsewhere.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tern_codec::QoS;

/// A worker-local counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(Cell<u64>);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.set(self.0.get().wrapping_add(1));
    }
    pub(crate) fn add(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }
    pub(crate) fn set(&self, v: u64) {
        self.0.set(v);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

macro_rules! worker_stats {
    ($($name:ident),* $(,)?) => {
        /// Counters of one worker.
        #[derive(Debug, Default)]
        pub(crate) struct WorkerStats { $(pub(crate) $name: Counter,)* }
        /// The same counters, readable from any thread.
        #[derive(Debug, Default)]
        pub(crate) struct SharedWorkerStats { $(pub(crate) $name: AtomicU64,)* }
        impl WorkerStats {
            /// Copies the counters into `dst`.
            pub(crate) fn publish_to(&self, dst: &SharedWorkerStats) {
                $(dst.$name.store(self.$name.get(), Relaxed);)*
            }
        }
        impl SharedWorkerStats {
            /// `(name, value)` of every counter.
            pub(crate) fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

worker_stats!(
    connections_accepted,
    connections_current,
    connections_rejected,
    events,
    publish_in_qos0,
    publish_in_qos1,
    publish_in_qos2,
    publish_out,
    bytes_in,
    bytes_out,
    dropped_no_subscribers,
    dropped_worker_queue_full,
    dropped_worker_gone,
    worker_queue_waits,
    publisher_pauses,
    slow_subscribers,
    dropped_writer_full,
    dropped_queue_full,
    dropped_qos0_offline,
    dropped_expired,
    dropped_too_large,
    dropped_sys_topic,
    queued_offline,
    shared_deliveries,
    shared_redeliveries,
    shared_passed_on,
    retained_rejected,
    malformed_packets,
    protocol_errors,
    sessions_expired,
);

impl WorkerStats {
    pub(crate) fn publish_in(&self, qos: QoS) {
        match qos {
            QoS::AtMostOnce => self.publish_in_qos0.inc(),
            QoS::AtLeastOnce => self.publish_in_qos1.inc(),
            QoS::ExactlyOnce => self.publish_in_qos2.inc(),
        }
    }
}

/// A warning logged at most once a second, saying how many were suppressed.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    last: Cell<Option<std::time::Instant>>,
    suppressed: Cell<u64>,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self {
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }
}

impl RateLimitedLog {
    pub(crate) fn warn(&self, worker: usize, what: &'static str) {
        let now = std::time::Instant::now();
        let due = self
            .last
            .get()
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1));
        if due {
            let suppressed = self.suppressed.replace(0);
            self.last.set(Some(now));
            tracing::warn!(worker, suppressed, "{what}");
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
        }
    }
}
