//! Authentication policy, user table, CONNECT-time exchange and
//! re-authentication on a [`Connection`], in memory.

use super::scram::tests::TestClient;
use super::*;
use crate::{CloseReason, Connection, Event, ProtocolError, SessionConfig, Transmit};
use bytes::Bytes;
use bytestring::ByteString;
use std::time::Instant;
use tern_codec::{
    Auth, AuthProperties, ConnAck, ConnectProperties, Packet, ProtocolVersion, Publish, QoS,
};

const SHA256: &str = "SCRAM-SHA-256";

fn table() -> Arc<UserTable> {
    // Few PBKDF2 rounds: the table accepts any count (the config enforces >= 4096).
    Arc::new(UserTable::new([("alice", "wonderland"), ("bob", "builder")], 64).unwrap())
}

fn cfg(allow_anonymous: bool, store: Option<Arc<UserTable>>) -> SessionConfig {
    SessionConfig {
        auth: AuthPolicy {
            allow_anonymous,
            store: store.map(|s| s as Arc<dyn CredentialStore>),
        },
        ..SessionConfig::default()
    }
}

fn connect(protocol: ProtocolVersion, user: Option<&str>, password: Option<&str>) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 0,
        client_id: ByteString::from("c"),
        will: None,
        username: user.map(ByteString::from),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties::default(),
    }
}

fn scram_connect(method: &str, client_first: Option<String>) -> Connect {
    let mut c = connect(ProtocolVersion::V5, None, None);
    c.properties.authentication_method = Some(ByteString::from(method));
    c.properties.authentication_data = client_first.map(Bytes::from);
    c
}

fn auth(reason: ReasonCode, method: &str, data: Option<String>) -> Auth {
    Auth {
        reason,
        properties: AuthProperties {
            authentication_method: Some(ByteString::from(method)),
            authentication_data: data.map(Bytes::from),
            ..AuthProperties::default()
        },
    }
}

fn data_of(a: &Auth) -> String {
    String::from_utf8(a.properties.authentication_data.clone().unwrap().to_vec()).unwrap()
}

fn check(c: &Connect, cfg: &SessionConfig) -> Result<(), ReasonCode> {
    Connection::check_connect(c, cfg).map(drop)
}

// [MQTT5-3.1.4-2] user name / password checks; 0x86 maps to v3 return code 4
// and 0x87 to 5 in the codec. [MQTT5-3.1.3-12] the User Name is used for authentication.
#[test]
fn connect_user_name_and_password_policy() {
    let strict = cfg(false, Some(table()));
    let open = cfg(true, Some(table()));
    let no_store = cfg(false, None);
    let bad = Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
    for v in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        let c = |u, p| connect(v, u, p);
        assert_eq!(
            check(&c(Some("alice"), Some("wonderland")), &strict),
            Ok(())
        );
        assert_eq!(check(&c(Some("alice"), Some("wonderlanD")), &strict), bad);
        assert_eq!(check(&c(Some("alice"), None), &strict), bad);
        assert_eq!(check(&c(Some("carol"), Some("wonderland")), &strict), bad);
        assert_eq!(check(&c(Some("bob"), Some("wonderland")), &strict), bad);
        assert_eq!(
            check(&c(None, None), &strict),
            Err(ReasonCode::NOT_AUTHORIZED)
        );
        // Anonymous allowed: no user name passes, a given one is still checked.
        assert_eq!(check(&c(None, None), &open), Ok(()));
        assert_eq!(check(&c(Some("alice"), Some("nope")), &open), bad);
        assert_eq!(check(&c(Some("bob"), Some("builder")), &open), Ok(()));
        // No users configured: nobody can prove a user name.
        assert_eq!(check(&c(Some("alice"), Some("wonderland")), &no_store), bad);
        assert_eq!(
            check(&c(None, None), &no_store),
            Err(ReasonCode::NOT_AUTHORIZED)
        );
        // The default broker accepts everything, user names unchecked.
        let default = SessionConfig::default();
        assert_eq!(check(&c(Some("x"), Some("y")), &default), Ok(()));
    }
    // A client-id refusal still comes first.
    let mut c = connect(ProtocolVersion::V31, Some("alice"), Some("wonderland"));
    c.client_id = ByteString::from("");
    assert_eq!(
        check(&c, &strict),
        Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
    );
}

