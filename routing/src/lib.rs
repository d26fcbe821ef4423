//! Tern's routing: which subscribers a PUBLISH goes to, and retained messages.
//!
//! The crate knows topic filters and topic names (already validated by
//! `tern-codec`) but no connections, sockets or clocks. It has four parts:
//!
//! * [`Trie`]: a map from topic filters to values with MQTT matching (`+`, `#`,
//!   `$` topics, empty levels). Its nodes are persistent (`Arc` +
//!   `make_mut`), so cloning is O(1) and a change copies only its path
//!   (of a node with more than 1,024 children, only the touched chunks).
//! * [`RouteTable`]: the global, read-mostly answer to "which workers have a
//!   subscriber for this topic", as a [`WorkerSet`] bit mask plus the shared
//!   groups. Readers take one atomic load; the route writer thread publishes
//!   a new [`RouteSnapshot`] per batch of [`RouteUpdate`]s (read-copy-update).
//! * [`LocalSubscriptions`]: a worker's own subscribers and the fan-out plan
//!   for one message ([`Target`]s, overlapping subscriptions folded).
//! * [`RetainedStore`]: retained messages by topic name, queried by filter.
//!
//! # Call order
//!
//! 1. SUBSCRIBE on a worker: [`LocalSubscriptions::subscribe`] per filter; when
//!    it reports `filter_added`, send `RouteUpdate { op: RouteOp::Add, .. }` to
//!    the route writer. Then a [`RetainedCursor`] and
//!    [`RetainedStore::next_matches`] for the retained messages to send, in
//!    batches (each under the store's mutex).
//! 2. UNSUBSCRIBE or session end: [`LocalSubscriptions::unsubscribe`]; on
//!    `filter_removed` send `RouteOp::Remove`.
//! 3. Route writer: drain pending updates, [`RouteTable::apply`] them as one
//!    batch, tell the workers the returned version.
//! 4. PUBLISH: if RETAIN, [`RetainedStore::set`]. Then
//!    [`RouteTable::load`] and [`RouteSnapshot::matches`]: forward to every
//!    worker in `workers`, and for each shared group to one worker of its
//!    set ([`ShareCursors::pick_worker`]). Each receiving worker calls
//!    [`LocalSubscriptions::collect_from`] (ordinary subscribers) and
//!    [`LocalSubscriptions::collect_shared`] (the members of a group it was
//!    picked for, one of which [`ShareCursors::pick_member`] chooses), then
//!    delivers.
//! 5. Periodically: [`RetainedStore::purge_expired`].
//!
//! Matching never allocates in the common case: levels are walked in place
//! with a small on-stack work list. Deep filters and topics (up to 65,535
//! levels) are walked and dropped without recursion.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod child_map;
mod local;
mod retained;
mod route;
mod share;
mod trie;
mod worker_set;

pub use local::{LocalSubscriptions, SubEntry, SubscribeOutcome, Target, UnsubscribeOutcome};
pub use retained::{
    RetainError, RetainOutcome, RetainedCursor, RetainedLimits, RetainedMessage, RetainedStore,
    RetainedUsage,
};
pub use route::{
    RouteMatch, RouteOp, RouteSnapshot, RouteTable, RouteUpdate, SharedGroups, SharedTarget,
};
pub use share::ShareCursors;
pub use trie::{Iter, Trie};
pub use worker_set::{WorkerSet, WorkerSetIter};
