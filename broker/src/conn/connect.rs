//! The connect phase of a connection: read the CONNECT, check it, run the
//! enhanced authentication it asks for, claim the client id and attach the
//! session — or hand the connection to the worker that is home to its
//! session.

use super::auth;
use super::link::{connect_timeout, linger, write_packet, Link, MAX_HOPS, MIN_READ};
use crate::client::ClientKey;
use crate::deliver::{ConnCell, ConnShared};
use crate::registry::Claim;
use crate::shared::{Adopted, Control};
use crate::stats::{RejectReason, WorkerStats};
use crate::store::StoreEvent;
use crate::worker::Worker;
use bytes::BytesMut;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::{ConnAck, Connect, DecodeError, Decoder, Packet, ProtocolVersion, ReasonCode};
use tern_session::auth::Authenticated;
use tern_session::Connection;
use tern_transport::Stream;

/// How the connect phase ended.
pub(super) enum Attach {
    /// Refused, failed or timed out: nothing more to do.
    Done,
    /// The client's session lives on worker `home` (`auth`: the outcome of
    /// its enhanced authentication, which is not run again there).
    HandOver(HandOver),
    /// The session is attached to this connection.
    Attached(Attached),
}

/// Where a connection goes whose session lives on another worker.
pub(super) struct HandOver {
    pub(super) connect: Box<Connect>,
    pub(super) home: usize,
    pub(super) auth: Option<Box<Authenticated>>,
}

/// An attached connection: what `serve` and the close phase need.
pub(super) struct Attached {
    pub(super) key: ClientKey,
    pub(super) cell: Rc<ConnCell>,
}

