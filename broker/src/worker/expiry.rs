//! Time-driven session state of a worker: offline sessions end when their
//! Session Expiry Interval has passed ([MQTT5-3.1.2-23], 3.1.2.11.2), delayed
//! wills are published when their Will Delay Interval has passed or their
//! session ends, whichever comes first ([MQTT5-3.1.3-9], [MQTT5-3.1.2-8]),
//! and expired retained messages are purged.
//!
//! Both schedules are [`Deadlines`] keyed by the session's `ClientKey`,
//! driven by the worker's 500 ms tick with a bound on the work per tick, so
//! a deadline fires at most one tick late. Invariant: a key has a scheduled
//! expiry or a pending will only while its session is offline on this
//! worker; every path that resumes, discards or ends the session cancels
//! both (`take_session`, `end_offline_session`).

use super::Worker;
use crate::client::{ClientKey, ClientState};
use crate::deadlines::Deadlines;
use crate::store::StoreEvent;
use bytestring::ByteString;
use std::time::Instant;
use tern_codec::Publish;
use tern_session::{Session, Will};

/// Most sessions ended, wills published and retained messages purged per
/// tick, each (the rest wait for the next tick).
const MAX_PER_TICK: usize = 256;

impl Worker {
    /// A connection closed at `now` and its `session` stays offline: its end
    /// is scheduled, unless it never expires (0xFFFFFFFF, v3 Clean Session 0).
    pub(super) fn schedule_session_end(&self, now: Instant, key: ClientKey, session: &Session) {
        let mut timers = self.timers.borrow_mut();
        match session.expires_at(now) {
            Some(at) if !timers.shutting_down => {
                timers.sessions.schedule(key, at, ());
            }
            _ => {
                timers.sessions.cancel(key);
            }
        }
    }

    /// The will of a connection that closed at `now`. Published at once
    /// unless it has a Will Delay Interval and its session stays offline
    /// (`offline`); then it waits for the delay or the session's end
    /// ([MQTT5-3.1.3-9]). At shutdown every session ends (no delay), unless
    /// the store keeps the sessions: then the will waits in the store too.
    pub(super) fn will_at_close(&self, now: Instant, key: ClientKey, will: Will, offline: bool) {
        let ends = self.timers.borrow().shutting_down && !self.keeps_sessions();
        let delayed = offline && will.delay.is_some() && !ends;
        if !delayed {
            self.publish_detached(now, key, will.publish);
            return;
        }
        // Beyond what the clock holds: the will waits for the session's
        // end (which is then never, but for a shutdown or a clean start).
        let at = will.publish_at(now).unwrap_or_else(|| far_future(now));
        if let Some(client_id) = self.offline_client_id(key) {
            self.store.observe(StoreEvent::WillScheduled {
                client_id: &client_id,
                will: &will.publish,
                due: at,
            });
        }
        self.timers
            .borrow_mut()
            .wills
            .schedule(key, at, will.publish);
    }

    /// A will read back from the store: due at `due` (now, if that passed
    /// while the broker was down).
    pub(super) fn schedule_restored_will(&self, key: ClientKey, due: Instant, will: Publish) {
        self.timers.borrow_mut().wills.schedule(key, due, will);
    }

    /// A new connection takes the offline session of `key`: its end is no
    /// longer scheduled, and its pending will is returned (the caller
    /// publishes it when the new connection starts a new session, and drops
    /// it when it resumes this one, [MQTT5-3.1.3-9]).
    pub(super) fn session_taken(&self, key: ClientKey) -> Option<Publish> {
        let mut timers = self.timers.borrow_mut();
        timers.sessions.cancel(key);
        timers.wills.cancel(key)
    }

    /// The worker's tick: publishes the wills that are due, ends the offline
    /// sessions that expired, and purges expired retained messages (worker 0
    /// only: the store is shared), each bounded per tick.
    pub(crate) fn expire(&self, now: Instant) {
        for _ in 0..MAX_PER_TICK {
            let due = self.timers.borrow_mut().wills.pop_due(now);
            let Some((key, will)) = due else { break };
            tracing::debug!(topic = %will.topic, "will delay interval passed: publishing the will");
            if let Some(client_id) = self.offline_client_id(key) {
                self.store.observe(StoreEvent::WillCleared {
                    client_id: &client_id,
                });
            }
            self.publish_detached(now, key, will);
        }
        for _ in 0..MAX_PER_TICK {
            let due = self.timers.borrow_mut().sessions.pop_due(now);
            let Some((key, ())) = due else { break };
            self.end_offline_session(now, key);
        }
        if self.id == 0 {
            let purged = self
                .shared
                .retained
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .purge_expired_at_most(now, MAX_PER_TICK);
            if purged > 0 {
                tracing::debug!(purged, "expired retained messages removed");
            }
        }
    }

