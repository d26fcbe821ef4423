//! The store observer: the one place a persistence backend learns what
//! changed in the sessions and retained messages of a worker.
//!
//! Each worker holds one [`StoreObserver`] and reports to it:
//! - a session attached to a connection ([`StoreEvent::SessionOpened`]:
//!   resumed, or new, which discards whatever was stored for the client id),
//!   kept offline ([`StoreEvent::SessionOffline`]) and ended
//!   ([`StoreEvent::SessionEnded`]: expired, or not kept at its close);
//! - every change the session's journal recorded in between
//!   ([`StoreEvent::SessionChanged`], see [`tern_session::SessionChange`]):
//!   drained by [`drain_connection`] when the connection's transmits are
//!   flushed (the point every change of an online session passes), and by
//!   [`drain_session`] after an offline session took a message;
//! - a will waiting for its delay ([`StoreEvent::WillScheduled`]) and its
//!   end ([`StoreEvent::WillCleared`]: published or cancelled);
//! - every retained set and clear ([`StoreEvent::RetainedSet`],
//!   [`StoreEvent::RetainedCleared`]).
//!
//! Two backends: [`NullStore`] (`persistence = "off"`): sessions and
//! retained messages live in memory only, the journal is off
//! (`SessionConfig::record_changes`), and each report is one call that does
//! nothing; and [`disk::DiskStore`] (`persistence = "on"`), which writes
//! them to one database per worker (`tern_store`). Workers are
//! shared-nothing, so the observer is per worker and needs no lock.

pub(crate) mod disk;

use std::sync::Arc;
use std::time::Instant;
use tern_codec::Publish;
use tern_session::{Connection, Session, SessionChange};
use tern_store::{RecoveredSession, RecoveredWill};

