//! One source of settings (file, environment or command line) with every
//! value optional, and how sources are merged into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::auth::AuthLayer;
use crate::env::{self, Lookup};
use crate::limits::LimitsLayer;
use crate::listener::{self, ListenerTable};
use crate::mqtt::MqttLayer;
use crate::store::StoreLayer;
use crate::{Config, ConfigError, LogFormat, Secret};

/// The config file's shape; also what the environment and flags produce.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Layer {
    pub(crate) bind: Option<Vec<SocketAddr>>,
    /// `[[listener]]` tables: the file only.
    pub(crate) listener: Option<Vec<ListenerTable>>,
    pub(crate) workers: Option<usize>,
    pub(crate) log_level: Option<String>,
    pub(crate) log_format: Option<LogFormat>,
    /// `Some(None)`: metrics disabled.
    #[serde(default, deserialize_with = "de_metrics_bind")]
    pub(crate) metrics_bind: Option<Option<SocketAddr>>,
    pub(crate) metrics_tls_certfile: Option<PathBuf>,
    pub(crate) metrics_tls_keyfile: Option<PathBuf>,
    pub(crate) socket_send_buffer: Option<usize>,
    pub(crate) socket_recv_buffer: Option<usize>,
    pub(crate) sys_interval: Option<u32>,
    pub(crate) admin_endpoint: Option<bool>,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) shutdown_grace: Option<u32>,
    #[serde(default)]
    pub(crate) limits: LimitsLayer,
    #[serde(default)]
    pub(crate) mqtt: MqttLayer,
    #[serde(default)]
    pub(crate) auth: AuthLayer,
    #[serde(default)]
    pub(crate) store: StoreLayer,
}

/// Top-level keys, in file order.
#[cfg(test)]
pub(crate) const KEYS: &[&str] = &[
    "bind",
    "workers",
    "log_level",
    "log_format",
    "metrics_bind",
    "metrics_tls_certfile",
    "metrics_tls_keyfile",
    "socket_send_buffer",
    "socket_recv_buffer",
    "sys_interval",
    "admin_endpoint",
    "admin_token",
    "admin_token_file",
    "shutdown_grace",
];

impl Layer {
    /// Reads every `TERN_<KEY>` variable (`TERN_BIND` is comma-separated).
    pub(crate) fn from_env(env: Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: env::get(env, "bind")?,
            listener: None,
            workers: env::get(env, "workers")?,
            log_level: env::get(env, "log_level")?,
            log_format: env::get(env, "log_format")?,
            metrics_bind: env::metrics_bind(env)?,
            metrics_tls_certfile: env::get(env, "metrics_tls_certfile")?,
            metrics_tls_keyfile: env::get(env, "metrics_tls_keyfile")?,
            socket_send_buffer: env::get(env, "socket_send_buffer")?,
            socket_recv_buffer: env::get(env, "socket_recv_buffer")?,
            sys_interval: env::get(env, "sys_interval")?,
            admin_endpoint: env::get(env, "admin_endpoint")?,
            admin_token: env::get(env, "admin_token")?,
            admin_token_file: env::get(env, "admin_token_file")?,
            shutdown_grace: env::get(env, "shutdown_grace")?,
            limits: LimitsLayer::from_env(env)?,
            mqtt: MqttLayer::from_env(env)?,
            auth: AuthLayer::from_env(env)?,
            store: StoreLayer::from_env(env)?,
        })
    }

    /// Parses a config file's text. Unknown keys and wrong types are errors
    /// naming the key.
    pub(crate) fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// `self`'s values where given, `lower`'s elsewhere. `bind` and
    /// `listener` are one setting: a source that gives either replaces both.
    pub(crate) fn or(self, lower: Self) -> Self {
        let (bind, listener) = if self.bind.is_some() || self.listener.is_some() {
            (self.bind, self.listener)
        } else {
            (lower.bind, lower.listener)
        };
        Self {
            bind,
            listener,
            workers: self.workers.or(lower.workers),
            log_level: self.log_level.or(lower.log_level),
            log_format: self.log_format.or(lower.log_format),
            metrics_bind: self.metrics_bind.or(lower.metrics_bind),
            metrics_tls_certfile: self.metrics_tls_certfile.or(lower.metrics_tls_certfile),
            metrics_tls_keyfile: self.metrics_tls_keyfile.or(lower.metrics_tls_keyfile),
            socket_send_buffer: self.socket_send_buffer.or(lower.socket_send_buffer),
            socket_recv_buffer: self.socket_recv_buffer.or(lower.socket_recv_buffer),
            sys_interval: self.sys_interval.or(lower.sys_interval),
            admin_endpoint: self.admin_endpoint.or(lower.admin_endpoint),
            admin_token: self.admin_token.or(lower.admin_token),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            limits: self.limits.or(lower.limits),
            mqtt: self.mqtt.or(lower.mqtt),
            auth: self.auth.or(lower.auth),
            store: self.store.or(lower.store),
        }
    }

    /// The given values over the defaults, validated.
    pub(crate) fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if self.bind.is_some() || self.listener.is_some() {
            config.listeners = listener::merge(
                self.bind.unwrap_or_default(),
                self.listener.unwrap_or_default(),
            );
        }
        if let Some(workers) = self.workers {
            config.workers = crate::resolve_workers(workers)?;
        }
        if let Some(level) = self.log_level {
            config.log_level = level;
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(metrics) = self.metrics_bind {
            config.metrics_bind = metrics;
        }
        // "" (the example file's spelling of "none") is no file.
        if let Some(path) = self.metrics_tls_certfile {
            config.metrics_tls_certfile = (!path.as_os_str().is_empty()).then_some(path);
        }
        if let Some(path) = self.metrics_tls_keyfile {
            config.metrics_tls_keyfile = (!path.as_os_str().is_empty()).then_some(path);
        }
        if let Some(size) = self.socket_send_buffer {
            config.socket_send_buffer = size;
        }
        if let Some(size) = self.socket_recv_buffer {
            config.socket_recv_buffer = size;
        }
        if let Some(secs) = self.sys_interval {
            config.sys_interval = secs;
        }
        if let Some(on) = self.admin_endpoint {
            config.admin_endpoint = on;
        }
        // "" (the example file's spelling of "none") is no token.
        if let Some(token) = self.admin_token {
            config.admin_token = (!token.expose().is_empty()).then_some(token);
        }
        if let Some(path) = self.admin_token_file {
            config.admin_token_file = (!path.as_os_str().is_empty()).then_some(path);
        }
        if let Some(secs) = self.shutdown_grace {
            config.shutdown_grace = secs;
        }
        self.limits.apply(&mut config.limits);
        self.mqtt.apply(&mut config.mqtt);
        self.auth.apply(&mut config.auth);
        self.store.apply(&mut config.store);
        config.validate()?;
        Ok(config)
    }

    /// Keys without a value (`limits.*` and `auth.*` included).
    #[cfg(test)]
    pub(crate) fn missing(&self) -> Vec<String> {
        let given = [
            self.bind.is_some(),
            self.workers.is_some(),
            self.log_level.is_some(),
            self.log_format.is_some(),
            self.metrics_bind.is_some(),
            self.metrics_tls_certfile.is_some(),
            self.metrics_tls_keyfile.is_some(),
            self.socket_send_buffer.is_some(),
            self.socket_recv_buffer.is_some(),
            self.sys_interval.is_some(),
            self.admin_endpoint.is_some(),
            self.admin_token.is_some(),
            self.admin_token_file.is_some(),
            self.shutdown_grace.is_some(),
        ];
        let top = KEYS.iter().zip(given).filter(|(_, g)| !g);
        let limits = self
            .limits
            .missing()
            .into_iter()
            .map(|k| format!("limits.{k}"));
        let mqtt = self.mqtt.missing().into_iter().map(|k| format!("mqtt.{k}"));
        let auth = self.auth.missing().into_iter().map(|k| format!("auth.{k}"));
        let store = self
            .store
            .missing()
            .into_iter()
            .map(|k| format!("store.{k}"));
        top.map(|(k, _)| (*k).to_string())
            .chain(limits)
            .chain(mqtt)
            .chain(auth)
            .chain(store)
            .collect()
    }
}

