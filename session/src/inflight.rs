//! The outgoing inflight window: QoS > 0 messages sent to the client and not
//! yet fully acknowledged, and the packet identifiers they hold.
//!
//! Packet ids come from a pointer that steps through 1, 2, …, 65535, 1, …
//! skipping ids still in use ([MQTT-2.3.1-2]). The deque holds the entries
//! in the order their ids were taken, each stamped with a step count, and
//! every entry took its id less than one lap (65535 steps) ago: when the
//! pointer comes round to an id still in flight (a message the client has
//! not acknowledged for a whole lap), that id can only be the front entry's,
//! which is then moved to the back and re-stamped. Within one lap the step
//! follows from the id's distance to the front's id, so the entry of an id
//! is found by arithmetic and a binary search; acknowledgements in order
//! (the usual case) hit the front entry at once, and allocation is O(1).
//!
//! An acknowledged entry in the middle becomes a tombstone (its message is
//! dropped at once); tombstones leave from the front, and the deque is
//! compacted when they outnumber the live entries, so it never holds more
//! than about twice the window.

use crate::session::{InflightState, Message};
use std::collections::VecDeque;
use tern_codec::PacketId;

/// Packet ids per lap of the pointer: 1..=65535.
const LAP: u32 = u16::MAX as u32;

/// Steps from id `from` to id `to` going forward (0 when equal).
fn distance(from: PacketId, to: PacketId) -> u32 {
    (u32::from(to.get()) + LAP - u32::from(from.get())) % LAP
}

/// One sent message (or a tombstone: `message` is `None`).
pub(crate) struct Entry {
    /// Step stamp: strictly increasing along the deque, relative to nothing.
    at: u32,
    /// Re-send order ([MQTT-4.6.0-1], [MQTT-4.6.0-3]): PUBLISH order, then
    /// PUBREC order once the message waits for PUBCOMP.
    pub(crate) seq: u32,
    pub(crate) pid: PacketId,
    pub(crate) state: InflightState,
    pub(crate) message: Option<Message>,
}

/// Inflight messages by packet id (see the module docs).
#[derive(Default)]
pub(crate) struct InflightWindow {
    entries: VecDeque<Entry>,
    /// The last packet id handed out (0 = none yet).
    next: u16,
    /// Entries that are not tombstones (at most 65535: one per id).
    live: u16,
    /// The last re-send order number given out.
    seq: u32,
}

