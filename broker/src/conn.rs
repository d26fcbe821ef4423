//! The connection task: one per client, on the worker that owns the client's
//! session.
//!
//! Call order: read until CONNECT → semantic checks → claim the client id (or
//! hand the connection to the worker that is home to its session) → attach
//! the session → loop { write what the shared writer holds; read and decode;
//! feed packets to the sans-IO `Connection`; act on its events } → flush →
//! detach (will, session kept or dropped).
//!
//! The shared writer (`ConnShared::out`) is filled both by this task and by
//! deliveries from other tasks of the same worker; the first push into an
//! empty buffer wakes this task, later pushes coalesce into the same write.

mod auth;
pub(crate) mod park;

use crate::outbuf::{OutBuf, MAX_IOVECS};
use crate::registry::Claim;
use crate::shared::{Adopted, Control};
use crate::stats::{RejectReason, WorkerStats};
use crate::worker::{ClientKey, TemplateCache, Worker};
use bytes::BytesMut;
use bytestring::ByteString;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use tern_codec::{
    encode, ConnAck, Connect, DecodeError, Decoder, Delivery, Disconnect, Packet, ProtocolVersion,
    Publish, QoS, ReasonCode,
};
use tern_session::auth::Authenticated;
use tern_session::{
    CloseReason, Connection, DeliverOutcome, DropReason, Event, Offer, PublishOutcome, Transmit,
};
use tern_transport::{Accepted, ConnectionPermit, Stream};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection may take to flush what is queued for it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Read sizes: start small (an idle or slow client), double while reads fill
/// the buffer, up to `MAX_READ` for a busy publisher.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;
/// How many times a connection may be handed between workers.
const MAX_HOPS: u8 = 3;

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
    pub(crate) drain: crate::backpressure::Drain,
}

