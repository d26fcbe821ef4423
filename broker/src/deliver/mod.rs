//! Delivery to one subscriber: the per-connection shared writer state
//! ([`ConnShared`]), offering a message to a connection ([`deliver`]),
//! encoding what the session wants sent into the writer
//! ([`flush_transmits`], through the worker's [`TemplateCache`]), and a
//! publisher's wait for congested subscribers ([`wait_for_room`]).
//!
//! This module knows connections and sessions, never the worker: what it
//! needs of the worker (its counters, its watermarks, its template cache)
//! comes in a [`DeliverCtx`]. The connection task, the worker's fan-out and
//! shared subscriptions call into it; it calls none of them.

mod held;
mod replay;
mod templates;

use held::{HeldAck, HeldAcks};
pub(crate) use replay::{Replay, ReplayRun, Step, FETCH, SCAN};
pub(crate) use templates::TemplateCache;

use crate::backpressure::{Backlog, Drain, Watermarks, MAX_PAUSE};
use crate::outbuf::OutBuf;
use crate::stats::{RateLimitedLog, WorkerStats};
use crate::store::{self, StoreObserver};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;
use tern_codec::{
    encode, Delivery, Disconnect, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
};
use tern_session::{
    CloseReason, Connection, DeliverOutcome, DropReason, EnqueueOutcome, PublishOutcome, Transmit,
};

pub(crate) use tern_session::Offer;

pub(crate) type ConnCell = RefCell<ConnShared>;

/// State of one connection that other tasks of the worker may touch.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// The sans-IO protocol state; `None` once the session has left (closed or taken over).
    pub(crate) conn: Option<Connection>,
    pub(crate) out: OutBuf,
    pub(crate) waker: Option<Waker>,
    /// Set by another task to make this connection close after flushing.
    pub(crate) close: Option<CloseReason>,
    pub(crate) version: ProtocolVersion,
    pub(crate) writer_limit: usize,
    /// Cleared by any read or write; the worker's sweep sets it, and asks a
    /// connection that still has it set one sweep later to release its buffers.
    pub(crate) quiet: bool,
    /// Set by the sweep: release idle buffers at the next wake-up.
    pub(crate) trim: bool,
    /// The connection has no task: it waits in the worker's `ParkingLot`.
    pub(crate) parked: bool,
    /// Publishers paused until this connection's backlog has room (see `backpressure`).
    pub(crate) drain: Drain,
    /// Retained messages still owed to new subscriptions (see `replay`).
    pub(crate) replay: Option<Box<Replay>>,
    /// Acknowledgements waiting for the store (see `held`).
    pub(crate) held: Option<Box<HeldAcks>>,
}

impl ConnShared {
    /// A fresh connection's state around its sans-IO `conn`.
    pub(crate) fn new(conn: Connection, version: ProtocolVersion, writer_limit: usize) -> Self {
        Self {
            conn: Some(conn),
            out: OutBuf::default(),
            waker: None,
            close: None,
            version,
            writer_limit,
            quiet: false,
            trim: false,
            parked: false,
            drain: Drain::default(),
            replay: None,
            held: None,
        }
    }

    /// Completes the PUBLISH `packet_id` with `outcome` now, or, when
    /// `token` says it waits for the store or an earlier one waits, holds
    /// its acknowledgement in order (see `held`).
    pub(crate) fn complete_publish(
        &mut self,
        qos: QoS,
        packet_id: Option<PacketId>,
        outcome: PublishOutcome,
        token: Option<u64>,
    ) {
        if token.is_none() && self.held.is_none() {
            if let Some(conn) = self.conn.as_mut() {
                conn.complete_publish(qos, packet_id, outcome);
            }
            return;
        }
        self.held.get_or_insert_with(Box::default).push(HeldAck {
            qos,
            packet_id,
            outcome,
            token,
        });
    }

    /// `token` will never be durable: v5 clients get 0x97 (Quota exceeded)
    /// for it, in order; a v3 connection, which has no such answer, closes.
    pub(crate) fn fail_held(&mut self, token: u64) {
        if !self.version.is_v5() {
            self.held = None;
            self.close = Some(CloseReason::ProtocolError(ReasonCode::QUOTA_EXCEEDED));
            return;
        }
        if let Some(held) = self.held.as_deref_mut() {
            held.refuse(token, ReasonCode::QUOTA_EXCEEDED);
        }
        self.release_held(token);
    }

    /// `token` is durable: the acknowledgements it held go out (in order).
    pub(crate) fn release_held(&mut self, token: u64) {
        let (Some(held), Some(conn)) = (self.held.as_deref_mut(), self.conn.as_mut()) else {
            return;
        };
        if held.release(token, conn) {
            self.held = None;
        }
    }

    /// Wakes the connection task if it is waiting.
    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    /// Takes the session away from this connection (closing or taken over);
    /// publishers waiting for it to drain stop waiting.
    pub(crate) fn take_conn(&mut self) -> Option<Connection> {
        self.drain.release();
        self.conn.take()
    }

