//! The connection task: one per client, on the worker that owns the client's
//! session.
//!
//! Call order: read until CONNECT → semantic checks → claim the client id (or
//! hand the connection to the worker that is home to its session) → attach
//! the session (`connect`) → loop { write what the shared writer holds; read
//! and decode; feed packets to the sans-IO `Connection`; act on its events }
//! → flush → detach (will, session kept or dropped).
//!
//! The shared writer (`ConnShared::out`, see `deliver`) is filled both by
//! this task and by deliveries from other tasks of the same worker; the
//! first push into an empty buffer wakes this task, later pushes coalesce
//! into the same write. An idle connection parks (`crate::park`).

mod auth;
mod connect;
mod link;
mod websocket;

use crate::client::{ClientKey, ClientState};
use crate::deliver::{ConnCell, ConnShared};
use crate::outbuf::MAX_IOVECS;
use crate::park::Parkable;
use crate::shared::Adopted;
use crate::worker::Worker;
use bytes::BytesMut;
use bytestring::ByteString;
use connect::{Attach, Attached};
use link::{start_task, Link, FLUSH_TIMEOUT, MAX_READ, MIN_READ};
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tern_codec::{Connect, DecodeError, Decoder, ReasonCode};
use tern_session::auth::Authenticated;
use tern_session::{CloseReason, Event};
use tern_transport::{Accepted, ConnectionPermit, ListenerKind, Stream};
use tokio::io::{AsyncWrite, AsyncWriteExt};

enum Io {
    Read,
    Eof,
    Error(std::io::Error),
    Timer,
    CloseRequested,
    /// Nothing to read, write or wait for: the task may end (see `park`).
    Park,
    /// A retained replay has room for more (see `deliver::replay`).
    Replay,
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
    let establish = accepted.establish.clone();
    let websocket = matches!(accepted.kind, ListenerKind::Ws | ListenerKind::Wss);
    // Registered before the task exists (the worker's runtime is current
    // here), so the task's future is `run` alone, not `run` plus the socket
    // it was registered from.
    match Stream::from_accepted(accepted) {
        Ok(stream) if establish.is_plain() && !websocket => {
            let link = Link::new(stream, peer, BytesMut::new(), permit, guard);
            tokio::task::spawn_local(run(link, None, None, 0));
        }
        Ok(stream) => {
            tokio::task::spawn_local(establish_then_run(
                stream, establish, websocket, peer, permit, guard,
            ));
        }
        Err(e) => tracing::debug!(%peer, error = %e, "cannot register connection"),
    }
}

/// The establish step of a listener with one (PROXY header, TLS
/// handshake, then the WebSocket upgrade), in the connection's own task and within the listener's
/// handshake timeout, then the connection's life. The client's address
/// from here on is the one the PROXY header reported; a proxied
/// connection's slot is charged to it (`max_connections_per_ip`).
async fn establish_then_run(
    stream: Stream,
    how: tern_transport::Establish,
    websocket: bool,
    socket_peer: std::net::SocketAddr,
    mut permit: Option<ConnectionPermit>,
    guard: link::TaskGuard,
) {
    let worker = Rc::clone(&guard.worker);
    let established = match Box::pin(stream.establish(&how, socket_peer)).await {
        Ok(e) => e,
        Err(e) => {
            worker.stats.handshake_failed(e.reason());
            tracing::debug!(peer = %socket_peer, error = %e, "connection setup failed");
            return;
        }
    };
    drop(how);
    let peer = established.peer;
    if established.proxied {
        // The connect rate and ban see the address the proxy reports (the
        // acceptor saw only the proxy's).
        if !worker.shared.admit(peer.ip()) {
            return;
        }
        if let Some(Err(e)) = permit.as_mut().map(|p| p.attribute(peer.ip())) {
            worker
                .shared
                .rejected_limit
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, proxy = %socket_peer, error = %e, "refusing proxied connection");
            return;
        }
    }
    let mut stream = established.stream;
    if websocket {
        // The WebSocket upgrade, over TCP (ws) or TLS (wss).
        let upgraded = Box::pin(websocket::upgrade(&worker, stream, peer)).await;
        let Some(upgraded) = upgraded else {
            return;
        };
        stream = upgraded;
    }
    let link = Link::new(stream, peer, BytesMut::new(), permit, guard);
    run(link, None, None, 0).await;
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
    match Stream::attach(stream) {
        Ok(stream) => {
            let link = Link::new(stream, peer, rest, permit, guard);
            tokio::task::spawn_local(run(link, Some(connect), auth, hops));
        }
        Err(e) => tracing::debug!(%peer, error = %e, "cannot register adopted connection"),
    }
}

impl Parkable for Link {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    fn cell(&self) -> Option<&Rc<ConnCell>> {
        self.guard.attached.as_ref().map(|(_, cell)| cell)
    }

    fn resume(self: Box<Self>) {
        let Some((key, cell)) = self.guard.attached.clone() else {
            return;
        };
        tokio::task::spawn_local(connected(self, cell, key));
    }
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
    let attached = Box::pin(connect::attach(&worker, &mut link, adopted, auth)).await;
    let Attached { key, cell } = match attached {
        Attach::Done => return,
        Attach::HandOver(to) => {
            Box::pin(connect::hand_over(&worker, link, to, hops)).await;
            return;
        }
        Attach::Attached(a) => a,
    };
    connected(link, cell, key).await;
}

