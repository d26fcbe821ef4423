//! Authentication (MQTT 5.0 sections 3.1.2.11.9-10, 3.15, 4.12; 3.1.1
//! section 3.2.2.3): user name and password in CONNECT for every protocol
//! level, anonymous access, and SCRAM-SHA-256/512 enhanced authentication
//! with re-authentication. Byte level; the SCRAM client below is written
//! from RFC 5802 with the hash crates, sharing no code with the broker.
//!
//! Every test spawns a broker with a user table (`--config`), so all of
//! them are skipped against `TERN_TEST_BROKER`.

use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::sync::atomic::{AtomicU32, Ordering};

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const SHA256: &str = "SCRAM-SHA-256";
const SHA512: &str = "SCRAM-SHA-512";
const AUTH: u8 = 15;
const CONTINUE: u8 = 0x18;
const REAUTH: u8 = 0x19;
/// Property ids: Authentication Method, Authentication Data.
const METHOD: u8 = 0x15;
const DATA: u8 = 0x16;

/// A broker whose users are alice/wonderland; `None` against an external broker.
fn broker(allow_anonymous: bool) -> Option<Broker> {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "tern-auth-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let text = format!(
        "[auth]\nallow_anonymous = {allow_anonymous}\n\
         users = [{{ username = \"{USER}\", password = \"{PASSWORD}\" }}]\n"
    );
    std::fs::write(&path, text).unwrap();
    let broker = Broker::spawn_only(&["--config", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    broker
}

// ---- packets -------------------------------------------------------------

/// A v5 CONNECT (clean start, keep-alive 60) with optional Authentication
/// Method / Data, user name / password and Session Expiry Interval.
fn connect_v5(
    client_id: &str,
    method: Option<&str>,
    data: Option<&[u8]>,
    login: Option<(&str, &str)>,
    expiry: Option<u32>,
) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(V5);
    body.push(if login.is_some() { 0xC2 } else { 0x02 });
    body.extend(60u16.to_be_bytes());
    let mut props = Vec::new();
    if let Some(secs) = expiry {
        props.push(0x11);
        props.extend(secs.to_be_bytes());
    }
    if let Some(m) = method {
        props.push(METHOD);
        props.extend(string(m));
    }
    if let Some(d) = data {
        props.push(DATA);
        props.extend(binary(d));
    }
    body.extend(remaining_length(props.len()));
    body.extend(props);
    body.extend(string(client_id));
    if let Some((user, password)) = login {
        body.extend(string(user));
        body.extend(binary(password.as_bytes()));
    }
    packet(CONNECT << 4, &body)
}

/// An AUTH packet with a method and optional data.
fn auth_packet(reason: u8, method: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut props = vec![METHOD];
    props.extend(string(method));
    if let Some(d) = data {
        props.push(DATA);
        props.extend(binary(d));
    }
    let mut body = vec![reason];
    body.extend(remaining_length(props.len()));
    body.extend(props);
    packet(AUTH << 4, &body)
}

/// The v5 properties starting at `at` of `body`: (id, raw value).
fn properties(body: &[u8], at: usize) -> Vec<(u8, Vec<u8>)> {
    let (len, used) = read_varint(&body[at..]).expect("property length");
    let mut rest = &body[at + used..at + used + len];
    let mut out = Vec::new();
    while let Some((&id, tail)) = rest.split_first() {
        let size = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                2 + usize::from(u16::from_be_bytes([tail[0], tail[1]]))
            }
            0x26 => {
                let k = 2 + usize::from(u16::from_be_bytes([tail[0], tail[1]]));
                k + 2 + usize::from(u16::from_be_bytes([tail[k], tail[k + 1]]))
            }
            other => panic!("unexpected property 0x{other:02X} in {body:?}"),
        };
        out.push((id, tail[..size].to_vec()));
        rest = &tail[size..];
    }
    out
}

