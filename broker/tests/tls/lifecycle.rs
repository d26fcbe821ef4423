//! Handshake timeout and certificate reload.

use crate::*;
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

// A client that opens a TLS listener's port and says nothing is closed
// after `handshake_timeout`, and counted; other clients are served
// meanwhile.
#[test]
fn handshake_timeout_closes_a_silent_connection() {
    let dir = Dir::new("timeout");
    let ca = make_ca("timeout");
    let cafile = dir.write("ca.pem", &ca.pem);
    let (cert, key) = ca.leaf("localhost", &["localhost"], KeyType::Ecdsa, false);
    dir.write("server.pem", &cert);
    dir.write("server.key", &key);
    let config = format!(
        "metrics_bind = \"127.0.0.1:0\"\n{}",
        tls_listener(&dir, "handshake_timeout = 1\n")
    );
    let tern = Tern::start(&dir, &config);
    let started = Instant::now();
    let mut silent = TcpStream::connect(tern.addrs[0]).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    // Served while the silent one waits.
    let out = publish(&tern.port(0), &["-h", "localhost", "--cafile", &cafile]);
    assert!(out.status.success(), "{out:?}");
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "closed without a byte");
    assert!(
        waited >= Duration::from_millis(900),
        "not before the timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(6),
        "closed by the timeout: {waited:?}"
    );
    wait_for(Duration::from_secs(5), "the timeout counted", || {
        let total: f64 = (0..2)
            .map(|w| {
                tern.metric(&format!(
                    "tern_handshake_failures_total{{worker=\"{w}\",reason=\"timeout\"}}"
                ))
            })
            .sum();
        (total >= 1.0).then_some(())
    });
}

// Certificate reload: a subscriber connected over TLS stays connected
// while the certificate changes under it (SIGHUP, then a change of the
// files alone); new clients see the new certificate (they trust only the
// new CA); a certificate that does not parse is refused and the one in
// force stays; the subscriber still gets its message at the end.
#[test]
fn certificate_reload_keeps_connected_clients() {
    let dir = Dir::new("reload");
    let first = make_ca("first");
    let second = make_ca("second");
    let third = make_ca("third");
    let ca1 = dir.write("ca1.pem", &first.pem);
    let ca2 = dir.write("ca2.pem", &second.pem);
    let ca3 = dir.write("ca3.pem", &third.pem);
    let install = |ca: &Ca| {
        let (cert, key) = ca.leaf("localhost", &["localhost"], KeyType::Ecdsa, false);
        dir.write("server.key", &key);
        dir.write("server.pem", &cert);
    };
    install(&first);
    let config = format!("metrics_bind = \"127.0.0.1:0\"\n{}", tls_listener(&dir, ""));
    let tern = Tern::start(&dir, &config);
    let port = tern.port(0);
    let pub_with = |cafile: &str| {
        publish(
            &port,
            &["-h", "localhost", "--cafile", cafile, "-t", "tern/other"],
        )
    };
    let mut sub = Sub::start(&port, "tern/reload", &["-h", "localhost", "--cafile", &ca1]);

    install(&second);
    tern.sighup();
    wait_for(
        Duration::from_secs(5),
        "the new certificate in force",
        || pub_with(&ca2).status.success().then_some(()),
    );
    assert!(
        !pub_with(&ca1).status.success(),
        "the old certificate is gone for new clients"
    );

    // Not a certificate: refused, the second stays.
    dir.write(
        "server.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    tern.sighup();
    tern.wait_metric(
        "tern_tls_certificate_reloads_total{result=\"rejected\"}",
        1.0,
    );
    assert!(
        pub_with(&ca2).status.success(),
        "the certificate in force stays"
    );

    // The files change, no signal: the poll notices.
    install(&third);
    wait_for(Duration::from_secs(8), "the changed files in force", || {
        pub_with(&ca3).status.success().then_some(())
    });
    assert!(tern.metric("tern_tls_certificate_reloads_total{result=\"ok\"}") >= 1.0);

    assert!(sub.is_running(), "the subscriber stayed connected");
    let out = publish(
        &port,
        &["-h", "localhost", "--cafile", &ca3, "-t", "tern/reload"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        sub.received(),
        "the subscriber connected before the reloads got the message"
    );
}