/// The connect phase: reads the CONNECT (unless adopted with one), checks
/// it, runs the enhanced authentication exchange it asks for (unless
/// adopted: then `adopted_auth` is its outcome), claims the client id and
/// attaches the session, or says where the session lives.
pub(super) async fn attach(
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
            let timeout = connect_timeout(&live.config, link.stream.listener());
            let Link {
                stream,
                rbuf,
                decoder,
                ..
            } = link;
            match read_connect(stream, rbuf, decoder, &worker.stats, timeout).await {
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
    let listener = worker.listener_name(link.stream.listener());
    // The TLS client certificate: its subject for the identity, and on a
    // listener with `use_identity_as_username` / `use_subject_as_username`
    // the user name, standing for the password (an adopted CONNECT got its
    // name on the first worker; taking it again gives the same).
    let cert = link.stream.peer_certificate();
    let certified = match cert_username(&live.config, link.stream.listener(), cert.as_ref()) {
        CertUser::NotUsed => false,
        CertUser::Name(name) => {
            connect.username = Some(name.into());
            connect.password = None;
            true
        }
        CertUser::Missing => {
            tracing::info!(%peer, client_id = %connect.client_id,
                "connection refused: the client certificate has no name to use as user name");
            return refuse(worker, link, version, ReasonCode::NOT_AUTHORIZED).await;
        }
    };
    // User name and password: a certificate that names the user stands for
    // them; otherwise the listener's password file (checked off this loop,
    // see `access`), else the `[auth]` users.
    let checked = if certified {
        Connection::check_connect_certified(&connect, &live.session)
    } else {
        match worker
            .shared
            .access
            .authenticate(&listener, &connect, &live.session.auth)
            .await
        {
            Ok(policy) => Connection::check_connect_with(&connect, &live.session, &policy),
            Err(code) => {
                tracing::info!(%peer, client_id = %connect.client_id, %listener, code = ?code, "connection refused: authentication");
                return refuse(worker, link, version, code).await;
            }
        }
    };
    let mut check = match checked {
        Ok(check) => check,
        Err(code) => {
            tracing::info!(%peer, client_id = %connect.client_id, code = ?code, "connection refused");
            return refuse(worker, link, version, code).await;
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
    check.peer = Some(peer);
    check.listener = Some(listener);
    check.cert_subject = cert.map(|c| c.subject.into());
    if let Err(code) = Connection::authorize_connect(&connect, &check, &live.session) {
        tracing::info!(%peer, client_id = %connect.client_id, code = ?code, "connection not authorized");
        return refuse(worker, link, version, code).await;
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
            return Attach::HandOver(HandOver {
                connect,
                home,
                auth: authenticated,
            })
        }
    };
    check.authenticated = authenticated.map(|a| *a);

    let now = Instant::now();
    let key = worker.key_for(&client_id);
    let clean_start = connect.clean_start;
    let existing = worker.take_session(now, key, clean_start);
    let resumed = existing.is_some();
    let cfg = Arc::clone(&live.session);
    let conn = Connection::new(now, *connect, existing, check, cfg);
    worker.store.observe(StoreEvent::SessionOpened {
        session: conn.session(),
        resumed,
    });
    let cell = Rc::new(RefCell::new(ConnShared::new(
        conn,
        version,
        limits.writer_buffer_bytes,
    )));
    worker.insert_online(key, generation, Rc::clone(&cell));
    link.guard.attached = Some((key, Rc::clone(&cell)));
    {
        let mut cs = cell.borrow_mut();
        worker.flush(&mut cs);
        // The CONNACK is encoded: the queue it waited in is not needed until
        // the client sends something.
        if let Some(conn) = cs.conn.as_mut() {
            conn.release_memory();
        }
    }
    tracing::info!(%peer, %client_id, ?version, clean_start, worker = worker.id, "client connected");
    Attach::Attached(Attached { key, cell })
}

/// What a listener's TLS settings make of the client certificate for the
/// user name.
enum CertUser {
    /// The listener takes the user name from the CONNECT.
    NotUsed,
    /// The certificate's common name or subject.
    Name(String),
    /// The listener wants a name from the certificate and there is none.
    Missing,
}

fn cert_username(
    config: &tern_config::Config,
    listener: &str,
    cert: Option<&tern_transport::CertSubject>,
) -> CertUser {
    let tls = config
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .and_then(|l| l.establish.tls.as_ref());
    let Some(tls) = tls.filter(|t| t.certificate_is_username()) else {
        return CertUser::NotUsed;
    };
    let name = cert.and_then(|c| {
        if tls.use_subject_as_username {
            Some(c.subject.clone())
        } else {
            c.common_name.clone()
        }
    });
    match name {
        Some(n) if !n.is_empty() => CertUser::Name(n),
        _ => CertUser::Missing,
    }
}

/// Reads until one whole CONNECT arrives, for at most `timeout` in all (a
/// client trickling it byte by byte is closed at the deadline as well as a
/// silent one, and counted); answers a bad protocol level with the CONNACK
/// the spec asks for. `None` means the connection is done.
async fn read_connect(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    decoder: &mut Decoder,
    stats: &WorkerStats,
    timeout: Duration,
) -> Option<Box<Connect>> {
    let deadline = tokio::time::Instant::now() + timeout;
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
                    // level: answer and close. Levels above 5 get a v5
                    // CONNACK 0x84 (a client newer than v5 can read it), the
                    // others the 3.1.1 return code 0x01.
                    let version = match &e {
                        DecodeError::UnsupportedProtocol { level, .. } if *level > 5 => {
                            ProtocolVersion::V5
                        }
                        _ => ProtocolVersion::V311,
                    };
                    let ack = Packet::ConnAck(ConnAck {
                        session_present: false,
                        code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                        ..ConnAck::default()
                    });
                    if write_packet(stream, version, &ack, stats).await.is_ok() {
                        linger(stream).await;
                    }
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
                stats.rejected(RejectReason::ConnectTimeout);
                tracing::debug!(
                    read = rbuf.len(),
                    "no whole CONNECT within {timeout:?}; closing"
                );
                return None;
            }
        }
    }
}

/// Hands a connection to the worker that is home to its client's session
/// (`hops`: how many times it was handed on already).
pub(super) async fn hand_over(worker: &Worker, link: Box<Link>, to: HandOver, hops: u8) {
    let Link {
        mut stream,
        peer,
        rbuf: rest,
        permit,
        ..
    } = *link;
    let HandOver {
        connect,
        home,
        auth,
    } = to;
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
    let detached = match stream.detach() {
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
        stream: detached,
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

/// Answers a refused CONNECT with a CONNACK carrying `code` and counts it.
async fn refuse(
    worker: &Worker,
    link: &mut Link,
    version: ProtocolVersion,
    code: ReasonCode,
) -> Attach {
    worker.stats.refused(code);
    let ack = Packet::ConnAck(tern_session::reject_connack(code));
    if write_packet(&mut link.stream, version, &ack, &worker.stats)
        .await
        .is_ok()
    {
        linger(&mut link.stream).await;
    }
    Attach::Done
}
