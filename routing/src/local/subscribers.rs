//! The subscribers of one filter on one worker.

use super::SubEntry;
use crate::child_map::LevelHasher;
use std::collections::HashMap;
use std::hash::Hash;

/// Entries at which a key → position index is built, so that subscribing and
/// unsubscribing stay O(1) when thousands of clients share one filter.
const INDEX_MIN: usize = 16;

/// `(key, entry)` pairs with unique keys, in no significant order.
///
/// Sized for the common case of one subscriber per filter: that entry is
/// stored inline (24 bytes in all with a `u64` key); two or more go to a box
/// holding the entries and, from `INDEX_MIN` on, a key index.
#[derive(Clone, Debug, Default)]
pub(crate) enum Subscribers<K> {
    /// No subscriber (a fresh value, before its first `upsert`).
    #[default]
    Empty,
    /// One subscriber.
    One((K, SubEntry)),
    /// Two or more.
    Many(Box<Many<K>>),
}

/// The entries of a filter with several subscribers.
#[derive(Clone, Debug)]
pub(crate) struct Many<K> {
    entries: Vec<(K, SubEntry)>,
    /// Position of each key in `entries`, present while there are at least
    /// `INDEX_MIN / 2` entries (built at `INDEX_MIN`).
    index: Option<HashMap<K, usize, LevelHasher>>,
}

impl<K: Copy + Eq + Hash> Many<K> {
    fn position(&self, key: K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.entries.iter().position(|(k, _)| *k == key),
        }
    }
}

impl<K: Copy + Eq + Hash> Subscribers<K> {
    /// Number of subscribers.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when there is no subscriber.
    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The subscribers.
    pub(crate) fn as_slice(&self) -> &[(K, SubEntry)] {
        match self {
            Self::Empty => &[],
            Self::One(e) => std::slice::from_ref(e),
            Self::Many(m) => &m.entries,
        }
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: K) -> Option<&SubEntry> {
        match self {
            Self::Empty => None,
            Self::One((k, e)) => (*k == key).then_some(e),
            Self::Many(m) => m.position(key).map(|i| &m.entries[i].1),
        }
    }

    /// Inserts or replaces the entry of `key`; true when it replaced one.
    pub(crate) fn upsert(&mut self, key: K, entry: SubEntry) -> bool {
        match self {
            Self::Empty => {
                *self = Self::One((key, entry));
                false
            }
            Self::One((k, e)) if *k == key => {
                *e = entry;
                true
            }
            Self::One(first) => {
                let first = *first;
                *self = Self::Many(Box::new(Many {
                    entries: vec![first, (key, entry)],
                    index: None,
                }));
                false
            }
            Self::Many(m) => {
                if let Some(i) = m.position(key) {
                    m.entries[i].1 = entry;
                    return true;
                }
                m.entries.push((key, entry));
                let last = m.entries.len() - 1;
                match &mut m.index {
                    Some(index) => {
                        index.insert(key, last);
                    }
                    None if m.entries.len() >= INDEX_MIN => {
                        let index = m
                            .entries
                            .iter()
                            .enumerate()
                            .map(|(i, (k, _))| (*k, i))
                            .collect();
                        m.index = Some(index);
                    }
                    None => {}
                }
                false
            }
        }
    }

    /// Removes the entry of `key`.
    pub(crate) fn remove(&mut self, key: K) -> Option<SubEntry> {
        match self {
            Self::Empty => None,
            Self::One((k, e)) => {
                if *k != key {
                    return None;
                }
                let e = *e;
                *self = Self::Empty;
                Some(e)
            }
            Self::Many(m) => {
                let i = m.position(key)?;
                let (_, entry) = m.entries.swap_remove(i);
                if let Some(index) = &mut m.index {
                    index.remove(&key);
                    if let Some((moved, _)) = m.entries.get(i) {
                        index.insert(*moved, i);
                    }
                    if m.entries.len() < INDEX_MIN / 2 {
                        m.index = None;
                    }
                }
                if let [only] = m.entries[..] {
                    *self = Self::One(only);
                }
                Some(entry)
            }
        }
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

    // One subscriber is stored inline, two or more in the box, and the
    // value goes back to one and to none as they leave.
    #[test]
    fn one_subscriber_is_inline() {
        assert_eq!(size_of::<Option<Subscribers<u64>>>(), 24);
        let mut subs = Subscribers::default();
        assert!(!subs.upsert(1u64, entry(1)));
        assert!(matches!(subs, Subscribers::One(_)));
        assert!(subs.upsert(1, entry(2)));
        assert_eq!(subs.get(2), None);
        assert_eq!(subs.remove(2), None);
        assert!(!subs.upsert(2, entry(3)));
        assert!(matches!(subs, Subscribers::Many(_)));
        assert_eq!(subs.len(), 2);
        assert_eq!(
            subs.remove(1).and_then(|e| e.subscription_identifier),
            Some(2)
        );
        assert!(matches!(subs, Subscribers::One((2, _))));
        assert_eq!(subs.remove(1), None);
        assert!(subs.remove(2).is_some());
        assert!(matches!(subs, Subscribers::Empty));
        assert!(subs.is_empty());
    }

    #[test]
    fn index_tracks_positions_through_growth_and_removal() {
        let mut subs = Subscribers::default();
        for k in 0..100u32 {
            assert!(!subs.upsert(k, entry(k)));
        }
        assert!(matches!(&subs, Subscribers::Many(m) if m.index.is_some()));
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
        assert!(matches!(subs, Subscribers::Empty));
        assert!(!subs.upsert(1, entry(1)));
        assert_eq!(subs.as_slice().len(), 1);
    }
}