// [MQTT5-4.12.0-1] an unsupported Authentication Method is refused with 0x8C;
// a supported one passes check_connect (the exchange decides).
#[test]
fn authentication_method_support() {
    let with_store = cfg(false, Some(table()));
    let bad = Err(ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert_eq!(check(&scram_connect(SHA256, None), &with_store), Ok(()));
    assert_eq!(
        check(&scram_connect("SCRAM-SHA-512", None), &with_store),
        Ok(())
    );
    assert_eq!(check(&scram_connect("PLAIN", None), &with_store), bad);
    assert_eq!(
        check(&scram_connect("scram-sha-256", None), &with_store),
        bad
    );
    assert_eq!(
        check(&scram_connect(SHA256, None), &SessionConfig::default()),
        bad
    );
    assert!(
        AuthExchange::for_connect(&connect(ProtocolVersion::V5, None, None), &with_store).is_none()
    );
    let err = AuthExchange::for_connect(&scram_connect("PLAIN", None), &with_store)
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::BAD_AUTHENTICATION_METHOD);
}

#[test]
fn user_table_checks_and_hides_passwords() {
    let t = table();
    assert_eq!(t.len(), 2);
    assert!(t.check_password("alice", b"wonderland"));
    assert!(!t.check_password("alice", b"wonderlan"));
    assert!(!t.check_password("alice", b""));
    assert!(!t.check_password("mallory", b"wonderland"));
    for mech in ScramMechanism::ALL {
        let a = t.scram("alice", mech).unwrap();
        let b = t.scram("bob", mech).unwrap();
        assert_eq!(a.iterations, 64);
        assert_ne!(a.salt, b.salt, "a random salt per user");
        assert!(t.scram("mallory", mech).is_none());
    }
    assert_eq!(t.scram_iterations(), 64);
    let same = UserTable::new([("alice", "wonderland")], 64).unwrap();
    assert_ne!(
        same.scram("alice", ScramMechanism::Sha256)
            .unwrap()
            .stored_key,
        t.scram("alice", ScramMechanism::Sha256).unwrap().stored_key,
        "salted: one password, different stored keys"
    );
    let shown = format!("{t:?} {:?}", cfg(true, Some(t.clone())));
    assert!(
        !shown.contains("alice") && !shown.contains("wonderland"),
        "{shown}"
    );
    assert!(UserTable::new(Vec::<(String, String)>::new(), 4096)
        .unwrap()
        .is_empty());
}

#[test]
fn policies_compare_by_store_identity() {
    let t = table();
    assert_eq!(cfg(true, Some(t.clone())), cfg(true, Some(t.clone())));
    assert_ne!(cfg(true, Some(t.clone())), cfg(true, Some(table())));
    assert_ne!(cfg(true, Some(t)), cfg(true, None));
    assert_ne!(cfg(true, None), cfg(false, None));
    assert_eq!(SessionConfig::default(), cfg(true, None));
}

/// Runs the CONNECT-time exchange as the broker does and opens the connection.
fn scram_open(
    cfg: &SessionConfig,
    user: &str,
    password: &str,
) -> (Connection, ConnAck, TestClient) {
    let mut client = TestClient::new(ScramMechanism::Sha256, user, password, "clientnonce");
    let c = scram_connect(SHA256, Some(client.client_first()));
    let mut check = Connection::check_connect(&c, cfg).unwrap();
    let (exchange, challenge) = AuthExchange::for_connect(&c, cfg).unwrap().unwrap();
    assert_eq!(challenge.reason, ReasonCode::CONTINUE_AUTHENTICATION);
    assert_eq!(
        challenge.properties.authentication_method.as_deref(),
        Some(SHA256)
    );
    let fin = client.client_final(&data_of(&challenge));
    let done = exchange
        .handle_packet(Packet::Auth(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            SHA256,
            Some(fin),
        )))
        .unwrap();
    assert_eq!(done.user, "alice");
    check.authenticated = Some(done);
    let mut conn = Connection::new(Instant::now(), c, None, check, cfg.clone());
    let Some(Transmit::Packet(Packet::ConnAck(ack))) = conn.poll_transmit() else {
        panic!("CONNACK first");
    };
    (conn, ack, client)
}

