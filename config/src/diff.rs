//! What differs between two configurations, key by key (for reload).

use crate::Config;

/// One key whose value differs between two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The config file key, e.g. `log_level` or `limits.max_connections`.
    pub key: String,
    /// The value before, as the file would spell it.
    pub old: String,
    /// The value after.
    pub new: String,
}

impl Config {
    /// `(key, value)` of every key, top level then `limits.*` then `mqtt.*`,
    /// values written as in the file (`bind` comma-separated, a disabled
    /// `metrics_bind` as `""`).
    pub fn entries(&self) -> Vec<(String, String)> {
        let bind: Vec<String> = self.listeners.iter().map(ToString::to_string).collect();
        let top = [
            ("bind", bind.join(",")),
            ("workers", self.workers.to_string()),
            ("log_level", self.log_level.clone()),
            ("log_format", self.log_format.to_string()),
            (
                "metrics_bind",
                self.metrics_bind
                    .map_or_else(|| "\"\"".to_string(), |a| a.to_string()),
            ),
            (
                "metrics_tls_certfile",
                path(self.metrics_tls_certfile.as_deref()),
            ),
            (
                "metrics_tls_keyfile",
                path(self.metrics_tls_keyfile.as_deref()),
            ),
            ("socket_send_buffer", self.socket_send_buffer.to_string()),
            ("socket_recv_buffer", self.socket_recv_buffer.to_string()),
            ("sys_interval", self.sys_interval.to_string()),
            ("admin_endpoint", self.admin_endpoint.to_string()),
            // Whether a token is set, never the token: a new token in the
            // same place does not show as a change.
            (
                "admin_token",
                if self.admin_token.is_some() {
                    "(set)"
                } else {
                    "\"\""
                }
                .to_string(),
            ),
            (
                "admin_token_file",
                self.admin_token_file.as_ref().map_or_else(
                    || "\"\"".to_string(),
                    |p| format!("{:?}", p.display().to_string()),
                ),
            ),
            ("shutdown_grace", self.shutdown_grace.to_string()),
        ];
        let top = top.into_iter().map(|(k, v)| (k.to_string(), v));
        let limits = self
            .limits
            .entries()
            .into_iter()
            .map(|(k, v)| (format!("limits.{k}"), v));
        let mqtt = self
            .mqtt
            .entries()
            .into_iter()
            .map(|(k, v)| (format!("mqtt.{k}"), v));
        let store = self
            .store
            .entries()
            .into_iter()
            .map(|(k, v)| (format!("store.{k}"), v));
        // User names only: passwords never appear in a report or a log.
        let users: Vec<&str> = self
            .auth
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect();
        let auth = [
            (
                "auth.allow_anonymous",
                self.auth.allow_anonymous.to_string(),
            ),
            ("auth.users", format!("[{}]", users.join(", "))),
            (
                "auth.scram_iterations",
                self.auth.scram_iterations.to_string(),
            ),
            (
                "auth.password_file",
                path(self.auth.password_file.as_deref()),
            ),
            ("auth.acl_file", path(self.auth.acl_file.as_deref())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v));
        // Each listener's own limits, by name (the listeners themselves are
        // `bind`): a reload applies them to a listener that stays bound.
        let listener_limits: Vec<String> = self
            .listeners
            .iter()
            .filter(|l| !l.limits.is_default())
            .map(|l| format!("{:?} = {}", l.name, l.limits))
            .collect();
        let listener_limits = if listener_limits.is_empty() {
            "{}".to_string()
        } else {
            format!("{{ {} }}", listener_limits.join(", "))
        };
        let listener = std::iter::once(("listener.limits".to_string(), listener_limits));
        top.chain(limits)
            .chain(mqtt)
            .chain(store)
            .chain(auth)
            .chain(listener)
            .collect()
    }

    /// The keys whose value in `new` differs from `self`, in [`Config::entries`] order.
    pub fn changes(&self, new: &Self) -> Vec<Change> {
        self.entries()
            .into_iter()
            .zip(new.entries())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((key, old), (_, new))| Change { key, old, new })
            .collect()
    }
}

/// A path as the file would write it; none as `""`.
fn path(p: Option<&std::path::Path>) -> String {
    format!(
        "{:?}",
        p.map(|p| p.display().to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_change_no_entry() {
        let c = Config::default();
        assert!(c.changes(&c.clone()).is_empty());
    }

    #[test]
    fn every_changed_key_is_named_once() {
        let old = Config::default();
        let mut new = old.clone();
        new.log_level = "debug".into();
        new.limits.max_connections = 7;
        new.mqtt.max_qos = 1;
        new.metrics_bind = None;
        new.sys_interval = 0;
        let changes = old.changes(&new);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "log_level",
                "metrics_bind",
                "sys_interval",
                "limits.max_connections",
                "mqtt.max_qos"
            ]
        );
        assert_eq!(
            changes[3],
            Change {
                key: "limits.max_connections".into(),
                old: "100000".into(),
                new: "7".into()
            }
        );
        assert_eq!(changes[1].new, "\"\"");
    }

    #[test]
    fn entries_cover_every_file_key() {
        let keys: Vec<String> = Config::default()
            .entries()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut want: Vec<String> = crate::layer::KEYS.iter().map(|k| k.to_string()).collect();
        want.extend(
            crate::limits::LimitsLayer::KEYS
                .iter()
                .map(|k| format!("limits.{k}")),
        );
        want.extend(
            crate::mqtt::MqttLayer::KEYS
                .iter()
                .map(|k| format!("mqtt.{k}")),
        );
        want.extend(
            crate::store::StoreLayer::KEYS
                .iter()
                .map(|k| format!("store.{k}")),
        );
        want.extend(
            crate::auth::AuthLayer::KEYS
                .iter()
                .map(|k| format!("auth.{k}")),
        );
        want.push("listener.limits".into());
        assert_eq!(keys, want);
    }
}