impl ConnShared {
    /// Queues a DISCONNECT with `code` for an MQTT 5 client; v3 has none.
    fn queue_disconnect(&mut self, code: ReasonCode, stats: &WorkerStats) {
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
}

/// When a delivered message was received.
#[derive(Clone, Copy)]
pub(crate) enum Received {
    /// Published at this instant (on this worker or another): its v5
    /// Message Expiry Interval counts from here ([MQTT5-3.3.2-5/6]) and a
    /// delivery written at once counts in the latency histogram.
    Live(Instant),
    /// A retained message sent on SUBSCRIBE, stored at this instant: its
    /// expiry counts from here, and it is not a publish→deliver latency.
    Retained(Instant),
}

/// Offers one message to a connection: encodes it into its writer, or lets
/// the session queue it when the inflight window is full. `group` is the
/// shared subscription it was delivered through (the session tags the
/// message, see `share`). Returns true when the connection's backlog is now
/// over its high-water mark, so the publisher should wait for it (see
/// `backpressure`).
#[allow(clippy::too_many_arguments)]
#[must_use]
pub(crate) fn deliver(
    worker: &Worker,
    cell: &ConnCell,
    templates: &mut TemplateCache,
    now: Instant,
    msg: &Arc<Publish>,
    received: Received,
    (qos, retain, subscription_identifiers): (QoS, bool, &[u32]),
    group: Option<&ByteString>,
) -> bool {
    let received_at = match received {
        Received::Live(at) | Received::Retained(at) => at,
    };
    let Ok(mut cs) = cell.try_borrow_mut() else {
        tracing::error!("connection state busy during delivery; message dropped");
        worker.stats.dropped_writer_full.inc();
        return false;
    };
    if qos == QoS::AtMostOnce && cs.out.queued() >= cs.writer_limit {
        worker.stats.dropped_writer_full.inc();
        return false;
    }
    let Some(conn) = cs.conn.as_mut() else {
        return false;
    };
    let offer = Offer {
        retain,
        subscription_identifiers,
        group,
        ..Offer::new(msg, received_at, qos)
    };
    match conn.deliver(now, &offer) {
        DeliverOutcome::Dropped(DropReason::QueueFull) => {
            worker.stats.dropped_queue_full.inc();
            tracing::debug!("session queue full: message dropped for this subscriber");
        }
        DeliverOutcome::Dropped(DropReason::Qos0NotQueued) => {
            worker.stats.dropped_qos0_offline.inc();
        }
        DeliverOutcome::Dropped(DropReason::Expired) => {
            worker.stats.dropped_expired.inc();
        }
        DeliverOutcome::Dropped(DropReason::NotAuthorized) => {
            worker.stats.dropped_not_authorized.inc();
        }
        DeliverOutcome::Sent => {
            if let Received::Live(at) = received {
                worker
                    .stats
                    .delivered_after(now.saturating_duration_since(at));
            }
        }
        DeliverOutcome::Queued => {}
    }
    flush_transmits(&mut cs, templates, &worker.stats);
    worker.marks.congested(&cs)
}

/// Encodes everything the session wants to send into the writer.
pub(crate) fn flush_transmits(
    cs: &mut ConnShared,
    templates: &mut TemplateCache,
    stats: &WorkerStats,
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
    if was_empty && !cs.out.is_empty() {
        cs.wake();
    }
}

/// Counts a connection task in and out of the worker, even when it panics.
struct TaskGuard {
    worker: Rc<Worker>,
    attached: Option<(ClientKey, Rc<ConnCell>)>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some((key, cell)) = self.attached.take() {
            if std::thread::panicking() {
                tracing::error!("connection task panicked; closing it");
            }
            if let Ok(cs) = cell.try_borrow() {
                if cs.conn.is_some() {
                    drop(cs);
                    self.worker
                        .detach(Instant::now(), key, &cell, CloseReason::NetworkError);
                }
            }
        }
        let w = &self.worker;
        w.live_tasks.set(w.live_tasks.get().saturating_sub(1));
        if let Some(link) = w.shared.workers.get(w.id) {
            link.connections
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        w.stats.connections_current.set(w.live_tasks.get() as u64);
        w.tasks_done.notify_waiters();
    }
}

fn start_task(worker: &Rc<Worker>) -> TaskGuard {
    worker.live_tasks.set(worker.live_tasks.get() + 1);
    worker
        .stats
        .connections_current
        .set(worker.live_tasks.get() as u64);
    TaskGuard {
        worker: Rc::clone(worker),
        attached: None,
    }
}

enum Io {
    Read,
    Eof,
    Error(std::io::Error),
    Timer,
    CloseRequested,
    /// Nothing to read, write or wait for: the task may end (see `park`).
    Park,
}

/// How `serve` ended.
enum Served {
    Close(CloseReason),
    /// The connection is idle: park it.
    Park,
}

/// Starts the task of a freshly accepted connection.
pub(crate) fn spawn_accepted(
    worker: &Rc<Worker>,
    accepted: Accepted,
    permit: Option<ConnectionPermit>,
) {
    worker.stats.connections_accepted.inc();
    let guard = start_task(worker);
    let peer = accepted.peer;
    // Registered before the task exists (the worker's runtime is current
    // here), so the task's future is `run` alone, not `run` plus the socket
    // it was registered from.
    match Stream::from_accepted(accepted) {
        Ok(stream) => {
            let link = Link::new(stream, peer, BytesMut::new(), permit, guard);
            tokio::task::spawn_local(run(link, None, None, 0));
        }
        Err(e) => tracing::debug!(%peer, error = %e, "cannot register connection"),
    }
}

/// Starts the task of a connection handed over by another worker. The
/// sender (`hand_over`) already counted it in this worker's connections.
pub(crate) fn spawn_adopted(worker: &Rc<Worker>, adopted: Adopted) {
    let guard = start_task(worker);
    let Adopted {
        stream,
        peer,
        rest,
        connect,
        permit,
        hops,
        auth,
    } = adopted;
    match Stream::from_detached(stream) {
        Ok(stream) => {
            let link = Link::new(stream, peer, rest, permit, guard);
            tokio::task::spawn_local(run(link, Some(connect), auth, hops));
        }
        Err(e) => tracing::debug!(%peer, error = %e, "cannot register adopted connection"),
    }
}

/// A connection's transport side, boxed once for its whole life so the
/// task's future stays a few words (see `run`). Dropped in field order: the
/// socket and the connection slot go before the task is counted out.
struct Link {
    stream: Stream,
    rbuf: BytesMut,
    decoder: Decoder,
    permit: Option<ConnectionPermit>,
    peer: SocketAddr,
    guard: TaskGuard,
}

impl Link {
    fn new(
        stream: Stream,
        peer: SocketAddr,
        rbuf: BytesMut,
        permit: Option<ConnectionPermit>,
        guard: TaskGuard,
    ) -> Box<Self> {
        let max_packet = guard.worker.live.borrow().session.max_packet_size;
        Box::new(Self {
            stream,
            rbuf,
            decoder: Decoder::new(max_packet),
            permit,
            peer,
            guard,
        })
    }
}

/// How the connect phase ended.
enum Attach {
    /// Refused, failed or timed out: nothing more to do.
    Done,
    /// The client's session lives on worker `home` (`auth`: the outcome of
    /// its enhanced authentication, which is not run again there).
    HandOver {
        connect: Box<Connect>,
        home: usize,
        auth: Option<Box<Authenticated>>,
    },
    /// The session is attached to this connection.
    Attached(Attached),
}

/// An attached connection: what `serve` and the close phase need.
struct Attached {
    key: ClientKey,
    cell: Rc<ConnCell>,
}

/// The whole life of one connection. Only `serve` runs in the task's own
/// future's lifetime for long; the connect and close phases are boxed so
/// their memory is held only while they run, and the transport state is one
/// box. An idle connection has no task at all: it is parked (see `park`)
/// and costs its `Link`, its `ConnShared`, the socket's registration and
/// its parking entry. An adopted connection comes with its CONNECT and, if
/// it used enhanced authentication, the outcome (`auth`).
async fn run(
    mut link: Box<Link>,
    adopted: Option<Box<Connect>>,
    auth: Option<Box<Authenticated>>,
    hops: u8,
) {
    let worker = Rc::clone(&link.guard.worker);
    let Attached { key, cell } = match Box::pin(attach(&worker, &mut link, adopted, auth)).await {
        Attach::Done => return,
        Attach::HandOver {
            connect,
            home,
            auth,
        } => {
            let Link {
                stream,
                peer,
                rbuf,
                permit,
                ..
            } = *link;
            let go = hand_over(
                &worker, stream, peer, rbuf, connect, auth, permit, hops, home,
            );
            Box::pin(go).await;
            return;
        }
        Attach::Attached(a) => a,
    };
    connected(link, cell, key).await;
}

/// The connected phase, from the CONNACK or from a parked state
/// (`park::ParkingLot`): serves the connection until it closes or parks.
async fn connected(mut link: Box<Link>, cell: Rc<ConnCell>, key: ClientKey) {
    let worker = Rc::clone(&link.guard.worker);
    if let Ok(mut cs) = cell.try_borrow_mut() {
        cs.parked = false;
    }
    let reason = loop {
        let served = {
            let Link {
                stream,
                rbuf,
                decoder,
                ..
            } = &mut *link;
            Box::pin(serve(&worker, stream, &cell, rbuf, decoder, key)).await
        };
        match served {
            Served::Close(reason) => break reason,
            Served::Park => match worker.parking.park(link, &cell, key) {
                Ok(()) => return,
                Err(back) => link = back,
            },
        }
    };

    // For the goodbye line. A connection taken over has lost its session to
    // the new connection of the same client (same key).
    let client_id = client_id_of(&worker, &cell, key);
    // Say goodbye where the protocol has words for it, flush, close.
    {
        let mut cs = cell.borrow_mut();
        let code = match reason {
            CloseReason::ServerShutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            CloseReason::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            _ => None,
        };
        if let Some(code) = code {
            cs.queue_disconnect(code, &worker.stats);
        }
    }
    Box::pin(async {
        let stream = &mut link.stream;
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, flush_out(stream, &cell, &worker)).await;
        let _ = stream.shutdown().await;
    })
    .await;
    let now = Instant::now();
    if cell.borrow().conn.is_some() {
        worker.detach(now, key, &cell, reason);
    }
    link.guard.attached = None;
    tracing::info!(peer = %link.peer, %client_id, ?reason, "client disconnected");
}