    /// The Session Expiry Interval of the offline session of `key` has
    /// passed: the session is discarded (its subscriptions leave the trie and
    /// the route table, its client id the registry), and its pending will,
    /// if any, is published now because the session ends ([MQTT5-3.1.3-9]).
    fn end_offline_session(&self, now: Instant, key: ClientKey) {
        let client = {
            let mut clients = self.clients.borrow_mut();
            match clients.get(&key) {
                Some(c) if matches!(c.state, ClientState::Offline(_)) => clients.remove(&key),
                // Online again: `take_session` cancels the expiry, so this
                // is not expected; the session is in use and stays.
                _ => None,
            }
        };
        let Some(client) = client else {
            return;
        };
        let ClientState::Offline(session) = client.state else {
            return;
        };
        self.drop_subscriptions(key, &session);
        let client_id = session.client_id();
        self.by_id.borrow_mut().remove(client_id);
        self.shared
            .registry
            .release(client_id, self.id, client.generation);
        self.stats.sessions_expired.inc();
        tracing::debug!(%client_id, "session expired");
        let will = self.timers.borrow_mut().wills.cancel(key);
        if will.is_some() {
            self.store.observe(StoreEvent::WillCleared { client_id });
        }
        self.store.observe(StoreEvent::SessionEnded { client_id });
        if let Some(will) = will {
            self.publish_detached(now, key, will);
        }
    }

    /// Sessions outlive the process (the store keeps them).
    fn keeps_sessions(&self) -> bool {
        self.shared.store.records_session_changes()
    }

    /// The client id of the offline session of `key` (for the store's
    /// will events, which are rare).
    fn offline_client_id(&self, key: ClientKey) -> Option<ByteString> {
        match &self.clients.borrow().get(&key)?.state {
            ClientState::Offline(session) => Some(session.client_id().clone()),
            ClientState::Online(_) => None,
        }
    }

    /// Shutdown begins: every session ends with the broker, so the pending
    /// delayed wills are published now (before the connections close, so
    /// connected subscribers still get them), and wills of connections that
    /// close from here on are not delayed. With a store that keeps the
    /// sessions (`persistence = "on"`) nothing ends: the delayed wills stay
    /// in the store and are due after the restart as they would have been.
    pub(crate) fn begin_shutdown(&self, now: Instant) {
        if self.keeps_sessions() {
            self.timers.borrow_mut().shutting_down = true;
            return;
        }
        let wills = {
            let mut timers = self.timers.borrow_mut();
            timers.shutting_down = true;
            timers.sessions = Deadlines::default();
            timers.wills.drain_all()
        };
        if !wills.is_empty() {
            tracing::debug!(
                worker = self.id,
                wills = wills.len(),
                "shutdown: publishing delayed wills"
            );
        }
        for (key, will) in wills {
            if let Some(client_id) = self.offline_client_id(key) {
                self.store.observe(StoreEvent::WillCleared {
                    client_id: &client_id,
                });
            }
            self.publish_detached(now, key, will);
        }
    }

    /// Waits (at most one backpressure pause) until this worker's data inbox
    /// is empty: what other workers routed here has been delivered.
    pub(crate) async fn drain_inbox(&self) {
        let Some(link) = self.shared.workers.get(self.id) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + crate::backpressure::MAX_PAUSE;
        while link.data.capacity() < link.data.max_capacity()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// A deadline that never comes in practice (about 30 years on), for a will
/// whose delay the clock cannot represent.
fn far_future(now: Instant) -> Instant {
    const YEARS_30: u64 = 30 * 365 * 86_400;
    now.checked_add(std::time::Duration::from_secs(YEARS_30))
        .unwrap_or(now)
}
