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

//!
//! This module holds a worker's round-robin state; the steps are
//! `worker/share.rs`, and a message for one member travels between workers
//! as a `Routed` with a `ShareHop` (`shared.rs`).

use crate::client::ClientKey;
use std::cell::RefCell;
use tern_routing::{ShareCursors, SubEntry};

/// A worker's shared-subscription state: worker-private round-robin cursors.
#[derive(Debug, Default)]
pub(crate) struct ShareState {
    /// Whose turn it is among a group's workers, for messages published here.
    pub(crate) workers: RefCell<ShareCursors>,
    /// Whose turn it is among this worker's members of a group.
    pub(crate) members: RefCell<ShareCursors>,
    /// Reused list of a group's members on this worker.
    pub(crate) scratch: RefCell<Vec<(ClientKey, SubEntry)>>,
}
