//! The global route table: which workers have subscribers for which filters,
//! published to readers with read-copy-update.

use crate::trie::Trie;
use crate::worker_set::WorkerSet;
use arc_swap::{ArcSwap, Guard};
use bytestring::ByteString;
use smallvec::SmallVec;
use std::fmt;
use std::sync::{Arc, Mutex};
use tern_codec::topic::split_shared;

#[cfg(test)]
mod tests;

/// What a worker reports about one of its filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOp {
    /// The worker's local subscriber count for the filter went from 0 to 1.
    Add,
    /// The worker's local subscriber count for the filter went from 1 to 0.
    Remove,
}

/// One change of the route table: `worker` gained or lost its interest in `filter`.
///
/// `filter` is the full filter as subscribed, `$share/{group}/…` included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteUpdate {
    /// The worker id, below [`WorkerSet::MAX_WORKERS`].
    pub worker: u16,
    /// The topic filter.
    pub filter: ByteString,
    /// Add or remove.
    pub op: RouteOp,
}

/// One shared-subscription group matching a topic, and the workers where it has members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedTarget {
    /// The full filter `$share/{group}/{filter}`: the key of the shared
    /// subscription, to pass to `LocalSubscriptions::collect_shared`.
    pub group: ByteString,
    /// Workers with at least one member of the group.
    pub workers: WorkerSet,
}

/// The shared-subscription groups stored under one inner filter.
#[derive(Clone, Debug, Default)]
pub struct SharedGroups {
    groups: SmallVec<[SharedTarget; 1]>,
}

impl SharedGroups {
    /// The groups, each with the workers holding members.
    pub fn iter(&self) -> impl Iterator<Item = &SharedTarget> {
        self.groups.iter()
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Workers to forward a PUBLISH to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// Workers with at least one ordinary subscription matching the topic.
    pub workers: WorkerSet,
    /// One entry per matching shared subscription: the broker picks one
    /// member (so one worker of `workers`) per entry.
    pub shared: SmallVec<[SharedTarget; 2]>,
}

impl RouteMatch {
    /// True when nobody subscribes to the topic.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty() && self.shared.is_empty()
    }
}

/// An immutable view of the route table at one version.
#[derive(Clone, Debug, Default)]
pub struct RouteSnapshot {
    version: u64,
    normal: Trie<WorkerSet>,
    /// Keyed by the inner filter of `$share/{group}/{filter}`.
    shared: Trie<SharedGroups>,
    /// Number of `(group, inner filter)` pairs in `shared`.
    shared_count: usize,
}

impl RouteSnapshot {
    /// The version: 0 for the empty table, then one more per applied batch.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The workers (and shared groups) with subscriptions matching `topic`.
    /// Allocates only when more than two shared subscriptions match.
    pub fn matches(&self, topic: &str) -> RouteMatch {
        let mut m = RouteMatch::default();
        self.normal
            .for_each_match(topic, |w| m.workers = m.workers.union(*w));
        self.shared.for_each_match(topic, |groups| {
            m.shared.extend(groups.iter().cloned());
        });
        m
    }

    /// Number of distinct filters, each shared group counted once per filter.
    pub fn filter_count(&self) -> usize {
        self.normal.len() + self.shared_count
    }

    /// The workers subscribed to exactly `filter` (no wildcard matching).
    pub fn workers_for(&self, filter: &str) -> WorkerSet {
        match split_shared(filter) {
            Some((_, inner)) => self
                .shared
                .get(inner)
                .and_then(|g| g.iter().find(|t| t.group == filter))
                .map(|t| t.workers)
                .unwrap_or_default(),
            None => self.normal.get(filter).copied().unwrap_or_default(),
        }
    }

