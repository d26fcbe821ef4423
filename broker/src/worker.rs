//! A session worker: one OS thread, one current-thread tokio runtime.
//!
//! A worker owns its connections, their sessions, its local subscription
//! trie and the writers of its connections. Everything here is `Rc`/`RefCell`
//! and never leaves the thread. Other threads reach a worker only through its
//! two inboxes: `data` (bounded: routed messages) and `control` (new
//! connections, migrated connections, shutdown).

use crate::backpressure::Watermarks;
use crate::conn::{self, ConnCell, ConnShared};
use crate::shared::{Control, Routed, Shared};
use crate::stats::WorkerStats;
use bytestring::ByteString;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{Publish, PublishTemplate, QoS, ReasonCode, SubscriptionOptions};
use tern_routing::{LocalSubscriptions, RetainedMessage, RouteOp, RouteUpdate, SubEntry, Target};
use tern_session::{EnqueueOutcome, Offer, Session};
use tokio::sync::mpsc;

mod expiry;
mod gauges;

/// Every how many 500 ms ticks idle connections are swept (2 s).
const IDLE_SWEEP_TICKS: u64 = 4;

/// Key of a client (session) on its worker; stable while the session lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientKey(pub(crate) u64);

/// Who published a message, for No Local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) worker: usize,
    pub(crate) client: ClientKey,
}

/// A session held by this worker: connected, or waiting for its client.
#[derive(Debug)]
pub(crate) enum ClientState {
    Online(Rc<ConnCell>),
    Offline(Box<Session>),
}

#[derive(Debug)]
pub(crate) struct Client {
    /// The client id is not repeated here: the session holds it (and
    /// `by_id` maps it to this entry's key).
    pub(crate) generation: u64,
    pub(crate) state: ClientState,
}

/// Sets of the template cache per protocol layout (two ways each).
const TEMPLATE_SETS: usize = 128;

type TemplateEntry = Option<(std::sync::Weak<Publish>, Cached)>;

/// Payloads up to this size are sent to QoS 0 receivers of a fan-out as one
/// frame encoded once per worker (one copy of the payload per message, not
/// per receiver); larger ones keep the header + shared payload form. A cache
/// entry keeps its frame until it is replaced, so the cache holds at most
/// 2 × 256 frames of about 4 KiB (2 MiB) per worker.
const SHARED_FRAME_MAX: usize = 4096;

/// A message's template for one protocol layout, and its shared QoS 0 frame.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) template: PublishTemplate,
    /// Deliveries through this entry so far.
    uses: u32,
    /// The whole 3.1.1 QoS 0 frame (RETAIN and DUP clear), built on the
    /// second QoS 0 delivery so a message with one receiver is not copied.
    frame: Option<Rc<bytes::Bytes>>,
}

impl Cached {
    /// The frame every plain 3.1/3.1.1 QoS 0 receiver of `msg` gets, once the
    /// message has more than one such receiver here; `None` means "encode a
    /// header and share the payload" instead.
    pub(crate) fn shared_qos0_frame(&mut self, msg: &Publish) -> Option<&Rc<bytes::Bytes>> {
        if msg.payload.len() > SHARED_FRAME_MAX {
            return None;
        }
        self.uses = self.uses.saturating_add(1);
        if self.frame.is_none() && self.uses >= 2 {
            let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
            let mut buf = bytes::BytesMut::with_capacity(self.template.packet_len(msg, &d));
            if self.template.write_header(msg, &d, &mut buf).is_err() {
                return None;
            }
            buf.extend_from_slice(&msg.payload);
            self.frame = Some(Rc::new(buf.freeze()));
        }
        self.frame.as_ref()
    }
}

/// The PUBLISH layouts of the messages being fanned out, per protocol layout
/// (3.1/3.1.1 share one encoding, 5.0 has its own), so subscribers of mixed
/// versions do not evict each other's templates. Paced subscribers release
/// their queues at different positions (up to the queue's high-water mark
/// plus the inflight window apart), so the cache holds a few hundred
/// messages: a two-way set-associative table keyed by the message's
/// address. An entry holds a `Weak` to its message, which keeps the
/// allocation (the key) from being reused under it without keeping the
/// message alive; the template copies the topic of a large message, and only
/// shared QoS 0 frames of at most `SHARED_FRAME_MAX` bytes are kept (see
/// there).
#[derive(Debug)]
pub(crate) struct TemplateCache {
    /// `[layout][set]` → two ways.
    sets: [Vec<[TemplateEntry; 2]>; 2],
    /// Per layout and set, the way replaced next (the one used least recently).
    victim: [Vec<u8>; 2],
    /// Templates built so far (what the cache exists to keep low).
    builds: u64,
}

