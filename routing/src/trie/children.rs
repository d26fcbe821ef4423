//! The literal children of a trie node: one [`ChildMap`] while there are
//! few, split into [`CHUNKS`] shared chunks past [`FLAT_MAX`].
//!
//! The route table is copy-on-write: a new snapshot copies every node on a
//! changed filter's path. A node with 100,000 children (`devices/{id}`)
//! copied whole on every batch costs the route writer a 4 MB copy per batch,
//! and the process a second, freed copy of the map that the allocator keeps.
//! Chunked, a change copies the one chunk holding the changed child (1/64 of
//! the map), and the other chunks stay shared with the previous snapshot.

use crate::child_map::ChildMap;
use std::sync::Arc;

/// Most children kept in one map; one more splits it into chunks.
const FLAT_MAX: usize = 1024;

/// Chunks of a wide node.
const CHUNKS: usize = 1024;

/// Map from a topic level to a child `T`.
#[derive(Clone)]
pub(super) enum Children<T> {
    /// Up to [`FLAT_MAX`] children.
    Flat(ChildMap<T>),
    /// More: each child in the chunk [`chunk_of`] its level.
    Chunked(Box<Chunks<T>>),
}

#[derive(Clone)]
pub(super) struct Chunks<T> {
    len: usize,
    chunks: [Arc<ChildMap<T>>; CHUNKS],
}

impl<T> Default for Children<T> {
    fn default() -> Self {
        Self::Flat(ChildMap::default())
    }
}

/// The chunk of `level`: FNV-1a over its bytes, cheap for short levels.
/// A client choosing levels that share a chunk only makes that chunk's
/// copies bigger (as if unchunked); lookups inside a chunk use the seeded
/// hash of [`ChildMap`].
fn chunk_of(level: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in level.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % CHUNKS
}

impl<T> Children<T> {
    /// Number of children.
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Flat(m) => m.len(),
            Self::Chunked(c) => c.len,
        }
    }

    /// True when there is no child.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The child for `level`.
    pub(super) fn get(&self, level: &str) -> Option<&T> {
        match self {
            Self::Flat(m) => m.get(level),
            Self::Chunked(c) => c.chunks[chunk_of(level)].get(level),
        }
    }

    /// Every `(level, child)` pair, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        let (flat, chunked) = match self {
            Self::Flat(m) => (Some(m.iter()), None),
            Self::Chunked(c) => (None, Some(c.chunks.iter().flat_map(|m| m.iter()))),
        };
        flat.into_iter()
            .flatten()
            .chain(chunked.into_iter().flatten())
    }

    /// Moves every child into `out`, leaving the map empty. A chunk still
    /// shared with another snapshot is only released: its last holder
    /// drains it.
    pub(super) fn drain_into(&mut self, out: &mut impl Extend<T>) {
        match std::mem::take(self) {
            Self::Flat(mut m) => m.drain_into(out),
            Self::Chunked(c) => {
                for chunk in c.chunks {
                    if let Some(mut m) = Arc::into_inner(chunk) {
                        m.drain_into(out);
                    }
                }
            }
        }
    }
}

impl<T: Clone> Children<T> {
    /// The child for `level`, mutably (copying its chunk if shared).
    pub(super) fn get_mut(&mut self, level: &str) -> Option<&mut T> {
        match self {
            Self::Flat(m) => m.get_mut(level),
            Self::Chunked(c) => {
                let chunk = &mut c.chunks[chunk_of(level)];
                chunk.get(level)?;
                Arc::make_mut(chunk).get_mut(level)
            }
        }
    }

    /// The child for `level`, inserting `f()` first when there is none.
    pub(super) fn get_or_insert_with(&mut self, level: &str, f: impl FnOnce() -> T) -> &mut T {
        if let Self::Flat(m) = self {
            if m.len() >= FLAT_MAX && m.get(level).is_none() {
                let mut chunks: [ChildMap<T>; CHUNKS] =
                    std::array::from_fn(|_| ChildMap::default());
                let len = m.len();
                m.drain_with(|k, t| {
                    chunks[chunk_of(k)].get_or_insert_with(k, || t);
                });
                *self = Self::Chunked(Box::new(Chunks {
                    len,
                    chunks: chunks.map(Arc::new),
                }));
            }
        }
        match self {
            Self::Flat(m) => m.get_or_insert_with(level, f),
            Self::Chunked(c) => {
                let chunk = Arc::make_mut(&mut c.chunks[chunk_of(level)]);
                let mut added = false;
                let child = chunk.get_or_insert_with(level, || {
                    added = true;
                    f()
                });
                c.len += usize::from(added);
                child
            }
        }
    }

    /// Removes and returns the child for `level`; a chunked map back under
    /// half of [`FLAT_MAX`] becomes one map again.
    pub(super) fn remove(&mut self, level: &str) -> Option<T> {
        let Self::Chunked(c) = self else {
            let Self::Flat(m) = self else { return None };
            return m.remove(level);
        };
        let chunk = &mut c.chunks[chunk_of(level)];
        chunk.get(level)?;
        let removed = Arc::make_mut(chunk).remove(level)?;
        c.len -= 1;
        if c.len < FLAT_MAX / 2 {
            let mut flat = ChildMap::default();
            for chunk in &c.chunks {
                for (k, t) in chunk.iter() {
                    flat.get_or_insert_with(k, || t.clone());
                }
            }
            *self = Self::Flat(flat);
        }
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Past FLAT_MAX the map is chunked, finds and lists every child, copies
    // only the changed chunk of a shared clone, and goes back to one map
    // once emptied below half.
    #[test]
    fn splits_into_shared_chunks_and_joins_back() {
        let mut map: Children<Arc<usize>> = Children::default();
        let n = FLAT_MAX * 3;
        for i in 0..n {
            map.get_or_insert_with(&i.to_string(), || Arc::new(i));
        }
        assert!(matches!(map, Children::Chunked(_)));
        assert_eq!(map.len(), n);
        assert_eq!(map.iter().count(), n);
        assert_eq!(map.get("77").map(|v| **v), Some(77));
        let snapshot = map.clone();
        map.get_or_insert_with("new", || Arc::new(0));
        let (Children::Chunked(a), Children::Chunked(b)) = (&map, &snapshot) else {
            panic!("both chunked");
        };
        let shared = a
            .chunks
            .iter()
            .zip(&b.chunks)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, CHUNKS - 1, "only the changed chunk was copied");
        assert_eq!(snapshot.get("new"), None);
        assert_eq!(map.remove("new").map(|v| *v), Some(0));
        assert_eq!(map.remove("new"), None);
        for i in 0..n - FLAT_MAX / 2 + 1 {
            assert_eq!(map.remove(&i.to_string()).map(|v| *v), Some(i));
        }
        assert!(matches!(map, Children::Flat(_)));
        assert_eq!(map.len(), FLAT_MAX / 2 - 1);
        assert_eq!(snapshot.len(), n);
        let mut out = Vec::new();
        map.drain_into(&mut out);
        assert_eq!(out.len(), FLAT_MAX / 2 - 1);
        assert!(map.is_empty());
        assert_eq!(snapshot.iter().count(), n);
    }
}