/// The client id of a connection (or of whoever holds its session now).
fn client_id_of(worker: &Worker, cell: &ConnCell, key: ClientKey) -> ByteString {
    let of_cell = |cell: &ConnCell| {
        cell.try_borrow()
            .ok()
            .and_then(|cs| cs.conn.as_ref().map(|c| c.client_id().clone()))
    };
    if let Some(id) = of_cell(cell) {
        return id;
    }
    match worker.clients.borrow().get(&key).map(|c| &c.state) {
        Some(crate::worker::ClientState::Online(other)) => of_cell(other),
        Some(crate::worker::ClientState::Offline(session)) => Some(session.client_id().clone()),
        None => None,
    }
    .unwrap_or_default()
}

/// The connect phase: reads the CONNECT (unless adopted with one), checks
/// it, runs the enhanced authentication exchange it asks for (unless
/// adopted: then `adopted_auth` is its outcome), claims the client id and
/// attaches the session, or says where the session lives.
async fn attach(
    worker: &Rc<Worker>,
    link: &mut Link,
    adopted: Option<Box<Connect>>,
    adopted_auth: Option<Box<Authenticated>>,
) -> Attach {
    // The settings in force when the client connects, for its whole life.
    let live = worker.live.runtime();
    let limits = &live.config.limits;
    let peer = link.peer;
    let was_adopted = adopted.is_some();
    let mut connect = match adopted {
        Some(c) => {
            link.decoder = Decoder::with_version(c.protocol, limits.max_packet_size);
            c
        }
        None => {
            let Link {
                stream,
                rbuf,
                decoder,
                ..
            } = link;
            match read_connect(stream, rbuf, decoder, &worker.stats).await {
                Some(c) => c,
                None => return Attach::Done,
            }
        }
    };
    let version = connect.protocol;
    if let Some(ack) = tern_session::redirect_connack(&live.session) {
        tracing::info!(%peer, client_id = %connect.client_id, code = ?ack.code, "connection redirected");
        worker.stats.rejected(RejectReason::Redirected);
        let _ = write_packet(
            &mut link.stream,
            version,
            &Packet::ConnAck(ack),
            &worker.stats,
        )
        .await;
        return Attach::Done;
    }
    let mut check = match Connection::check_connect(&connect, &live.session) {
        Ok(check) => check,
        Err(code) => {
            tracing::info!(%peer, client_id = %connect.client_id, code = ?code, "connection refused");
            worker.stats.refused(code);
            let ack = Packet::ConnAck(ConnAck {
                session_present: false,
                code,
                ..ConnAck::default()
            });
            let _ = write_packet(&mut link.stream, version, &ack, &worker.stats).await;
            return Attach::Done;
        }
    };
    let authenticated = if was_adopted {
        adopted_auth
    } else {
        match Box::pin(auth::authenticate(worker, link, &connect)).await {
            auth::AuthOutcome::NotRequested => None,
            auth::AuthOutcome::Authenticated(a) => Some(a),
            auth::AuthOutcome::Refused => return Attach::Done,
        }
    };
    if let Err(code) = Connection::authorize_connect(&connect, &check, &live.session) {
        tracing::info!(%peer, client_id = %connect.client_id, code = ?code, "connection not authorized");
        worker.stats.refused(code);
        let ack = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            ..ConnAck::default()
        });
        let _ = write_packet(&mut link.stream, version, &ack, &worker.stats).await;
        return Attach::Done;
    }
    // The CONNECT is a set of slices of the read buffer. The client id lives
    // as long as the session (here, in the worker's maps and the registry):
    // copy it so the buffer is freed once the CONNECT is consumed
    // (`Connection::new` copies the will). An idle connection then holds no
    // read buffer: `poll_io` allocates one when data arrives.
    connect.client_id = tern_session::compact_str(&connect.client_id);
    if link.rbuf.is_empty() {
        link.rbuf = BytesMut::new();
    }
    let client_id = check
        .assigned_client_id
        .clone()
        .unwrap_or_else(|| connect.client_id.clone());
    let generation = match worker.shared.registry.claim(&client_id, worker.id) {
        Claim::Local { generation } => generation,
        Claim::Elsewhere { worker: home } => {
            return Attach::HandOver {
                connect,
                home,
                auth: authenticated,
            }
        }
    };
    check.authenticated = authenticated.map(|a| *a);

    let now = Instant::now();
    let key = worker.key_for(&client_id);
    let clean_start = connect.clean_start;
    let existing = worker.take_session(now, key, clean_start);
    let cfg = Arc::clone(&live.session);
    let conn = Connection::new(now, *connect, existing, check, cfg);
    let cell = Rc::new(RefCell::new(ConnShared {
        conn: Some(conn),
        out: OutBuf::default(),
        waker: None,
        close: None,
        version,
        writer_limit: limits.writer_buffer_bytes,
        quiet: false,
        trim: false,
        parked: false,
        drain: Default::default(),
    }));
    worker.insert_online(key, generation, Rc::clone(&cell));
    link.guard.attached = Some((key, Rc::clone(&cell)));
    {
        let mut cs = cell.borrow_mut();
        flush_transmits(&mut cs, &mut worker.templates.borrow_mut(), &worker.stats);
        // The CONNACK is encoded: the queue it waited in is not needed until
        // the client sends something.
        if let Some(conn) = cs.conn.as_mut() {
            conn.release_memory();
        }
    }
    tracing::info!(%peer, %client_id, ?version, clean_start, worker = worker.id, "client connected");
    Attach::Attached(Attached { key, cell })
}