/// The connected phase, from the CONNACK or from a parked state
/// (`crate::park::ParkingLot`): serves the connection until it closes or parks.
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
            Served::Park => match worker.parking.park(link) {
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
        if matches!(
            reason,
            CloseReason::ProtocolError(_) | CloseReason::Administrative
        ) {
            // The client may still be writing: let it read why.
            link::linger(stream).await;
        } else {
            let _ = stream.shutdown().await;
        }
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
        Some(ClientState::Online(other)) => of_cell(other),
        Some(ClientState::Offline(session)) => Some(session.client_id().clone()),
        None => None,
    }
    .unwrap_or_default()
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
    // Packets that arrived with the CONNECT (a client may pipeline its
    // SUBSCRIBE behind it) or before the connection parked are decoded
    // before waiting for more.
    let mut unread = !rbuf.is_empty();
    loop {
        let io = if std::mem::take(&mut unread) {
            Io::Read
        } else {
            poll_fn(|cx| {
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
            .await
        };
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
            Io::Replay => {
                worker.pump_replay(cell);
                // A long replay shares the worker with everyone else.
                tokio::task::yield_now().await;
                continue;
            }
            Io::Timer => {
                {
                    let mut cs = cell.borrow_mut();
                    if let Some(conn) = cs.conn.as_mut() {
                        conn.handle_timeout(now);
                        while let Some(e) = conn.poll_event() {
                            events.push(e);
                        }
                    }
                    worker.flush(&mut cs);
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
        let flush = || worker.flush(&mut cell.borrow_mut());
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
                    if let Some(token) = blocked.durable {
                        worker.hold_for(token, cell);
                    }
                    if blocked.refused && !cs.version.is_v5() {
                        // v3 has no refusing PUBACK: the connection closes
                        // unanswered (a QoS 2 id is forgotten), so the
                        // client sends the message again.
                        let reason = CloseReason::ProtocolError(ReasonCode::QUOTA_EXCEEDED);
                        if let Some(conn) = cs.conn.as_mut() {
                            conn.close(reason);
                            conn.complete_publish(qos, packet_id, blocked.outcome());
                        }
                        close.get_or_insert(reason);
                    } else {
                        cs.complete_publish(qos, packet_id, blocked.outcome(), blocked.durable);
                    }
                    worker.flush(&mut cs);
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
                    worker.flush(&mut cs);
                }
                for (i, (filter, options)) in filters.iter().enumerate() {
                    let granted = reasons.get(i).is_some_and(|r| r.is_success());
                    let existed = existed.get(i).copied().unwrap_or(false);
                    let wanted = match options.retain_handling {
                        tern_codec::RetainHandling::OnSubscribe => true,
                        tern_codec::RetainHandling::OnNewSubscribe => !existed,
                        tern_codec::RetainHandling::Never => false,
                    };
                    if granted && wanted && tern_codec::topic::split_shared(filter).is_none() {
                        worker.send_retained(cell, filter, options.qos, subscription_identifier);
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
                worker.flush(&mut cs);
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
    cx: &mut Context<'_>,
    stream: &mut Stream,
    cell: &ConnCell,
    rbuf: &mut BytesMut,
    read_size: &mut usize,
    sleep: Pin<&mut tokio::time::Sleep>,
    worker: &Worker,
) -> Poll<Io> {
    let stats = &worker.stats;
    let (idle, replay) = {
        let mut cs = cell.borrow_mut();
        let written = poll_write_out(cx, stream, &mut cs, worker);
        if let Poll::Ready(Err(e)) = written {
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
        // Pending: the transport still holds bytes (TLS records) for the
        // socket, and its write readiness will wake this task.
        // A retained replay with room goes after reading and the timer (the
        // client's acks and pings first); reading does not change the room.
        let replay = cs.replay_room(worker.marks);
        let idle =
            cs.out.is_empty() && cs.close.is_none() && cs.replay.is_none() && written.is_ready();
        (idle, replay)
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
    if replay {
        return Poll::Ready(Io::Replay);
    }
    if idle && rbuf.capacity() == 0 {
        // Nothing to write, no read buffer, not readable: no task needed.
        return Poll::Ready(Io::Park);
    }
    Poll::Pending
}

/// Writes as much of the shared writer as the socket takes now, and wakes
/// the publishers waiting for this connection once it has room. Once the
/// writer is empty the stream is flushed: a TLS stream may hold records it
/// could not write yet (a no-op for TCP). `Ready(Ok)` means everything is
/// on the socket.
fn poll_write_out(
    cx: &mut Context<'_>,
    stream: &mut Stream,
    cs: &mut ConnShared,
    worker: &Worker,
) -> Poll<std::io::Result<()>> {
    let mut progress = false;
    let result = loop {
        if cs.out.is_empty() {
            break Pin::new(&mut *stream).poll_flush(cx);
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
        cs.note_progress(worker.marks);
    }
    result
}

/// Writes out everything queued for the connection.
async fn flush_out(stream: &mut Stream, cell: &ConnCell, worker: &Worker) {
    let _ = poll_fn(|cx| poll_write_out(cx, stream, &mut cell.borrow_mut(), worker)).await;
    let _ = stream.flush().await;
}
