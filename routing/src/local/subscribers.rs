//! The subscribers of one filter on one worker.

use super::SubEntry;
use crate::child_map::LevelHasher;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::Hash;

/// Entries at which a key → position index is built, so that subscribing and
/// unsubscribing stay O(1) when thousands of clients share one filter.
const INDEX_MIN: usize = 16;

/// `(key, entry)` pairs with unique keys, in no significant order.
///
/// Sized for the common case of one subscriber per filter (40 bytes with a
/// `u64` key): one entry inline, the index boxed.
#[derive(Clone, Debug)]
pub(crate) struct Subscribers<K> {
    entries: SmallVec<[(K, SubEntry); 1]>,
    /// Position of each key in `entries`, present while there are at least
    /// `INDEX_MIN / 2` entries (built at `INDEX_MIN`). Boxed: 8 bytes
    /// instead of a 32-byte empty map in every filter's entry.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<K, usize, LevelHasher>>>,
}

impl<K> Default for Subscribers<K> {
    fn default() -> Self {
        Self {
            entries: SmallVec::new(),
            index: None,
        }
    }
}

impl<K: Copy + Eq + Hash> Subscribers<K> {
    /// Number of subscribers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no subscriber.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The subscribers.
    pub(crate) fn as_slice(&self) -> &[(K, SubEntry)] {
        &self.entries
    }

    fn position(&self, key: K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.entries.iter().position(|(k, _)| *k == key),
        }
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: K) -> Option<&SubEntry> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// Inserts or replaces the entry of `key`; true when it replaced one.
    pub(crate) fn upsert(&mut self, key: K, entry: SubEntry) -> bool {
        if let Some(i) = self.position(key) {
            self.entries[i].1 = entry;
            return true;
        }
        self.entries.push((key, entry));
        match &mut self.index {
            Some(index) => {
                index.insert(key, self.entries.len() - 1);
            }
            None if self.entries.len() >= INDEX_MIN => {
                let index = self
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (*k, i))
                    .collect();
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        false
    }

    /// Removes the entry of `key`.
    pub(crate) fn remove(&mut self, key: K) -> Option<SubEntry> {
        let i = self.position(key)?;
        let (_, entry) = self.entries.swap_remove(i);
        if let Some(index) = &mut self.index {
            index.remove(&key);
            if let Some((moved, _)) = self.entries.get(i) {
                index.insert(*moved, i);
            }
            if self.entries.len() < INDEX_MIN / 2 {
                self.index = None;
            }
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_codec::{QoS, SubscriptionOptions};

    fn entry(id: u32) -> SubEntry {
        SubEntry {
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
            subscription_identifier: Some(id),
        }
    }

    #[test]
    fn index_tracks_positions_through_growth_and_removal() {
        let mut subs = Subscribers::default();
        for k in 0..100u32 {
            assert!(!subs.upsert(k, entry(k)));
        }
        assert!(subs.index.is_some());
        assert!(subs.upsert(7, entry(700)));
        assert_eq!(subs.len(), 100);
        for k in (0..100u32).step_by(3) {
            assert!(subs.remove(k).is_some());
            assert!(subs.remove(k).is_none());
        }
        for k in 0..100u32 {
            let want = if k % 3 == 0 {
                None
            } else if k == 7 {
                Some(700)
            } else {
                Some(k)
            };
            assert_eq!(subs.get(k).and_then(|e| e.subscription_identifier), want);
        }
        for k in 0..100u32 {
            subs.remove(k);
        }
        assert!(subs.is_empty());
        assert!(subs.index.is_none());
        assert!(!subs.upsert(1, entry(1)));
        assert_eq!(subs.as_slice().len(), 1);
    }
}