/// Reads until one whole CONNECT arrives; answers a bad protocol level with
/// the CONNACK the spec asks for. `None` means the connection is done.
async fn read_connect(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    decoder: &mut Decoder,
    stats: &WorkerStats,
) -> Option<Box<Connect>> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        match decoder.decode(rbuf) {
            Ok(Some(Packet::Connect(c))) => {
                stats.packets_in_connect.inc();
                return Some(c);
            }
            Ok(Some(other)) => {
                tracing::debug!(
                    packet = other.name(),
                    "[MQTT-3.1.0-1] first packet is not CONNECT"
                );
                stats.protocol_errors.inc();
                stats.rejected(RejectReason::Protocol);
                return None;
            }
            Ok(None) => {}
            Err(e) => {
                stats.malformed(&e);
                stats.rejected(RejectReason::Protocol);
                tracing::debug!(error = %e, "bad CONNECT");
                if let DecodeError::UnsupportedProtocol { name_ok: true, .. } = e {
                    // [MQTT-3.1.2-2] a known protocol name at an unsupported
                    // level: answer return code 0x01 and close.
                    let version = ProtocolVersion::V311;
                    let ack = Packet::ConnAck(ConnAck {
                        session_present: false,
                        code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                        ..ConnAck::default()
                    });
                    let _ = write_packet(stream, version, &ack, stats).await;
                }
                return None;
            }
        }
        rbuf.reserve(MIN_READ);
        let read =
            tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read_buf(stream, rbuf))
                .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => stats.bytes_in.add(n as u64),
            Err(_) => {
                tracing::debug!("no CONNECT within {:?}", CONNECT_TIMEOUT);
                return None;
            }
        }
    }
}

