//! A small map from one topic level to a child node, shared by the filter trie
//! and the retained-message topic tree.
//!
//! Most trie nodes have zero or one child (think `devices/{id}/telemetry`), so
//! the map starts as an inline vector scanned linearly and only becomes a hash
//! map past [`SMALL_MAX`] children. Keys are compared byte for byte: no
//! normalisation is ever applied ([MQTT-4.7.3-4]). A key of up to
//! [`INLINE_MAX`](tern_codec::INLINE_MAX) bytes (nearly every topic level) is stored in the map entry
//! itself, without an allocation of its own.

use smallvec::SmallVec;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use tern_codec::InlineStr;
#[cfg(test)]
use tern_codec::INLINE_MAX;

/// One topic level as a map key: inline up to [`INLINE_MAX`](tern_codec::INLINE_MAX) bytes, boxed
/// beyond; hashes and compares as its bytes, so maps are queried with
/// `level.as_bytes()`.
pub(crate) type Level = InlineStr;

/// Children kept in the linear form at most; one more turns the map into a hash map.
pub(crate) const SMALL_MAX: usize = 8;

/// A zero-sized hasher builder seeded once per process at random, so that
/// topic levels chosen by clients cannot be crafted into hash collisions,
/// without paying for a 32-byte random state in every node.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LevelHasher;

impl BuildHasher for LevelHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
        STATE.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

/// Map from a topic level to `T`.
#[derive(Clone, Debug)]
pub(crate) enum ChildMap<T> {
    /// Up to [`SMALL_MAX`] children, scanned linearly; one child is stored inline.
    Small(SmallVec<[(Level, T); 1]>),
    /// More children than [`SMALL_MAX`].
    Large(HashMap<Level, T, LevelHasher>),
}

impl<T> Default for ChildMap<T> {
    fn default() -> Self {
        Self::Small(SmallVec::new())
    }
}

