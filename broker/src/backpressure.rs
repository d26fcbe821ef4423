//! Publisher backpressure for local congestion.
//!
//! A publisher that feeds a subscriber faster than the subscriber takes
//! messages would otherwise fill the subscriber's session queue up to its
//! limit and lose what does not fit (or, with generous limits, pile up memory
//! and latency). So when a delivery leaves a subscriber's backlog (writer
//! bytes, queued messages or queued bytes) at or above its *high-water mark*
//! (half of the configured limit), the publishing task stops reading from its
//! own socket until that backlog falls below the *low-water mark* (a quarter
//! of the limit): TCP then slows the publisher, and the worker delivers
//! before it ingests more. A worker's inbox loop does the same for messages
//! from other workers, so a full inbox holds back their publishers.
//!
//! Every waiter is released each time the subscriber drains below the
//! low-water mark, even if another waiter has refilled it by the time the
//! released one runs: publishers take turns instead of the quickest one
//! starving the others.
//!
//! One slow subscriber must not stall its publishers (and through them every
//! other subscriber). A publisher waits at most [`MAX_PAUSE`]; a subscriber
//! that has not drained below the low-water mark by then is marked *slow*
//! and nobody waits for it until it has room again, or until
//! [`SLOW_RETEST`] has passed and it is seen writing again (a subscriber that
//! sped up gets its publishers paced again; a stuck one writes nothing and
//! stays marked). A slow subscriber's queue fills to its configured limit and
//! overflow is dropped and counted, as without backpressure.

use std::task::Waker;
use std::time::{Duration, Instant};
use tern_config::Limits;

/// The longest a publisher waits for a congested subscriber.
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(500);
/// How long a slow subscriber stays exempt before publishers wait for it again.
pub(crate) const SLOW_RETEST: Duration = Duration::from_secs(5);

/// The most queued messages (behind the inflight window) a subscriber may
/// have before its publishers wait.
pub(crate) const HIGH_MESSAGES_CAP: usize = 128;
/// The most unwritten bytes a subscriber may have before its publishers wait.
pub(crate) const HIGH_WRITER_CAP: usize = 256 * 1024;

/// Backpressure state of one connection, as a subscriber.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    /// Publishers waiting for this connection to have room.
    waiters: Vec<Waker>,
    /// Counts the times waiters were released.
    epoch: u32,
    /// Since when publishers do not wait for this connection.
    slow_since: Option<Instant>,
}

impl Drain {
    /// Releases every waiter (the connection is closing or has room).
    pub(crate) fn release(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    /// How many times waiters were released so far.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// True while publishers do not wait for this connection.
    pub(crate) fn is_slow(&self) -> bool {
        self.slow_since.is_some()
    }

    /// Publishers stop waiting for this connection from `now` on.
    pub(crate) fn mark_slow(&mut self, now: Instant) {
        self.slow_since = Some(now);
    }

    /// Adds a publisher's waker (once).
    pub(crate) fn register(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }
}

/// What a subscriber has not sent yet.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Backlog {
    /// Unwritten bytes in its writer.
    pub(crate) writer: usize,
    /// Messages queued behind its inflight window.
    pub(crate) messages: usize,
    /// Bytes of those messages.
    pub(crate) bytes: usize,
    /// False once its session has left the connection.
    pub(crate) connected: bool,
}

/// When a subscriber's backlog counts as congested, and when it has room again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watermarks {
    high_writer: usize,
    high_messages: usize,
    high_bytes: usize,
}

impl Watermarks {
    /// High-water marks at half of each configured limit, but no more than
    /// keeps a subscriber busy ([`HIGH_MESSAGES_CAP`], [`HIGH_WRITER_CAP`]):
    /// a deeper backlog only adds latency. Low-water marks at half of those.
    pub(crate) fn from_limits(limits: &Limits) -> Self {
        let cap = |limit: usize, cap: usize| (limit / 2).clamp(1, cap);
        Self {
            high_writer: cap(limits.writer_buffer_bytes, HIGH_WRITER_CAP),
            high_messages: cap(limits.max_queued_messages, HIGH_MESSAGES_CAP),
            high_bytes: (limits.max_queued_bytes / 2).max(1),
        }
    }

    /// True when `b` is below every high-water mark divided by `div`.
    fn below(&self, b: &Backlog, div: usize) -> bool {
        b.writer < self.high_writer / div
            && b.messages < self.high_messages / div
            && b.bytes < self.high_bytes / div
    }

    /// True when a publisher should wait for a subscriber to drain: its
    /// backlog reached a high-water mark.
    pub(crate) fn congested(&self, drain: &Drain, b: &Backlog) -> bool {
        drain.slow_since.is_none() && b.connected && !self.below(b, 1)
    }

    /// True when a subscriber is connected and its backlog is below every
    /// high-water mark: a shared subscription prefers such a member.
    pub(crate) fn has_headroom(&self, b: &Backlog) -> bool {
        b.connected && self.below(b, 1)
    }

    /// True when a backlog is below every low-water mark (half the high),
    /// or its subscriber is gone.
    pub(crate) fn has_room(&self, b: &Backlog) -> bool {
        !b.connected || self.below(b, 2)
    }

    /// True when a connection replaying retained messages may take the next
    /// one: its writer is below half the high-water mark and, for QoS 1/2,
    /// the inflight window has room (`window_free`) or its queue is below
    /// half the high-water marks. A replay thus never reaches a limit at
    /// which messages are dropped (`deliver::replay`).
    pub(crate) fn replay_room(&self, b: &Backlog, window_free: bool) -> bool {
        b.connected
            && b.writer < self.high_writer / 2
            && (window_free
                || (b.messages < self.high_messages / 2 && b.bytes < self.high_bytes / 2))
    }

    /// Called after a connection wrote something: releases the publishers
    /// waiting for it once it has room, and decides whether a slow
    /// subscriber should be paced again.
    pub(crate) fn note_progress(&self, drain: &mut Drain, b: &Backlog) {
        if drain.waiters.is_empty() && drain.slow_since.is_none() {
            return;
        }
        if self.has_room(b) {
            drain.slow_since = None;
            drain.release();
        } else if drain.slow_since.is_some_and(|t| t.elapsed() >= SLOW_RETEST) {
            drain.slow_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_are_half_and_a_quarter_of_the_limits() {
        let limits = Limits {
            writer_buffer_bytes: 1000,
            max_queued_messages: 100,
            max_queued_bytes: 10_000,
            ..Limits::default()
        };
        let m = Watermarks::from_limits(&limits);
        assert_eq!(
            (m.high_writer, m.high_messages, m.high_bytes),
            (500, 50, 5000)
        );
        let m = Watermarks::from_limits(&Limits::default());
        assert_eq!(
            (m.high_writer, m.high_messages),
            (HIGH_WRITER_CAP, HIGH_MESSAGES_CAP),
            "the defaults are above the caps"
        );
    }

    #[test]
    fn released_waker_is_woken_and_epoch_moves() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut d = Drain::default();
        d.waiters.push(Waker::from(Arc::clone(&count)));
        d.release();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(d.epoch, 1);
        assert!(d.waiters.is_empty());
    }
}