/// Hands a connection to the worker that is home to its client's session.
#[allow(clippy::too_many_arguments)]
async fn hand_over(
    worker: &Worker,
    mut stream: Stream,
    peer: SocketAddr,
    rest: BytesMut,
    connect: Box<Connect>,
    auth: Option<Box<Authenticated>>,
    permit: Option<ConnectionPermit>,
    hops: u8,
    home: usize,
) {
    let version = connect.protocol;
    let refuse = |code| {
        Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            ..ConnAck::default()
        })
    };
    if hops >= MAX_HOPS {
        tracing::warn!(%peer, client_id = %connect.client_id, "session home keeps moving; refusing");
        worker.stats.rejected(RejectReason::Other);
        let ack = refuse(ReasonCode::SERVER_UNAVAILABLE);
        let _ = write_packet(&mut stream, version, &ack, &worker.stats).await;
        return;
    }
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot detach connection for hand-over");
            return;
        }
    };
    let Some(link) = worker.shared.workers.get(home) else {
        return;
    };
    tracing::debug!(%peer, client_id = %connect.client_id, from = worker.id, to = home, "handing connection to the session's worker");
    link.connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let adopted = Adopted {
        stream: std_stream,
        peer,
        rest,
        connect,
        permit,
        hops: hops + 1,
        auth,
    };
    if link.control.send(Control::Adopt(adopted)).is_err() {
        link.connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(%peer, to = home, "session's worker is gone; connection dropped");
    }
}

