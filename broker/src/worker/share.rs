//! Shared subscriptions on this worker: the steps of `crate::share`
//! (pick a worker, pick a member, pass on; hand a departed member's
//! unacknowledged messages to another member).

use super::Worker;
use crate::client::{ClientKey, ClientState, Origin};
use crate::deliver::{ConnCell, Offer};
use crate::shared::{PendingSends, Routed, ShareHop};
use bytestring::ByteString;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::Publish;
use tern_routing::{SharedTarget, WorkerSet};
use tern_session::{CloseReason, Connection, Session, SharedOrphan};
use tokio::sync::mpsc;

/// A message on its way to one member of a shared subscription.
#[derive(Clone, Copy)]
struct ShareMsg<'a> {
    msg: &'a Arc<Publish>,
    /// When the publishing worker received it.
    received_at: Instant,
    origin: Origin,
    /// The shared subscription's full filter `$share/{group}/{filter}`.
    group: &'a ByteString,
    /// The publisher's durability token (see `durable`), passed on with it.
    durable: Option<u64>,
}

impl Worker {
    /// Delivers a message published here to one member of each shared
    /// subscription in `targets` (step 1 of `crate::share`). Local members
    /// left congested are added to `congested`; inbox sends that must wait
    /// to `later`.
    /// With `durable`, each message passed to another worker carries the
    /// token; the count of such messages is returned (each is reported
    /// back once, see `durable`).
    pub(crate) fn route_shared(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        origin: Origin,
        targets: &[SharedTarget],
        (congested, later): (&mut Vec<Rc<ConnCell>>, &mut PendingSends),
        durable: Option<u64>,
    ) -> u32 {
        let mut forwarded = 0;
        for target in targets {
            let picked = self
                .shares
                .workers
                .borrow_mut()
                .pick_worker(&target.group, target.workers);
            let m = ShareMsg {
                msg,
                received_at: now,
                origin,
                group: &target.group,
                durable: None,
            };
            match picked {
                Some(w) if usize::from(w) == self.id => {
                    self.deliver_share_here(now, m, WorkerSet::new(), congested, later);
                }
                Some(w) => {
                    forwarded += u32::from(durable.is_some());
                    let m = ShareMsg { durable, ..m };
                    self.forward_share(usize::from(w), m, WorkerSet::new(), later);
                }
                None => self.stats.dropped_no_subscribers.inc(),
            }
        }
        forwarded
    }

    /// Delivers a message another worker picked this worker for (step 2),
    /// or passes it on (step 3). True when it was passed on: its durability
    /// token went with it.
    pub(crate) fn deliver_routed_share(
        &self,
        now: Instant,
        routed: &Routed,
        hop: &ShareHop,
        congested: &mut Vec<Rc<ConnCell>>,
    ) -> bool {
        let mut later = Vec::new();
        let m = ShareMsg {
            msg: &routed.msg,
            received_at: routed.received_at,
            origin: routed.origin,
            group: &hop.group,
            durable: routed.durable,
        };
        let passed = self.deliver_share_here(now, m, hop.tried, congested, &mut later);
        self.send_later(later);
        passed
    }

    /// Takes out of a closing connection's session the shared messages to
    /// hand to other members (see `crate::share`); call before
    /// `handle_close`. `keep`: the session is kept after the close.
    pub(crate) fn take_shared_orphans(
        &self,
        conn: &mut Connection,
        key: ClientKey,
        reason: CloseReason,
        keep: bool,
    ) -> Vec<SharedOrphan> {
        if !keep {
            return conn.take_shared_unacked_for(|_| true);
        }
        if reason == CloseReason::TakenOver {
            return Vec::new();
        }
        // A kept session gives up only what another member can take.
        conn.take_shared_unacked_for(|group| self.has_other_member(group, key))
    }

    /// Hands the messages a departed member (`key`) left unacknowledged to
    /// other members of their groups; what nobody else can take goes back
    /// to `kept` (its session, when it persists) or is dropped and counted.
    pub(crate) fn hand_off_shared(
        &self,
        now: Instant,
        key: ClientKey,
        orphans: Vec<SharedOrphan>,
        mut kept: Option<&mut Session>,
    ) {
        if orphans.is_empty() {
            return;
        }
        let origin = Origin {
            worker: self.id,
            client: key,
        };
        // Nobody can wait here (a connection is closing): congestion is ignored.
        let mut congested = Vec::new();
        let mut later = Vec::new();
        for o in orphans {
            let m = ShareMsg {
                msg: &o.msg,
                received_at: o.received_at,
                origin,
                group: &o.group,
                durable: None,
            };
            if self.deliver_to_member(now, m, Some(key), &mut congested) {
                self.stats.shared_redeliveries.inc();
                continue;
            }
            let tried = WorkerSet::single(self.route_id());
            let others = self
                .shared
                .routes
                .load()
                .workers_for(&o.group)
                .difference(tried);
            let picked = self
                .shares
                .workers
                .borrow_mut()
                .pick_worker(&o.group, others);
            if let Some(w) = picked {
                self.forward_share(usize::from(w), m, tried, &mut later);
                self.stats.shared_redeliveries.inc();
                continue;
            }
            match kept.as_deref_mut() {
                Some(session) => {
                    let offer = Offer {
                        msg: &o.msg,
                        received_at: o.received_at,
                        qos: o.qos,
                        retain: o.retain,
                        subscription_identifiers: &o.subscription_identifiers,
                        group: Some(&o.group),
                    };
                    let live = self.live.borrow();
                    let outcome = session.enqueue(now, &offer, &live.session);
                    crate::store::drain_session(&*self.store, session);
                    let mut templates = self.templates.borrow_mut();
                    crate::deliver::count_enqueue(&self.deliver_ctx(&mut templates), outcome);
                }
                None => {
                    self.stats.dropped_no_subscribers.inc();
                    tracing::debug!(group = %o.group, "no other member of the shared subscription: unacknowledged message dropped");
                }
            }
        }
        self.send_later(later);
    }

