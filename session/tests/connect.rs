//! CONNECT / CONNACK scenarios: client identifier rules, session present,
//! v5 CONNACK properties, keep-alive cap, second CONNECT, PINGREQ.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use tern_codec::*;
use tern_session::*;

fn check(c: &Connect) -> Result<ConnectCheck, ReasonCode> {
    Connection::check_connect(c, &SessionConfig::default())
}

// MQTT 3.1: client identifier 1..=23 bytes, else return code 2 (0x85).
#[test]
fn v31_client_id_must_be_1_to_23_bytes() {
    let ok = connect(ProtocolVersion::V31, &"a".repeat(23), true);
    assert_eq!(check(&ok), Ok(ConnectCheck::default()));
    let long = connect(ProtocolVersion::V31, &"a".repeat(24), true);
    assert_eq!(check(&long), Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
    let empty = connect(ProtocolVersion::V31, "", true);
    assert_eq!(check(&empty), Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
}

// [MQTT-3.1.3-8] v3.1.1 empty client id with CleanSession=0 is rejected.
#[test]
fn v311_empty_id_without_clean_session_is_rejected_mqtt_3_1_3_8() {
    assert_eq!(
        check(&v311("", false)),
        Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
    );
    let rej = reject_connack(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(!rej.session_present);
    assert_eq!(rej.code, ReasonCode(0x85));
}

// [MQTT-3.1.3-6] v3.1.1 empty id with CleanSession=1: the server assigns one
// (not sent to a v3 client).
#[test]
fn v311_empty_id_with_clean_session_gets_an_id_mqtt_3_1_3_6() {
    let c = v311("", true);
    let chk = check(&c).unwrap();
    let assigned = chk.assigned_client_id.clone().expect("assigned");
    assert!(!assigned.is_empty());
    let conn = Connection::new(t0(), c, None, chk, SessionConfig::default());
    assert_eq!(conn.client_id(), &assigned);
    let mut conn = conn;
    let Some(Transmit::Packet(Packet::ConnAck(ack))) = conn.poll_transmit() else {
        panic!()
    };
    assert_eq!(
        ack.properties,
        ConnAckProperties::default(),
        "no v5 properties for v3"
    );
}

// [MQTT5-3.2.2-16] [MQTT5-3.1.3-6] [MQTT5-3.1.3-7] v5 empty id: CONNACK carries
// the Assigned Client Identifier.
#[test]
fn v5_empty_id_is_assigned_and_returned_in_connack_mqtt_3_2_2_16() {
    let (conn, ack) = open(v5("", true, None), None, SessionConfig::default());
    let assigned = ack
        .properties
        .assigned_client_identifier
        .expect("assigned id in CONNACK");
    assert_eq!(conn.client_id(), &assigned);
    let (conn2, _) = open(v5("", true, None), None, SessionConfig::default());
    assert_ne!(conn2.client_id(), &assigned, "assigned ids are unique");
    let (_, ack) = open(v5("named", true, None), None, SessionConfig::default());
    assert_eq!(ack.properties.assigned_client_identifier, None);
}

#[test]
fn v5_connack_advertises_capabilities() {
    let cfg = SessionConfig {
        max_incoming_inflight: 10,
        ..Default::default()
    };
    let (_, ack) = open(v5("c", true, None), None, cfg);
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    let p = ack.properties;
    assert_eq!(p.receive_maximum, Some(10));
    assert_eq!(p.retain_available, Some(true));
    assert_eq!(p.maximum_qos, None, "QoS 2 supported");
    assert_eq!(p.wildcard_subscription_available, Some(true));
    assert_eq!(p.subscription_identifiers_available, Some(true));
    assert_eq!(p.shared_subscription_available, Some(true));
    assert_eq!(p.topic_alias_maximum, Some(16), "the default maximum");
}

#[test]
fn v5_receive_maximum_zero_and_auth_method_are_refused() {
    let mut c = v5("c", true, None);
    c.properties.receive_maximum = Some(0);
    assert_eq!(check(&c), Err(ReasonCode::PROTOCOL_ERROR));
    let mut c = v5("c", true, None);
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    assert_eq!(check(&c), Err(ReasonCode::BAD_AUTHENTICATION_METHOD));
}

// [MQTT5-3.2.2-21] [MQTT5-3.2.2-22] [MQTT5-3.1.2-22] v5: a keep-alive above the
// cap yields Server Keep Alive, which is enforced; within the cap the client's own.
#[test]
fn v5_keep_alive_is_capped_with_server_keep_alive_mqtt_3_2_2_21() {
    let cfg = SessionConfig {
        max_keep_alive: 60,
        ..Default::default()
    };
    let mut c = v5("c", true, None);
    c.keep_alive = 600;
    let (conn, ack) = open(c, None, cfg.clone());
    assert_eq!(ack.properties.server_keep_alive, Some(60));
    assert_eq!(conn.keep_alive(), 60);
    assert_eq!(conn.poll_timeout(), Some(at_ms(90_000)));

    let mut c = v5("c", true, None);
    c.keep_alive = 30;
    let (conn, ack) = open(c, None, cfg.clone());
    assert_eq!(ack.properties.server_keep_alive, None, "within the cap");
    assert_eq!(conn.keep_alive(), 30);

    let (conn, ack) = open(v5("c", true, None), None, cfg.clone());
    assert_eq!(
        ack.properties.server_keep_alive,
        Some(60),
        "0 = none is capped too"
    );
    assert_eq!(conn.keep_alive(), 60);

    let mut c = v311("c", true);
    c.keep_alive = 600;
    let (conn, _) = open(c, None, cfg);
    assert_eq!(
        conn.keep_alive(),
        600,
        "v3 cannot be told a Server Keep Alive"
    );
}

// [MQTT-3.2.2-1] CleanSession=1: session present 0, stored session discarded.
#[test]
fn clean_start_discards_existing_session_mqtt_3_2_2_1() {
    let mut old = Session::new("c".into(), true);
    old.enqueue(
        t0(),
        &Offer::new(&msg("t", b"x"), t0(), QoS::AtLeastOnce),
        &SessionConfig::default(),
    );
    let (mut conn, ack) = open(v311("c", true), Some(old), SessionConfig::default());
    assert!(!ack.session_present);
    assert_eq!(conn.session().queued_len(), 0);
    assert!(
        drain(&mut conn).is_empty(),
        "nothing re-sent from a discarded session"
    );
}

// [MQTT-3.2.2-3] CleanSession=0 with stored state: session present 1.
#[test]
fn resuming_a_persistent_session_sets_session_present_mqtt_3_2_2_3() {
    let old = Session::new("c".into(), true);
    let (_, ack) = open(v311("c", false), Some(old), SessionConfig::default());
    assert!(ack.session_present);
    let (_, ack) = open(v311("c", false), None, SessionConfig::default());
    assert!(!ack.session_present, "no stored session");
    let transient = Session::new("c".into(), false);
    let (_, ack) = open(v311("c", false), Some(transient), SessionConfig::default());
    assert!(
        !ack.session_present,
        "a non-persistent session ended with its connection"
    );
}

// [MQTT-3.1.0-2] [MQTT5-3.1.0-2] a second CONNECT is a protocol violation: close
// (v5 DISCONNECT 0x82).
#[test]
fn second_connect_closes_mqtt_3_1_0_2() {
    let mut conn = open_v311("c");
    let err = conn.handle_packet(at_ms(1), Packet::Connect(Box::new(v311("c", true))));
    assert_eq!(err, Err(ProtocolError::SecondConnect));
    assert!(
        drain(&mut conn).is_empty(),
        "v3: no DISCONNECT from the server"
    );
    assert_eq!(
        close_event(&mut conn),
        Some(CloseReason::ProtocolError(ReasonCode::PROTOCOL_ERROR))
    );

    let mut conn = open_v5("c");
    assert!(conn
        .handle_packet(at_ms(1), Packet::Connect(Box::new(v5("c", true, None))))
        .is_err());
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    assert!(conn.is_closing());
    // Nothing is processed after the close.
    assert_eq!(conn.handle_packet(at_ms(2), Packet::PingReq), Ok(()));
    assert!(drain(&mut conn).is_empty());
}

#[test]
fn pingreq_gets_pingresp() {
    let mut conn = open_v311("c");
    conn.handle_packet(at_ms(5), Packet::PingReq).unwrap();
    assert_eq!(out(&mut conn), vec![ctl("PINGRESP", None)]);
    assert_eq!(conn.stats().pings, 1);
}

// Server-to-client packet types from a client are protocol errors.
#[test]
fn server_only_packets_from_client_close_the_connection() {
    for p in [Packet::PingResp, Packet::ConnAck(ConnAck::default())] {
        let mut conn = open_v5("c");
        assert!(matches!(
            conn.handle_packet(at_ms(1), p),
            Err(ProtocolError::UnexpectedPacket(_))
        ));
        assert_eq!(
            disconnect_code(&drain(&mut conn)),
            Some(ReasonCode::PROTOCOL_ERROR)
        );
    }
}

// [MQTT5-4.12.0-7] AUTH without an Authentication Method in CONNECT.
#[test]
fn auth_without_method_is_a_protocol_error_mqtt_4_12_0_7() {
    let mut conn = open_v5("c");
    let r = conn.handle_packet(at_ms(1), Packet::Auth(Auth::default()));
    assert_eq!(r, Err(ProtocolError::UnexpectedAuth));
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
}

// [MQTT5-3.1.2-23] the session is kept after the close only with an expiry > 0.
#[test]
fn v5_session_expiry_decides_persistence_mqtt_3_1_2_23() {
    let (conn, _) = open(v5("c", false, None), None, SessionConfig::default());
    assert!(!conn.session().is_persistent(), "absent = 0");
    let (conn, _) = open(v5("c", false, Some(0)), None, SessionConfig::default());
    assert!(conn
        .handle_close(at_ms(1), CloseReason::NetworkError)
        .session
        .is_none());
    let (conn, _) = open(v5("c", false, Some(300)), None, SessionConfig::default());
    assert_eq!(conn.session().expiry_interval(), 300);
    let closed = conn.handle_close(at_ms(1), CloseReason::NetworkError);
    assert_eq!(closed.session.map(|s| s.expiry_interval()), Some(300));
}
