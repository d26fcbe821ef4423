//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 section
//! 4.8.2), for MQTT 5.0 and 3.1.1 clients alike: each message matching a
//! group goes to exactly one member of the group, across all workers.
//!
//! Strategy:
//!
//! 1. The publishing worker picks one worker among those the route snapshot
//!    lists for the group, in turn, with a cursor per group that only this
//!    worker keeps (`ShareCursors`): nothing shared is written on the publish
//!    path and no lock is taken. It delivers itself if it picked itself, and
//!    otherwise sends the message to that worker's inbox as a `Routed` with
//!    a [`ShareHop`].
//! 2. That worker picks one of its own members of the group, in turn from
//!    the last one picked: the first online member whose backlog is below
//!    the backpressure high-water mark (`Watermarks`), else the first online
//!    member, else the first offline member (a persistent session: the
//!    message is queued there). The member's own subscription options apply:
//!    granted QoS, v5 subscription identifier, Retain As Published.
//! 3. If that worker has no member any more (the snapshot it was picked
//!    from was briefly stale), it passes the message on to another worker
//!    of the group that has not been tried, or, when none is left, counts
//!    it as dropped with no subscribers.
//!
//! When a member's connection ends, its QoS > 0 messages of shared
//! subscriptions that it has not acknowledged (QoS 1 in flight, QoS 1/2
//! queued) are handed to another member of the same group the same way,
//! the departed member excluded. QoS 2 messages already sent stay with it
//! ([MQTT5-4.8.2-4], [MQTT5-4.8.2-5]). When no other member exists they stay
//! in its session if it persists, and are dropped (counted) if it ended. A
//! session taken over by a reconnecting client keeps them: the client is
//! back and gets them again.

use crate::conn::{self, ConnCell};
use crate::shared::Routed;
use crate::worker::{ClientKey, ClientState, Origin, Worker};
use bytestring::ByteString;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::Publish;
use tern_routing::{ShareCursors, SharedTarget, SubEntry, WorkerSet};
use tern_session::{CloseReason, Connection, EnqueueOutcome, Offer, Session, SharedOrphan};
use tokio::sync::mpsc;

/// Deliveries to other workers that did not fit in their inbox now.
pub(crate) type Later = Vec<(mpsc::Sender<Routed>, Routed)>;

/// What a `Routed` message for one member of a shared subscription carries.
#[derive(Debug)]
pub(crate) struct ShareHop {
    /// The shared subscription's full filter `$share/{group}/{filter}`.
    pub(crate) group: ByteString,
    /// Workers already found without a member: passing on skips them.
    pub(crate) tried: WorkerSet,
}

/// A worker's shared-subscription state: worker-private round-robin cursors.
#[derive(Debug, Default)]
pub(crate) struct ShareState {
    /// Whose turn it is among a group's workers, for messages published here.
    workers: RefCell<ShareCursors>,
    /// Whose turn it is among this worker's members of a group.
    members: RefCell<ShareCursors>,
    /// Reused list of a group's members on this worker.
    scratch: RefCell<Vec<(ClientKey, SubEntry)>>,
}

impl Worker {
    /// Delivers a message published here to one member of each shared
    /// subscription in `targets` (step 1 of the module docs). Local members
    /// left congested are added to `congested`; inbox sends that must wait
    /// to `later`.
    pub(crate) fn route_shared(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        origin: Origin,
        targets: &[SharedTarget],
        congested: &mut Vec<Rc<ConnCell>>,
        later: &mut Later,
    ) {
        for target in targets {
            let picked = self
                .shares
                .workers
                .borrow_mut()
                .pick_worker(&target.group, target.workers);
            match picked {
                Some(w) if usize::from(w) == self.id => {
                    self.deliver_share_here(
                        now,
                        msg,
                        now,
                        origin,
                        &target.group,
                        WorkerSet::new(),
                        congested,
                        later,
                    );
                }
                Some(w) => {
                    let hop = ShareHop {
                        group: target.group.clone(),
                        tried: WorkerSet::new(),
                    };
                    self.forward_share(usize::from(w), msg, origin, now, hop, later);
                }
                None => self.stats.dropped_no_subscribers.inc(),
            }
        }
    }

    /// Delivers a message another worker picked this worker for (step 2),
    /// or passes it on (step 3).
    pub(crate) fn deliver_routed_share(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        received_at: Instant,
        origin: Origin,
        hop: &ShareHop,
        congested: &mut Vec<Rc<ConnCell>>,
    ) {
        let mut later = Vec::new();
        self.deliver_share_here(
            now,
            msg,
            received_at,
            origin,
            &hop.group,
            hop.tried,
            congested,
            &mut later,
        );
        self.send_later(later);
    }