    /// Queues a DISCONNECT with `code` for an MQTT 5 client; v3 has none.
    pub(crate) fn queue_disconnect(&mut self, code: ReasonCode, stats: &WorkerStats) {
        if self.version.is_v5() {
            let d = Packet::Disconnect(Disconnect {
                reason: code,
                ..Disconnect::default()
            });
            let version = self.version;
            if let Err(e) = encode(&d, version, self.out.tail()) {
                tracing::error!(error = %e, "cannot encode DISCONNECT");
            }
            stats.packet_out(&d);
        }
    }

    /// What this connection has not sent yet, for the watermarks.
    pub(crate) fn backlog(&self) -> Backlog {
        let (messages, bytes) = self.conn.as_ref().map_or((0, 0), |c| {
            let s = c.session();
            (s.queued_len(), s.queued_bytes())
        });
        Backlog {
            writer: self.out.queued(),
            messages,
            bytes,
            connected: self.conn.is_some(),
        }
    }

    /// True when a publisher should wait for this connection to drain.
    pub(crate) fn congested(&self, marks: Watermarks) -> bool {
        marks.congested(&self.drain, &self.backlog())
    }

    /// True when connected with a backlog below every high-water mark.
    pub(crate) fn has_headroom(&self, marks: Watermarks) -> bool {
        marks.has_headroom(&self.backlog())
    }

    /// True when the connection is replaying retained messages and may take
    /// the next one now.
    pub(crate) fn replay_room(&self, marks: Watermarks) -> bool {
        let Some(replay) = self.replay.as_deref() else {
            return false;
        };
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        if self.close.is_some() || conn.is_closing() {
            return false;
        }
        let s = conn.session();
        let window_free = replay.front_qos() == QoS::AtMostOnce
            || (s.queued_len() == 0 && s.inflight_len() < usize::from(conn.send_window()));
        marks.replay_room(&self.backlog(), window_free)
    }

    /// After a write: releases waiting publishers once there is room.
    pub(crate) fn note_progress(&mut self, marks: Watermarks) {
        let backlog = self.backlog();
        marks.note_progress(&mut self.drain, &backlog);
    }
}

/// How a delivered message reached the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Published (on this worker or another) at the offer's `received_at`:
    /// a delivery written at once counts in the latency histogram.
    Live,
    /// A retained message sent on SUBSCRIBE, stored at `received_at`: its
    /// expiry counts from there, and it is not a publish→deliver latency.
    Retained,
}

/// What a delivery needs of its worker.
pub(crate) struct DeliverCtx<'a> {
    pub(crate) stats: &'a WorkerStats,
    pub(crate) marks: Watermarks,
    pub(crate) templates: &'a mut TemplateCache,
    /// For the rate-limited warning when an offline queue is full.
    pub(crate) drop_log: &'a RateLimitedLog,
    pub(crate) worker: usize,
    /// Told what the sessions' journals recorded (see `store`).
    pub(crate) store: &'a dyn StoreObserver,
}

/// Offers one message to a connection: encodes it into its writer, or lets
/// the session queue it when the inflight window is full. Returns true when
/// the connection's backlog is now over its high-water mark, so the
/// publisher should wait for it (see `backpressure`).
#[must_use]
pub(crate) fn deliver(
    ctx: &mut DeliverCtx<'_>,
    cell: &ConnCell,
    now: Instant,
    offer: &Offer<'_>,
    arrival: Arrival,
) -> bool {
    let stats = ctx.stats;
    let Ok(mut cs) = cell.try_borrow_mut() else {
        tracing::error!("connection state busy during delivery; message dropped");
        stats.dropped_writer_full.inc();
        return false;
    };
    if offer.qos == QoS::AtMostOnce && cs.out.queued() >= cs.writer_limit {
        stats.dropped_writer_full.inc();
        return false;
    }
    let Some(conn) = cs.conn.as_mut() else {
        return false;
    };
    let outcome = conn.deliver(now, offer);
    match outcome {
        DeliverOutcome::Dropped(reason) => count_dropped(stats, reason),
        DeliverOutcome::Sent => {
            if arrival == Arrival::Live {
                stats.delivered_after(now.saturating_duration_since(offer.received_at));
            }
        }
        DeliverOutcome::Queued => {}
    }
    if arrival == Arrival::Live && !matches!(outcome, DeliverOutcome::Dropped(_)) {
        if let Some(replay) = cs.replay.as_deref_mut() {
            let lost = replay.note_live(&offer.msg.topic);
            stats.replay_unordered.add(lost as u64);
        }
    }
    flush_transmits(&mut cs, ctx.templates, stats, ctx.store);
    cs.congested(ctx.marks)
}

fn count_dropped(stats: &WorkerStats, reason: DropReason) {
    match reason {
        DropReason::QueueFull => {
            stats.dropped_queue_full.inc();
            tracing::debug!("session queue full: message dropped for this subscriber");
        }
        DropReason::Qos0NotQueued => stats.dropped_qos0_offline.inc(),
        DropReason::Expired => stats.dropped_expired.inc(),
        DropReason::NotAuthorized => stats.dropped_not_authorized.inc(),
    }
}