/// What a persistence backend is told.
#[derive(Debug)]
pub enum StoreEvent<'a> {
    /// A connection holds `session` now: resumed from what was kept, or new
    /// (then anything stored for its client id is gone). Sent for every
    /// session, persistent or not, so that a new non-persistent session
    /// discards a stored one.
    SessionOpened { session: &'a Session, resumed: bool },
    /// The connection closed and its persistent `session` is kept offline
    /// (it ends at its Session Expiry Interval).
    SessionOffline { session: &'a Session },
    /// The session of `client_id` ended: expired offline, or not kept when
    /// its connection closed.
    SessionEnded { client_id: &'a str },
    /// A change recorded in a persistent session's journal.
    SessionChanged {
        client_id: &'a str,
        change: SessionChange,
    },
    /// The will of `client_id` waits for its Will Delay Interval.
    WillScheduled {
        client_id: &'a str,
        will: &'a Publish,
        /// When it is due.
        due: Instant,
    },
    /// The pending will of `client_id` is gone: published, or cancelled
    /// by a resumed session.
    WillCleared { client_id: &'a str },
    /// A retained message was stored (the compact copy the store keeps).
    /// `order` was taken under the retained store's lock: a higher one is
    /// a later change of the topic, whichever worker made it.
    RetainedSet {
        msg: &'a Arc<Publish>,
        order: u64,
        expires_at: Option<Instant>,
    },
    /// The retained message of `topic` was cleared (empty payload).
    RetainedCleared { topic: &'a str, order: u64 },
}

/// What a worker takes from the backend when it starts.
pub struct WorkerParts {
    /// Its observer.
    pub observer: Box<dyn StoreObserver>,
    /// Sessions to restore (offline) before serving.
    pub sessions: Vec<RecoveredSession>,
    /// Delayed wills of those sessions.
    pub wills: Vec<RecoveredWill>,
}

impl std::fmt::Debug for WorkerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerParts")
            .field("sessions", &self.sessions.len())
            .field("wills", &self.wills.len())
            .finish_non_exhaustive()
    }
}

/// What a backend tells its worker from its own thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSignal {
    /// Commit `n` is durable (see [`StoreObserver::pending_commit`]).
    Durable(u64),
    /// The store cannot write any more (a full disk, an I/O error): what
    /// waits for it never will.
    Failed,
}

/// Called by the backend with each [`StoreSignal`].
pub type OnDurable = Box<dyn Fn(StoreSignal) + Send + Sync>;

/// A persistence backend: shared by the workers, it gives each worker an
/// observer of its own ([`crate::start_with_store`]).
pub trait StoreBackend: Send + Sync + std::fmt::Debug {
    /// Whether sessions record their change journal for this backend
    /// (`SessionConfig::record_changes`); without it no
    /// [`StoreEvent::SessionChanged`] is sent.
    fn records_session_changes(&self) -> bool;
    /// The observer of worker `worker`, with what it restores (called once,
    /// on its thread, inside its runtime). `on_durable` is called when a
    /// commit the observer reported through `pending_commit` is on disk.
    fn observer(&self, worker: usize, on_durable: OnDurable) -> WorkerParts;

    /// Whether acknowledgements of QoS 1/2 PUBLISH packets that reached a
    /// persistent session wait until it is durable (`durability = "sync"`).
    fn sync_acks(&self) -> bool {
        false
    }

    /// Persistent sessions worker `worker` holds (a message routed there
    /// without any needs no wait for its store).
    fn persistent_sessions(&self, _worker: usize) -> usize {
        0
    }

    /// Appends the backend's Prometheus series (text format) to `out`.
    fn render_metrics(&self, _out: &mut String) {}
}

/// One worker's view of the backend: told each change, on the worker's
/// thread, in the order the worker made them. It must not block (the
/// worker serves its connections meanwhile): a backend that writes to disk
/// queues the change for a writer of its own.
pub trait StoreObserver: std::fmt::Debug {
    /// One change of the stored state.
    fn observe(&self, event: StoreEvent<'_>);

    /// With acknowledgements that wait ([`StoreBackend::sync_acks`]): the
    /// number of the commit that will hold every change observed so far,
    /// when some are not durable yet; `None` when everything observed is
    /// on disk. The backend's `on_durable` reports that number once it is.
    fn pending_commit(&self) -> Option<u64> {
        None
    }

    /// True once the store cannot write: QoS 1/2 messages that would need
    /// it are refused (v5 0x97, v3 disconnect) instead of acknowledged.
    fn failed(&self) -> bool {
        false
    }

    /// The worker is stopping: make everything observed durable now, on
    /// this thread (its loop will not turn again).
    fn close(&self) {}
}

/// Keeps nothing: the in-memory broker.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl StoreBackend for NullStore {
    fn records_session_changes(&self) -> bool {
        false
    }

    fn observer(&self, _worker: usize, _on_durable: OnDurable) -> WorkerParts {
        WorkerParts {
            observer: Box::new(Self),
            sessions: Vec::new(),
            wills: Vec::new(),
        }
    }
}

impl StoreObserver for NullStore {
    #[inline]
    fn observe(&self, _event: StoreEvent<'_>) {}
}

/// Reports the changes `conn`'s session recorded since the last drain.
/// Without a journal this is one branch.
pub(crate) fn drain_connection(store: &dyn StoreObserver, conn: &mut Connection) {
    while let Some(change) = conn.poll_change() {
        store.observe(StoreEvent::SessionChanged {
            client_id: conn.client_id(),
            change,
        });
    }
}

/// Reports the changes an offline `session` recorded since the last drain.
pub(crate) fn drain_session(store: &dyn StoreObserver, session: &mut Session) {
    while let Some(change) = session.poll_change() {
        store.observe(StoreEvent::SessionChanged {
            client_id: session.client_id(),
            change,
        });
    }
}

/// Records every event as a line, for tests of the places that report.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    pub(crate) lines: Arc<std::sync::Mutex<Vec<String>>>,
    pub(crate) journal: bool,
}

#[cfg(test)]
impl Recorder {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
impl StoreBackend for Recorder {
    fn records_session_changes(&self) -> bool {
        self.journal
    }

    fn observer(&self, _worker: usize, _on_durable: OnDurable) -> WorkerParts {
        WorkerParts {
            observer: Box::new(self.clone()),
            sessions: Vec::new(),
            wills: Vec::new(),
        }
    }
}

#[cfg(test)]
impl StoreObserver for Recorder {
    fn observe(&self, event: StoreEvent<'_>) {
        let line = match event {
            StoreEvent::SessionOpened { session, resumed } => {
                format!("opened {} resumed={resumed}", session.client_id())
            }
            StoreEvent::SessionOffline { session } => format!("offline {}", session.client_id()),
            StoreEvent::SessionEnded { client_id } => format!("ended {client_id}"),
            StoreEvent::SessionChanged { client_id, change } => {
                format!("changed {client_id} {change:?}")
            }
            StoreEvent::WillScheduled {
                client_id, will, ..
            } => {
                format!("will {client_id} {}", will.topic)
            }
            StoreEvent::WillCleared { client_id } => format!("will-cleared {client_id}"),
            StoreEvent::RetainedSet { msg, .. } => format!("retained {}", msg.topic),
            StoreEvent::RetainedCleared { topic, .. } => format!("retained-cleared {topic}"),
        };
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tern_codec::QoS;
    use tern_session::{Offer, SessionConfig};

    fn message(topic: &str) -> Arc<Publish> {
        Arc::new(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            properties: Default::default(),
            payload: bytes::Bytes::from_static(b"x"),
        })
    }

    #[test]
    fn the_null_store_asks_for_no_journal() {
        assert!(!NullStore.records_session_changes());
        NullStore
            .observer(0, Box::new(|_| {}))
            .observer
            .observe(StoreEvent::RetainedCleared {
                topic: "a",
                order: 1,
            });
    }

    #[test]
    fn an_offline_sessions_journal_reaches_the_observer_once() {
        let cfg = SessionConfig {
            record_changes: true,
            ..SessionConfig::default()
        };
        let mut session = Session::new("dev-1".into(), true);
        let now = Instant::now();
        let msg = message("t/1");
        let _ = session.enqueue(now, &Offer::new(&msg, now, QoS::AtLeastOnce), &cfg);
        let store = Recorder {
            journal: true,
            ..Recorder::default()
        };
        let observer = store.observer(0, Box::new(|_| {})).observer;
        drain_session(&*observer, &mut session);
        drain_session(&*observer, &mut session);
        let lines = store.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("changed dev-1 Queued") && lines[0].contains("t/1"),
            "{lines:?}"
        );
    }

    #[test]
    fn without_a_journal_nothing_is_reported() {
        let cfg = SessionConfig::default();
        let mut session = Session::new("dev-2".into(), true);
        let now = Instant::now();
        let msg = message("t/2");
        let _ = session.enqueue(now, &Offer::new(&msg, now, QoS::AtLeastOnce), &cfg);
        let store = Recorder::default();
        drain_session(&*store.observer(0, Box::new(|_| {})).observer, &mut session);
        assert!(store.lines().is_empty());
    }
}