impl Default for TemplateCache {
    fn default() -> Self {
        let sets = || (0..TEMPLATE_SETS).map(|_| [None, None]).collect();
        Self {
            sets: [sets(), sets()],
            victim: [vec![0; TEMPLATE_SETS], vec![0; TEMPLATE_SETS]],
            builds: 0,
        }
    }
}

/// The splitmix64 finalizer: spreads allocation addresses (which come in
/// power-of-two strides) over the sets.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TemplateCache {
    pub(crate) fn get(&mut self, msg: &Arc<Publish>, v5: bool) -> &mut Cached {
        let layout = usize::from(v5);
        let key = Arc::as_ptr(msg);
        let set = (mix(key.addr() as u64) % TEMPLATE_SETS as u64) as usize;
        let ways = &mut self.sets[layout][set];
        let victim = &mut self.victim[layout][set];
        let hit = ways
            .iter()
            .position(|e| matches!(e, Some((w, _)) if std::ptr::eq(w.as_ptr(), key)));
        let way = match hit {
            Some(way) => way,
            None => {
                let way = usize::from(*victim & 1);
                ways[way] = None;
                self.builds += 1;
                way
            }
        };
        *victim = u8::from(way == 0);
        let version = if v5 {
            tern_codec::ProtocolVersion::V5
        } else {
            tern_codec::ProtocolVersion::V311
        };
        let (_, cached) = ways[way].get_or_insert_with(|| {
            let cached = Cached {
                template: PublishTemplate::new(msg, version),
                uses: 0,
                frame: None,
            };
            (Arc::downgrade(msg), cached)
        });
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;

    fn message(topic: &'static str) -> Arc<Publish> {
        Arc::new(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: ByteString::from_static(topic),
            packet_id: None,
            properties: Default::default(),
            payload: bytes::Bytes::from_static(b"payload"),
        })
    }

    #[test]
    fn mixed_versions_keep_their_templates() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        // Receivers in trie order alternate between protocol versions.
        for v5 in [false, true, false, true, false, true] {
            cache.get(&msg, v5);
        }
        assert_eq!(
            cache.builds, 2,
            "one template per version, not one per receiver"
        );
        assert_eq!(
            cache.get(&msg, true).template.version(),
            tern_codec::ProtocolVersion::V5
        );
        assert_eq!(
            cache.get(&msg, false).template.version(),
            tern_codec::ProtocolVersion::V311
        );
    }

    #[test]
    fn receivers_at_different_queue_positions_reuse_templates() {
        const MESSAGES: usize = 32;
        const ROUNDS: usize = 10;
        let messages: Vec<_> = (0..MESSAGES).map(|_| message("a/b")).collect();
        let mut cache = TemplateCache::default();
        // Paced subscribers release their queues at different positions:
        // each round, every receiver takes a different one of the messages.
        for _round in 0..ROUNDS {
            for m in &messages {
                cache.get(m, false);
            }
        }
        // Every message misses once. Sets are chosen by address, so a few
        // sets may get three of these messages and miss every round (a
        // triple costs 30 builds here, likely in about one run in four);
        // a cache that thrashes rebuilds on every access (a one-slot or
        // 8-entry cache: 320 builds). Half of that separates the two.
        assert!(
            (cache.builds as usize) < MESSAGES * ROUNDS / 2,
            "{} builds for {MESSAGES} messages over {ROUNDS} rounds",
            cache.builds
        );
    }

    #[test]
    fn qos0_receivers_share_one_frame_from_the_second_on() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        assert!(
            cache.get(&msg, false).shared_qos0_frame(&msg).is_none(),
            "a single receiver gets header + shared payload, no copy"
        );
        let first = Rc::clone(cache.get(&msg, false).shared_qos0_frame(&msg).unwrap());
        let again = Rc::clone(cache.get(&msg, false).shared_qos0_frame(&msg).unwrap());
        assert!(Rc::ptr_eq(&first, &again), "built once, shared after");
        let mut expected = bytes::BytesMut::new();
        let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
        cache
            .get(&msg, false)
            .template
            .write_header(&msg, &d, &mut expected)
            .unwrap();
        expected.extend_from_slice(b"payload");
        assert_eq!(&first[..], &expected[..], "header then payload");

        let big = Arc::new(Publish {
            payload: bytes::Bytes::from(vec![7u8; SHARED_FRAME_MAX + 1]),
            ..(*message("a/b")).clone()
        });
        for _ in 0..3 {
            assert!(
                cache.get(&big, false).shared_qos0_frame(&big).is_none(),
                "large payloads are never copied"
            );
        }
    }

    #[test]
    fn a_dropped_message_does_not_pin_its_payload() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        cache.get(&msg, false);
        assert_eq!(
            Arc::strong_count(&msg),
            1,
            "the cache holds no strong reference"
        );
    }

    #[test]
    fn a_new_message_replaces_the_template() {
        let first = message("a");
        let second = message("b");
        let mut cache = TemplateCache::default();
        cache.get(&first, false);
        let mut out = bytes::BytesMut::new();
        let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
        cache
            .get(&second, false)
            .template
            .write_header(&second, &d, &mut out)
            .unwrap();
        assert_eq!(
            &out[2..5],
            b"\x00\x01b",
            "header written for the second message's topic"
        );
    }
}