/// `""` or `"off"` disables metrics; anything else must be `ADDR:PORT`.
pub(crate) fn parse_metrics_bind(value: &str) -> Result<Option<SocketAddr>, String> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        format!("`{value}` is not an ADDR:PORT socket address (use \"\" or \"off\" to disable)")
    })
}

fn de_metrics_bind<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<SocketAddr>>, D::Error> {
    let value = String::deserialize(d)?;
    parse_metrics_bind(&value)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_are_strict() {
        let err = Layer::from_toml("bind = [\"127.0.0.1:1883\"]\nworkerz = 2\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `workerz`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");

        let err = Layer::from_toml("[limits]\nmax_inflite = 3\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_inflite`"),
            "{err}"
        );

        let err = Layer::from_toml("[limitz]\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `limitz`"), "{err}");
    }

    #[test]
    fn file_values_are_typed() {
        let err = Layer::from_toml("[limits]\nmax_inflight = \"many\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("max_inflight = \"many\""),
            "shows the key: {msg}"
        );
        assert!(msg.contains("expected u16"), "{msg}");

        let err = Layer::from_toml("[limits]\nmax_inflight = 70000\n").unwrap_err();
        assert!(err.to_string().contains("max_inflight"), "{err}");

        let err = Layer::from_toml("bind = [\"localhost:1883\"]\n").unwrap_err();
        assert!(err.to_string().contains("socket address"), "{err}");

        let err = Layer::from_toml("log_format = \"xml\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant `xml`"), "{err}");

        let err = Layer::from_toml("metrics_bind = \"9090\"\n").unwrap_err();
        assert!(err.to_string().contains("use \"\" or \"off\""), "{err}");
    }

    #[test]
    fn metrics_bind_forms() {
        let layer = Layer::from_toml("metrics_bind = \"\"\n").unwrap();
        assert_eq!(layer.metrics_bind, Some(None));
        let layer = Layer::from_toml("metrics_bind = \"off\"\n").unwrap();
        assert_eq!(layer.metrics_bind, Some(None));
        let layer = Layer::from_toml("metrics_bind = \"127.0.0.1:9100\"\n").unwrap();
        assert_eq!(
            layer.metrics_bind,
            Some(Some("127.0.0.1:9100".parse().unwrap()))
        );
        let layer = Layer::from_toml("").unwrap();
        assert_eq!(layer.metrics_bind, None);
        assert_eq!(layer, Layer::default());
    }
}