    /// Takes out of a closing connection's session the shared messages to
    /// hand to other members (see the module docs); call before
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
            if self.deliver_to_member(
                now,
                &o.msg,
                o.received_at,
                &o.group,
                Some(key),
                &mut congested,
            ) {
                self.stats.shared_redeliveries.inc();
                continue;
            }
            let tried = WorkerSet::single(self.share_id());
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
                let hop = ShareHop {
                    group: o.group,
                    tried,
                };
                self.forward_share(
                    usize::from(w),
                    &o.msg,
                    origin,
                    o.received_at,
                    hop,
                    &mut later,
                );
                self.stats.shared_redeliveries.inc();
                continue;
            }
            match kept.as_deref_mut() {
                Some(session) => {
                    let offer = Offer {
                        retain: o.retain,
                        subscription_identifiers: &o.subscription_identifiers,
                        group: Some(&o.group),
                        ..Offer::new(&o.msg, o.received_at, o.qos)
                    };
                    let outcome = session.enqueue(now, &offer, &self.live.borrow().session);
                    self.count_enqueue(outcome);
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
        let me = self.share_id();
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
            .any(|(k, _)| *k != key && clients.get(k).is_some_and(|c| can_take(&c.state)))
    }

    /// Step 2 on this worker, and step 3 when it has no member.
    #[allow(clippy::too_many_arguments)]
    fn deliver_share_here(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        received_at: Instant,
        origin: Origin,
        group: &ByteString,
        mut tried: WorkerSet,
        congested: &mut Vec<Rc<ConnCell>>,
        later: &mut Later,
    ) {
        if self.deliver_to_member(now, msg, received_at, group, None, congested) {
            return;
        }
        tried.insert(self.share_id());
        let others = self
            .shared
            .routes
            .load()
            .workers_for(group)
            .difference(tried);
        let picked = self.shares.workers.borrow_mut().pick_worker(group, others);
        match picked {
            Some(w) => {
                self.stats.shared_passed_on.inc();
                let hop = ShareHop {
                    group: group.clone(),
                    tried,
                };
                self.forward_share(usize::from(w), msg, origin, received_at, hop, later);
            }
            None => {
                self.stats.dropped_no_subscribers.inc();
                tracing::debug!(%group, "shared subscription has no member left: message dropped");
            }
        }
    }

    /// Delivers `msg` to one member of `group` on this worker, other than
    /// `exclude` (see step 2); false when there is none.
    fn deliver_to_member(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        received_at: Instant,
        group: &ByteString,
        exclude: Option<ClientKey>,
        congested: &mut Vec<Rc<ConnCell>>,
    ) -> bool {
        let mut members = self.shares.scratch.borrow_mut();
        members.clear();
        self.subs.borrow().collect_shared(group, &mut members);
        if members.is_empty() {
            return false;
        }
        let mut clients = self.clients.borrow_mut();
        let marks = self.marks;
        let picked = self
            .shares
            .members
            .borrow_mut()
            .pick_member(group, &members, |(key, _)| {
                if Some(*key) == exclude {
                    return None;
                }
                match &clients.get(key)?.state {
                    ClientState::Online(cell) => {
                        let cs = cell.try_borrow().ok()?;
                        cs.conn.as_ref()?;
                        Some(if marks.has_headroom(&cs) { 0 } else { 1 })
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
        let qos = msg.qos.min(entry.options.qos);
        let retain = entry.options.retain_as_published && msg.retain;
        let ids = entry.subscription_identifier.as_slice();
        match &mut client.state {
            ClientState::Online(cell) => {
                let mut templates = self.templates.borrow_mut();
                let now_congested = conn::deliver(
                    self,
                    cell,
                    &mut templates,
                    now,
                    msg,
                    conn::Received::Live(received_at),
                    (qos, retain, ids),
                    Some(group),
                );
                if now_congested && !congested.iter().any(|c| Rc::ptr_eq(c, cell)) {
                    congested.push(Rc::clone(cell));
                }
            }
            ClientState::Offline(session) => {
                let offer = Offer {
                    retain,
                    subscription_identifiers: ids,
                    group: Some(group),
                    ..Offer::new(msg, received_at, qos)
                };
                let outcome = session.enqueue(now, &offer, &self.live.borrow().session);
                self.count_enqueue(outcome);
            }
        }
        self.stats.shared_deliveries.inc();
        true
    }

    /// Sends `msg` to worker `w` for one member of `hop.group`.
    fn forward_share(
        &self,
        w: usize,
        msg: &Arc<Publish>,
        origin: Origin,
        received_at: Instant,
        hop: ShareHop,
        later: &mut Later,
    ) {
        let Some(link) = self.shared.workers.get(w) else {
            self.stats.dropped_worker_gone.inc();
            return;
        };
        let routed = Routed::for_share(Arc::clone(msg), origin, received_at, hop);
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
    fn send_later(&self, later: Later) {
        if !later.is_empty() {
            let stats = Rc::clone(&self.stats);
            tokio::task::spawn_local(async move { crate::worker::send_all(later, &stats).await });
        }
    }

    fn count_enqueue(&self, outcome: EnqueueOutcome) {
        match outcome {
            EnqueueOutcome::Queued => self.stats.queued_offline.inc(),
            EnqueueOutcome::DroppedQos0 => self.stats.dropped_qos0_offline.inc(),
            EnqueueOutcome::DroppedExpired => self.stats.dropped_expired.inc(),
            EnqueueOutcome::DroppedQueueFull => self.stats.dropped_queue_full.inc(),
        }
    }

    /// This worker's id in the route table.
    fn share_id(&self) -> u16 {
        u16::try_from(self.id).unwrap_or(u16::MAX)
    }
}

/// True when a client can take a shared message: connected with its
/// session, or offline with its (persistent) session.
fn can_take(state: &ClientState) -> bool {
    match state {
        ClientState::Online(cell) => cell.try_borrow().is_ok_and(|cs| cs.conn.is_some()),
        ClientState::Offline(_) => true,
    }
}
