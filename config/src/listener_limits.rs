//! A listener's own limits: the `limits` table of a `[[listener]]`.
//!
//! ```toml
//! [[listener]]
//! bind = "0.0.0.0:1883"
//! [listener.limits]
//! max_connections = 5000      # this listener's cap; 0 (default) = only the global ones
//! connect_timeout = 5         # seconds; default limits.connect_timeout
//! ```
//!
//! A listener's cap applies next to `limits.max_connections` (every
//! listener together) and `limits.max_connections_per_ip`: a connection
//! needs room under all three.

use std::fmt;

use serde::Deserialize;

use crate::ConfigError;

/// One listener's limits (`[listener.limits]`); the default sets none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    /// Live connections on this listener; 0 = unlimited (the global caps
    /// still apply).
    #[serde(default)]
    pub max_connections: usize,
    /// Seconds a new connection on this listener may take to send its
    /// CONNECT (1..=3600); `None` = `limits.connect_timeout`.
    #[serde(default)]
    pub connect_timeout: Option<u32>,
}

impl ListenerLimits {
    /// True when the listener sets none of its own limits.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The connect timeout in force for this listener, given the global one.
    pub fn connect_timeout_or(&self, global: u32) -> u32 {
        self.connect_timeout.unwrap_or(global)
    }

    /// Checks the ranges; `listener` names the listener in the error.
    pub(crate) fn validate(&self, listener: &str) -> Result<(), ConfigError> {
        if let Some(secs) = self.connect_timeout {
            crate::limits::validate_connect_timeout("listener.limits.connect_timeout", secs)
                .map_err(|e| match e {
                    ConfigError::Invalid { key, reason } => ConfigError::Invalid {
                        key,
                        reason: format!("listener `{listener}`: {reason}"),
                    },
                    other => other,
                })?;
        }
        Ok(())
    }
}

/// As the file would write it: `{ max_connections = 5, connect_timeout = 3 }`,
/// the keys that are set.
impl fmt::Display for ListenerLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.max_connections != 0 {
            parts.push(format!("max_connections = {}", self.max_connections));
        }
        if let Some(secs) = self.connect_timeout {
            parts.push(format!("connect_timeout = {secs}"));
        }
        if parts.is_empty() {
            return f.write_str("{}");
        }
        write!(f, "{{ {} }}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_validate() {
        let l: ListenerLimits =
            toml::from_str("max_connections = 5\nconnect_timeout = 3\n").unwrap();
        assert_eq!(
            l,
            ListenerLimits {
                max_connections: 5,
                connect_timeout: Some(3)
            }
        );
        assert_eq!(
            l.to_string(),
            "{ max_connections = 5, connect_timeout = 3 }"
        );
        assert_eq!(l.connect_timeout_or(10), 3);
        l.validate("a").unwrap();
        let none = ListenerLimits::default();
        assert!(none.is_default());
        assert_eq!(none.to_string(), "{}");
        assert_eq!(none.connect_timeout_or(10), 10);

        let err = toml::from_str::<ListenerLimits>("max_conections = 5\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_conections`"),
            "{err}"
        );

        let bad = ListenerLimits {
            connect_timeout: Some(0),
            ..ListenerLimits::default()
        };
        let err = bad.validate("edge").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid `listener.limits.connect_timeout`: listener `edge`: must be at least 1, got 0"
        );
    }
}
