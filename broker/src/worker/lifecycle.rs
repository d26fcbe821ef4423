//! Session lifecycle on this worker: a new connection takes its session
//! (takeover, Clean Start), a closing connection gives it back (kept
//! offline, or ended with its subscriptions), and its will is published or
//! scheduled (see `expiry`).

use super::Worker;
use crate::client::{Client, ClientKey, ClientState};
use crate::deliver::ConnCell;
use crate::store::{self, StoreEvent};
use bytestring::ByteString;
use std::rc::Rc;
use std::time::Instant;
use tern_session::Session;

impl Worker {
    /// Ends a connection's hold on its session. The session is returned when
    /// it is kept (persistent, and not `discard`ed by a Clean Start); a
    /// session that is not kept leaves the trie here, the one place that
    /// does. The will, if any, is returned for the caller to publish (or
    /// delay) once its own bookkeeping is done (a will may match the
    /// client's own session).
    pub(super) fn end_connection(
        &self,
        now: Instant,
        key: ClientKey,
        conn: tern_session::Connection,
        reason: tern_session::CloseReason,
        discard: bool,
    ) -> (Option<Session>, Option<tern_session::Will>) {
        let filters: Vec<ByteString> = conn
            .session()
            .subscriptions()
            .map(|(f, _, _)| ByteString::from(f))
            .collect();
        let mut conn = conn;
        let keep = !discard && conn.session().is_persistent();
        let orphans = self.take_shared_orphans(&mut conn, key, reason, keep);
        let closed = conn.handle_close(now, reason);
        if let Some(topic) = &closed.will_denied {
            self.publish_denied(topic);
        }
        let will = closed.will;
        match closed.session {
            Some(mut session) if !discard => {
                self.hand_off_shared(now, key, orphans, Some(&mut session));
                store::drain_session(&*self.store, &mut session);
                self.store
                    .observe(StoreEvent::SessionOffline { session: &session });
                (Some(session), will)
            }
            closed_session => {
                if let Some(session) = &closed_session {
                    self.store.observe(StoreEvent::SessionEnded {
                        client_id: session.client_id(),
                    });
                }
                self.unsubscribe(key, filters.iter());
                self.hand_off_shared(now, key, orphans, None);
                (None, will)
            }
        }
    }

    pub(super) fn drop_subscriptions(&self, key: ClientKey, session: &Session) {
        let filters: Vec<ByteString> = session
            .subscriptions()
            .map(|(f, _, _)| ByteString::from(f))
            .collect();
        self.unsubscribe(key, filters.iter());
    }

    /// A connection's client has gone: keep or drop its session, publish its will.
    pub(crate) fn detach(
        &self,
        now: Instant,
        key: ClientKey,
        cell: &Rc<ConnCell>,
        reason: tern_session::CloseReason,
    ) {
        let Some(conn) = cell.borrow_mut().take_conn() else {
            return;
        };
        let is_current = matches!(
            self.clients.borrow().get(&key),
            Some(Client { state: ClientState::Online(c), .. }) if Rc::ptr_eq(c, cell)
        );
        if !is_current {
            // A taken-over connection loses its `conn` to the new one first,
            // so this does not happen; if it did, the subscriptions under
            // `key` belong to the new holder and must stay.
            let closed = conn.handle_close(now, reason);
            if let Some(topic) = &closed.will_denied {
                self.publish_denied(topic);
            }
            if let Some(will) = closed.will {
                self.will_at_close(now, key, will, false);
            }
            return;
        }
        let client_id = conn.client_id().clone();
        let (kept, will) = self.end_connection(now, key, conn, reason, false);
        let offline = kept.is_some();
        match kept {
            Some(session) => {
                self.schedule_session_end(now, key, &session);
                if let Some(c) = self.clients.borrow_mut().get_mut(&key) {
                    c.state = ClientState::Offline(Box::new(session));
                }
            }
            None => {
                let generation = self.clients.borrow_mut().remove(&key).map(|c| c.generation);
                self.by_id.borrow_mut().remove(&client_id);
                if let Some(generation) = generation {
                    self.shared
                        .registry
                        .release(&client_id, self.id, generation);
                }
            }
        }
        if let Some(will) = will {
            self.will_at_close(now, key, will, offline);
        }
    }

    /// Takes the session of `key` for a new connection (session takeover).
    /// An online holder is closed with `TakenOver` and its will published.
    /// With `clean_start`, or when the old session was not persistent, the
    /// new connection gets nothing, and the old subscriptions are gone.
    ///
    /// An offline session's expiry is cancelled. Its delayed will, and the
    /// will of a connection taken over, is published when the old session
    /// ends here (Clean Start, or not persistent) or has no delay; it is
    /// dropped when the session is resumed before the delay passed
    /// ([MQTT5-3.1.3-9], 3.1.3.2.2).
    pub(crate) fn take_session(
        &self,
        now: Instant,
        key: ClientKey,
        clean_start: bool,
    ) -> Option<Session> {
        let previous = self.clients.borrow_mut().remove(&key)?;
        let pending_will = self.session_taken(key);
        if pending_will.is_some() {
            if let ClientState::Offline(session) = &previous.state {
                self.store.observe(StoreEvent::WillCleared {
                    client_id: session.client_id(),
                });
            }
        }
        match previous.state {
            ClientState::Offline(mut session) if clean_start => {
                self.store.observe(StoreEvent::SessionEnded {
                    client_id: session.client_id(),
                });
                let orphans = session.take_shared_unacked();
                self.drop_subscriptions(key, &session);
                self.hand_off_shared(now, key, orphans, None);
                if let Some(will) = pending_will {
                    self.publish_detached(now, key, will);
                }
                None
            }
            ClientState::Offline(session) => {
                if pending_will.is_some() {
                    tracing::debug!(client_id = %session.client_id(), "session resumed: delayed will cancelled");
                }
                Some(*session)
            }
            ClientState::Online(cell) => {
                let conn = {
                    let mut cs = cell.borrow_mut();
                    cs.close = Some(tern_session::CloseReason::TakenOver);
                    cs.wake();
                    cs.take_conn()
                };
                let conn = conn?;
                tracing::info!(client_id = %conn.client_id(), "session taken over by a new connection");
                let (kept, will) = self.end_connection(
                    now,
                    key,
                    conn,
                    tern_session::CloseReason::TakenOver,
                    clean_start,
                );
                // A delayed will is cancelled by the new connection when it
                // resumes the session; otherwise the session ends now.
                if let Some(will) = will.filter(|w| w.delay.is_none() || kept.is_none()) {
                    self.publish_detached(now, key, will.publish);
                }
                kept
            }
        }
    }

    pub(crate) fn insert_online(&self, key: ClientKey, generation: u64, cell: Rc<ConnCell>) {
        self.clients.borrow_mut().insert(
            key,
            Client {
                generation,
                state: ClientState::Online(cell),
            },
        );
    }
}
