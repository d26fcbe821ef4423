//! Round-robin choice among the workers and the members of a shared
//! subscription (`$share/{group}/{filter}`, MQTT 5.0 section 4.8.2).

use crate::worker_set::WorkerSet;
use std::collections::HashMap;

/// Most shared subscriptions a [`ShareCursors`] remembers; past that it
/// forgets them all, and each starts again from its first worker or member
/// (a group that has gone stays remembered until then).
const MAX_GROUPS: usize = 4096;

/// Round-robin positions, one per shared subscription, keyed by its full
/// filter `$share/{group}/{filter}`.
///
/// Each worker keeps its own (it is not `Sync`), so choosing a worker or a
/// member writes no state that another thread reads: the turns of two
/// workers publishing to one group are independent, and each is fair on
/// its own.
#[derive(Debug, Default)]
pub struct ShareCursors {
    next: HashMap<Box<str>, usize, ahash::RandomState>,
}

impl ShareCursors {
    /// No positions yet: every group starts with its first worker or member.
    pub fn new() -> Self {
        Self::default()
    }

    /// The worker of `workers` to take the next message of `group`: each
    /// in turn, in ascending order. `None` for an empty set. A single
    /// worker is returned without touching the cursors.
    pub fn pick_worker(&mut self, group: &str, workers: WorkerSet) -> Option<u16> {
        let n = workers.len();
        if n <= 1 {
            return workers.nth(0);
        }
        let i = self.get(group) % n;
        self.set(group, i + 1);
        workers.nth(i)
    }

    /// The index of the member of `members` to take the next message of
    /// `group`. Members are tried in turn, starting after the one picked
    /// last; `rank` grades each (0 is best; `None`: it cannot take the
    /// message), and the first member of the lowest rank wins (the search
    /// stops at the first rank 0). `None` when no member can take it.
    pub fn pick_member<T>(
        &mut self,
        group: &str,
        members: &[T],
        mut rank: impl FnMut(&T) -> Option<u8>,
    ) -> Option<usize> {
        let n = members.len();
        if n <= 1 {
            return members.first().and_then(&mut rank).map(|_| 0);
        }
        let start = self.get(group) % n;
        let mut best: Option<(u8, usize)> = None;
        for i in (start..n).chain(0..start) {
            let Some(r) = rank(&members[i]) else {
                continue;
            };
            if best.is_none_or(|(b, _)| r < b) {
                best = Some((r, i));
                if r == 0 {
                    break;
                }
            }
        }
        let (_, i) = best?;
        self.set(group, i + 1);
        Some(i)
    }

    /// Number of groups with a position.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// True when no group has a position.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    fn get(&self, group: &str) -> usize {
        self.next.get(group).copied().unwrap_or(0)
    }

    fn set(&mut self, group: &str, value: usize) {
        if let Some(cursor) = self.next.get_mut(group) {
            *cursor = value;
            return;
        }
        if self.next.len() >= MAX_GROUPS {
            self.next.clear();
        }
        self.next.insert(group.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "$share/g/a/+";

    // MQTT 5.0 section 4.8.2 (each message to one member; the server
    // chooses which): workers take turns, each group on its own.
    #[test]
    fn workers_take_turns_per_group() {
        let mut c = ShareCursors::new();
        let set: WorkerSet = [1, 4, 6].into_iter().collect();
        let picks: Vec<_> = (0..7).filter_map(|_| c.pick_worker(G, set)).collect();
        assert_eq!(picks, vec![1, 4, 6, 1, 4, 6, 1]);
        assert_eq!(c.pick_worker("$share/other/a/+", set), Some(1), "own turn");
        assert_eq!(c.pick_worker(G, set), Some(4));
        assert_eq!(c.pick_worker(G, WorkerSet::new()), None);
        assert_eq!(c.pick_worker("$share/one/x", WorkerSet::single(3)), Some(3));
        assert_eq!(c.len(), 2, "a single worker needs no cursor");
    }

    #[test]
    fn a_shrunk_set_still_yields_one_of_its_workers() {
        let mut c = ShareCursors::new();
        let big: WorkerSet = (0..5).collect();
        for _ in 0..4 {
            c.pick_worker(G, big);
        }
        let small: WorkerSet = [2, 3].into_iter().collect();
        let w = c.pick_worker(G, small);
        assert!(w.is_some_and(|w| small.contains(w)), "{w:?}");
    }

    #[test]
    fn members_take_turns() {
        let mut c = ShareCursors::new();
        let members = ['a', 'b', 'c'];
        let picks: String = (0..6)
            .filter_map(|_| c.pick_member(G, &members, |_| Some(0)))
            .map(|i| members[i])
            .collect();
        assert_eq!(picks, "abcabc");
    }

    #[test]
    fn members_of_a_better_rank_are_preferred_in_turn() {
        let mut c = ShareCursors::new();
        // (name, rank): 'b' is busy (1), 'd' offline (2), 'e' cannot take it.
        let members = [
            ('a', Some(0)),
            ('b', Some(1)),
            ('c', Some(0)),
            ('d', Some(2)),
            ('e', None),
        ];
        let pick = |c: &mut ShareCursors, m: &[(char, Option<u8>)]| {
            c.pick_member(G, m, |(_, r)| *r).map(|i| m[i].0)
        };
        let picks: String = (0..4).filter_map(|_| pick(&mut c, &members)).collect();
        assert_eq!(picks, "acac", "idle online members only");
        let busy = [('a', Some(1)), ('b', Some(1)), ('c', Some(2))];
        let picks: String = (0..3).filter_map(|_| pick(&mut c, &busy)).collect();
        assert_eq!(picks, "aba", "busy ones in turn, before the offline one");
        let offline = [('a', None), ('b', Some(2))];
        assert_eq!(
            pick(&mut c, &offline),
            Some('b'),
            "offline as a last resort"
        );
        let none = [('a', None), ('b', None)];
        assert_eq!(pick(&mut c, &none), None);
        assert_eq!(pick(&mut c, &[('z', None)]), None);
        assert_eq!(pick(&mut c, &[('z', Some(2))]), Some('z'));
        assert_eq!(pick(&mut c, &[]), None);
    }

    #[test]
    fn forgets_everything_past_the_group_limit() {
        let mut c = ShareCursors::new();
        let set: WorkerSet = [0, 1].into_iter().collect();
        for i in 0..MAX_GROUPS {
            c.pick_worker(&format!("$share/g{i}/t"), set);
        }
        assert_eq!(c.len(), MAX_GROUPS);
        assert_eq!(c.pick_worker("$share/g0/t", set), Some(1), "remembered");
        c.pick_worker("$share/new/t", set);
        assert_eq!(c.len(), 1, "cleared, then the new group added");
        assert_eq!(c.pick_worker("$share/g0/t", set), Some(0), "starts again");
    }
}
