//! Inbound v5 Topic Alias (3.3.2.3.4, 3.3.4 PUBLISH Actions): the session
//! resolves aliases so the broker always routes a full topic name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::num::NonZeroU16;
use tern_codec::*;
use tern_session::*;

/// A PUBLISH from the client with a Topic Alias (empty `topic` = use the alias).
fn aliased(qos: QoS, id: Option<u16>, topic: &str, alias: u16) -> Packet {
    let Packet::Publish(mut p) = publish(qos, id, topic) else {
        unreachable!()
    };
    p.properties.topic_alias = NonZeroU16::new(alias);
    Packet::Publish(p)
}

/// Topics of the routed PUBLISH events; each must have lost its alias property.
fn routed_topics(conn: &mut Connection) -> Vec<String> {
    events(conn)
        .into_iter()
        .filter_map(|e| match e {
            Event::Publish(p) => {
                assert_eq!(p.properties.topic_alias, None, "alias stripped");
                Some(p.topic.to_string())
            }
            _ => None,
        })
        .collect()
}

fn cfg(max: u16) -> SessionConfig {
    SessionConfig {
        topic_alias_maximum: max,
        ..Default::default()
    }
}

// [MQTT5-3.2.2-17] the CONNACK tells a v5 client the highest alias accepted.
#[test]
fn connack_advertises_topic_alias_maximum_mqtt_3_2_2_17() {
    let (_, ack) = open(v5("c", true, None), None, cfg(5));
    assert_eq!(ack.properties.topic_alias_maximum, Some(5));
    let (_, ack) = open(v5("c", true, None), None, cfg(0));
    assert_eq!(ack.properties.topic_alias_maximum, None, "0 = absent");
    let (_, ack) = open(v311("c", true), None, cfg(5));
    assert_eq!(
        ack.properties,
        ConnAckProperties::default(),
        "v3: no properties"
    );
}

// [MQTT5-3.3.2-12] the server accepts every alias in 1..=maximum: a topic and
// an alias set the mapping, an empty topic with the alias uses it.
#[test]
fn alias_set_then_used_fills_in_the_topic_mqtt_3_3_2_12() {
    let (mut conn, _) = open(v5("c", true, None), None, cfg(5));
    conn.handle_packet(at_ms(1), aliased(QoS::AtMostOnce, None, "a/b", 5))
        .unwrap();
    conn.handle_packet(at_ms(2), aliased(QoS::AtLeastOnce, Some(1), "", 5))
        .unwrap();
    conn.complete_publish(QoS::AtLeastOnce, Some(pid(1)), PublishOutcome::Routed);
    assert_eq!(routed_topics(&mut conn), vec!["a/b", "a/b"]);
    assert_eq!(out(&mut conn), vec![ctl("PUBACK", Some(1))]);
    assert!(!conn.is_closing());
}

// 3.3.4 PUBLISH Actions 2b: a new topic with a known alias replaces the mapping.
#[test]
fn alias_mapping_is_replaced_by_a_new_topic() {
    let mut conn = open_v5("c");
    for (topic, expect) in [("x", "x"), ("", "x"), ("y", "y"), ("", "y")] {
        conn.handle_packet(at_ms(1), aliased(QoS::AtMostOnce, None, topic, 1))
            .unwrap();
        assert_eq!(routed_topics(&mut conn), vec![expect], "after {topic:?}");
    }
    // Aliases are independent of each other.
    conn.handle_packet(at_ms(2), aliased(QoS::AtMostOnce, None, "z", 2))
        .unwrap();
    conn.handle_packet(at_ms(2), aliased(QoS::AtMostOnce, None, "", 1))
        .unwrap();
    assert_eq!(routed_topics(&mut conn), vec!["z", "y"]);
}

// [MQTT5-3.3.2-9] / 3.3.4 Actions 1: an alias above the maximum is 0x94.
#[test]
fn alias_above_maximum_is_topic_alias_invalid_mqtt_3_3_2_9() {
    let (mut conn, _) = open(v5("c", true, None), None, cfg(3));
    conn.handle_packet(at_ms(1), aliased(QoS::AtMostOnce, None, "t", 3))
        .unwrap();
    assert_eq!(
        routed_topics(&mut conn),
        vec!["t"],
        "the maximum itself is fine"
    );
    assert_eq!(
        conn.handle_packet(at_ms(2), aliased(QoS::AtLeastOnce, Some(1), "t", 4)),
        Err(ProtocolError::TopicAliasInvalid(4))
    );
    let ts = drain(&mut conn);
    assert_eq!(disconnect_code(&ts), Some(ReasonCode::TOPIC_ALIAS_INVALID));
    assert_eq!(ts.len(), 1, "no PUBACK for the refused PUBLISH");
    assert_eq!(
        close_event(&mut conn),
        Some(CloseReason::ProtocolError(ReasonCode(0x94)))
    );
}

// 3.3.4 Actions 3a: an empty topic with an alias never mapped is 0x82.
#[test]
fn empty_topic_with_unknown_alias_is_a_protocol_error() {
    let mut conn = open_v5("c");
    conn.handle_packet(at_ms(1), aliased(QoS::AtMostOnce, None, "t", 1))
        .unwrap();
    routed_topics(&mut conn);
    assert_eq!(
        conn.handle_packet(at_ms(2), aliased(QoS::AtMostOnce, None, "", 2)),
        Err(ProtocolError::TopicAliasUnknown(2))
    );
    assert_eq!(
        disconnect_code(&drain(&mut conn)),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    assert!(routed_topics(&mut conn).is_empty());
}

// A QoS 2 re-send may use the alias; it is acknowledged, not routed twice.
#[test]
fn qos2_duplicate_with_alias_is_not_routed_twice() {
    let mut conn = open_v5("c");
    conn.handle_packet(at_ms(1), aliased(QoS::ExactlyOnce, Some(7), "q", 1))
        .unwrap();
    conn.complete_publish(QoS::ExactlyOnce, Some(pid(7)), PublishOutcome::Routed);
    conn.handle_packet(at_ms(2), aliased(QoS::ExactlyOnce, Some(7), "", 1))
        .unwrap();
    assert_eq!(routed_topics(&mut conn), vec!["q"]);
    assert_eq!(
        out(&mut conn),
        vec![ctl("PUBREC", Some(7)), ctl("PUBREC", Some(7))]
    );
}

// [MQTT5-3.3.2-7] mappings end with the network connection, even when the
// session is resumed.
#[test]
fn alias_mappings_do_not_survive_reconnect_mqtt_3_3_2_7() {
    let (mut conn, _) = open(v5("c", false, Some(60)), None, SessionConfig::default());
    conn.handle_packet(at_ms(1), aliased(QoS::AtMostOnce, None, "kept?", 1))
        .unwrap();
    let session = conn
        .handle_close(at_ms(2), CloseReason::NetworkError)
        .session
        .expect("persistent");
    let (mut conn, ack) = open(
        v5("c", false, Some(60)),
        Some(session),
        SessionConfig::default(),
    );
    assert!(ack.session_present);
    assert_eq!(
        conn.handle_packet(at_ms(3), aliased(QoS::AtMostOnce, None, "", 1)),
        Err(ProtocolError::TopicAliasUnknown(1))
    );
    assert!(routed_topics(&mut conn).is_empty());
}
