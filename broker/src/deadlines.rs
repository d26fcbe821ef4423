//! A sans-IO schedule of deadlines: at most one per key, each carrying a
//! value, popped in deadline order. No clock is read: every call that asks
//! "what is due" takes `now`, so the schedule is tested in virtual time.
//!
//! A worker keeps two: when each offline session expires, and when each
//! delayed will is published (see `expiry`). Both are driven by the worker's
//! 500 ms tick, with a bound on the work done per tick.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

use crate::client::ClientKey;

/// Deadlines by key; scheduling a key again replaces its deadline and value.
///
/// Cancelling is exact (the `(deadline, key)` pair is removed from the
/// order), so the schedule never holds more entries than live keys.
#[derive(Debug)]
pub(crate) struct Deadlines<K, V> {
    /// `(deadline, key)` of every entry, soonest first.
    order: BTreeSet<(Instant, K)>,
    entries: HashMap<K, (Instant, V), ahash::RandomState>,
}

impl<K, V> Default for Deadlines<K, V> {
    fn default() -> Self {
        Self {
            order: BTreeSet::new(),
            entries: HashMap::default(),
        }
    }
}

impl<K: Copy + Ord + Hash, V> Deadlines<K, V> {
    /// Schedules `value` for `key` at `at`; returns the value it replaces.
    pub(crate) fn schedule(&mut self, key: K, at: Instant, value: V) -> Option<V> {
        let old = self.cancel(key);
        self.order.insert((at, key));
        self.entries.insert(key, (at, value));
        old
    }

    /// Removes the entry of `key`, returning its value.
    pub(crate) fn cancel(&mut self, key: K) -> Option<V> {
        let (at, value) = self.entries.remove(&key)?;
        self.order.remove(&(at, key));
        Some(value)
    }

    /// Removes and returns the soonest entry whose deadline is at or before
    /// `now` (ties in key order).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(K, V)> {
        let &(at, key) = self.order.first()?;
        if at > now {
            return None;
        }
        self.order.pop_first();
        let (_, value) = self.entries.remove(&key)?;
        Some((key, value))
    }

    /// Removes every entry, soonest first (shutdown).
    pub(crate) fn drain_all(&mut self) -> Vec<(K, V)> {
        let order = std::mem::take(&mut self.order);
        let mut entries = std::mem::take(&mut self.entries);
        order
            .into_iter()
            .filter_map(|(_, key)| entries.remove(&key).map(|(_, v)| (key, v)))
            .collect()
    }
}

/// Inspection for tests.
/// A worker's offline-session deadlines, keyed by the session's client
/// key (see `worker/expiry.rs`).
#[derive(Debug, Default)]
pub(crate) struct SessionTimers {
    /// When each offline session ends.
    pub(crate) sessions: Deadlines<ClientKey, ()>,
    /// Delayed wills of offline sessions, by when they are due.
    pub(crate) wills: Deadlines<ClientKey, tern_codec::Publish>,
    /// Set at shutdown: every session ends now, so wills are not delayed.
    pub(crate) shutting_down: bool,
}

#[cfg(test)]
impl<K: Copy + Ord + Hash, V> Deadlines<K, V> {
    fn deadline(&self, key: K) -> Option<Instant> {
        self.entries.get(&key).map(|(at, _)| *at)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    fn len(&self) -> usize {
        assert_eq!(
            self.entries.len(),
            self.order.len(),
            "one order entry per key"
        );
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    fn due(d: &mut Deadlines<u32, &'static str>, now: Instant) -> Vec<(u32, &'static str)> {
        std::iter::from_fn(|| d.pop_due(now)).collect()
    }

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut d = Deadlines::default();
        d.schedule(1, at(3000), "c");
        d.schedule(2, at(1000), "a");
        d.schedule(3, at(2000), "b");
        assert_eq!(d.next_deadline(), Some(at(1000)));
        assert_eq!(due(&mut d, at(999)), vec![], "nothing before its deadline");
        assert_eq!(due(&mut d, at(1000)), vec![(2, "a")], "due exactly at it");
        assert_eq!(due(&mut d, at(5000)), vec![(3, "b"), (1, "c")]);
        assert!(d.is_empty());
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn ties_pop_in_key_order() {
        let mut d = Deadlines::default();
        d.schedule(9, at(10), "z");
        d.schedule(4, at(10), "y");
        assert_eq!(due(&mut d, at(10)), vec![(4, "y"), (9, "z")]);
    }

    #[test]
    fn rescheduling_replaces_deadline_and_value() {
        let mut d = Deadlines::default();
        assert_eq!(d.schedule(1, at(1000), "first"), None);
        assert_eq!(d.schedule(1, at(4000), "second"), Some("first"));
        assert_eq!(d.len(), 1);
        assert_eq!(d.deadline(1), Some(at(4000)));
        assert_eq!(due(&mut d, at(3999)), vec![], "the old deadline is gone");
        assert_eq!(due(&mut d, at(4000)), vec![(1, "second")]);
    }

    #[test]
    fn cancelled_entries_never_fire() {
        let mut d = Deadlines::default();
        d.schedule(1, at(1000), "a");
        d.schedule(2, at(2000), "b");
        assert_eq!(d.cancel(1), Some("a"));
        assert_eq!(d.cancel(1), None, "cancelling twice is harmless");
        assert_eq!(d.next_deadline(), Some(at(2000)));
        assert_eq!(due(&mut d, at(10_000)), vec![(2, "b")]);
    }

    #[test]
    fn drain_all_returns_everything_soonest_first() {
        let mut d = Deadlines::default();
        d.schedule(1, at(3000), "c");
        d.schedule(2, at(1000), "a");
        d.schedule(3, at(2000), "b");
        d.cancel(3);
        assert_eq!(d.drain_all(), vec![(2, "a"), (1, "c")]);
        assert!(d.is_empty());
        assert_eq!(d.pop_due(at(10_000)), None);
    }
}
