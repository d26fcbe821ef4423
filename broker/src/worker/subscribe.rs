//! Subscriptions on this worker: the local trie, the route table updates
//! it causes, and the retained messages a new subscription is sent.

use super::Worker;
use crate::client::ClientKey;
use crate::deliver::{self, Arrival, ConnCell, Offer};
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
        let mut ctx = self.deliver_ctx(&mut templates);
        for retained in found.drain(..) {
            let msg = &retained.publish;
            let offer = Offer {
                msg,
                received_at: retained.received_at().unwrap_or(now),
                qos: msg.qos.min(granted),
                retain: true,
                subscription_identifiers: &ids,
                group: None,
            };
            let _ = deliver::deliver(&mut ctx, cell, now, &offer, Arrival::Retained);
        }
    }
}
