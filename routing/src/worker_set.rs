//! A set of worker ids as a 64-bit mask.

use std::fmt;

/// A set of up to [`WorkerSet::MAX_WORKERS`] workers, one bit each.
///
/// Ids at or above `MAX_WORKERS` cannot be stored: `insert` refuses them and
/// returns `false`, so the broker must cap its worker count at 64.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WorkerSet(u64);

impl WorkerSet {
    /// Largest number of workers a set can hold.
    pub const MAX_WORKERS: u16 = 64;

    /// The empty set.
    pub const fn new() -> Self {
        Self(0)
    }

    /// The set holding only `worker` (empty if `worker` is out of range).
    pub fn single(worker: u16) -> Self {
        let mut set = Self::new();
        set.insert(worker);
        set
    }

    /// The set whose bit `i` stands for worker `i`.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw bit mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Adds `worker`; true when it was not in the set. Out-of-range ids are
    /// refused (returns false, set unchanged).
    pub fn insert(&mut self, worker: u16) -> bool {
        if worker >= Self::MAX_WORKERS {
            return false;
        }
        let bit = 1u64 << worker;
        let added = self.0 & bit == 0;
        self.0 |= bit;
        added
    }

    /// Removes `worker`; true when it was in the set.
    pub fn remove(&mut self, worker: u16) -> bool {
        if worker >= Self::MAX_WORKERS {
            return false;
        }
        let bit = 1u64 << worker;
        let removed = self.0 & bit != 0;
        self.0 &= !bit;
        removed
    }

    /// True when `worker` is in the set.
    pub fn contains(self, worker: u16) -> bool {
        worker < Self::MAX_WORKERS && self.0 & (1u64 << worker) != 0
    }

    /// True when the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of workers in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Workers in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Workers in `self` but not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The `n`-th worker in ascending order, counting from 0; `None` when
    /// the set has `n` workers or fewer.
    pub fn nth(self, n: usize) -> Option<u16> {
        self.iter().nth(n)
    }

    /// The workers in ascending order.
    pub fn iter(self) -> WorkerSetIter {
        WorkerSetIter(self.0)
    }
}

impl fmt::Debug for WorkerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl IntoIterator for WorkerSet {
    type Item = u16;
    type IntoIter = WorkerSetIter;

    fn into_iter(self) -> WorkerSetIter {
        self.iter()
    }
}

impl FromIterator<u16> for WorkerSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = Self::new();
        for w in iter {
            set.insert(w);
        }
        set
    }
}

/// Iterator over the workers of a [`WorkerSet`], ascending.
#[derive(Clone, Debug)]
pub struct WorkerSetIter(u64);

impl Iterator for WorkerSetIter {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        if self.0 == 0 {
            return None;
        }
        let worker = self.0.trailing_zeros() as u16;
        self.0 &= self.0 - 1;
        Some(worker)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for WorkerSetIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_contains() {
        let mut set = WorkerSet::new();
        assert!(set.is_empty());
        assert!(set.insert(0));
        assert!(!set.insert(0));
        assert!(set.insert(63));
        assert!(set.insert(5));
        assert!(!set.insert(64), "out of range must be refused");
        assert!(!set.insert(u16::MAX));
        assert_eq!(set.len(), 3);
        assert!(set.contains(0) && set.contains(5) && set.contains(63));
        assert!(!set.contains(1) && !set.contains(64));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 5, 63]);
        assert_eq!(set.iter().len(), 3);
        assert!(set.remove(5));
        assert!(!set.remove(5));
        assert!(!set.remove(64));
        assert_eq!(set.bits(), 1 | 1 << 63);
        assert_eq!(format!("{set:?}"), "{0, 63}");
    }

    #[test]
    fn set_algebra() {
        let a: WorkerSet = [1, 2, 3].into_iter().collect();
        let b = WorkerSet::single(3).union(WorkerSet::single(4));
        assert_eq!(a.union(b).iter().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(a.difference(b).iter().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(WorkerSet::single(70), WorkerSet::new());
        assert_eq!(WorkerSet::from_bits(0b110), [1, 2].into_iter().collect());
    }

    #[test]
    fn nth_counts_in_ascending_order() {
        let set: WorkerSet = [7, 2, 40].into_iter().collect();
        assert_eq!(
            (0..4).map(|n| set.nth(n)).collect::<Vec<_>>(),
            vec![Some(2), Some(7), Some(40), None]
        );
        assert_eq!(WorkerSet::new().nth(0), None);
    }
}