/// What a publisher must wait for before it reads its next packet: QoS>0
/// deliveries to workers whose inbox was full when the message was routed,
/// and local subscribers the message left congested (see `backpressure`).
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    sends: Vec<(mpsc::Sender<Routed>, Routed)>,
    congested: Vec<Rc<ConnCell>>,
    /// The reason code a v5 PUBACK/PUBREC of the message carries instead
    /// of Success: 0x10 when no subscriber matched. (A client's PUBLISH to
    /// `$SYS` is refused by the session's authorizer before it gets here.)
    pub(crate) ack: Option<ReasonCode>,
}

impl Blocked {
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
            crate::backpressure::wait_for_room(&self.congested, worker.marks, &worker.stats).await;
        }
    }
}

/// Waits until every delivery is in its worker's inbox: a QoS 1/2 message
/// for as long as it takes, a QoS 0 message for at most one backpressure
/// pause in all, after which it is dropped for the workers still full and
/// counted.
pub(crate) async fn send_all(sends: Vec<(mpsc::Sender<Routed>, Routed)>, stats: &WorkerStats) {
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

#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) subs: RefCell<LocalSubscriptions<ClientKey>>,
    pub(crate) clients: RefCell<HashMap<ClientKey, Client, ahash::RandomState>>,
    pub(crate) by_id: RefCell<HashMap<ByteString, ClientKey, ahash::RandomState>>,
    next_key: Cell<u64>,
    targets: RefCell<Vec<Target<ClientKey>>>,
    retained_scratch: RefCell<Vec<RetainedMessage>>,
    pub(crate) templates: RefCell<TemplateCache>,
    pub(crate) stats: Rc<WorkerStats>,
    drop_log: crate::stats::RateLimitedLog,
    /// Live connection tasks, for a bounded drain at shutdown.
    pub(crate) live_tasks: Cell<usize>,
    pub(crate) tasks_done: tokio::sync::Notify,
    /// When a subscriber's backlog makes publishers wait.
    pub(crate) marks: Watermarks,
    /// Idle connections without a task (see `conn::park`).
    pub(crate) parking: conn::park::ParkingLot,
    /// The settings in force (session limits for new connections, and
    /// what else a reload can change), refreshed by the tick.
    pub(crate) live: crate::live::WorkerLive,
    /// Round-robin state of shared subscriptions (see `share`).
    pub(crate) shares: crate::share::ShareState,
    /// When offline sessions expire and delayed wills are due (see `expiry`).
    timers: RefCell<expiry::Timers>,
}

