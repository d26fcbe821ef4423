//! A session worker's state: what one worker thread owns (see
//! `worker_thread` for the thread, its runtime and its loops).
//!
//! A worker owns its connections, their sessions, its local subscription
//! trie and the writers of its connections. Everything here is `Rc`/`RefCell`
//! and never leaves the thread. Other threads reach a worker only through its
//! two inboxes: `data` (bounded: routed messages) and `control` (new
//! connections, migrated connections, shutdown).
//!
//! The behaviour is split by capability, each file one job:
//! `publish` (route, retain, fan out, cross-worker sends), `subscribe`
//! (trie and route updates, retained messages on SUBSCRIBE), `share`
//! (shared subscriptions), `lifecycle` (take, detach, end a session),
//! `expiry` (session expiry, delayed wills, shutdown), `tick` (the 500 ms
//! tick: heartbeat, gauges, `$SYS`, idle sweep).

mod durable;
mod expiry;
mod gauges;
mod lifecycle;
mod publish;
mod restore;
mod share;
mod subscribe;
mod tick;

use crate::backpressure::Watermarks;
use crate::client::{Client, ClientKey, ClientState};
use crate::deadlines::SessionTimers;
use crate::deliver::{self, ConnShared, DeliverCtx, TemplateCache};
use crate::park::ParkingLot;
use crate::share::ShareState;
use crate::shared::Shared;
use crate::stats::{RateLimitedLog, WorkerStats};
use crate::store::StoreObserver;
use bytestring::ByteString;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use tern_routing::{LocalSubscriptions, Target};
use tern_store::{RecoveredSession, RecoveredWill};

#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) subs: RefCell<LocalSubscriptions<ClientKey>>,
    pub(crate) clients: RefCell<HashMap<ClientKey, Client, ahash::RandomState>>,
    pub(crate) by_id: RefCell<HashMap<ByteString, ClientKey, ahash::RandomState>>,
    next_key: Cell<u64>,
    targets: RefCell<Vec<Target<ClientKey>>>,
    pub(crate) templates: RefCell<TemplateCache>,
    pub(crate) stats: Rc<WorkerStats>,
    drop_log: RateLimitedLog,
    /// Live connection tasks, for a bounded drain at shutdown.
    pub(crate) live_tasks: Cell<usize>,
    pub(crate) tasks_done: tokio::sync::Notify,
    /// When a subscriber's backlog makes publishers wait.
    pub(crate) marks: Watermarks,
    /// Idle connections without a task (see `park`).
    pub(crate) parking: ParkingLot,
    /// The settings in force (session limits for new connections, and
    /// what else a reload can change), refreshed by the tick.
    pub(crate) live: crate::live::WorkerLive,
    /// Round-robin state of shared subscriptions (see `crate::share`).
    shares: ShareState,
    /// When offline sessions expire and delayed wills are due (see `expiry`).
    timers: RefCell<SessionTimers>,
    /// One shared copy of each listener's name, for the identities of the
    /// connections that came in on it (a clone, not an allocation, each).
    listener_names: RefCell<Vec<(Arc<str>, ByteString)>>,
    /// Told every change of the sessions and retained messages (see `store`).
    pub(crate) store: Box<dyn StoreObserver>,
    /// `durability = "sync"`: acknowledgements wait for the stores.
    sync_acks: bool,
    /// The acknowledgements waiting (see `durable`).
    pub(crate) acks: durable::DurableAcks,
    /// Sessions and wills read back from the store, restored by `restore`
    /// before the worker serves.
    recovered: RefCell<Option<(Vec<RecoveredSession>, Vec<RecoveredWill>)>>,
}

impl Worker {
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Self {
        let stats = Rc::new(WorkerStats::default());
        let marks = Watermarks::from_limits(&shared.config.limits);
        let live = crate::live::WorkerLive::new(&shared.live);
        let control = shared.workers.get(id).map(|l| l.control.clone());
        let on_durable: crate::store::OnDurable = Box::new(move |signal| {
            let msg = match signal {
                crate::store::StoreSignal::Durable(commit) => {
                    crate::shared::Control::Synced { commit }
                }
                crate::store::StoreSignal::Failed => crate::shared::Control::StoreFailed,
            };
            if let Some(control) = &control {
                let _ = control.send(msg);
            }
        });
        let parts = shared.store.observer(id, on_durable);
        let sync_acks = shared.store.sync_acks();
        Self {
            id,
            shared,
            subs: RefCell::new(LocalSubscriptions::new()),
            clients: RefCell::default(),
            by_id: RefCell::default(),
            next_key: Cell::new(1),
            targets: RefCell::new(Vec::with_capacity(64)),
            templates: RefCell::default(),
            stats,
            drop_log: Default::default(),
            listener_names: RefCell::default(),
            store: parts.observer,
            sync_acks,
            acks: Default::default(),
            recovered: RefCell::new(Some((parts.sessions, parts.wills))),
            live_tasks: Cell::new(0),
            tasks_done: tokio::sync::Notify::new(),
            marks,
            parking: Default::default(),
            live,
            shares: Default::default(),
            timers: Default::default(),
        }
    }

    /// The name of a listener as the session's `Identity` holds it: one
    /// copy per worker and listener, shared by its connections.
    pub(crate) fn listener_name(&self, name: &Arc<str>) -> ByteString {
        let mut names = self.listener_names.borrow_mut();
        if let Some((_, n)) = names.iter().find(|(k, _)| **k == **name) {
            return n.clone();
        }
        let n = ByteString::from(&**name);
        names.push((Arc::clone(name), n.clone()));
        n
    }

    /// What a delivery needs of this worker, with its template cache
    /// borrowed by the caller for the whole fan-out.
    pub(crate) fn deliver_ctx<'a>(&'a self, templates: &'a mut TemplateCache) -> DeliverCtx<'a> {
        DeliverCtx {
            stats: &self.stats,
            marks: self.marks,
            templates,
            drop_log: &self.drop_log,
            worker: self.id,
            store: &*self.store,
        }
    }

    /// Encodes what `cs`'s session queued for the wire (see
    /// `deliver::flush_transmits`).
    pub(crate) fn flush(&self, cs: &mut ConnShared) {
        deliver::flush_transmits(
            cs,
            &mut self.templates.borrow_mut(),
            &self.stats,
            &*self.store,
        );
    }

    /// The key for `client_id`, creating one if the client is new here.
    pub(crate) fn key_for(&self, client_id: &ByteString) -> ClientKey {
        let mut by_id = self.by_id.borrow_mut();
        if let Some(k) = by_id.get(client_id) {
            return *k;
        }
        let key = ClientKey(self.next_key.get());
        self.next_key.set(key.0 + 1);
        by_id.insert(client_id.clone(), key);
        key
    }

    /// This worker's id in the route table.
    fn route_id(&self) -> u16 {
        u16::try_from(self.id).unwrap_or(u16::MAX)
    }

    /// Asks every connected client to close (the broker is shutting down).
    pub(crate) fn close_all(&self) {
        let clients = self.clients.borrow();
        for c in clients.values() {
            if let ClientState::Online(cell) = &c.state {
                let mut cs = cell.borrow_mut();
                cs.close = Some(tern_session::CloseReason::ServerShutdown);
                cs.wake();
            }
        }
    }
}