/// Counts what an offline session did with an offered message.
pub(crate) fn count_enqueue(ctx: &DeliverCtx<'_>, outcome: EnqueueOutcome) {
    let stats = ctx.stats;
    match outcome {
        EnqueueOutcome::Queued => stats.queued_offline.inc(),
        EnqueueOutcome::DroppedQos0 => stats.dropped_qos0_offline.inc(),
        EnqueueOutcome::DroppedExpired => stats.dropped_expired.inc(),
        EnqueueOutcome::DroppedQueueFull => {
            stats.dropped_queue_full.inc();
            ctx.drop_log
                .warn(ctx.worker, "offline session queue full: message dropped");
        }
    }
}

/// Encodes everything the session wants to send into the writer.
pub(crate) fn flush_transmits(
    cs: &mut ConnShared,
    templates: &mut TemplateCache,
    stats: &WorkerStats,
    store: &dyn StoreObserver,
) {
    let was_empty = cs.out.is_empty();
    let version = cs.version;
    let ConnShared { conn, out, .. } = cs;
    let Some(conn) = conn.as_mut() else {
        return;
    };
    while let Some(t) = conn.poll_transmit() {
        match t {
            Transmit::Packet(p) => {
                stats.packet_out(&p);
                if let Err(e) = encode(&p, version, out.tail()) {
                    tracing::error!(packet = p.name(), error = %e, "cannot encode packet");
                }
            }
            Transmit::Publish(o) => {
                let cached = templates.get(&o.msg, version.is_v5());
                if !version.is_v5() && o.qos == QoS::AtMostOnce && !o.retain && !o.dup {
                    if let Some(frame) = cached.shared_qos0_frame(&o.msg) {
                        out.push_frame(frame);
                        stats.publish_out(QoS::AtMostOnce);
                        continue;
                    }
                }
                let template = &cached.template;
                let alias = conn.topic_alias(&o.msg.topic);
                let d = Delivery {
                    qos: o.qos,
                    packet_id: o.packet_id,
                    dup: o.dup,
                    retain: o.retain,
                    topic_alias: alias.alias(),
                    omit_topic: alias.omits_topic(),
                    subscription_identifiers: &o.subscription_identifiers,
                    message_expiry_interval: o.message_expiry_interval,
                };
                if let Some(max) = conn.client_max_packet_size() {
                    // [MQTT5-3.1.2-24/25]: never sent, and done with as if it had been.
                    if template.packet_len(&o.msg, &d) > max as usize {
                        conn.discard_too_large(Instant::now(), o.packet_id);
                        stats.dropped_too_large.inc();
                        continue;
                    }
                }
                match template.write_header(&o.msg, &d, out.tail()) {
                    Ok(_) => {
                        conn.commit_topic_alias(&o.msg.topic, alias);
                        out.push_payload(o.msg.payload.clone());
                        stats.publish_out(o.qos);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode PUBLISH"),
                }
            }
        }
    }
    // Every change of an online session is followed by a flush: the one
    // place its journal is drained.
    if let Some(conn) = cs.conn.as_mut() {
        store::drain_connection(store, conn);
    }
    if was_empty && !cs.out.is_empty() {
        cs.wake();
    }
}

/// Adds `cell` to `congested` once.
pub(crate) fn note_congested(congested: &mut Vec<Rc<ConnCell>>, cell: &Rc<ConnCell>) {
    if !congested.iter().any(|c| Rc::ptr_eq(c, cell)) {
        congested.push(Rc::clone(cell));
    }
}

/// Waits until every connection in `targets` has had room since the wait
/// began, or [`MAX_PAUSE`] passes; targets still without room then are
/// marked slow (see `backpressure`).
pub(crate) async fn wait_for_room(
    targets: &[Rc<ConnCell>],
    marks: Watermarks,
    stats: &WorkerStats,
) {
    stats.publisher_pauses.inc();
    let start: SmallVec<[u32; 4]> = targets.iter().map(|t| t.borrow().drain.epoch()).collect();
    let released = |cs: &ConnShared, i: usize| {
        cs.drain.epoch() != start[i] || cs.drain.is_slow() || marks.has_room(&cs.backlog())
    };
    let waited = tokio::time::timeout(
        MAX_PAUSE,
        poll_fn(|cx| {
            let mut waiting = false;
            for (i, t) in targets.iter().enumerate() {
                let Ok(mut cs) = t.try_borrow_mut() else {
                    continue;
                };
                if released(&cs, i) {
                    continue;
                }
                cs.drain.register(cx.waker());
                waiting = true;
            }
            if waiting {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }),
    )
    .await;
    if waited.is_ok() {
        return;
    }
    for (i, t) in targets.iter().enumerate() {
        let Ok(mut cs) = t.try_borrow_mut() else {
            continue;
        };
        if released(&cs, i) {
            continue;
        }
        cs.drain.mark_slow(Instant::now());
        stats.slow_subscribers.inc();
        let Backlog {
            writer,
            messages,
            bytes,
            ..
        } = cs.backlog();
        tracing::debug!(
            pause_ms = MAX_PAUSE.as_millis() as u64,
            writer,
            messages,
            bytes,
            "subscriber did not drain within the pause; publishers stop waiting for it"
        );
    }
}
