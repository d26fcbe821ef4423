//! Subscriptions on this worker: the local trie, the route table updates
//! it causes, and the retained messages a new subscription is sent.

use super::Worker;
use crate::client::ClientKey;
use crate::deliver::{self, Arrival, ConnCell, Offer, ReplayRun, Step, FETCH, SCAN};
use bytestring::ByteString;
use std::time::Instant;
use tern_codec::{QoS, ReasonCode, SubscriptionOptions};
use tern_routing::{RouteOp, RouteUpdate, SubEntry};

impl Worker {
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
        self.apply_routes(updates).await;
        reasons
    }

    /// Sends `updates` to the route writer and waits until the route
    /// snapshot holds them.
    pub(crate) async fn apply_routes(&self, updates: Vec<RouteUpdate>) {
        if updates.is_empty() {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = crate::route_writer::RouteRequest {
            updates,
            applied: Some(tx),
        };
        if self.shared.route_tx.send(req).is_ok() {
            let _ = rx.await;
        }
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

    /// Starts the replay of the unexpired retained messages matching
    /// `filter` to a connection (behind any replay it already has) and sends
    /// what fits now; the rest follows as the connection drains (see
    /// `deliver::replay`).
    pub(crate) fn send_retained(
        &self,
        cell: &ConnCell,
        filter: &str,
        granted: QoS,
        subscription_identifier: Option<u32>,
    ) {
        {
            let Ok(mut cs) = cell.try_borrow_mut() else {
                return;
            };
            if cs.conn.is_none() {
                return;
            }
            let ids = subscription_identifier.into_iter().collect();
            cs.replay
                .get_or_insert_with(Box::default)
                .push(ReplayRun::new(filter, granted, ids));
        }
        self.pump_replay(cell);
    }

    /// Offers a connection the next retained messages of its replay while
    /// it has room ([`ConnShared::replay_room`](crate::deliver::ConnShared::replay_room)),
    /// at most [`PUMP_BUDGET`] steps per call so that one replay does not
    /// hold up the worker: the connection task calls again. A message with
    /// a Message Expiry Interval carries what remains of it ([MQTT5-3.3.2-5/6]).
    pub(crate) fn pump_replay(&self, cell: &ConnCell) {
        let now = Instant::now();
        let mut batch = Vec::new();
        for _ in 0..PUMP_BUDGET {
            let step = {
                let Ok(mut cs) = cell.try_borrow_mut() else {
                    return;
                };
                if !cs.replay_room(self.marks) {
                    return;
                }
                let Some(replay) = cs.replay.as_deref_mut() else {
                    return;
                };
                let step = replay.step();
                match &step {
                    Step::Fetch => {
                        if let Some(run) = replay.front_mut() {
                            self.shared
                                .retained
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .next_matches(&mut run.cursor, now, FETCH, SCAN, &mut batch);
                            let skipped = run.accept(&mut batch);
                            self.stats.retained_superseded.add(skipped as u64);
                        }
                    }
                    Step::Done => cs.replay = None,
                    Step::Offer(..) => {}
                }
                step
            };
            match step {
                Step::Offer(retained, granted, ids) => {
                    let msg = &retained.publish;
                    let offer = Offer {
                        msg,
                        received_at: retained.received_at().unwrap_or(now),
                        qos: msg.qos.min(granted),
                        retain: true,
                        subscription_identifiers: &ids,
                        group: None,
                    };
                    self.stats.retained_replayed.inc();
                    let mut templates = self.templates.borrow_mut();
                    let mut ctx = self.deliver_ctx(&mut templates);
                    let _ = deliver::deliver(&mut ctx, cell, now, &offer, Arrival::Retained);
                }
                Step::Fetch => {}
                Step::Done => return,
            }
        }
    }
}

/// Messages offered or batches fetched per [`Worker::pump_replay`] call.
const PUMP_BUDGET: usize = 256;