/// The connected phase. Returns why the connection ends, or that it is idle
/// and may park.
async fn serve(
    worker: &Rc<Worker>,
    stream: &mut Stream,
    cell: &Rc<ConnCell>,
    rbuf: &mut BytesMut,
    decoder: &mut Decoder,
    key: ClientKey,
) -> Served {
    let far = || tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let deadline_of = |cell: &ConnCell| {
        cell.borrow()
            .conn
            .as_ref()
            .and_then(|c| c.poll_timeout())
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far)
    };
    let sleep = tokio::time::sleep_until(deadline_of(cell));
    tokio::pin!(sleep);
    let mut events = Vec::new();
    let mut read_size = MIN_READ;
    loop {
        let io = poll_fn(|cx| {
            poll_io(
                cx,
                stream,
                cell,
                rbuf,
                &mut read_size,
                sleep.as_mut(),
                worker,
            )
        })
        .await;
        let now = Instant::now();
        match io {
            Io::Read => {}
            Io::Eof => return Served::Close(CloseReason::NetworkError),
            Io::Error(e) => {
                tracing::debug!(error = %e, "connection error");
                return Served::Close(CloseReason::NetworkError);
            }
            Io::CloseRequested => {
                let reason = cell.borrow().close.unwrap_or(CloseReason::ServerShutdown);
                return Served::Close(reason);
            }
            Io::Park => return Served::Park,
            Io::Timer => {
                {
                    let mut cs = cell.borrow_mut();
                    if let Some(conn) = cs.conn.as_mut() {
                        conn.handle_timeout(now);
                        while let Some(e) = conn.poll_event() {
                            events.push(e);
                        }
                    }
                    flush_transmits(&mut cs, &mut worker.templates.borrow_mut(), &worker.stats);
                }
                if let Some(reason) = handle_events(worker, cell, key, now, &mut events).await {
                    return Served::Close(reason);
                }
                sleep.as_mut().reset(deadline_of(cell));
                continue;
            }
        }
        // What the session answers (acks, PINGRESP) is encoded once per read
        // rather than once per packet, and before anything that may wait or
        // write to this connection from elsewhere.
        let flush = || {
            flush_transmits(
                &mut cell.borrow_mut(),
                &mut worker.templates.borrow_mut(),
                &worker.stats,
            )
        };
        loop {
            let packet = match decoder.decode(rbuf) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    flush();
                    break;
                }
                Err(e) => {
                    flush();
                    return Served::Close(malformed(worker, cell, &e));
                }
            };
            let result = {
                let mut cs = cell.borrow_mut();
                let Some(conn) = cs.conn.as_mut() else {
                    return Served::Close(CloseReason::TakenOver);
                };
                worker.stats.packet_in(&packet);
                let r = conn.handle_packet(now, packet);
                while let Some(e) = conn.poll_event() {
                    events.push(e);
                }
                r
            };
            if let Err(e) = result {
                flush();
                worker.stats.protocol_errors.inc();
                if let tern_session::ProtocolError::AuthenticationFailed(_) = e {
                    // A failed re-authentication ([MQTT5-4.12.1-2]).
                    worker.stats.auth_failures.inc();
                }
                tracing::debug!(error = %e, "protocol error");
                events.clear();
                return Served::Close(CloseReason::ProtocolError(e.reason_code()));
            }
            if !events.is_empty() {
                // `handle_events` flushes what this read queued once it has
                // routed a PUBLISH (its ack may then say 0x10), before it
                // waits for anything.
                if let Some(reason) = handle_events(worker, cell, key, now, &mut events).await {
                    return Served::Close(reason);
                }
            }
        }
    }
}