impl Worker {
    fn new(id: usize, shared: Arc<Shared>) -> Self {
        let stats = Rc::new(WorkerStats::default());
        let marks = Watermarks::from_limits(&shared.config.limits);
        let live = crate::live::WorkerLive::new(&shared.live);
        Self {
            id,
            shared,
            subs: RefCell::new(LocalSubscriptions::new()),
            clients: RefCell::default(),
            by_id: RefCell::default(),
            next_key: Cell::new(1),
            targets: RefCell::new(Vec::with_capacity(64)),
            retained_scratch: RefCell::default(),
            templates: RefCell::default(),
            stats,
            drop_log: Default::default(),
            live_tasks: Cell::new(0),
            tasks_done: tokio::sync::Notify::new(),
            marks,
            parking: Default::default(),
            live,
            shares: Default::default(),
            timers: Default::default(),
        }
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

    /// Routes an application message published by `origin` (a client of this
    /// worker) and delivers it to this worker's subscribers. What the
    /// publishing connection must wait for before reading on is returned:
    /// deliveries to other workers whose inbox is full, and local subscribers
    /// the message left congested (see `backpressure`).
    #[must_use = "a publisher must await `Blocked::wait` before reading on"]
    pub(crate) fn publish(&self, now: Instant, origin: ClientKey, publish: Publish) -> Blocked {
        let msg = Arc::new(publish);
        self.stats.publish_in(msg.qos);
        if msg.retain {
            self.retain(now, &msg);
        }
        let snapshot = self.shared.routes.load();
        let matched = snapshot.matches(&msg.topic);
        let origin = Origin {
            worker: self.id,
            client: origin,
        };
        let mut local = false;
        let mut blocked = Blocked::default();
        if matched.is_empty() {
            self.stats.dropped_no_subscribers.inc();
            blocked.ack = Some(ReasonCode::NO_MATCHING_SUBSCRIBERS);
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
            let routed = Routed {
                msg: Arc::clone(&msg),
                origin,
                share: None,
                received_at: now,
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
            self.route_shared(now, &msg, origin, &matched.shared, congested, sends);
        }
        blocked
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
        let mut store = self
            .shared
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let expires_at = msg
            .properties
            .message_expiry_interval
            .and_then(|secs| now.checked_add(std::time::Duration::from_secs(u64::from(secs))));
        if let Err(e) = store.set(RetainedMessage {
            publish: Arc::new(compact),
            expires_at,
        }) {
            self.stats.retained_rejected.inc();
            tracing::warn!(topic = %msg.topic, error = %e, "retained message not stored");
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
        for t in targets.iter() {
            let qos = msg.qos.min(t.qos);
            let retain = t.retain_as_published && msg.retain;
            let Some(client) = clients.get_mut(&t.key) else {
                continue;
            };
            match &mut client.state {
                ClientState::Online(cell) => {
                    let now_congested = conn::deliver(
                        self,
                        cell,
                        &mut templates,
                        now,
                        msg,
                        conn::Received::Live(received_at),
                        (qos, retain, &t.subscription_identifiers),
                        None,
                    );
                    if now_congested && !congested.iter().any(|c| Rc::ptr_eq(c, cell)) {
                        congested.push(Rc::clone(cell));
                    }
                }
                ClientState::Offline(session) => {
                    let offer = Offer {
                        retain,
                        subscription_identifiers: &t.subscription_identifiers,
                        ..Offer::new(msg, received_at, qos)
                    };
                    match session.enqueue(now, &offer, &self.live.borrow().session) {
                        EnqueueOutcome::Queued => self.stats.queued_offline.inc(),
                        EnqueueOutcome::DroppedQos0 => self.stats.dropped_qos0_offline.inc(),
                        EnqueueOutcome::DroppedExpired => self.stats.dropped_expired.inc(),
                        EnqueueOutcome::DroppedQueueFull => {
                            self.stats.dropped_queue_full.inc();
                            self.drop_log
                                .warn(self.id, "offline session queue full: message dropped");
                        }
                    }
                }
            }
        }
    }

    /// Adds subscriptions to the local trie and the route table, waits until
    /// the route snapshot contains them, and returns the reason codes.
    pub(crate) async fn subscribe(
        &self,
        key: ClientKey,
        filters: &[(ByteString, SubscriptionOptions)],
        subscription_identifier: Option<u32>,
    ) -> Vec<ReasonCode> {
        let mut updates = Vec::new();
        let mut reasons = Vec::with_capacity(filters.len());
        {
            let mut subs = self.subs.borrow_mut();
            for (filter, options) in filters {
                let outcome = subs.subscribe(
                    key,
                    filter,
                    SubEntry {
                        options: *options,
                        subscription_identifier,
                    },
                );
                if outcome.filter_added {
                    updates.push(RouteUpdate {
                        worker: self.route_id(),
                        filter: filter.clone(),
                        op: RouteOp::Add,
                    });
                }
                reasons.push(ReasonCode(options.qos as u8));
            }
        }
        if !updates.is_empty() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let req = crate::route_writer::RouteRequest {
                updates,
                applied: Some(tx),
            };
            if self.shared.route_tx.send(req).is_ok() {
                let _ = rx.await;
            }
        }
        reasons
    }

    fn route_id(&self) -> u16 {
        u16::try_from(self.id).unwrap_or(u16::MAX)
    }

    /// Removes subscriptions; the route table is told without waiting.
    pub(crate) fn unsubscribe<'a>(
        &self,
        key: ClientKey,
        filters: impl IntoIterator<Item = &'a ByteString>,
    ) {
        let mut updates = Vec::new();
        {
            let mut subs = self.subs.borrow_mut();
            for filter in filters {
                if subs.unsubscribe(key, filter).filter_removed {
                    updates.push(RouteUpdate {
                        worker: self.route_id(),
                        filter: filter.clone(),
                        op: RouteOp::Remove,
                    });
                }
            }
        }
        if !updates.is_empty() {
            let _ = self
                .shared
                .route_tx
                .send(crate::route_writer::RouteRequest {
                    updates,
                    applied: None,
                });
        }
    }

    /// Sends the unexpired retained messages matching `filter` to a
    /// connection; one with a Message Expiry Interval carries what remains of
    /// it ([MQTT5-3.3.2-5/6]).
    pub(crate) fn send_retained(
        &self,
        cell: &ConnCell,
        now: Instant,
        filter: &str,
        granted: QoS,
        subscription_identifier: Option<u32>,
    ) {
        let mut found = self.retained_scratch.borrow_mut();
        found.clear();
        self.shared
            .retained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .matching_messages(filter, now, &mut found);
        let ids: smallvec::SmallVec<[u32; 2]> = subscription_identifier.into_iter().collect();
        let mut templates = self.templates.borrow_mut();
        for retained in found.drain(..) {
            let msg = &retained.publish;
            let qos = msg.qos.min(granted);
            let at = conn::Received::Retained(retained.received_at().unwrap_or(now));
            let _ = conn::deliver(
                self,
                cell,
                &mut templates,
                now,
                msg,
                at,
                (qos, true, &ids),
                None,
            );
        }
    }

    /// Ends a connection's hold on its session. The session is returned when
    /// it is kept (persistent, and not `discard`ed by a Clean Start); a
    /// session that is not kept leaves the trie here, the one place that
    /// does. The will, if any, is returned for the caller to publish (or
    /// delay) once its own bookkeeping is done (a will may match the
    /// client's own session).
    fn end_connection(
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
            .map(|(f, _, _)| f.clone())
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
                (Some(session), will)
            }
            _ => {
                self.unsubscribe(key, filters.iter());
                self.hand_off_shared(now, key, orphans, None);
                (None, will)
            }
        }
    }

    fn drop_subscriptions(&self, key: ClientKey, session: &Session) {
        let filters: Vec<ByteString> = session.subscriptions().map(|(f, _, _)| f.clone()).collect();
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
        match previous.state {
            ClientState::Offline(mut session) if clean_start => {
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

    /// Asks connections that were quiet for a whole sweep interval to give
    /// back their buffers; marks the others for the next sweep.
    fn sweep_idle(&self) {
        for c in self.clients.borrow().values() {
            if let ClientState::Online(cell) = &c.state {
                let Ok(mut cs) = cell.try_borrow_mut() else {
                    continue;
                };
                if cs.quiet && cs.out.is_empty() && !cs.parked {
                    // Quiet for a whole interval: give back what can be
                    // given back here; the task releases its read buffer.
                    cs.out.release_if_drained();
                    if let Some(conn) = cs.conn.as_mut() {
                        conn.release_memory();
                    }
                    cs.trim = true;
                    cs.wake();
                }
                cs.quiet = true;
            }
        }
    }

    fn close_all(&self) {
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

/// Starts worker `id` on its own thread.
pub(crate) fn spawn(
    id: usize,
    shared: Arc<Shared>,
    mut data: mpsc::Receiver<Routed>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tern-worker-{id}"))
        .spawn(move || {
            let Some(rt) = crate::current_thread_runtime("worker") else {
                return;
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let worker = Rc::new(Worker::new(id, Arc::clone(&shared)));
                let ticker = Rc::clone(&worker);
                tokio::task::spawn_local(async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
                    let mut ticks = 0u64;
                    loop {
                        every.tick().await;
                        ticks += 1;
                        ticker.sample_gauges(ticks);
                        if let Some(slot) = ticker.shared.worker_stats.get(ticker.id) {
                            ticker.stats.publish_to(slot);
                        }
                        let now = Instant::now();
                        ticker.parking.expire(now);
                        ticker.expire(now);
                        crate::health::tick(&ticker, now);
                        if ticks % IDLE_SWEEP_TICKS == 0 {
                            ticker.sweep_idle();
                        }
                    }
                });
                let parking = Rc::clone(&worker);
                tokio::task::spawn_local(async move { parking.parking.run().await });
                let w = Rc::clone(&worker);
                tokio::task::spawn_local(async move {
                    let mut batch = Vec::with_capacity(256);
                    let mut congested = Vec::new();
                    while data.recv_many(&mut batch, 256).await > 0 {
                        w.stats.events.add(batch.len() as u64);
                        let mut now = Instant::now();
                        for routed in batch.drain(..) {
                            let Routed {
                                msg,
                                origin,
                                received_at,
                                share,
                            } = routed;
                            match share {
                                None => w.deliver_local_at(
                                    now,
                                    &msg,
                                    received_at,
                                    origin,
                                    &mut congested,
                                ),
                                Some(hop) => w.deliver_routed_share(
                                    now,
                                    &msg,
                                    received_at,
                                    origin,
                                    &hop,
                                    &mut congested,
                                ),
                            }
                            // Let congested subscribers drain before taking
                            // more: meanwhile the inbox fills and holds back
                            // the other workers' publishers (bounded by the pause).
                            if !congested.is_empty() {
                                crate::backpressure::wait_for_room(&congested, w.marks, &w.stats)
                                    .await;
                                congested.clear();
                                now = Instant::now();
                            }
                        }
                    }
                });
                while let Some(msg) = control.recv().await {
                    match msg {
                        Control::Accepted(accepted, permit) => {
                            conn::spawn_accepted(&worker, accepted, permit)
                        }
                        Control::Adopt(adopted) => conn::spawn_adopted(&worker, adopted),
                        Control::PublishWills { done } => {
                            worker.begin_shutdown(Instant::now());
                            let _ = done.send(());
                        }
                        Control::Shutdown { grace } => {
                            worker.begin_shutdown(Instant::now());
                            // Wills other workers published just before
                            // reach this worker's subscribers before they close.
                            worker.drain_inbox().await;
                            worker.close_all();
                            let drained = tokio::time::timeout(grace, async {
                                while worker.live_tasks.get() > 0 {
                                    worker.tasks_done.notified().await;
                                }
                            })
                            .await;
                            if drained.is_err() {
                                tracing::warn!(
                                    worker = id,
                                    open = worker.live_tasks.get(),
                                    "grace period over; closing remaining connections"
                                );
                            }
                            break;
                        }
                    }
                }
                // What the grace period left parked is closed as if the
                // network had failed (and the worker's cycle through the
                // parked connections' guards is broken).
                worker.parking.clear();
            });
        })
}

impl ConnShared {
    /// Wakes the connection task if it is waiting.
    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    /// Takes the session away from this connection (closing or taken over);
    /// publishers waiting for it to drain stop waiting.
    pub(crate) fn take_conn(&mut self) -> Option<tern_session::Connection> {
        self.drain.release();
        self.conn.take()
    }
}
