//! PROXY protocol v1 and v2 headers, hand-written, on plain and TLS listeners.

use crate::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// MQTT 3.1.1 CONNECT with client id `id`.
fn connect_bytes(id: &str) -> Vec<u8> {
    let mut v = vec![
        0x10,
        (12 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        2,
        0,
        60,
    ];
    v.extend_from_slice(&(id.len() as u16).to_be_bytes());
    v.extend_from_slice(id.as_bytes());
    v
}

/// Sends `prefix` then a CONNECT; returns the first bytes of the answer
/// (empty when the broker closed without one).
fn connack_after(addr: SocketAddr, prefix: &[u8]) -> (Vec<u8>, TcpStream) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&connect_bytes(&client_id()));
    let _ = s.write_all(&bytes);
    let mut buf = [0u8; 4];
    let mut got = Vec::new();
    while got.len() < 4 {
        match s.read(&mut buf[got.len()..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, s)
}

fn proxy_v2(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&1883u16.to_be_bytes());
    h
}

const ACCEPTED: [u8; 4] = [0x20, 2, 0, 0];

// PROXY protocol: a listener with `proxy_protocol = true` takes v1 and v2
// headers (hand-written bytes) and uses the address they report: with
// `max_connections_per_ip = 1`, two clients reported from two addresses
// both connect over the one loopback socket address, and a second one
// reported from the same address is refused. A connection without the
// header, or with a malformed one, is refused; a PROXY header on a plain
// listener is malformed MQTT. Over TLS the header comes before the
// handshake.
#[test]
fn proxy_protocol_headers() {
    let dir = Dir::new("proxy");
    let ca = make_ca("proxy");
    let cafile = dir.write("ca.pem", &ca.pem);
    let (cert, key) = ca.leaf("localhost", &["localhost"], KeyType::Ecdsa, false);
    dir.write("server.pem", &cert);
    dir.write("server.key", &key);
    let config = format!(
        "bind = []\n[limits]\nmax_connections_per_ip = 1\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"proxied\"\nproxy_protocol = true\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"plain\"\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"tls\"\nproxy_protocol = true\ntls.certfile = \"{}\"\ntls.keyfile = \"{}\"\n",
        dir.path("server.pem"),
        dir.path("server.key")
    );
    let tern = Tern::start(&dir, &config);
    let (proxied, plain) = (tern.addrs[0], tern.addrs[1]);

    let (got, _a) = connack_after(proxied, b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 1883\r\n");
    assert_eq!(got, ACCEPTED, "v1");
    let (got, _b) = connack_after(proxied, &proxy_v2([203, 0, 113, 8], 51001));
    assert_eq!(got, ACCEPTED, "v2, another reported address");
    let (got, _c) = connack_after(proxied, &proxy_v2([203, 0, 113, 7], 51002));
    assert_eq!(
        got,
        Vec::<u8>::new(),
        "a second client reported from 203.0.113.7"
    );
    let (got, _) = connack_after(proxied, b"");
    assert_eq!(got, Vec::<u8>::new(), "no header: refused");
    let (got, _) = connack_after(proxied, b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 1883\r\n");
    assert_eq!(got, Vec::<u8>::new(), "malformed header: refused");
    // UNKNOWN (v1) keeps the socket's own address: 127.0.0.1, free so far.
    let (got, _d) = connack_after(proxied, b"PROXY UNKNOWN\r\n");
    assert_eq!(got, ACCEPTED, "UNKNOWN");

    let (got, _e) = connack_after(plain, b"");
    assert_eq!(got, ACCEPTED, "the plain listener serves MQTT");
    drop(_e);
    std::thread::sleep(Duration::from_millis(200));
    for header in [
        b"PROXY TCP4 203.0.113.10 127.0.0.1 1 1883\r\n".to_vec(),
        proxy_v2([203, 0, 113, 11], 2),
    ] {
        let (got, _) = connack_after(plain, &header);
        assert_eq!(
            got,
            Vec::<u8>::new(),
            "a PROXY header on a plain listener is malformed input"
        );
    }

    // TLS behind the proxy: the header, then the handshake. Mosquitto's
    // client cannot send the header, so the test relays it: header first,
    // then the client's bytes both ways.
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port().to_string();
    let tls_addr = tern.addrs[2];
    let relay_thread = std::thread::spawn(move || {
        let (client, _) = relay.accept().unwrap();
        let mut upstream = TcpStream::connect(tls_addr).unwrap();
        upstream
            .write_all(b"PROXY TCP4 198.51.100.1 127.0.0.1 40000 8883\r\n")
            .unwrap();
        let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let (mut u, mut c) = (upstream, client);
        let _ = std::io::copy(&mut u, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    let out = publish(&relay_port, &["-h", "localhost", "--cafile", &cafile]);
    assert!(out.status.success(), "TLS after a PROXY header: {out:?}");
    relay_thread.join().unwrap();
    let logs = tern.log.lock().unwrap().join("\n");
    assert!(
        logs.contains("198.51.100.1:40000"),
        "the reported address is the client's in the logs"
    );
}
