//! MQTT protocol options: what the broker supports and announces to clients
//! (the `[mqtt]` table, `--<key>` flags, `TERN_<KEY>` variables).

use serde::Deserialize;

use crate::env::{self, Lookup};
use crate::limits::{at_most, settings};
use crate::ConfigError;

settings! {
    /// MQTT protocol options, the `[mqtt]` table of the config file. Each is
    /// also a `--<key>` flag and a `TERN_<KEY>` environment variable.
    Mqtt, MqttLayer;

    /// Highest QoS accepted in PUBLISH and granted in SUBACK (0..=2).
    ///
    /// Below 2 it is announced to v5 clients as Maximum QoS; a PUBLISH above
    /// it is a protocol error (DISCONNECT 0x9B), a will above it is refused.
    [value_name = "QOS"]
    max_qos: u8 = 2;

    /// Retained messages are supported.
    ///
    /// With false, v5 clients are told Retain Available 0, and a retained
    /// PUBLISH (DISCONNECT 0x9A) or retained will (CONNACK 0x9A) is refused.
    [value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true"]
    retain_available: bool = true;

    /// Highest Topic Alias a v5 client may use on its PUBLISH packets;
    /// 0 disables incoming aliases. Announced as Topic Alias Maximum.
    [value_name = "N"]
    topic_alias_maximum: u16 = 16;

    /// Most Topic Aliases the broker assigns on PUBLISH packets it sends to
    /// a v5 client (never more than the client's Topic Alias Maximum);
    /// 0 = the broker sends no aliases.
    [value_name = "N"]
    outbound_topic_alias_maximum: u16 = 16;

    /// Check that payloads marked as UTF-8 (Payload Format Indicator 1) are
    /// valid UTF-8.
    ///
    /// A bad one is answered with 0x99 (PUBACK/PUBREC, or DISCONNECT for
    /// QoS 0) and not delivered; a bad will payload refuses the CONNECT.
    [value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true"]
    validate_payload_format: bool = false;

    /// Response Information for v5 clients that ask for it: this prefix
    /// followed by the client id, a topic base for their responses; "" = none.
    [value_name = "PREFIX"]
    response_information: String = String::new();

    /// Redirect every client to another server ("host:port"); "" = serve.
    ///
    /// v5 clients get CONNACK 0x9C (Use another server), or 0x9D with
    /// server_moved, carrying this Server Reference; v3 clients get return
    /// code 3 (server unavailable).
    [value_name = "HOST:PORT"]
    server_reference: String = String::new();

    /// With server_reference: the move is permanent (0x9D Server moved)
    /// rather than temporary (0x9C Use another server).
    [value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true"]
    server_moved: bool = false;
}

impl Mqtt {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_most("mqtt.max_qos", self.max_qos, 2)?;
        if self.server_reference.chars().any(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                key: "mqtt.server_reference",
                reason: "must not contain spaces".into(),
            });
        }
        if self.server_moved && self.server_reference.is_empty() {
            return Err(ConfigError::Invalid {
                key: "mqtt.server_moved",
                reason: "needs mqtt.server_reference".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_checks_name_the_key() {
        Mqtt::default().validate().unwrap();
        let bad = Mqtt {
            max_qos: 3,
            ..Mqtt::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("mqtt.max_qos") && err.contains("at most 2"),
            "{err}"
        );
        let moved = Mqtt {
            server_moved: true,
            ..Mqtt::default()
        };
        let err = moved.validate().unwrap_err().to_string();
        assert!(err.contains("mqtt.server_moved"), "{err}");
    }

    #[test]
    fn layer_reads_the_environment() {
        let env = |k: &str| match k {
            "TERN_MAX_QOS" => Some("1".to_string()),
            "TERN_RETAIN_AVAILABLE" => Some("false".to_string()),
            "TERN_RESPONSE_INFORMATION" => Some("resp/".to_string()),
            _ => None,
        };
        let layer = MqttLayer::from_env(&env).unwrap();
        let mut m = Mqtt::default();
        layer.apply(&mut m);
        assert_eq!((m.max_qos, m.retain_available), (1, false));
        assert_eq!(m.response_information, "resp/");
        assert_eq!(m.topic_alias_maximum, 16);
        assert_eq!(
            MqttLayer::default().missing().len(),
            MqttLayer::KEYS.len(),
            "every key starts unset"
        );
    }
}