/// The value of a string / binary property, without its length prefix.
fn prop(props: &[(u8, Vec<u8>)], id: u8) -> Option<Vec<u8>> {
    props
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| v[2..].to_vec())
}

/// Reason code and properties of an AUTH packet.
fn auth_of(p: &RawPacket) -> (u8, Vec<(u8, Vec<u8>)>) {
    assert_eq!(p.kind(), AUTH, "expected AUTH, got {p:?}");
    if p.body.is_empty() {
        return (0, Vec::new());
    }
    (p.body[0], properties(&p.body, 1))
}

/// Reason code and properties of a v5 CONNACK.
fn connack_of(p: &RawPacket) -> (u8, Vec<(u8, Vec<u8>)>) {
    (p.connack_code(), properties(&p.body, 2))
}

// ---- a SCRAM client (RFC 5802 section 3) -----------------------------------

struct Scram {
    sha512: bool,
    password: String,
    bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl Scram {
    fn new(method: &str, user: &str, password: &str) -> Self {
        let nonce = format!("{}x{}", client_id(), user.len());
        Self {
            sha512: method == SHA512,
            password: password.to_owned(),
            bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: Vec::new(),
        }
    }

    fn mac(&self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        if self.sha512 {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare).into_bytes()
    }

    fn finish(&mut self, server_first: &[u8]) -> Vec<u8> {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut parts = server_first.split(',');
        let r = parts.next().unwrap().strip_prefix("r=").unwrap();
        let salt = B64
            .decode(parts.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let i: u32 = parts.next().unwrap()[2..].parse().unwrap();
        assert!(r.starts_with(&self.nonce), "server-first extends our nonce");
        assert!(i >= 4096, "RFC 7677: at least 4096 iterations");
        let mut salted = vec![0u8; if self.sha512 { 64 } else { 32 }];
        let pw = self.password.as_bytes();
        if self.sha512 {
            pbkdf2::pbkdf2_hmac::<Sha512>(pw, &salt, i, &mut salted);
        } else {
            pbkdf2::pbkdf2_hmac::<Sha256>(pw, &salt, i, &mut salted);
        }
        let client_key = self.mac(&salted, b"Client Key");
        let stored_key = if self.sha512 {
            Sha512::digest(&client_key).to_vec()
        } else {
            Sha256::digest(&client_key).to_vec()
        };
        let without_proof = format!("c=biws,r={r}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = self.mac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.mac(&salted, b"Server Key");
        self.server_signature = self.mac(&server_key, auth_message.as_bytes());
        format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
    }

    fn verifies(&self, server_final: &[u8]) -> bool {
        server_final == format!("v={}", B64.encode(&self.server_signature)).as_bytes()
    }
}

// ---- flows ---------------------------------------------------------------

/// Sends a SCRAM CONNECT, checks the server's AUTH 0x18 and returns the
/// client-final message to send.
fn scram_start(
    broker: &Broker,
    method: &str,
    user: &str,
    password: &str,
    id: &str,
    expiry: Option<u32>,
) -> (Client, Scram, Vec<u8>) {
    let mut scram = Scram::new(method, user, password);
    let mut c = Client::tcp(broker.addr);
    c.version = V5;
    c.send(&connect_v5(
        id,
        Some(method),
        Some(&scram.first()),
        None,
        expiry,
    ));
    let (reason, props) = auth_of(&c.read());
    assert_eq!(reason, CONTINUE, "[MQTT5-4.12.0-2] AUTH 0x18");
    assert_eq!(
        prop(&props, METHOD).as_deref(),
        Some(method.as_bytes()),
        "[MQTT5-4.12.0-5] same method"
    );
    let fin = scram.finish(&prop(&props, DATA).expect("server-first data"));
    (c, scram, fin)
}

/// A full SCRAM login; asserts CONNACK 0x00 with the method and a
/// server-final that verifies.
fn scram_login(broker: &Broker, method: &str, id: &str, expiry: Option<u32>) -> Client {
    let (mut c, scram, fin) = scram_start(broker, method, USER, PASSWORD, id, expiry);
    c.send(&auth_packet(CONTINUE, method, Some(&fin)));
    let connack = c.read();
    let (code, props) = connack_of(&connack);
    assert_eq!(code, 0, "CONNACK refused: {connack:?}");
    assert_eq!(prop(&props, METHOD).as_deref(), Some(method.as_bytes()));
    let data = prop(&props, DATA).expect("server-final in CONNACK");
    assert!(scram.verifies(&data), "server-final does not verify");
    c
}

/// Reads the CONNACK of a refused connection and asserts the close.
fn refused(c: &mut Client, code: u8) {
    let connack = c.read();
    assert_eq!(connack.kind(), CONNACK, "{connack:?}");
    assert_eq!(connack.connack_code(), code, "{connack:?}");
    assert!(!connack.session_present());
    c.expect_closed_silently(WAIT);
}

// [MQTT5-4.12.0-2] AUTH 0x18 with server-first; [MQTT5-4.12.0-3] the client's
// AUTH 0x18; [MQTT5-4.12.0-5] the method in every AUTH and the CONNACK;
// [MQTT5-3.2.0-1] AUTH is the only packet before CONNACK; [MQTT5-3.15.2-1]
// AUTH reason codes. SCRAM-SHA-256 and -512, then normal traffic.
#[test]
fn scram_success_connack_carries_method_and_server_final() {
    let Some(broker) = broker(false) else { return };
    for method in [SHA256, SHA512] {
        let mut c = scram_login(&broker, method, &client_id(), None);
        let t = topic("auth");
        c.sub(&t, 1);
        c.publish_qos(&t, b"hello", 1);
        assert_eq!(c.recv_acked().payload, b"hello");
        c.disconnect();
    }
}

// A SCRAM session resumed several times: the connection may be handed to
// the worker that holds the session, and still gets its CONNACK with the
// authentication data. [MQTT5-4.12.0-5] [MQTT5-3.2.2-2]
#[test]
fn scram_reconnects_to_a_persistent_session() {
    let Some(broker) = broker(false) else { return };
    let id = client_id();
    scram_login(&broker, SHA256, &id, Some(300)).disconnect();
    for _ in 0..4 {
        let mut occupy = v311_login(&broker);
        scram_login(&broker, SHA256, &id, Some(300)).disconnect();
        occupy.ping();
    }
}

// [MQTT5-4.12.0-4] a wrong proof or an unknown user: CONNACK 0x87, close;
// [MQTT5-3.2.2-6] session present 0; [MQTT5-3.2.2-7] close after >= 0x80.
#[test]
fn scram_wrong_password_or_unknown_user_is_not_authorized() {
    let Some(broker) = broker(true) else { return };
    for (user, password) in [(USER, "wonderlanD"), ("mallory", PASSWORD)] {
        let (mut c, _, fin) = scram_start(&broker, SHA256, user, password, &client_id(), None);
        c.send(&auth_packet(CONTINUE, SHA256, Some(&fin)));
        refused(&mut c, 0x87);
    }
}

// [MQTT5-4.12.0-1] an unsupported Authentication Method: CONNACK 0x8C, close.
#[test]
fn unsupported_authentication_method_is_refused_with_0x8c() {
    let Some(broker) = broker(true) else { return };
    for method in ["PLAIN", "scram-sha-256", "SCRAM-SHA-1"] {
        let mut c = Client::tcp(broker.addr);
        c.version = V5;
        c.send(&connect_v5(
            &client_id(),
            Some(method),
            Some(b"x"),
            None,
            None,
        ));
        refused(&mut c, 0x8C);
    }
}

// [MQTT5-3.1.2-30] only AUTH or DISCONNECT before CONNACK: a PINGREQ, an AUTH
// with another method ([MQTT5-4.12.0-5]) or AUTH 0x19 ([MQTT5-4.12.0-3])
// mid-exchange is a protocol error: CONNACK 0x82, close.
#[test]
fn other_packets_during_the_exchange_are_protocol_errors() {
    let Some(broker) = broker(true) else { return };
    type Answer<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;
    let cases: [Answer; 3] = [
        &|_| PINGREQ_BYTES.to_vec(),
        &|fin| auth_packet(CONTINUE, SHA512, Some(fin)),
        &|fin| auth_packet(REAUTH, SHA256, Some(fin)),
    ];
    for send in cases {
        let (mut c, _, fin) = scram_start(&broker, SHA256, USER, PASSWORD, &client_id(), None);
        c.send(&send(&fin));
        refused(&mut c, 0x82);
    }
    // DISCONNECT is allowed: the broker just closes.
    let (mut c, _, _) = scram_start(&broker, SHA256, USER, PASSWORD, &client_id(), None);
    c.send(&DISCONNECT_BYTES);
    c.expect_closed_silently(WAIT);
}

/// Re-authenticates on `c`; returns the server's answer to the client-final.
fn reauth(c: &mut Client, password: &str) -> (RawPacket, Scram) {
    let mut scram = Scram::new(SHA256, USER, password);
    c.send(&auth_packet(REAUTH, SHA256, Some(&scram.first())));
    let (reason, props) = auth_of(&c.read());
    assert_eq!(reason, CONTINUE, "[MQTT5-4.12.0-2]");
    assert_eq!(prop(&props, METHOD).as_deref(), Some(SHA256.as_bytes()));
    let fin = scram.finish(&prop(&props, DATA).unwrap());
    // Other packets keep flowing during re-authentication (4.12.1).
    c.ping();
    c.send(&auth_packet(CONTINUE, SHA256, Some(&fin)));
    (c.read(), scram)
}

// [MQTT5-4.12.1-1] AUTH 0x19 with the CONNECT's method re-authenticates: AUTH
// 0x18, then AUTH 0x00 with the server-final; traffic continues meanwhile
// and after. [MQTT5-4.12.1-2] a failed one: DISCONNECT 0x87, close.
#[test]
fn reauthentication_success_then_failure() {
    let Some(broker) = broker(false) else { return };
    let mut c = scram_login(&broker, SHA256, &client_id(), None);
    for _ in 0..2 {
        let (answer, scram) = reauth(&mut c, PASSWORD);
        let (reason, props) = auth_of(&answer);
        assert_eq!(reason, 0x00, "AUTH Success");
        assert_eq!(prop(&props, METHOD).as_deref(), Some(SHA256.as_bytes()));
        assert!(scram.verifies(&prop(&props, DATA).unwrap()));
        c.ping();
    }
    let (answer, _) = reauth(&mut c, "guess");
    assert_eq!(
        (answer.kind(), answer.body.first()),
        (DISCONNECT, Some(&0x87)),
        "DISCONNECT 0x87: {answer:?}"
    );
    c.expect_closed_silently(WAIT);

    // Another method in AUTH 0x19: protocol error.
    let mut c = scram_login(&broker, SHA256, &client_id(), None);
    c.send(&auth_packet(REAUTH, SHA512, Some(b"n,,n=alice,r=x")));
    c.expect_disconnect(0x82);
    c.expect_closed_silently(WAIT);
}

// [MQTT5-4.12.0-7] AUTH from a client that used no Authentication Method:
// DISCONNECT 0x82 and close. [MQTT5-4.12.0-6] its CONNACK has no method.
#[test]
fn auth_without_enhanced_authentication_is_a_protocol_error() {
    let Some(broker) = broker(false) else { return };
    let mut c = Client::tcp(broker.addr);
    c.version = V5;
    c.send(&connect_v5(
        &client_id(),
        None,
        None,
        Some((USER, PASSWORD)),
        None,
    ));
    let (code, props) = connack_of(&c.read());
    assert_eq!(code, 0);
    assert_eq!(prop(&props, METHOD), None);
    assert_eq!(prop(&props, DATA), None);
    c.send(&auth_packet(REAUTH, SHA256, Some(b"n,,n=alice,r=x")));
    c.expect_disconnect(0x82);
    c.expect_closed_silently(WAIT);
}

/// A v3.1.1 client logged in as alice.
fn v311_login(broker: &Broker) -> Client {
    let mut connect = Connect::v311(&client_id());
    connect.username = Some(USER.into());
    connect.password = Some(PASSWORD.as_bytes().to_vec());
    Client::accepted(broker.addr, &connect).0
}

// User name and password in CONNECT at every level: right → 0; wrong,
// unknown or missing password → v5 0x86 / v3 return code 4. [MQTT5-3.1.4-2]
// [MQTT5-3.1.3-12] [MQTT5-3.2.2-6] [MQTT5-3.2.2-7] [MQTT-3.2.2-4] [MQTT-3.2.2-5]
#[test]
fn user_name_and_password_at_every_level() {
    let Some(broker) = broker(true) else { return };
    for version in [V31, V311, V5] {
        let bad_code = if version == V5 { 0x86 } else { 4 };
        for (user, password, code) in [
            (USER, Some(PASSWORD), 0),
            (USER, Some("wonderlan"), bad_code),
            ("mallory", Some(PASSWORD), bad_code),
            (USER, None, bad_code),
        ] {
            let mut connect = Connect::new(version, &client_id());
            connect.username = Some(user.into());
            connect.password = password.map(|p| p.as_bytes().to_vec());
            let (mut c, connack) = Client::connect(broker.addr, &connect);
            assert_eq!(
                connack.connack_code(),
                code,
                "v{version} {user} {password:?}"
            );
            if code == 0 {
                c.ping();
            } else {
                assert!(!connack.session_present());
                c.expect_closed_silently(WAIT);
            }
        }
        // Anonymous is allowed on this broker.
        let (mut c, _) = Client::accepted(broker.addr, &Connect::new(version, &client_id()));
        c.ping();
    }
}

// allow_anonymous = false: no user name → v5 0x87 / v3 return code 5; a
// logged-in client still connects. [MQTT5-3.1.4-2] [MQTT-3.2.2-5]
#[test]
fn anonymous_clients_are_refused_when_not_allowed() {
    let Some(broker) = broker(false) else { return };
    for (version, code) in [(V31, 5), (V311, 5), (V5, 0x87)] {
        let (mut c, connack) = Client::connect(broker.addr, &Connect::new(version, &client_id()));
        assert_eq!(connack.connack_code(), code, "v{version}");
        c.expect_closed_silently(WAIT);
    }
    v311_login(&broker).ping();
}

// A refused CONNECT touches no session: the connected client with the same
// id is not taken over, and what the refused client sent after its CONNECT
// is not processed. [MQTT-3.1.4-5] [MQTT5-3.1.4-6]
#[test]
fn refused_connect_touches_no_session() {
    let Some(broker) = broker(false) else { return };
    let id = client_id();
    let t = topic("auth-refused");
    let mut connect = Connect::v311(&id);
    connect.username = Some(USER.into());
    connect.password = Some(PASSWORD.as_bytes().to_vec());
    let (mut owner, _) = Client::accepted(broker.addr, &connect);
    owner.sub(&t, 0);

    let mut intruder = Client::tcp(broker.addr);
    let mut bad = connect.clone();
    bad.password = Some(b"guess".to_vec());
    let mut bytes = bad.bytes();
    bytes.extend(Message::new(&t, "sneaky").encode(V311));
    intruder.send(&bytes);
    assert_eq!(intruder.read().bytes(), connack_v3(false, 4));
    intruder.expect_closed_silently(WAIT);

    owner.expect_nothing(QUIET);
    owner.ping();
}
