//! Abuse limits against the real `tern` binary started with a config file:
//! the connect rate per source address, the flapping ban, a listener's own
//! `max_connections`, and `connect_timeout` with a client that trickles its
//! CONNECT. Refusals are checked on the wire (closed without a CONNACK) and
//! in `/metrics` (`tern_connections_rejected_total` by reason).
//!
//! Source addresses: Linux routes all of 127.0.0.0/8 to loopback, so a
//! client bound to 127.0.0.2 is "another address" for the broker.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP connection to `addr` from `source` (port chosen by the OS).
fn tcp_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local = SocketAddr::from((source, 0));
    socket.bind(&local.into()).unwrap();
    socket.connect_timeout(&addr.into(), WAIT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Connects from `source` with a v3.1.1 CONNECT and disconnects: true when
/// the broker answered CONNACK 0, false when it closed without a word (a
/// refusal at accept). Anything else fails the test.
fn connects_from(source: [u8; 4], addr: SocketAddr) -> bool {
    let Some(mut s) = accepted_from(source, addr) else {
        return false;
    };
    let _ = s.write_all(&[0xE0, 0]);
    true
}

/// Like [`connects_from`], keeping the connection open.
fn accepted_from(source: [u8; 4], addr: SocketAddr) -> Option<TcpStream> {
    let mut s = tcp_from(source, addr);
    // The broker may already have closed: a failed write is a refusal too.
    let _ = s.write_all(&Connect::v311(&client_id()).bytes());
    let mut buf = [0u8; 4];
    match s.read(&mut buf) {
        Ok(0) => None,
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => None,
        Ok(n) => {
            let mut rest = [0u8; 4];
            if n < 4 {
                s.read_exact(&mut rest[..4 - n]).unwrap();
                buf[n..].copy_from_slice(&rest[..4 - n]);
            }
            assert_eq!(buf, [0x20, 2, 0, 0], "expected CONNACK 0");
            Some(s)
        }
        Err(e) => panic!("neither a CONNACK nor a close: {e}"),
    }
}

const LOCAL: [u8; 4] = [127, 0, 0, 1];
const OTHER: [u8; 4] = [127, 0, 0, 2];

/// `tern_connections_rejected_total` for `reason`, summed over workers.
fn rejected(d: &Daemon, reason: &str) -> f64 {
    let (_, body) = d.http("GET", "/metrics");
    let label = format!("reason=\"{reason}\"");
    body.lines()
        .filter(|l| l.starts_with("tern_connections_rejected_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_rejected(d: &Daemon, reason: &str, want: f64) {
    wait_for(WAIT, &format!("{want} refusals for {reason}"), || {
        (rejected(d, reason) == want).then_some(())
    });
}

fn config(limits: &str) -> String {
    format!(
        "bind = [\"127.0.0.1:0\"]\nworkers = 2\nlog_level = \"debug\"\n\
         metrics_bind = \"127.0.0.1:0\"\nadmin_endpoint = true\nadmin_token = \"{ADMIN_TOKEN}\"\n\
         [limits]\n{limits}\n"
    )
}

// connect_rate_per_ip: a burst of 3, then (at one a minute) nothing for the
// rest of the test; the excess is refused at accept and counted as
// reason="rate"; another address has its own bucket. A reload turning the
// limit off lets the first address in again.
#[test]
fn connect_rate_refuses_the_excess_and_counts_it() {
    let d = Daemon::start(&config("connect_rate_per_ip = 1\nconnect_burst_per_ip = 3"));
    for i in 0..3 {
        assert!(
            connects_from(LOCAL, d.mqtt),
            "connect #{i} is within the burst"
        );
    }
    assert!(!connects_from(LOCAL, d.mqtt), "the 4th is over the rate");
    assert!(!connects_from(LOCAL, d.mqtt), "the 5th too");
    assert!(
        connects_from(OTHER, d.mqtt),
        "another address has its own bucket"
    );
    wait_rejected(&d, "rate", 2.0);
    assert_eq!(rejected(&d, "banned"), 0.0);

    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "no change\n");
    std::fs::write(&d.file, config("connect_rate_per_ip = 0")).unwrap();
    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("applied limits.connect_rate_per_ip: 1 -> 0"),
        "{body}"
    );
    for _ in 0..5 {
        assert!(
            connects_from(LOCAL, d.mqtt),
            "no rate limit after the reload"
        );
    }
}

// flap_connects = 3 in 10 s bans for 2 s: the 4th connect is refused and
// starts the ban, connects during it are refused (reason="banned") without
// extending it, and the address is let back in once it ends.
#[test]
fn flapping_ban_refuses_then_lets_the_client_back() {
    let d = Daemon::start(&config("flap_connects = 3\nflap_window = 10\nflap_ban = 2"));
    for i in 0..3 {
        assert!(connects_from(LOCAL, d.mqtt), "connect #{i}");
    }
    let banned_at = Instant::now();
    assert!(!connects_from(LOCAL, d.mqtt), "the 4th starts the ban");
    assert!(!connects_from(LOCAL, d.mqtt), "banned");
    assert!(connects_from(OTHER, d.mqtt), "only that address is banned");
    d.wait_log("address connects too often; banned");
    wait_for(WAIT, "the ban counted", || {
        let (_, body) = d.http("GET", "/metrics");
        body.lines()
            .any(|l| l == "tern_connect_bans_total 1")
            .then_some(())
    });
    // Retry every 200 ms: the ban ends 2 s after it started, whatever the
    // attempts meanwhile.
    let back = wait_for(Duration::from_secs(6), "the ban to end", || {
        connects_from(LOCAL, d.mqtt).then(Instant::now)
    });
    assert!(
        back.duration_since(banned_at) >= Duration::from_secs(2),
        "let back in before the ban ended"
    );
    let refused = rejected(&d, "banned");
    assert!(refused >= 2.0, "{refused}");
}

// A listener's own max_connections: the third connection on the capped
// listener is refused (reason="listener_limit") while the other listener
// still accepts; closing one makes room again; a reload raises the cap.
#[test]
fn max_connections_per_listener() {
    let text = |max: usize| {
        format!(
            "workers = 2\nmetrics_bind = \"127.0.0.1:0\"\nadmin_endpoint = true\n\
             admin_token = \"{ADMIN_TOKEN}\"\n\
             [[listener]]\nname = \"capped\"\nbind = \"127.0.0.1:0\"\n\
             limits = {{ max_connections = {max} }}\n\
             [[listener]]\nname = \"open\"\nbind = \"127.0.0.1:0\"\n"
        )
    };
    let d = Daemon::start(&text(2));
    let (capped, open) = (d.listeners[0], d.listeners[1]);
    let a = Client::v311(capped);
    let b = Client::v311(capped);
    assert!(!connects_from(LOCAL, capped), "the capped listener is full");
    let others: Vec<Client> = (0..3).map(|_| Client::v311(open)).collect();
    wait_rejected(&d, "listener_limit", 1.0);
    assert_eq!(rejected(&d, "limit"), 0.0, "not the global cap");
    drop(a);
    wait_for(WAIT, "room on the capped listener", || {
        connects_from(LOCAL, capped).then_some(())
    });

    std::fs::write(&d.file, text(3)).unwrap();
    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("applied listener.limits"), "{body}");
    // The connection that found room above may still be closing: wait.
    let c = wait_for(WAIT, "room for a second", || accepted_from(LOCAL, capped));
    let e = wait_for(WAIT, "room for a third", || accepted_from(LOCAL, capped));
    assert!(!connects_from(LOCAL, capped), "full again at 3");
    drop((b, c, e, others));
}

