//! The clients of a worker: their keys, what state each is in (connected or
//! offline), and the one place a message is offered to either.

use crate::deliver::{self, Arrival, ConnCell, DeliverCtx, Offer};
use std::rc::Rc;
use std::time::Instant;
use tern_session::{Session, SessionConfig};

/// Key of a client (session) on its worker; stable while the session lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientKey(pub(crate) u64);

/// The client key `$SYS` messages are published under; no client has it
/// (workers number their clients from 1).
pub(crate) const SYS_ORIGIN: ClientKey = ClientKey(0);

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

impl ClientState {
    /// Offers a live message to this client, connected or not: written or
    /// queued by its connection, or queued in its offline session (`cfg`
    /// bounds that queue). A connection the delivery left congested is
    /// added to `congested` (see `backpressure`).
    pub(crate) fn offer(
        &mut self,
        ctx: &mut DeliverCtx<'_>,
        now: Instant,
        offer: &Offer<'_>,
        cfg: &SessionConfig,
        congested: &mut Vec<Rc<ConnCell>>,
    ) {
        match self {
            Self::Online(cell) => {
                if deliver::deliver(ctx, cell, now, offer, Arrival::Live) {
                    deliver::note_congested(congested, cell);
                }
            }
            Self::Offline(session) => {
                let outcome = session.enqueue(now, offer, cfg);
                crate::store::drain_session(ctx.store, session);
                deliver::count_enqueue(ctx, outcome);
            }
        }
    }

    /// True when this client can take a shared message: connected with its
    /// session, or offline with its (persistent) session.
    pub(crate) fn can_take(&self) -> bool {
        match self {
            Self::Online(cell) => cell.try_borrow().is_ok_and(|cs| cs.conn.is_some()),
            Self::Offline(_) => true,
        }
    }
}