impl<T> ChildMap<T> {
    /// Number of children.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(m) => m.len(),
        }
    }

    /// True when there is no child.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The child for `level`.
    pub(crate) fn get(&self, level: &str) -> Option<&T> {
        match self {
            Self::Small(v) => v
                .iter()
                .find(|(k, _)| k.as_bytes() == level.as_bytes())
                .map(|(_, t)| t),
            Self::Large(m) => m.get(level.as_bytes()),
        }
    }

    /// The child for `level`, mutably.
    pub(crate) fn get_mut(&mut self, level: &str) -> Option<&mut T> {
        match self {
            Self::Small(v) => v
                .iter_mut()
                .find(|(k, _)| k.as_bytes() == level.as_bytes())
                .map(|(_, t)| t),
            Self::Large(m) => m.get_mut(level.as_bytes()),
        }
    }

    /// The child for `level`, inserting `f()` first when there is none.
    pub(crate) fn get_or_insert_with(&mut self, level: &str, f: impl FnOnce() -> T) -> &mut T {
        if let Self::Small(v) = self {
            if v.len() >= SMALL_MAX && !v.iter().any(|(k, _)| k.as_bytes() == level.as_bytes()) {
                let items = std::mem::take(v);
                let mut map = HashMap::with_capacity_and_hasher(SMALL_MAX * 2, LevelHasher);
                map.extend(items);
                *self = Self::Large(map);
            }
        }
        match self {
            Self::Small(v) => {
                let index = match v.iter().position(|(k, _)| k.as_bytes() == level.as_bytes()) {
                    Some(i) => i,
                    None => {
                        v.push((Level::new(level), f()));
                        v.len() - 1
                    }
                };
                &mut v[index].1
            }
            // Only the insert path allocates the key; lookups of existing
            // children go through `get_mut`.
            Self::Large(m) => match m.entry(Level::new(level)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(f()),
            },
        }
    }

    /// Removes and returns the child for `level`.
    pub(crate) fn remove(&mut self, level: &str) -> Option<T> {
        match self {
            Self::Small(v) => {
                let i = v
                    .iter()
                    .position(|(k, _)| k.as_bytes() == level.as_bytes())?;
                Some(v.remove(i).1)
            }
            Self::Large(m) => {
                let removed = m.remove(level.as_bytes());
                if m.len() <= SMALL_MAX / 2 {
                    let items: SmallVec<[(Level, T); 1]> = m.drain().collect();
                    *self = Self::Small(items);
                }
                removed
            }
        }
    }

    /// Every `(level, child)` pair, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        let (small, large) = match self {
            Self::Small(v) => (Some(v.iter()), None),
            Self::Large(m) => (None, Some(m.iter())),
        };
        small
            .into_iter()
            .flatten()
            .map(|(k, t)| (k.as_str(), t))
            .chain(large.into_iter().flatten().map(|(k, t)| (k.as_str(), t)))
    }

    /// Calls `f` with every `(level, child)`, leaving the map empty.
    pub(crate) fn drain_with(&mut self, mut f: impl FnMut(&str, T)) {
        match std::mem::take(self) {
            Self::Small(v) => v.into_iter().for_each(|(k, t)| f(k.as_str(), t)),
            Self::Large(m) => m.into_iter().for_each(|(k, t)| f(k.as_str(), t)),
        }
    }

    /// Moves every child into `out`, leaving the map empty.
    pub(crate) fn drain_into(&mut self, out: &mut impl Extend<T>) {
        match self {
            Self::Small(v) => out.extend(v.drain(..).map(|(_, t)| t)),
            Self::Large(m) => out.extend(m.drain().map(|(_, t)| t)),
        }
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_into_a_hash_map_and_shrinks_back() {
        let mut map: ChildMap<usize> = ChildMap::default();
        for i in 0..SMALL_MAX {
            *map.get_or_insert_with(&i.to_string(), || i) += 0;
        }
        assert!(matches!(map, ChildMap::Small(_)));
        // Existing key at the limit does not grow the map.
        *map.get_or_insert_with("0", || 99) += 1;
        assert!(matches!(map, ChildMap::Small(_)));
        assert_eq!(map.get("0"), Some(&1));
        map.get_or_insert_with("new", || 42);
        assert!(matches!(map, ChildMap::Large(_)));
        assert_eq!(map.len(), SMALL_MAX + 1);
        assert_eq!(map.get("new"), Some(&42));
        assert_eq!(map.get("0"), Some(&1));
        *map.get_mut("new").unwrap() = 43;
        assert_eq!(map.get("new"), Some(&43));
        let mut seen: Vec<_> = map.iter().map(|(k, v)| (k.to_owned(), *v)).collect();
        seen.sort();
        assert_eq!(seen.len(), SMALL_MAX + 1);
        for i in 0..SMALL_MAX {
            assert_eq!(map.remove(&i.to_string()), Some(if i == 0 { 1 } else { i }));
        }
        assert!(matches!(map, ChildMap::Small(_)));
        assert_eq!(map.remove("absent"), None);
        assert_eq!(map.remove("new"), Some(43));
        assert!(map.is_empty());
    }

    // Levels up to INLINE_MAX bytes are inline, longer ones boxed; both
    // kinds are found by their bytes in either form of the map, and read
    // back as the same text (multi-byte UTF-8 included).
    #[test]
    fn inline_and_boxed_levels() {
        assert_eq!(size_of::<Level>(), 24);
        let exact = "x".repeat(INLINE_MAX);
        let long = "y".repeat(INLINE_MAX + 1);
        let keys = ["", "é", "ünïcödé/🐦", exact.as_str(), long.as_str()];
        assert!(matches!(Level::new(&exact), Level::Inline { .. }));
        assert!(matches!(Level::new(&long), Level::Boxed(_)));
        for extra in [0, SMALL_MAX] {
            let mut map: ChildMap<usize> = ChildMap::default();
            for i in 0..extra {
                map.get_or_insert_with(&format!("filler{i}"), || 100 + i);
            }
            for (i, k) in keys.iter().enumerate() {
                map.get_or_insert_with(k, || i);
            }
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(map.get(k), Some(&i), "{k:?}");
                assert!(map.iter().any(|(name, v)| name == *k && *v == i), "{k:?}");
            }
            assert_eq!(map.get(&"x".repeat(INLINE_MAX - 1)), None);
            assert_eq!(map.remove(&long), Some(4));
            assert_eq!(map.get(&long), None);
        }
    }

    #[test]
    fn empty_level_and_byte_exact_keys() {
        let mut map: ChildMap<u8> = ChildMap::default();
        map.get_or_insert_with("", || 1);
        map.get_or_insert_with("A", || 2);
        assert_eq!(map.get(""), Some(&1));
        assert_eq!(map.get("a"), None);
        assert_eq!(map.get("A"), Some(&2));
        let mut out = Vec::new();
        map.drain_into(&mut out);
        out.sort();
        assert_eq!(out, vec![1, 2]);
        assert!(map.is_empty());
    }
}
