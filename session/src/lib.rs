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
//!    into [`ConnectCheck::authenticated`].
//! 2. [`Connection::new`] with the stored [`Session`] for the client id (if any).
//!    The CONNACK, retransmissions and released queued messages are queued.
//! 3. Loop: [`Connection::handle_packet`], [`Connection::deliver`],
//!    [`Connection::complete_subscribe`] / [`Connection::complete_unsubscribe`],
//!    [`Connection::handle_timeout`]; then drain [`Connection::poll_transmit`]
//!    and [`Connection::poll_event`], and arm a timer at
//!    [`Connection::poll_timeout`].
//! 4. On [`Event::Close`] (or when the socket dies) flush the transmits and call
//!    [`Connection::handle_close`], which returns the will to publish and the
//!    session to keep. [`Connection::into_session`] moves the session elsewhere.
//!
//! Shared subscriptions: deliver their messages with
//! [`Connection::deliver_shared`] (or [`Session::enqueue_shared`] offline),
//! which tags them with their group. When the member leaves, take the
//! unacknowledged ones out with [`Connection::take_shared_unacked_for`]
//! (before `handle_close`) or [`Session::take_shared_unacked`] and hand them
//! to another member ([`SharedOrphan`]).
//!
//! Message-level rules live here (packet ids, QoS 2 exactly-once bookkeeping,
//! inflight window, bounded queue, keep-alive, will, inbound topic aliases,
//! message expiry); syntax is the codec's job and routing is the broker's.
//!
//! Message expiry: `deliver` and [`Session::enqueue`] take the time the
//! broker received the message. A message whose v5 Message Expiry Interval
//! has passed before it is sent is dropped ([`DropReason::Expired`],
//! [`SessionStats::dropped_expired`]); a sent one carries the remaining
//! interval in [`OutboundPublish::message_expiry_interval`]. The publisher's
//! expiry applies to v3 receivers as well, without the property.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod alias;
pub mod auth;
mod config;
mod connect;
mod connection;
mod error;
mod inbound;
mod inflight;
mod output;
mod session;
mod share;
mod stats;

pub use alias::{AliasUse, OutboundAliases};
pub use config::SessionConfig;
pub use connect::{compact_str, redirect_connack, reject_connack, ConnectCheck};
pub use connection::Connection;
pub use error::ProtocolError;
pub use output::{
    CloseReason, Closed, DeliverOutcome, DropReason, Event, OutboundPublish, Transmit, Will,
};
pub use session::{EnqueueOutcome, InflightState, Session};
pub use share::SharedOrphan;
pub use stats::{ConnectionStats, SessionStats};
