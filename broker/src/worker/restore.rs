//! A start with `persistence = "on"`: the sessions and delayed wills the
//! store read back are put on this worker, offline, before it serves: each
//! session's client id is registered as this worker's, its subscriptions
//! enter the trie and the route table, its end is scheduled from the time
//! its connection closed (the time the broker was down counts), and its
//! will from the time it was due.

use super::Worker;
use crate::client::{Client, ClientState};
use crate::registry::Claim;
use crate::store::StoreEvent;
use bytestring::ByteString;
use std::time::Instant;
use tern_routing::{RouteOp, RouteUpdate, SubEntry};

impl Worker {
    /// Restores what the store read back for this worker (once) and waits
    /// until the route snapshot holds its filters. Returns the number of
    /// sessions restored.
    pub(crate) async fn restore(&self) -> usize {
        let Some((sessions, wills)) = self.recovered.borrow_mut().take() else {
            return 0;
        };
        let now = Instant::now();
        let mut updates = Vec::new();
        let mut restored = 0;
        for r in sessions {
            let client_id = r.session.client_id().clone();
            let generation = match self.shared.registry.claim(&client_id, self.id) {
                Claim::Local { generation } => generation,
                Claim::Elsewhere { worker } => {
                    tracing::error!(%client_id, worker, "stored session held by two workers: this copy is dropped");
                    continue;
                }
            };
            let key = self.key_for(&client_id);
            {
                let mut subs = self.subs.borrow_mut();
                for (filter, options, id) in r.session.subscriptions() {
                    let entry = SubEntry {
                        options: *options,
                        subscription_identifier: id,
                    };
                    if subs.subscribe(key, filter, entry).filter_added {
                        updates.push(RouteUpdate {
                            worker: self.route_id(),
                            filter: ByteString::from(filter),
                            op: RouteOp::Add,
                        });
                    }
                }
            }
            self.schedule_session_end(r.closed_at.unwrap_or(now), key, &r.session);
            self.clients.borrow_mut().insert(
                key,
                Client {
                    generation,
                    state: ClientState::Offline(Box::new(r.session)),
                },
            );
            restored += 1;
        }
        for w in wills {
            let key = self.by_id.borrow().get(&w.client_id).copied();
            match key {
                Some(key) => self.schedule_restored_will(key, w.due, w.will),
                None => {
                    // Its session ended while the broker was down: the
                    // will goes now ([MQTT5-3.1.3-9]).
                    self.store.observe(StoreEvent::WillCleared {
                        client_id: &w.client_id,
                    });
                    self.publish_detached(now, crate::client::SYS_ORIGIN, w.will);
                }
            }
        }
        self.apply_routes(updates).await;
        if restored > 0 {
            tracing::info!(
                worker = self.id,
                sessions = restored,
                "sessions restored from the store"
            );
        }
        restored
    }
}