    /// True when a member of `group` other than `key` may exist: on this
    /// worker, or on another worker of the route snapshot.
    fn has_other_member(&self, group: &str, key: ClientKey) -> bool {
        let me = self.route_id();
        if !self
            .shared
            .routes
            .load()
            .workers_for(group)
            .difference(WorkerSet::single(me))
            .is_empty()
        {
            return true;
        }
        let mut members = self.shares.scratch.borrow_mut();
        members.clear();
        self.subs.borrow().collect_shared(group, &mut members);
        let clients = self.clients.borrow();
        members
            .iter()
            .any(|(k, _)| *k != key && clients.get(k).is_some_and(|c| c.state.can_take()))
    }

    /// Step 2 on this worker, and step 3 when it has no member; true when
    /// passed on to another worker.
    fn deliver_share_here(
        &self,
        now: Instant,
        m: ShareMsg<'_>,
        mut tried: WorkerSet,
        congested: &mut Vec<Rc<ConnCell>>,
        later: &mut PendingSends,
    ) -> bool {
        if self.deliver_to_member(now, m, None, congested) {
            return false;
        }
        tried.insert(self.route_id());
        let others = self
            .shared
            .routes
            .load()
            .workers_for(m.group)
            .difference(tried);
        let picked = self
            .shares
            .workers
            .borrow_mut()
            .pick_worker(m.group, others);
        match picked {
            Some(w) => {
                self.stats.shared_passed_on.inc();
                self.forward_share(usize::from(w), m, tried, later);
                true
            }
            None => {
                self.stats.dropped_no_subscribers.inc();
                tracing::debug!(group = %m.group, "shared subscription has no member left: message dropped");
                false
            }
        }
    }

    /// Delivers `m` to one member of its group on this worker, other than
    /// `exclude` (see step 2); false when there is none.
    fn deliver_to_member(
        &self,
        now: Instant,
        m: ShareMsg<'_>,
        exclude: Option<ClientKey>,
        congested: &mut Vec<Rc<ConnCell>>,
    ) -> bool {
        let mut members = self.shares.scratch.borrow_mut();
        members.clear();
        self.subs.borrow().collect_shared(m.group, &mut members);
        if members.is_empty() {
            return false;
        }
        let mut clients = self.clients.borrow_mut();
        let marks = self.marks;
        let picked = self
            .shares
            .members
            .borrow_mut()
            .pick_member(m.group, &members, |(key, _)| {
                if Some(*key) == exclude {
                    return None;
                }
                match &clients.get(key)?.state {
                    ClientState::Online(cell) => {
                        let cs = cell.try_borrow().ok()?;
                        cs.conn.as_ref()?;
                        Some(if cs.has_headroom(marks) { 0 } else { 1 })
                    }
                    ClientState::Offline(_) => Some(2),
                }
            });
        let Some((key, entry)) = picked.and_then(|i| members.get(i).copied()) else {
            return false;
        };
        drop(members);
        let Some(client) = clients.get_mut(&key) else {
            return false;
        };
        let offer = Offer {
            msg: m.msg,
            received_at: m.received_at,
            qos: m.msg.qos.min(entry.options.qos),
            retain: entry.options.retain_as_published && m.msg.retain,
            subscription_identifiers: entry.subscription_identifier.as_slice(),
            group: Some(m.group),
        };
        let mut templates = self.templates.borrow_mut();
        let mut ctx = self.deliver_ctx(&mut templates);
        let live = self.live.borrow();
        client
            .state
            .offer(&mut ctx, now, &offer, &live.session, congested);
        self.stats.shared_deliveries.inc();
        true
    }

    /// Sends `m` to worker `w` for one member of its group.
    fn forward_share(&self, w: usize, m: ShareMsg<'_>, tried: WorkerSet, later: &mut PendingSends) {
        let Some(link) = self.shared.workers.get(w) else {
            self.stats.dropped_worker_gone.inc();
            return;
        };
        let hop = ShareHop {
            group: m.group.clone(),
            tried,
        };
        let routed = Routed::for_share(Arc::clone(m.msg), m.origin, m.received_at, hop, m.durable);
        match link.data.try_send(routed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(routed)) => {
                self.stats.worker_queue_waits.inc();
                later.push((link.data.clone(), routed));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped_worker_gone.inc();
                tracing::warn!(worker = w, "worker inbox closed: shared message dropped");
            }
        }
    }

    /// Finishes sends that did not fit, in a task of their own (the caller
    /// cannot wait: two workers passing messages on to each other must not
    /// wait for each other's inbox).
    fn send_later(&self, later: PendingSends) {
        if !later.is_empty() {
            let stats = Rc::clone(&self.stats);
            tokio::task::spawn_local(async move { super::publish::send_all(later, &stats).await });
        }
    }
}
