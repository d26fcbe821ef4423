//! Tern's sans-IO MQTT session layer: the per-connection state machine from
//! CONNECT to close, and the [`Session`] state that outlives a connection.
//!
//! No sockets, no clock, no async: every input carries `now: Instant`, every
//! output is polled. Call order for one network connection:
//!
//! 1. [`Connection::check_connect`] — semantic CONNECT checks and user name /
//!    password ([`auth`]); on `Err(code)` send [`reject_connack`]`(code)` and
//!    close. A v5 CONNECT with an Authentication Method then runs an
//!    [`auth::AuthExchange`] (AUTH packets) before step 2; its outcome goes
//!    into [`ConnectCheck::authenticated`]. The broker may add the listener,
//!    peer address and certificate subject to the [`ConnectCheck`], then asks
//!    [`Connection::authorize_connect`] (the [`Authorizer`]); on `Err(code)`
//!    it sends `reject_connack(code)` and closes.
//! 2. [`Connection::new`] with the stored [`Session`] for the client id (if any).
//!    The CONNACK, retransmissions and released queued messages are queued.
//! 3. Loop: [`Connection::handle_packet`], [`Connection::deliver`] (an
//!    [`Offer`]), [`Connection::complete_subscribe`] /
//!    [`Connection::complete_unsubscribe`], [`Connection::handle_timeout`];
//!    then drain [`Connection::poll_transmit`] and [`Connection::poll_event`],
//!    and arm a timer at [`Connection::poll_timeout`]. An [`Event::Publish`]
//!    is routed and answered with [`Connection::complete_publish`] (its
//!    [`PublishOutcome`]) before the next packet is handled: the session
//!    queues the PUBACK / PUBREC then.
//! 4. On [`Event::Close`] (or when the socket dies) flush the transmits and call
//!    [`Connection::handle_close`], which returns the will to publish and the
//!    session to keep. [`Connection::into_session`] moves the session elsewhere.
//!
//! Offline, [`Session::enqueue`] takes the same [`Offer`] as `deliver`.
//!
//! Shared subscriptions: an [`Offer`] with a `group` tags the message with
//! its group (inflight or queued). When the member leaves, take the
//! unacknowledged ones out with [`Connection::take_shared_unacked_for`]
//! (before `handle_close`) or [`Session::take_shared_unacked`] and hand them
//! to another member ([`SharedOrphan`]).
//!
//! Seams: [`SessionConfig::authorizer`] decides what a client may publish,
//! subscribe to and receive ([`Authorizer`], [`Identity`]; by default
//! [`DefaultAuthorizer`]: no client PUBLISH or will to `$SYS`). With
//! [`SessionConfig::record_changes`] a persistent session keeps a journal
//! of [`SessionChange`]s for a persistence backend, drained with
//! [`Connection::poll_change`] / [`Session::poll_change`].
//!
//! Message-level rules live here (packet ids, QoS 2 exactly-once bookkeeping,
//! inflight window, bounded queue, keep-alive, will, inbound topic aliases,
//! message expiry); syntax is the codec's job and routing is the broker's.
//!
//! Message expiry: `deliver` and [`Session::enqueue`] take the time the
//! broker received the message ([`Offer::received_at`]). A message whose v5
//! Message Expiry Interval has passed before it is sent is dropped
//! ([`DropReason::Expired`], [`SessionStats::dropped_expired`]); a sent one
//! carries the remaining interval in
//! [`OutboundPublish::message_expiry_interval`]. The publisher's expiry
//! applies to v3 receivers as well, without the property.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod alias;
pub mod auth;
mod authorize;
mod changes;
mod config;
mod connect;
mod connection;
mod error;
mod inbound;
mod inflight;
mod offer;
mod output;
mod restore;
mod session;
mod share;
mod stats;
mod subscriptions;

pub use alias::{AliasUse, OutboundAliases};
pub use authorize::{is_sys_topic, Authorizer, DefaultAuthorizer, Identity};
pub use changes::SessionChange;
pub use config::SessionConfig;
pub use connect::{compact_str, redirect_connack, reject_connack, ConnectCheck};
pub use connection::Connection;
pub use error::ProtocolError;
pub use inbound::PublishOutcome;
pub use offer::Offer;
pub use output::{
    CloseReason, Closed, DeliverOutcome, DropReason, Event, OutboundPublish, Transmit, Will,
};
pub use restore::{RestoreReport, StoredInflight, StoredSession};
pub use session::{EnqueueOutcome, InflightState, Message, Session};
pub use share::SharedOrphan;
pub use stats::{ConnectionStats, SessionStats};
