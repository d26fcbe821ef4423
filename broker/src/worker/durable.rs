//! `durability = "sync"`: a QoS 1/2 PUBLISH that reached a persistent
//! session is acknowledged only once every store that took it has made it
//! durable.
//!
//! The publishing worker gives the message a token and counts the stores
//! it waits for: its own when its delivery left changes pending
//! (`StoreObserver::pending_commit`), and each other worker it sent the
//! message to that holds persistent sessions (that worker reports the
//! token back, `Control::Durable`, once its own commit holding the
//! message is durable, or at once when the message changed nothing
//! there). A worker's store thread says when a commit is durable
//! (`Control::Synced`). When a token's count reaches zero its connection's
//! acknowledgement goes out, in order behind the earlier ones
//! (`deliver::held`). The wait is a group commit: one fsync covers every
//! message of the moment, on each worker.

use super::Worker;
use crate::deliver::ConnCell;
use crate::shared::Control;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

/// One worker's waiting acknowledgements and the tokens it owes others.
#[derive(Debug, Default)]
pub(crate) struct DurableAcks {
    next: Cell<u64>,
    /// Token → its connection and how many reports it still waits for.
    waiting: RefCell<HashMap<u64, (Weak<ConnCell>, u32)>>,
    /// Own commit → tokens of this worker waiting for it.
    local: RefCell<VecDeque<(u64, u64)>>,
    /// Own commit → (worker, token) to report to other workers.
    owed: RefCell<VecDeque<(u64, usize, u64)>>,
}

impl DurableAcks {
    /// A new token.
    pub(crate) fn token(&self) -> u64 {
        let t = self.next.get() + 1;
        self.next.set(t);
        t
    }
}

impl Worker {
    /// After routing a message with `token` to `remote` other stores: adds
    /// this worker's own store when it has changes to make durable, and
    /// returns the token if anything is waited for.
    pub(super) fn durable_wait(&self, token: u64, remote: u32) -> Option<u64> {
        let mut count = remote;
        if let (false, Some(commit)) = (self.store.failed(), self.store.pending_commit()) {
            self.acks.local.borrow_mut().push_back((commit, token));
            count += 1;
        }
        if count == 0 {
            return None;
        }
        // The connection is filled in by `hold_for`.
        self.acks
            .waiting
            .borrow_mut()
            .insert(token, (Weak::new(), count));
        Some(token)
    }

    /// The acknowledgement held for `token` belongs to `cell`.
    pub(crate) fn hold_for(&self, token: u64, cell: &Rc<ConnCell>) {
        if let Some(entry) = self.acks.waiting.borrow_mut().get_mut(&token) {
            entry.0 = Rc::downgrade(cell);
        }
    }

    /// This worker took a message with `token` from worker `origin`: the
    /// token is reported back once what this worker stored of it is durable.
    pub(crate) fn took_durable(&self, origin: usize, token: u64) {
        if self.store.failed() {
            self.report(origin, vec![token], false);
            return;
        }
        match self.store.pending_commit() {
            Some(commit) => self
                .acks
                .owed
                .borrow_mut()
                .push_back((commit, origin, token)),
            None => self.report(origin, vec![token], true),
        }
    }

    /// Tells `origin` that these tokens are durable here (`ok`) or never
    /// will be.
    fn report(&self, origin: usize, tokens: Vec<u64>, ok: bool) {
        if origin == self.id {
            for t in tokens {
                if ok {
                    self.durable_done(t);
                } else {
                    self.durable_failed(t);
                }
            }
            return;
        }
        if let Some(link) = self.shared.workers.get(origin) {
            if link.control.send(Control::Durable { tokens, ok }).is_err() {
                tracing::warn!(worker = origin, "worker gone: durability report dropped");
            }
        }
    }

    /// [`report`](Self::report) of `(worker, token)` pairs, one message per worker.
    fn report_each(&self, owed: Vec<(usize, u64)>, ok: bool) {
        let mut by_worker: HashMap<usize, Vec<u64>> = HashMap::new();
        for (w, t) in owed {
            by_worker.entry(w).or_default().push(t);
        }
        for (w, tokens) in by_worker {
            self.report(w, tokens, ok);
        }
    }

    /// This worker's store failed: every token waiting for it fails, here
    /// and on the workers whose messages it took.
    pub(crate) fn store_failed(&self) {
        let mine: Vec<u64> = self
            .acks
            .local
            .borrow_mut()
            .drain(..)
            .map(|(_, t)| t)
            .collect();
        for t in mine {
            self.durable_failed(t);
        }
        let owed: Vec<(usize, u64)> = self
            .acks
            .owed
            .borrow_mut()
            .drain(..)
            .map(|(_, w, t)| (w, t))
            .collect();
        self.report_each(owed, false);
    }

    /// A store that `token` waited for cannot keep it: its publisher is
    /// told (v5: 0x97 Quota exceeded; v3, which has no such answer: the
    /// connection closes, so the client sends it again).
    pub(crate) fn durable_failed(&self, token: u64) {
        let cell = self
            .acks
            .waiting
            .borrow_mut()
            .remove(&token)
            .and_then(|(c, _)| c.upgrade());
        let Some(cell) = cell else {
            return;
        };
        self.stats.dropped_store_unavailable.inc();
        let Ok(mut cs) = cell.try_borrow_mut() else {
            return;
        };
        cs.fail_held(token);
        self.flush(&mut cs);
        cs.wake();
    }

    /// This worker's store made commit `commit` durable.
    pub(crate) fn synced(&self, commit: u64) {
        let mine: Vec<u64> = {
            let mut local = self.acks.local.borrow_mut();
            let n = local.iter().take_while(|(c, _)| *c <= commit).count();
            local.drain(..n).map(|(_, t)| t).collect()
        };
        for t in mine {
            self.durable_done(t);
        }
        let owed: Vec<(usize, u64)> = {
            let mut owed = self.acks.owed.borrow_mut();
            let n = owed.iter().take_while(|(c, _, _)| *c <= commit).count();
            owed.drain(..n).map(|(_, w, t)| (w, t)).collect()
        };
        self.report_each(owed, true);
    }

    /// One store that `token` waited for made it durable.
    pub(crate) fn durable_done(&self, token: u64) {
        let cell = {
            let mut waiting = self.acks.waiting.borrow_mut();
            let Some(entry) = waiting.get_mut(&token) else {
                return;
            };
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 > 0 {
                return;
            }
            waiting.remove(&token).and_then(|(c, _)| c.upgrade())
        };
        let Some(cell) = cell else {
            // The publisher has gone: nothing to acknowledge.
            return;
        };
        let Ok(mut cs) = cell.try_borrow_mut() else {
            return;
        };
        cs.release_held(token);
        self.flush(&mut cs);
        cs.wake();
    }
}
