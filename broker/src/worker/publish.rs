//! Publish: route a client's message (one atomic load of the route
//! snapshot), retain it, deliver it to this worker's subscribers, and send
//! it to the other workers that have some, with the waits a publisher owes
//! when an inbox is full or a subscriber congested.

use super::Worker;
use crate::client::{ClientKey, Origin};
use crate::deliver::{self, ConnCell, Offer};
use crate::shared::{PendingSends, Routed};
use crate::stats::WorkerStats;
use crate::store::StoreEvent;
use bytestring::ByteString;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{Publish, QoS};
use tern_routing::{RetainOutcome, RetainedMessage};
use tern_session::PublishOutcome;
use tokio::sync::mpsc;

/// What a publisher must wait for before it reads its next packet: QoS>0
/// deliveries to workers whose inbox was full when the message was routed,
/// and local subscribers the message left congested (see `backpressure`).
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    sends: PendingSends,
    congested: Vec<Rc<ConnCell>>,
    /// No subscription matched the topic (v5 acks say 0x10).
    no_subscribers: bool,
    /// The acknowledgement waits for the stores (see `durable`).
    pub(crate) durable: Option<u64>,
    /// Not routed: the store it needs cannot write (v5 0x97; a v3
    /// publisher is disconnected).
    pub(crate) refused: bool,
}

impl Blocked {
    /// What the publisher's session acknowledges ([`Connection::complete_publish`](tern_session::Connection::complete_publish)).
    /// (A client's PUBLISH to `$SYS` never gets here: the session's
    /// authorizer refuses it.)
    pub(crate) fn outcome(&self) -> PublishOutcome {
        if self.refused {
            PublishOutcome::Refused(tern_codec::ReasonCode::QUOTA_EXCEEDED)
        } else if self.no_subscribers {
            PublishOutcome::NoMatchingSubscribers
        } else {
            PublishOutcome::Routed
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.congested.is_empty()
    }

    /// Waits until every blocked delivery is in its worker's inbox and every
    /// congested subscriber other than `own` has room (or was found slow).
    pub(crate) async fn wait(mut self, worker: &Worker, own: Option<&Rc<ConnCell>>) {
        send_all(self.sends, &worker.stats).await;
        if let Some(own) = own {
            // A client subscribed to its own topic drains only when its own
            // task runs again: never wait for it.
            self.congested.retain(|c| !Rc::ptr_eq(c, own));
        }
        if !self.congested.is_empty() {
            deliver::wait_for_room(&self.congested, worker.marks, &worker.stats).await;
        }
    }
}

/// Waits until every delivery is in its worker's inbox: a QoS 1/2 message
/// for as long as it takes, a QoS 0 message for at most one backpressure
/// pause in all, after which it is dropped for the workers still full and
/// counted.
pub(super) async fn send_all(sends: PendingSends, stats: &WorkerStats) {
    // One pause for the whole message, however many workers it waits for.
    let deadline = tokio::time::Instant::now() + crate::backpressure::MAX_PAUSE;
    for (tx, routed) in sends {
        let sent = if routed.msg.qos == QoS::AtMostOnce {
            match tokio::time::timeout_at(deadline, tx.send(routed)).await {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    stats.dropped_worker_queue_full.inc();
                    tracing::debug!(
                        "inter-worker queue full for the whole pause: QoS 0 message dropped for that worker"
                    );
                    continue;
                }
            }
        } else {
            tx.send(routed).await.is_ok()
        };
        if !sent {
            stats.dropped_worker_gone.inc();
            tracing::warn!("worker inbox closed while waiting: message dropped for that worker");
        }
    }
}

