//! A WebSocket listener's settings: the `ws` table of a `[[listener]]` of
//! kind `ws` (or `wss`).
//!
//! ```toml
//! [[listener]]
//! bind = "0.0.0.0:8080"
//! kind = "ws"
//! ws = { path = "/mqtt", max_frame_size = 1048576 }   # both optional
//! ```

use serde::Deserialize;

use crate::ConfigError;

/// WebSocket settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// The HTTP path clients upgrade on (`path`, default `/mqtt`, the path
    /// MQTT.js and paho use); a request for another path gets 404.
    pub path: String,
    /// The longest WebSocket frame payload a client may send, in bytes
    /// (`max_frame_size`, default 1 MiB); a longer frame closes the
    /// connection with status 1009. MQTT packets may span frames, so this
    /// does not bound the packet size (`limits.max_packet_size` does).
    pub max_frame_size: u64,
}

impl WsConfig {
    /// The default `max_frame_size`.
    pub const DEFAULT_MAX_FRAME_SIZE: u64 = 1 << 20;
    /// The smallest `max_frame_size` accepted (clients split packets into
    /// frames of their own choosing; anything smaller breaks common ones).
    pub const MIN_MAX_FRAME_SIZE: u64 = 1024;
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            path: "/mqtt".into(),
            max_frame_size: Self::DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// A path starting with `/`, printable, without query or fragment; a frame
/// limit of at least [`WsConfig::MIN_MAX_FRAME_SIZE`].
pub(crate) fn validate(listener: &str, ws: &WsConfig) -> Result<(), ConfigError> {
    let p = &ws.path;
    if !p.starts_with('/') || p.contains(['?', '#']) || !p.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            key: "listener.ws.path",
            reason: format!(
                "listener `{listener}`: {p:?} is not an HTTP path (it must start with `/`, without spaces, `?` or `#`)"
            ),
        });
    }
    if ws.max_frame_size < WsConfig::MIN_MAX_FRAME_SIZE {
        return Err(ConfigError::Invalid {
            key: "listener.ws.max_frame_size",
            reason: format!(
                "listener `{listener}`: {} is below the minimum of {} bytes",
                ws.max_frame_size,
                WsConfig::MIN_MAX_FRAME_SIZE
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_frame_sizes_are_checked() {
        validate("w", &WsConfig::default()).unwrap();
        for bad in ["mqtt", "/a b", "/mqtt?x=1", "", "/x#y"] {
            let ws = WsConfig {
                path: bad.into(),
                ..WsConfig::default()
            };
            let err = validate("w", &ws).unwrap_err().to_string();
            assert!(err.contains("`listener.ws.path`"), "{bad:?}: {err}");
        }
        let ws = WsConfig {
            max_frame_size: 100,
            ..WsConfig::default()
        };
        let err = validate("w", &ws).unwrap_err().to_string();
        assert!(err.contains("`listener.ws.max_frame_size`"), "{err}");
    }
}