    /// Applies one update; idempotent.
    fn apply(&mut self, update: &RouteUpdate) {
        let filter = &*update.filter;
        let Some((_, inner)) = split_shared(filter) else {
            match update.op {
                RouteOp::Add => {
                    self.normal
                        .entry_or_insert_with(filter, WorkerSet::new)
                        .insert(update.worker);
                }
                RouteOp::Remove => {
                    if !self
                        .normal
                        .get(filter)
                        .is_some_and(|w| w.contains(update.worker))
                    {
                        return;
                    }
                    if let Some(workers) = self.normal.get_mut(filter) {
                        workers.remove(update.worker);
                        if workers.is_empty() {
                            self.normal.remove(filter);
                        }
                    }
                }
            }
            return;
        };
        match update.op {
            RouteOp::Add => {
                let groups = self
                    .shared
                    .entry_or_insert_with(inner, SharedGroups::default);
                let index = match groups.groups.iter().position(|t| t.group == filter) {
                    Some(i) => i,
                    None => {
                        groups.groups.push(SharedTarget {
                            group: update.filter.clone(),
                            workers: WorkerSet::new(),
                        });
                        self.shared_count += 1;
                        groups.groups.len() - 1
                    }
                };
                groups.groups[index].workers.insert(update.worker);
            }
            RouteOp::Remove => {
                if !self.workers_for(filter).contains(update.worker) {
                    return;
                }
                let Some(groups) = self.shared.get_mut(inner) else {
                    return;
                };
                let Some(index) = groups.groups.iter().position(|t| t.group == filter) else {
                    return;
                };
                let target = &mut groups.groups[index];
                target.workers.remove(update.worker);
                if target.workers.is_empty() {
                    groups.groups.remove(index);
                    self.shared_count -= 1;
                    if groups.groups.is_empty() {
                        self.shared.remove(inner);
                    }
                }
            }
        }
    }
}

/// The global route table: readers load the current [`RouteSnapshot`] with
/// one atomic operation; the route writer replaces it with [`RouteTable::apply`].
///
/// Call order: workers send [`RouteUpdate`]s to the route writer thread,
/// which drains all pending updates and calls `apply` once per batch, then
/// tells each worker the returned version. Any thread may call `load`/
/// `load_full` at any time and keeps seeing the snapshot it loaded, unchanged,
/// for as long as it holds it.
pub struct RouteTable {
    current: ArcSwap<RouteSnapshot>,
    /// Serialises writers. There is meant to be a single writer thread, so the
    /// lock is never contended; it only makes a second writer safe (no lost
    /// batch) instead of silently wrong.
    writer: Mutex<()>,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.load();
        f.debug_struct("RouteTable")
            .field("version", &snapshot.version())
            .field("filters", &snapshot.filter_count())
            .finish()
    }
}

impl RouteTable {
    /// An empty table at version 0.
    pub fn new() -> Self {
        Self {
            current: ArcSwap::from_pointee(RouteSnapshot::default()),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot, for a short read (one PUBLISH).
    pub fn load(&self) -> Guard<Arc<RouteSnapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, for a long-lived reader.
    pub fn load_full(&self) -> Arc<RouteSnapshot> {
        self.current.load_full()
    }

    /// Applies a batch of updates and publishes the result as one new
    /// version, which is returned. An empty batch changes nothing and returns
    /// the current version.
    ///
    /// To be called from the route writer thread only (concurrent callers are
    /// serialised, never lost). Cost: the snapshot clone is O(1); each update
    /// copies the trie nodes on its filter's path that are still shared with
    /// the previous version. Updates are idempotent; a worker id at or above
    /// [`WorkerSet::MAX_WORKERS`] is ignored.
    pub fn apply(&self, updates: &[RouteUpdate]) -> u64 {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load_full();
        if updates.is_empty() {
            return current.version;
        }
        let mut next = RouteSnapshot::clone(&current);
        drop(current);
        for update in updates {
            if update.worker < WorkerSet::MAX_WORKERS {
                next.apply(update);
            }
        }
        next.version += 1;
        let version = next.version;
        self.current.store(Arc::new(next));
        version
    }
}