// [MQTT5-4.12.0-2] the server continues with AUTH 0x18; [MQTT5-4.12.0-5] every
// AUTH and the successful CONNACK carry the CONNECT's method; the CONNACK
// carries the server-final data; [MQTT5-3.15.2-1] Authenticate Reason Codes only.
#[test]
fn connect_exchange_success_connack_carries_method_and_data() {
    let cfg = cfg(false, Some(table()));
    let (_, ack, client) = scram_open(&cfg, "alice", "wonderland");
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(SHA256)
    );
    let data = ack.properties.authentication_data.unwrap();
    assert!(client.verifies(&data), "server-final verifies");
}

// [MQTT5-4.12.0-6] no Authentication Method in CONNECT: none in CONNACK.
#[test]
fn plain_connect_gets_no_auth_properties() {
    let cfg = cfg(false, Some(table()));
    let c = connect(ProtocolVersion::V5, Some("alice"), Some("wonderland"));
    let check = Connection::check_connect(&c, &cfg).unwrap();
    let mut conn = Connection::new(Instant::now(), c, None, check, cfg);
    let Some(Transmit::Packet(Packet::ConnAck(ack))) = conn.poll_transmit() else {
        panic!("CONNACK first");
    };
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
}

// [MQTT5-4.12.0-4] a failed exchange is refused with a code >= 0x80;
// [MQTT5-3.1.2-30] only AUTH (or DISCONNECT) before CONNACK;
// [MQTT5-4.12.0-3] the client continues with AUTH 0x18;
// [MQTT5-4.12.0-5] with the same method.
#[test]
fn connect_exchange_failures() {
    let cfg = cfg(false, Some(table()));
    let run = |user: &str, password: &str, answer: &dyn Fn(String) -> Packet| {
        let mut client = TestClient::new(ScramMechanism::Sha256, user, password, "cn");
        let c = scram_connect(SHA256, Some(client.client_first()));
        let (exchange, challenge) = AuthExchange::for_connect(&c, &cfg).unwrap().unwrap();
        let fin = client.client_final(&data_of(&challenge));
        exchange
            .handle_packet(answer(fin))
            .unwrap_err()
            .reason_code()
    };
    let proper = |fin| Packet::Auth(auth(ReasonCode::CONTINUE_AUTHENTICATION, SHA256, Some(fin)));
    assert_eq!(run("alice", "wrong", &proper), ReasonCode::NOT_AUTHORIZED);
    assert_eq!(
        run("mallory", "wonderland", &proper),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        run("alice", "wonderland", &|_| Packet::PingReq),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(
        run("alice", "wonderland", &|fin| {
            Packet::Auth(auth(
                ReasonCode::CONTINUE_AUTHENTICATION,
                "SCRAM-SHA-512",
                Some(fin),
            ))
        }),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(
        run("alice", "wonderland", &|fin| {
            Packet::Auth(auth(ReasonCode::RE_AUTHENTICATE, SHA256, Some(fin)))
        }),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(
        run("alice", "wonderland", &|_| {
            Packet::Auth(auth(ReasonCode::CONTINUE_AUTHENTICATION, SHA256, None))
        }),
        ReasonCode::NOT_AUTHORIZED
    );
    // An unknown user is shown the table's iteration count, like a known one.
    for user in ["alice", "mallory"] {
        let client = TestClient::new(ScramMechanism::Sha256, user, "x", "cn");
        let c = scram_connect(SHA256, Some(client.client_first()));
        let (_, challenge) = AuthExchange::for_connect(&c, &cfg).unwrap().unwrap();
        assert!(data_of(&challenge).ends_with(",i=64"), "{user}");
    }
    // No client-first in CONNECT, or a malformed one.
    for first in [None, Some("garbage".to_owned())] {
        let err = AuthExchange::for_connect(&scram_connect(SHA256, first), &cfg)
            .unwrap()
            .unwrap_err();
        assert_eq!(err.reason_code(), ReasonCode::NOT_AUTHORIZED);
        assert!(err.to_string().starts_with("[MQTT-4.12.0-4]"), "{err}");
    }
}

fn drain(conn: &mut Connection) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some(t) = conn.poll_transmit() {
        match t {
            Transmit::Packet(p) => out.push(p),
            Transmit::Publish(_) => {}
        }
    }
    out
}

fn reauth_start(conn: &mut Connection, client: &TestClient) -> Auth {
    conn.handle_packet(
        Instant::now(),
        Packet::Auth(auth(
            ReasonCode::RE_AUTHENTICATE,
            SHA256,
            Some(client.client_first()),
        )),
    )
    .unwrap();
    match drain(conn).as_slice() {
        [Packet::Auth(a)] => a.clone(),
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
}

// [MQTT5-4.12.1-1] AUTH 0x19 with the same method re-authenticates; the server
// continues with AUTH 0x18 and completes with AUTH 0x00; other packets keep
// flowing meanwhile (4.12.1); it can be repeated.
#[test]
fn reauthentication_succeeds_while_packets_flow() {
    let cfg = cfg(false, Some(table()));
    let (mut conn, _, _) = scram_open(&cfg, "alice", "wonderland");
    for round in 0..2 {
        let mut client = TestClient::new(ScramMechanism::Sha256, "alice", "wonderland", "again");
        let challenge = reauth_start(&mut conn, &client);
        assert_eq!(challenge.reason, ReasonCode::CONTINUE_AUTHENTICATION);
        assert_eq!(
            challenge.properties.authentication_method.as_deref(),
            Some(SHA256)
        );
        // A PINGREQ in the middle is answered as usual.
        conn.handle_packet(Instant::now(), Packet::PingReq).unwrap();
        assert_eq!(drain(&mut conn), vec![Packet::PingResp], "round {round}");
        let fin = client.client_final(&data_of(&challenge));
        conn.handle_packet(
            Instant::now(),
            Packet::Auth(auth(ReasonCode::CONTINUE_AUTHENTICATION, SHA256, Some(fin))),
        )
        .unwrap();
        let out = drain(&mut conn);
        let [Packet::Auth(done)] = out.as_slice() else {
            panic!("expected AUTH 0x00, got {out:?}");
        };
        assert_eq!(done.reason, ReasonCode::SUCCESS);
        assert_eq!(
            done.properties.authentication_method.as_deref(),
            Some(SHA256)
        );
        assert!(client.verifies(done.properties.authentication_data.as_ref().unwrap()));
        assert!(!conn.is_closing());
    }
}

fn closed_with(conn: &mut Connection, code: ReasonCode) {
    let out = drain(conn);
    // The DISCONNECT may carry a Reason String ([MQTT5-3.1.2-29]).
    let [Packet::Disconnect(d)] = &out[..] else {
        panic!("expected one DISCONNECT, got {out:?}")
    };
    assert_eq!(d.reason, code);
    assert_eq!(
        conn.poll_event(),
        Some(Event::Close(CloseReason::ProtocolError(code)))
    );
}

// [MQTT5-4.12.1-2] a failed re-authentication: DISCONNECT 0x87 and close.
#[test]
fn reauthentication_with_wrong_password_disconnects() {
    let cfg = cfg(false, Some(table()));
    let (mut conn, _, _) = scram_open(&cfg, "alice", "wonderland");
    let mut client = TestClient::new(ScramMechanism::Sha256, "alice", "guess", "n2");
    let challenge = reauth_start(&mut conn, &client);
    let fin = client.client_final(&data_of(&challenge));
    let err = conn
        .handle_packet(
            Instant::now(),
            Packet::Auth(auth(ReasonCode::CONTINUE_AUTHENTICATION, SHA256, Some(fin))),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::AuthenticationFailed(ScramError::InvalidProof)
    );
    closed_with(&mut conn, ReasonCode::NOT_AUTHORIZED);
}

// [MQTT5-4.12.1-2] re-authentication may not change the user name (4.12.1
// non-normative comment): refused at once with DISCONNECT 0x87.
#[test]
fn reauthentication_as_another_user_disconnects() {
    let cfg = cfg(false, Some(table()));
    let (mut conn, _, _) = scram_open(&cfg, "alice", "wonderland");
    let client = TestClient::new(ScramMechanism::Sha256, "bob", "builder", "n3");
    let err = conn
        .handle_packet(
            Instant::now(),
            Packet::Auth(auth(
                ReasonCode::RE_AUTHENTICATE,
                SHA256,
                Some(client.client_first()),
            )),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::AuthenticationFailed(ScramError::UserChanged)
    );
    closed_with(&mut conn, ReasonCode::NOT_AUTHORIZED);
}

// [MQTT5-4.12.1-1] another method; [MQTT5-4.12.0-3] AUTH 0x18 without a
// challenge, AUTH 0x00 from the client, 0x19 while one is pending:
// protocol errors (DISCONNECT 0x82).
#[test]
fn reauthentication_protocol_errors() {
    let cfg = cfg(false, Some(table()));
    let client = TestClient::new(ScramMechanism::Sha256, "alice", "wonderland", "n4");
    let first = || Some(client.client_first());
    let cases: Vec<Vec<Auth>> = vec![
        vec![auth(ReasonCode::RE_AUTHENTICATE, "SCRAM-SHA-512", first())],
        vec![auth(ReasonCode::CONTINUE_AUTHENTICATION, SHA256, first())],
        vec![auth(ReasonCode::SUCCESS, SHA256, first())],
        vec![
            auth(ReasonCode::RE_AUTHENTICATE, SHA256, first()),
            auth(ReasonCode::RE_AUTHENTICATE, SHA256, first()),
        ],
        vec![Auth::default()],
    ];
    for packets in cases {
        let (mut conn, _, _) = scram_open(&cfg, "alice", "wonderland");
        let last = packets.len() - 1;
        for (i, a) in packets.into_iter().enumerate() {
            let r = conn.handle_packet(Instant::now(), Packet::Auth(a));
            if i < last {
                r.unwrap();
                drain(&mut conn);
            } else {
                assert_eq!(r.unwrap_err().reason_code(), ReasonCode::PROTOCOL_ERROR);
            }
        }
        closed_with(&mut conn, ReasonCode::PROTOCOL_ERROR);
    }
}

// [MQTT5-4.12.0-7] AUTH from a client that did not use enhanced authentication
// at CONNECT: DISCONNECT 0x82.
#[test]
fn auth_without_enhanced_authentication_is_a_protocol_error() {
    let cfg = cfg(true, Some(table()));
    let c = connect(ProtocolVersion::V5, Some("alice"), Some("wonderland"));
    let check = Connection::check_connect(&c, &cfg).unwrap();
    let mut conn = Connection::new(Instant::now(), c, None, check, cfg);
    drain(&mut conn);
    let err = conn
        .handle_packet(
            Instant::now(),
            Packet::Auth(auth(ReasonCode::RE_AUTHENTICATE, SHA256, None)),
        )
        .unwrap_err();
    assert_eq!(err, ProtocolError::UnexpectedAuth);
    closed_with(&mut conn, ReasonCode::PROTOCOL_ERROR);
    // Nothing more is handled once closing.
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: ByteString::from("t"),
        packet_id: None,
        properties: Default::default(),
        payload: Bytes::new(),
    };
    conn.handle_packet(Instant::now(), Packet::Publish(p))
        .unwrap();
    assert_eq!(conn.poll_event(), None);
}

// A user name a verified TLS client certificate gave stands without a
// password (Mosquitto's `use_identity_as_username`); the other CONNECT
// checks still apply.
#[test]
fn a_certified_user_name_needs_no_password() {
    let strict = cfg(false, Some(table()));
    let c = connect(ProtocolVersion::V311, Some("carol"), None);
    assert_eq!(
        check(&c, &strict),
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert!(Connection::check_connect_certified(&c, &strict).is_ok());
    let mut bad_id = connect(ProtocolVersion::V31, Some("carol"), None);
    bad_id.client_id = ByteString::from("");
    assert_eq!(
        Connection::check_connect_certified(&bad_id, &strict).map(drop),
        Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
    );
}