fn malformed(worker: &Worker, cell: &ConnCell, e: &DecodeError) -> CloseReason {
    worker.stats.malformed(e);
    tracing::debug!(error = %e, "malformed packet; closing");
    let code = e.reason_code();
    cell.borrow_mut().queue_disconnect(code, &worker.stats);
    CloseReason::ProtocolError(code)
}

/// Acts on the session's events; returns a reason when the connection must close.
async fn handle_events(
    worker: &Rc<Worker>,
    cell: &Rc<ConnCell>,
    key: ClientKey,
    now: Instant,
    events: &mut Vec<Event>,
) -> Option<CloseReason> {
    let mut close = None;
    for event in events.drain(..) {
        match event {
            Event::Publish(p) => {
                let (qos, packet_id) = (p.qos, p.packet_id);
                let blocked = worker.publish(now, key, p);
                {
                    let mut cs = cell.borrow_mut();
                    if let Some(conn) = cs.conn.as_mut() {
                        let outcome = match blocked.ack {
                            None => PublishOutcome::Routed,
                            Some(ReasonCode::NO_MATCHING_SUBSCRIBERS) => {
                                PublishOutcome::NoMatchingSubscribers
                            }
                            Some(code) => PublishOutcome::Refused(code),
                        };
                        conn.complete_publish(qos, packet_id, outcome);
                    }
                    flush_transmits(&mut cs, &mut worker.templates.borrow_mut(), &worker.stats);
                }
                if !blocked.is_empty() {
                    // Rare (backpressure): boxed so an idle connection's future stays small.
                    Box::pin(blocked.wait(worker, Some(cell))).await;
                }
            }
            Event::Subscribe {
                packet_id,
                filters,
                subscription_identifier,
                existed,
            } => {
                // Rare: boxed so an idle connection's future stays small.
                let reasons =
                    Box::pin(worker.subscribe(key, &filters, subscription_identifier)).await;
                {
                    let mut cs = cell.borrow_mut();
                    if let Some(conn) = cs.conn.as_mut() {
                        conn.complete_subscribe(packet_id, reasons.clone());
                    }
                    flush_transmits(&mut cs, &mut worker.templates.borrow_mut(), &worker.stats);
                }
                let now = Instant::now();
                for (i, (filter, options)) in filters.iter().enumerate() {
                    let granted = reasons.get(i).is_some_and(|r| r.is_success());
                    let existed = existed.get(i).copied().unwrap_or(false);
                    let wanted = match options.retain_handling {
                        tern_codec::RetainHandling::OnSubscribe => true,
                        tern_codec::RetainHandling::OnNewSubscribe => !existed,
                        tern_codec::RetainHandling::Never => false,
                    };
                    if granted && wanted && tern_codec::topic::split_shared(filter).is_none() {
                        worker.send_retained(
                            cell,
                            now,
                            filter,
                            options.qos,
                            subscription_identifier,
                        );
                    }
                }
            }
            Event::Unsubscribe {
                packet_id,
                filters,
                existed,
            } => {
                worker.unsubscribe(key, filters.iter());
                let reasons = existed
                    .iter()
                    .map(|e| {
                        if *e {
                            ReasonCode::SUCCESS
                        } else {
                            ReasonCode::NO_SUBSCRIPTION_EXISTED
                        }
                    })
                    .collect();
                let mut cs = cell.borrow_mut();
                if let Some(conn) = cs.conn.as_mut() {
                    conn.complete_unsubscribe(packet_id, reasons);
                }
                flush_transmits(&mut cs, &mut worker.templates.borrow_mut(), &worker.stats);
            }
            Event::PublishDenied { topic, qos } => {
                worker.stats.publish_in(qos);
                worker.publish_denied(&topic);
            }
            Event::Close(reason) => {
                close.get_or_insert(reason);
            }
        }
    }
    close
}