// connect_timeout: on a listener with connect_timeout = 1, a client that
// trickles its CONNECT a byte every 100 ms is closed at the deadline,
// before it is done, without a CONNACK, and counted
// (reason="connect_timeout"); on a listener with the global 10 s, the same
// trickle completes and is accepted.
#[test]
fn connect_timeout_closes_a_trickling_client() {
    let text = "workers = 1\nmetrics_bind = \"127.0.0.1:0\"\n\
                [limits]\nconnect_timeout = 10\n\
                [[listener]]\nname = \"strict\"\nbind = \"127.0.0.1:0\"\n\
                limits = { connect_timeout = 1 }\n\
                [[listener]]\nname = \"patient\"\nbind = \"127.0.0.1:0\"\n";
    let d = Daemon::start(text);
    let (strict, patient) = (d.listeners[0], d.listeners[1]);
    // 25 bytes at 100 ms each: 2.5 s, well over the strict deadline.
    let connect = Connect::v311("trickling-client-id01").bytes();
    assert!(connect.len() >= 25, "{}", connect.len());

    let trickle = |addr: SocketAddr| -> Result<TcpStream, usize> {
        let mut s = tcp_from(LOCAL, addr);
        for (i, byte) in connect.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(&[*byte]).is_err() {
                return Err(i);
            }
            // A close shows as EOF on a non-blocking peek.
            s.set_nonblocking(true).unwrap();
            let mut one = [0u8; 1];
            let peeked = s.peek(&mut one);
            s.set_nonblocking(false).unwrap();
            match peeked {
                Ok(0) => return Err(i),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Err(i),
                Ok(_) if i + 1 < connect.len() => panic!("the broker answered a partial CONNECT"),
                Ok(_) => {}
            }
        }
        Ok(s)
    };
    let sent = trickle(strict).expect_err("the strict listener must close the trickling client");
    assert!(sent < connect.len() - 1, "closed only after {sent} bytes");
    assert!(
        sent >= 5,
        "closed after {sent} bytes: before the 1 s deadline?"
    );
    wait_rejected(&d, "connect_timeout", 1.0);

    let mut s = trickle(patient).expect("the patient listener waits 10 s");
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    assert_eq!(rejected(&d, "connect_timeout"), 1.0);
    // A prompt client on the strict listener is served.
    let _prompt = Client::v311(strict);
}