impl Worker {
    /// publishing connection must wait for before reading on is returned:
    /// deliveries to other workers whose inbox is full, and local subscribers
    /// the message left congested (see `backpressure`).
    #[must_use = "a publisher must await `Blocked::wait` before reading on"]
    pub(crate) fn publish(&self, now: Instant, origin: ClientKey, publish: Publish) -> Blocked {
        let msg = Arc::new(publish);
        self.stats.publish_in(msg.qos);
        let snapshot = self.shared.routes.load();
        let matched = snapshot.matches(&msg.topic);
        if msg.qos != QoS::AtMostOnce && self.store.failed() && self.needs_store(&msg, &matched) {
            self.stats.dropped_store_unavailable.inc();
            tracing::debug!(topic = %msg.topic, "store cannot write: QoS 1/2 message refused");
            return Blocked {
                refused: true,
                ..Blocked::default()
            };
        }
        if msg.retain {
            self.retain(now, &msg);
        }
        let origin = Origin {
            worker: self.id,
            client: origin,
        };
        let mut local = false;
        let mut blocked = Blocked::default();
        // `durability = "sync"`: QoS 1/2 waits for the stores that take it.
        let token = (self.sync_acks && msg.qos != QoS::AtMostOnce).then(|| self.acks.token());
        let mut remote = 0;
        if matched.is_empty() {
            self.stats.dropped_no_subscribers.inc();
            blocked.no_subscribers = true;
        }
        for w in matched.workers.iter() {
            let w = usize::from(w);
            if w == self.id {
                local = true;
                continue;
            }
            let Some(link) = self.shared.workers.get(w) else {
                continue;
            };
            // After the snapshot was loaded: a worker's persistent session
            // that subscribed before it is counted (see `durable`).
            let durable = token.filter(|_| self.shared.store.persistent_sessions(w) > 0);
            remote += u32::from(durable.is_some());
            let routed = Routed {
                msg: Arc::clone(&msg),
                origin,
                share: None,
                received_at: now,
                durable,
            };
            match link.data.try_send(routed) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(routed)) => {
                    self.stats.worker_queue_waits.inc();
                    blocked.sends.push((link.data.clone(), routed));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.stats.dropped_worker_gone.inc();
                    self.drop_log
                        .warn(w, "worker inbox closed: message dropped for that worker");
                }
            }
        }
        if local {
            self.deliver_local(now, &msg, origin, &mut blocked.congested);
        }
        if !matched.shared.is_empty() {
            let Blocked {
                sends, congested, ..
            } = &mut blocked;
            remote += self.route_shared(
                now,
                &msg,
                origin,
                &matched.shared,
                (congested, sends),
                token,
            );
        }
        blocked.durable = token.and_then(|t| self.durable_wait(t, remote));
        blocked
    }

    /// True when keeping `msg` needs a store: it is retained, or some
    /// worker it goes to holds persistent sessions.
    fn needs_store(&self, msg: &Publish, matched: &tern_routing::RouteMatch) -> bool {
        let store = &self.shared.store;
        msg.retain
            || matched
                .workers
                .iter()
                .chain(matched.shared.iter().flat_map(|s| s.workers.iter()))
                .any(|w| store.persistent_sessions(usize::from(w)) > 0)
    }

    /// Counts a client's PUBLISH or will that the session's authorizer
    /// refused (not routed). The default authorizer refuses only `$SYS`
    /// topics ([MQTT-4.7.2-1]: `$` topics are the server's; clients and
    /// their wills do not publish there).
    pub(crate) fn publish_denied(&self, topic: &str) {
        if crate::sys::is_sys_topic(topic) {
            self.stats.dropped_sys_topic.inc();
            tracing::debug!(%topic, "PUBLISH to $SYS from a client: not routed");
        } else {
            self.stats.dropped_not_authorized.inc();
            tracing::debug!(%topic, "PUBLISH not authorized: not routed");
        }
    }

    /// Publishes from a context that cannot wait (wills): blocked deliveries
    /// are finished by a task of their own, and congestion is not waited for.
    pub(crate) fn publish_detached(&self, now: Instant, origin: ClientKey, publish: Publish) {
        let blocked = self.publish(now, origin, publish);
        if !blocked.sends.is_empty() {
            let stats = Rc::clone(&self.stats);
            tokio::task::spawn_local(async move { send_all(blocked.sends, &stats).await });
        }
    }

    /// Stores a retained message received at `now`; one with a v5 Message
    /// Expiry Interval stops being sent when it has passed ([MQTT5-3.3.2-5]).
    fn retain(&self, now: Instant, msg: &Arc<Publish>) {
        // A retained message may live for days: store a compact copy so it
        // does not pin the read buffer it was decoded from.
        let compact = Publish {
            dup: false,
            qos: msg.qos,
            retain: true,
            topic: ByteString::from(&*msg.topic),
            packet_id: None,
            properties: msg.properties.clone(),
            payload: bytes::Bytes::copy_from_slice(&msg.payload),
        };
        let mut retained = self
            .shared
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let expires_at = msg
            .properties
            .message_expiry_interval
            .and_then(|secs| now.checked_add(std::time::Duration::from_secs(u64::from(secs))));
        let compact = Arc::new(compact);
        let outcome = retained.set(RetainedMessage {
            publish: Arc::clone(&compact),
            expires_at,
        });
        // Taken under the lock: orders this change against other workers'
        // changes of the topic when the store is read back.
        let order = self
            .shared
            .retained_order
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        // Not under the lock of the shared store: the observer is this
        // worker's.
        drop(retained);
        match outcome {
            // The broker's own `$SYS` topics are not the store's: they are
            // published afresh after a start.
            Ok(_) if crate::sys::is_sys_topic(&compact.topic) => {}
            Ok(RetainOutcome::Deleted) => {
                self.store.observe(StoreEvent::RetainedCleared {
                    topic: &msg.topic,
                    order,
                });
            }
            Ok(RetainOutcome::NothingToDelete) => {}
            Ok(_) => self.store.observe(StoreEvent::RetainedSet {
                msg: &compact,
                order,
                expires_at,
            }),
            Err(e) => {
                self.stats.retained_rejected.inc();
                tracing::warn!(topic = %msg.topic, error = %e, "retained message not stored");
            }
        }
    }

    /// Delivers a message to every matching subscriber on this worker, and
    /// adds to `congested` the online subscribers it leaves congested.
    pub(crate) fn deliver_local(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        origin: Origin,
        congested: &mut Vec<Rc<ConnCell>>,
    ) {
        self.deliver_local_at(now, msg, now, origin, congested);
    }

    /// [`Worker::deliver_local`] of a message the broker received at
    /// `received_at` (on another worker): its v5 Message Expiry Interval
    /// counts from there ([MQTT5-3.3.2-5/6]).
    pub(crate) fn deliver_local_at(
        &self,
        now: Instant,
        msg: &Arc<Publish>,
        received_at: Instant,
        origin: Origin,
        congested: &mut Vec<Rc<ConnCell>>,
    ) {
        let mut targets = self.targets.borrow_mut();
        targets.clear();
        let publisher = (origin.worker == self.id).then_some(origin.client);
        self.subs
            .borrow()
            .collect_from(&msg.topic, publisher, &mut targets);
        if targets.is_empty() {
            return;
        }
        let mut clients = self.clients.borrow_mut();
        let mut templates = self.templates.borrow_mut();
        let mut ctx = self.deliver_ctx(&mut templates);
        let live = self.live.borrow();
        for t in targets.iter() {
            let Some(client) = clients.get_mut(&t.key) else {
                continue;
            };
            let offer = Offer {
                msg,
                received_at,
                qos: msg.qos.min(t.qos),
                retain: t.retain_as_published && msg.retain,
                subscription_identifiers: &t.subscription_identifiers,
                group: None,
            };
            client
                .state
                .offer(&mut ctx, now, &offer, &live.session, congested);
        }
    }
}