/// Writes the shared writer, reads into `rbuf`, and watches the timer.
fn poll_io(
    cx: &mut std::task::Context<'_>,
    stream: &mut Stream,
    cell: &ConnCell,
    rbuf: &mut BytesMut,
    read_size: &mut usize,
    sleep: Pin<&mut tokio::time::Sleep>,
    worker: &Worker,
) -> Poll<Io> {
    let stats = &worker.stats;
    let idle = {
        let mut cs = cell.borrow_mut();
        if let Poll::Ready(Err(e)) = poll_write_out(cx, stream, &mut cs, worker) {
            return Poll::Ready(Io::Error(e));
        }
        if cs.close.is_some() && (cs.out.is_empty() || cs.conn.is_none()) {
            return Poll::Ready(Io::CloseRequested);
        }
        if cs.trim {
            // Idle for a whole sweep interval: give the buffers back. Frames
            // decoded from `rbuf` keep their own slices alive.
            cs.trim = false;
            cs.out.release_if_drained();
            if rbuf.is_empty() {
                *rbuf = BytesMut::new();
            }
        }
        if !cs.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            cs.waker = Some(cx.waker().clone());
        }
        cs.out.is_empty() && cs.close.is_none()
    };
    // An idle connection holds no read buffer: wait for readiness first, and
    // allocate only then (more when the last read filled what it had).
    let ready = if rbuf.capacity() == 0 {
        stream.poll_read_ready(cx)
    } else {
        Poll::Ready(Ok(()))
    };
    match ready {
        Poll::Ready(Ok(())) => {
            if rbuf.capacity() - rbuf.len() < MIN_READ {
                rbuf.reserve(*read_size);
            }
            let room = rbuf.capacity() - rbuf.len();
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Io::Eof),
                Poll::Ready(Ok(n)) => {
                    stats.bytes_in.add(n as u64);
                    if let Ok(mut cs) = cell.try_borrow_mut() {
                        cs.quiet = false;
                    }
                    *read_size = if n == room {
                        (*read_size * 2).min(MAX_READ)
                    } else {
                        (*read_size / 2).max(MIN_READ)
                    };
                    return Poll::Ready(Io::Read);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Error(e)),
                Poll::Pending => {}
            }
        }
        Poll::Ready(Err(e)) => return Poll::Ready(Io::Error(e)),
        Poll::Pending => {}
    }
    if std::future::Future::poll(sleep, cx).is_ready() {
        return Poll::Ready(Io::Timer);
    }
    if idle && rbuf.capacity() == 0 {
        // Nothing to write, no read buffer, not readable: no task needed.
        return Poll::Ready(Io::Park);
    }
    Poll::Pending
}

/// Writes as much of the shared writer as the socket takes now, and wakes
/// the publishers waiting for this connection once it has room.
fn poll_write_out(
    cx: &mut std::task::Context<'_>,
    stream: &mut Stream,
    cs: &mut ConnShared,
    worker: &Worker,
) -> Poll<std::io::Result<()>> {
    let mut progress = false;
    let result = loop {
        if cs.out.is_empty() {
            break Poll::Ready(Ok(()));
        }
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = cs.out.io_slices(&mut slices);
            Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..n])
        };
        match written {
            Poll::Ready(Ok(0)) => break Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                worker.stats.bytes_out.add(n as u64);
                cs.out.advance(n);
                cs.quiet = false;
                progress = true;
            }
            Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
            Poll::Pending => break Poll::Pending,
        }
    };
    if progress {
        worker.marks.note_progress(cs);
    }
    result
}

/// Writes out everything queued for the connection.
async fn flush_out(stream: &mut Stream, cell: &ConnCell, worker: &Worker) {
    let _ = poll_fn(|cx| poll_write_out(cx, stream, &mut cell.borrow_mut(), worker)).await;
    let _ = stream.flush().await;
}

async fn write_packet(
    stream: &mut Stream,
    version: ProtocolVersion,
    packet: &Packet,
    stats: &WorkerStats,
) -> std::io::Result<()> {
    stats.packet_out(packet);
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).map_err(std::io::Error::other)?;
    stream.write_all(&buf).await?;
    stream.flush().await
}