impl InflightWindow {
    /// Messages in flight.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.live)
    }

    /// Live entries, in the order their ids were taken.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.message.is_some())
    }

    /// Drops the allocation of an empty window (the id pointer is kept).
    pub(crate) fn release_memory(&mut self) {
        if self.live == 0 {
            self.entries = VecDeque::new();
        }
    }

    /// Moves the id pointer so that the next id tried is `last + 1`.
    #[cfg(test)]
    pub(crate) fn set_last_id(&mut self, last: u16) {
        while self.next != last {
            self.step();
        }
    }

    /// Records `message` under the next free packet id and returns the id;
    /// gives the message back when all 65535 ids are in use.
    pub(crate) fn insert(
        &mut self,
        state: InflightState,
        message: Message,
    ) -> Result<PacketId, Message> {
        let Some(pid) = self.alloc() else {
            return Err(message);
        };
        self.push(pid, state, message);
        Ok(pid)
    }

    /// Appends the entry of a message that just took `pid`.
    fn push(&mut self, pid: PacketId, state: InflightState, message: Message) {
        let seq = self.next_seq();
        let at = self.stamp(pid);
        self.entries.push_back(Entry {
            at,
            seq,
            pid,
            state,
            message: Some(message),
        });
        self.live += 1;
    }

    /// Puts back an entry that held `pid` before a restart
    /// ([`Session::restore`](crate::Session::restore)). Entries must come
    /// in the order their ids were taken; the pointer moves to `pid`, so
    /// new ids follow the last one restored. Gives the message back when
    /// `pid` is in use already.
    pub(crate) fn restore(
        &mut self,
        pid: PacketId,
        state: InflightState,
        message: Message,
    ) -> Result<(), Message> {
        if self.find(pid).is_some() {
            return Err(message);
        }
        self.next = pid.get() - 1;
        if self.step() != Some(pid) {
            return Err(message);
        }
        self.push(pid, state, message);
        Ok(())
    }

    /// Makes `last` the last id handed out: the next one tried is `last + 1`.
    pub(crate) fn set_pointer(&mut self, last: PacketId) {
        self.next = last.get();
    }

    /// Numbers the entries of `pids` for re-sending in that order (after a
    /// restore).
    pub(crate) fn set_resend_order(&mut self, pids: impl Iterator<Item = PacketId>) {
        for pid in pids {
            let seq = self.next_seq();
            if let Some(i) = self.find(pid) {
                if let Some(e) = self.entries.get_mut(i) {
                    e.seq = seq;
                }
            }
        }
    }

    /// PUBREC received for `pid`: it now waits for PUBCOMP, and is re-sent
    /// (as PUBREL) in PUBREC order.
    pub(crate) fn mark_pubrel(&mut self, pid: PacketId) {
        let Some(i) = self.find(pid) else {
            return;
        };
        let seq = self.next_seq();
        // `next_seq` may renumber, but never moves entries.
        if let Some(e) = self.entries.get_mut(i) {
            e.state = InflightState::AwaitPubComp;
            e.seq = seq;
        }
    }

    /// The next re-send order number. When the counter runs out, the live
    /// entries are renumbered 1..=n in their order first.
    fn next_seq(&mut self) -> u32 {
        if self.seq == u32::MAX {
            let mut order: Vec<(u32, usize)> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.seq, i))
                .collect();
            order.sort_unstable();
            self.seq = 0;
            for (_, i) in order {
                self.seq += 1;
                if let Some(e) = self.entries.get_mut(i) {
                    e.seq = self.seq;
                }
            }
        }
        self.seq += 1;
        self.seq
    }

    /// The step stamp for an entry taking `pid` now: after the back entry
    /// by as many steps as the pointer moved since. Before the stamps run
    /// out they are rebased to start at 0.
    fn stamp(&mut self, pid: PacketId) -> u32 {
        let Some(back) = self.entries.back() else {
            return 0;
        };
        if back.at > u32::MAX - 2 * LAP {
            let base = self.entries.front().map_or(0, |e| e.at);
            for e in &mut self.entries {
                e.at -= base;
            }
        }
        self.entries
            .back()
            .map_or(0, |b| b.at + distance(b.pid, pid))
    }

    /// The next packet id not in use, wrapping from 65535 to 1.
    fn alloc(&mut self) -> Option<PacketId> {
        for _ in 0..LAP {
            if let Some(pid) = self.step() {
                return Some(pid);
            }
        }
        None
    }

    /// Advances the pointer one id; returns it when it is free. An id in use
    /// can only be the front entry's (it took the id exactly one lap ago):
    /// that entry is moved to the back and re-stamped, keeping every entry
    /// within one lap.
    fn step(&mut self) -> Option<PacketId> {
        self.next = self.next.checked_add(1).unwrap_or(1);
        let pid = PacketId::new(self.next)?;
        if self.entries.front().is_some_and(|e| e.pid == pid) {
            let mut e = self.entries.pop_front()?;
            self.pop_tombstones();
            e.at = self.stamp(pid);
            self.entries.push_back(e);
            return None;
        }
        Some(pid)
    }

    /// The live entry holding `pid`.
    pub(crate) fn get(&self, pid: PacketId) -> Option<&Entry> {
        self.entries.get(self.find(pid)?)
    }

    /// Frees `pid` when it is in flight in state `expected` (any state for
    /// `None`); false, changing nothing, otherwise.
    pub(crate) fn remove(&mut self, pid: PacketId, expected: Option<InflightState>) -> bool {
        let Some(i) = self.find(pid) else {
            return false;
        };
        if i == 0 {
            // Acknowledged in order: the usual case.
            if expected.is_some_and(|s| self.entries.front().is_some_and(|e| e.state != s)) {
                return false;
            }
            self.entries.pop_front();
            self.live -= 1;
            self.pop_tombstones();
            return true;
        }
        let Some(e) = self.entries.get_mut(i) else {
            return false;
        };
        if expected.is_some_and(|s| e.state != s) {
            return false;
        }
        e.message = None;
        self.live -= 1;
        let dead = self.entries.len() - self.len();
        if dead > self.len().max(16) {
            self.entries.retain(|e| e.message.is_some());
        }
        true
    }

    /// Keeps the front entry live.
    fn pop_tombstones(&mut self) {
        while self.entries.front().is_some_and(|e| e.message.is_none()) {
            self.entries.pop_front();
        }
    }

    /// Index of the live entry holding `pid`.
    fn find(&self, pid: PacketId) -> Option<usize> {
        let front = self.entries.front()?;
        if front.pid == pid {
            return Some(0);
        }
        // Every entry is within one lap of the front: the stamp of `pid`
        // follows from its distance to the front's id.
        let at = front.at + distance(front.pid, pid);
        if self.entries.back().is_some_and(|last| at > last.at) {
            return None;
        }
        let i = self.entries.partition_point(|e| e.at < at);
        let e = self.entries.get(i)?;
        (e.at == at && e.message.is_some()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::{message, msg};
    use std::collections::BTreeMap;

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    /// The window against a plain map: every id it hands out is free, and
    /// every lookup agrees.
    struct Checked {
        w: InflightWindow,
        model: BTreeMap<u16, InflightState>,
        m: Message,
    }

    impl Checked {
        fn new() -> Self {
            Self {
                w: InflightWindow::default(),
                model: BTreeMap::new(),
                m: message(&msg("t", b"x")),
            }
        }

        fn insert(&mut self) -> Option<u16> {
            let got = self.w.insert(InflightState::AwaitPubAck, self.m.clone());
            let pid = got.ok().map(PacketId::get);
            match pid {
                Some(p) => {
                    assert!(self.model.insert(p, InflightState::AwaitPubAck).is_none());
                }
                None => assert_eq!(self.model.len(), usize::from(u16::MAX)),
            }
            pid
        }

        fn remove(&mut self, p: u16) {
            assert_eq!(
                self.w.remove(id(p), None),
                self.model.remove(&p).is_some(),
                "{p}"
            );
            assert_eq!(self.w.len(), self.model.len());
        }

        fn check(&self) {
            assert_eq!(self.w.len(), self.model.len());
            assert!(self.w.entries.len() <= 2 * self.model.len() + 17);
            for probe in [1, 2, 3, 100, 1000, 32767, 65534, 65535] {
                assert_eq!(
                    self.w.find(id(probe)).is_some(),
                    self.model.contains_key(&probe),
                    "{probe}"
                );
            }
            for &p in self.model.keys() {
                let i = self.w.find(id(p)).expect("live id found");
                assert_eq!(self.w.entries[i].pid.get(), p);
            }
        }
    }

    #[test]
    fn in_order_acks_keep_the_window_small() {
        let mut c = Checked::new();
        for round in 0..3000u32 {
            let p = c.insert().unwrap();
            if round >= 32 {
                let oldest = c.w.iter().next().unwrap().pid.get();
                c.remove(oldest);
            }
            assert!(c.w.entries.len() <= 33, "round {round} id {p}");
        }
    }

    #[test]
    fn out_of_order_acks_and_a_stuck_id_across_laps() {
        let mut c = Checked::new();
        let stuck = c.insert().unwrap();
        let mut state = 12345u32;
        let mut rand = move || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            state >> 8
        };
        // Three laps of the pointer with up to 64 in flight, acknowledged
        // in random order, while `stuck` is never acknowledged.
        for i in 0..(3 * 65535) {
            if i % 1021 == 0 {
                c.check();
            }
            let p = c.insert().unwrap();
            assert_ne!(p, stuck, "[MQTT-2.3.1-2] an id in use was reused");
            if c.model.len() > 64 {
                let skip = rand() as usize % (c.model.len() - 1);
                let victim = *c.model.keys().filter(|k| **k != stuck).nth(skip).unwrap();
                c.remove(victim);
            }
        }
        c.check();
        assert!(c.w.find(id(stuck)).is_some());
        c.remove(stuck);
        c.remove(stuck);
        assert!(c.w.entries.len() <= 2 * c.model.len() + 17);
    }

    #[test]
    fn every_id_in_use_then_one_freed() {
        let mut c = Checked::new();
        for n in 1..=u16::MAX {
            assert_eq!(c.insert(), Some(n));
        }
        assert_eq!(c.insert(), None, "all 65535 ids are in use");
        c.remove(777);
        c.remove(40000);
        assert_eq!(c.insert(), Some(777));
        assert_eq!(c.insert(), Some(40000));
        assert_eq!(c.insert(), None);
        c.check();
    }

    #[test]
    fn remove_in_the_wrong_state_changes_nothing() {
        let m = message(&msg("t", b"x"));
        let mut w = InflightWindow::default();
        for _ in 0..3 {
            assert!(w.insert(InflightState::AwaitPubRec, m.clone()).is_ok());
        }
        // A PUBACK for QoS 2 ids, at the front and in the middle.
        for p in [1, 2] {
            assert!(!w.remove(id(p), Some(InflightState::AwaitPubAck)));
        }
        assert_eq!(w.len(), 3);
        assert!(w.remove(id(2), Some(InflightState::AwaitPubRec)));
        assert!(!w.remove(id(2), None), "already removed");
        assert!(w.remove(id(1), Some(InflightState::AwaitPubRec)));
        assert_eq!(w.iter().map(|e| e.pid.get()).collect::<Vec<_>>(), [3]);
        assert_eq!(w.entries.len(), 1, "tombstones left from the front");
    }

    #[test]
    fn stamps_are_rebased_before_they_run_out() {
        let mut c = Checked::new();
        for _ in 0..40 {
            c.insert();
        }
        for e in &mut c.w.entries {
            e.at += u32::MAX - 3 * LAP;
        }
        let mut state = 99u32;
        for _ in 0..(2 * 65535) {
            c.insert().unwrap();
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let skip = (state >> 8) as usize % c.model.len();
            let victim = *c.model.keys().nth(skip).unwrap();
            c.remove(victim);
        }
        c.check();
        assert!(c.w.entries.back().unwrap().at < 3 * LAP, "rebased");
    }

    #[test]
    fn resend_order_survives_renumbering() {
        let m = message(&msg("t", b"x"));
        let mut w = InflightWindow {
            seq: u32::MAX - 2,
            ..Default::default()
        };
        for _ in 0..4 {
            assert!(w.insert(InflightState::AwaitPubRec, m.clone()).is_ok());
        }
        // PUBRECs for 3 then 1: those are re-sent (as PUBREL) after the others.
        w.mark_pubrel(id(3));
        w.mark_pubrel(id(1));
        let mut order: Vec<_> = w.iter().map(|e| (e.seq, e.pid.get())).collect();
        order.sort_unstable();
        let pids: Vec<u16> = order.iter().map(|(_, p)| *p).collect();
        assert_eq!(pids, [2, 4, 3, 1]);
        assert!(order.iter().all(|(seq, _)| *seq <= 6), "renumbered from 1");
    }
}
