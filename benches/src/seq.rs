//! Per (subscriber, publisher) sequence tracking: duplicates and reordering
//! in O(1) memory, no allocation per message.

/// Sequence numbers this far below the highest seen are no longer tracked.
const WINDOW: u64 = 128;

/// What one received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqOutcome {
    /// Higher than all before it.
    InOrder,
    /// Lower than the highest seen and not seen before (or too old to tell;
    /// MQTT never redelivers on a live connection, so a reorder is likelier).
    Reordered,
    /// Seen before.
    Duplicate,
}

/// Remembers the highest sequence seen plus a bitmap of the 128 below it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SeqTracker {
    /// Highest sequence seen + 1 (0 = nothing yet).
    next: u64,
    /// Bit i set ⇔ sequence `next - 1 - i` was seen.
    seen: u128,
}

impl SeqTracker {
    /// Record `seq` and classify it.
    pub(crate) fn record(&mut self, seq: u32) -> SeqOutcome {
        let seq = u64::from(seq);
        if seq >= self.next {
            let shift = seq - self.next + 1;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.next = seq + 1;
            return SeqOutcome::InOrder;
        }
        let back = self.next - 1 - seq;
        if back >= WINDOW {
            return SeqOutcome::Reordered;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            SeqOutcome::Duplicate
        } else {
            self.seen |= bit;
            SeqOutcome::Reordered
        }
    }

    /// Highest sequence seen + 1: with in-order delivery every sequence below
    /// it has been delivered or lost.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeqOutcome::*;

    #[test]
    fn in_order_gaps_duplicates_and_reorders() {
        let mut t = SeqTracker::default();
        assert_eq!(t.next(), 0);
        assert_eq!(t.record(0), InOrder);
        assert_eq!(t.record(1), InOrder);
        assert_eq!(t.record(1), Duplicate);
        assert_eq!(t.record(4), InOrder); // 2, 3 missing so far
        assert_eq!(t.next(), 5);
        assert_eq!(t.record(3), Reordered);
        assert_eq!(t.record(3), Duplicate);
        assert_eq!(t.record(0), Duplicate);
        assert_eq!(t.record(2), Reordered);
        assert_eq!(t.record(4), Duplicate);
    }

    #[test]
    fn window_edges() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(0), InOrder);
        assert_eq!(t.record(127), InOrder);
        assert_eq!(t.record(0), Duplicate); // exactly 127 back: still tracked
        assert_eq!(t.record(1000), InOrder); // jump clears the bitmap
        assert_eq!(t.record(1000 - 127), Reordered);
        assert_eq!(t.record(1000 - 127), Duplicate);
        assert_eq!(t.record(1000 - 128), Reordered); // untracked: assumed reorder
        assert_eq!(t.record(u32::MAX), InOrder);
        assert_eq!(t.record(u32::MAX), Duplicate);
    }
}
