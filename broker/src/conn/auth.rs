//! MQTT 5 enhanced authentication between CONNECT and CONNACK (4.12): the
//! connection task carries the AUTH packets of a sans-IO
//! `tern_session::auth::AuthExchange`, within the connect timeout.

use super::link::{connect_timeout, write_packet, Link, MIN_READ};
use crate::worker::Worker;
use tern_codec::{ConnAck, Connect, Packet, ReasonCode};
use tern_session::auth::{AuthExchange, Authenticated};

/// How the exchange ended.
pub(super) enum AuthOutcome {
    /// The CONNECT has no Authentication Method: nothing to do.
    NotRequested,
    /// The client proved its identity; the CONNACK carries this.
    Authenticated(Box<Authenticated>),
    /// Refused (CONNACK sent where due), timed out or closed by the client.
    Refused,
}

/// Runs the exchange a v5 CONNECT with an Authentication Method asks for
/// (after `check_connect` accepted the method): AUTH 0x18 with the
/// server-first data, then the client's AUTH 0x18. A wrong proof or unknown
/// user gets CONNACK 0x87, a packet other than AUTH 0x82 ([MQTT-3.1.2-30]);
/// DISCONNECT, a closed socket or the connect timeout end it silently.
pub(super) async fn authenticate(
    worker: &Worker,
    link: &mut Link,
    connect: &Connect,
) -> AuthOutcome {
    let live = worker.live.runtime();
    let cfg = &live.session;
    let Some(started) = AuthExchange::for_connect(connect, cfg) else {
        return AuthOutcome::NotRequested;
    };
    let version = connect.protocol;
    let peer = link.peer;
    let refuse = |code: ReasonCode| {
        worker.stats.refused(code);
        Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            ..ConnAck::default()
        })
    };
    let (exchange, challenge) = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::info!(%peer, client_id = %connect.client_id, error = %e, "authentication refused");
            let _ = write_packet(
                &mut link.stream,
                version,
                &refuse(e.reason_code()),
                &worker.stats,
            )
            .await;
            return AuthOutcome::Refused;
        }
    };
    if write_packet(
        &mut link.stream,
        version,
        &Packet::Auth(challenge),
        &worker.stats,
    )
    .await
    .is_err()
    {
        return AuthOutcome::Refused;
    }
    let packet = match next_packet(worker, link).await {
        Ok(Some(p)) => p,
        Ok(None) => return AuthOutcome::Refused,
        Err(code) => {
            let _ = write_packet(&mut link.stream, version, &refuse(code), &worker.stats).await;
            return AuthOutcome::Refused;
        }
    };
    if let Packet::Disconnect(_) = packet {
        tracing::debug!(%peer, "client disconnected during authentication");
        return AuthOutcome::Refused;
    }
    match exchange.handle_packet(packet) {
        Ok(done) => AuthOutcome::Authenticated(Box::new(done)),
        Err(e) => {
            let code = e.reason_code();
            if code == ReasonCode::PROTOCOL_ERROR {
                worker.stats.protocol_errors.inc();
            }
            tracing::info!(%peer, client_id = %connect.client_id, error = %e, "authentication failed");
            let _ = write_packet(&mut link.stream, version, &refuse(code), &worker.stats).await;
            AuthOutcome::Refused
        }
    }
}

/// The client's next packet within the connect timeout. `Ok(None)`: the
/// socket closed or the time ran out; `Err(code)`: a malformed packet.
async fn next_packet(worker: &Worker, link: &mut Link) -> Result<Option<Packet>, ReasonCode> {
    let timeout = {
        let live = worker.live.borrow();
        connect_timeout(&live.config, link.stream.listener())
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match link.decoder.decode(&mut link.rbuf) {
            Ok(Some(p)) => return Ok(Some(p)),
            Ok(None) => {}
            Err(e) => {
                worker.stats.malformed(&e);
                tracing::debug!(error = %e, "malformed packet during authentication");
                return Err(e.reason_code());
            }
        }
        link.rbuf.reserve(MIN_READ);
        let read = tokio::time::timeout_at(
            deadline,
            tokio::io::AsyncReadExt::read_buf(&mut link.stream, &mut link.rbuf),
        )
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
            Ok(Ok(n)) => worker.stats.bytes_in.add(n as u64),
            Err(_) => {
                tracing::debug!("authentication not completed within {timeout:?}");
                return Ok(None);
            }
        }
    }
}
