//! The command line (clap derive) and its help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use crate::auth::AuthLayer;
use crate::env::var_name;
use crate::layer::Layer;
use crate::limits::LimitsLayer;
use crate::mqtt::MqttLayer;
use crate::store::StoreLayer;
use crate::{Config, LogFormat};

/// How settings combine, shown at the end of `--help`.
pub(crate) const PRECEDENCE: &str = "\
Every setting comes from, in order of precedence:
  1. its command-line flag,
  2. its TERN_* environment variable (TERN_ + the key in upper case, e.g. TERN_MAX_INFLIGHT;
     TERN_BIND is comma-separated; an empty variable counts as unset, except that an empty
     TERN_METRICS_BIND disables metrics),
  3. the config file given by --config or TERN_CONFIG (TOML; unknown keys are errors;
     see deploy/tern.toml for every key with its default; the [auth] user table and
     [[listener]] tables are set only there),
  4. its built-in default.
`tern check-config FILE` validates a file on its own and exits.";

/// Tern: a per-core, shared-nothing MQTT 3.1/3.1.1/5.0 broker.
#[derive(Debug, Parser)]
#[command(name = "tern", version, after_long_help = PRECEDENCE)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Sub>,

    /// Read settings from this TOML file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Listen for MQTT over TCP on this address; repeat for several.
    ///
    /// IPv6 addresses are written `[::]:1883` and bound IPv6-only, so
    /// `0.0.0.0:1883` and `[::]:1883` can be given together. Replaces the
    /// config file's listeners (`bind` and `[[listener]]` tables).
    #[arg(long, short = 'b', value_name = "ADDR:PORT", action = ArgAction::Append)]
    pub(crate) bind: Vec<SocketAddr>,

    /// Worker threads; 0 = one per CPU core (at most 64).
    #[arg(long, short = 'w', value_name = "N")]
    pub(crate) workers: Option<usize>,

    /// Log level (error, warn, info, debug, trace, off) or a tracing
    /// EnvFilter directive such as `info,tern_session=debug`.
    #[arg(long, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,

    /// Log line format.
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,

    /// Serve Prometheus metrics over HTTP on this address.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_metrics")]
    pub(crate) metrics_bind: Option<SocketAddr>,

    /// PEM certificate chain for the metrics/admin HTTP listener: with
    /// --metrics-tls-keyfile it serves HTTPS only (reloaded like the TLS
    /// listeners' certificates).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_tls_certfile: Option<PathBuf>,

    /// PEM private key for --metrics-tls-certfile.
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_tls_keyfile: Option<PathBuf>,

    /// Do not serve metrics (same as `metrics_bind = ""` in the file).
    #[arg(long)]
    pub(crate) no_metrics: bool,

    /// SO_SNDBUF for client sockets, in bytes; 0 = the OS default.
    #[arg(long, value_name = "BYTES")]
    pub(crate) socket_send_buffer: Option<usize>,

    /// SO_RCVBUF for client sockets, in bytes; 0 = the OS default.
    #[arg(long, value_name = "BYTES")]
    pub(crate) socket_recv_buffer: Option<usize>,

    /// Seconds between `$SYS/broker/…` topic updates; 0 = no `$SYS` topics.
    #[arg(long, value_name = "SECS")]
    pub(crate) sys_interval: Option<u32>,

    /// Serve `POST /admin/reload` on the metrics listener (reloads the
    /// configuration like SIGHUP). Give the flag alone or `--admin-endpoint=false`.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) admin_endpoint: Option<bool>,

    /// The bearer token `POST /admin/reload` requires (`Authorization:
    /// Bearer TOKEN`). Other users of the host can see a flag in the
    /// process list: prefer admin_token_file or the environment.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) admin_token: Option<String>,

    /// A file holding the admin endpoint's bearer token (read at start and
    /// at every reload; surrounding whitespace ignored).
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,

    /// Seconds a shutdown waits for connections to flush and close before
    /// closing the rest; 0 closes them at once.
    #[arg(long, value_name = "SECS")]
    pub(crate) shutdown_grace: Option<u32>,

    #[command(flatten, next_help_heading = "Limits")]
    pub(crate) limits: LimitsLayer,

    #[command(flatten, next_help_heading = "MQTT")]
    pub(crate) mqtt: MqttLayer,

    #[command(flatten, next_help_heading = "Authentication")]
    pub(crate) auth: AuthLayer,

    #[command(flatten, next_help_heading = "Persistence")]
    pub(crate) store: StoreLayer,
}

/// Subcommands; without one, `tern` runs the broker.
#[derive(Debug, Subcommand)]
pub(crate) enum Sub {
    /// Check a config file (without flags or environment) and exit:
    /// status 0 if it is valid, 2 with the reason if not.
    CheckConfig {
        /// The TOML file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Manage a password file in Mosquitto's format, with mosquitto_passwd's
    /// flags: `tern passwd [-c | -D] FILE USER` (asks for the password),
    /// `tern passwd -b FILE USER PASSWORD`, `tern passwd -U FILE`.
    /// New passwords are `$7$` (PBKDF2-SHA512) hashes that Mosquitto reads.
    Passwd {
        /// Create a new password file; an existing one is overwritten.
        #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
        create: bool,
        /// Take the password from the command line (it shows in the
        /// process list and shell history).
        #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
        batch: bool,
        /// Delete the user from the file.
        #[arg(short = 'D', conflicts_with = "upgrade")]
        delete: bool,
        /// Hash every plain-text password of the file (run once only: a
        /// hash is not hashed again).
        #[arg(short = 'U')]
        upgrade: bool,
        /// PBKDF2 iterations of new hashes (default 101, as mosquitto_passwd).
        #[arg(short = 'I', value_name = "ITERATIONS", value_parser = clap::value_parser!(u32).range(1..))]
        iterations: Option<u32>,
        /// The password file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The user name (not with -U).
        #[arg(value_name = "USER", required_unless_present = "upgrade")]
        username: Option<String>,
        /// The password (with -b only).
        #[arg(value_name = "PASSWORD", required_if_eq("batch", "true"))]
        password: Option<String>,
    },
}

impl Cli {
    /// The settings given as flags.
    pub(crate) fn layer(&self) -> Layer {
        let metrics_bind = if self.no_metrics {
            Some(None)
        } else {
            self.metrics_bind.map(Some)
        };
        Layer {
            bind: (!self.bind.is_empty()).then(|| self.bind.clone()),
            listener: None,
            workers: self.workers,
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            metrics_bind,
            metrics_tls_certfile: self.metrics_tls_certfile.clone(),
            metrics_tls_keyfile: self.metrics_tls_keyfile.clone(),
            socket_send_buffer: self.socket_send_buffer,
            socket_recv_buffer: self.socket_recv_buffer,
            sys_interval: self.sys_interval,
            admin_endpoint: self.admin_endpoint,
            admin_token: self.admin_token.clone().map(crate::Secret::new),
            admin_token_file: self.admin_token_file.clone(),
            shutdown_grace: self.shutdown_grace,
            limits: self.limits.clone(),
            mqtt: self.mqtt.clone(),
            auth: self.auth.clone(),
            store: self.store.clone(),
        }
    }
}

/// The clap command, with `[default] [env] [config key]` appended to each
/// flag's long help from [`Config::default`] so the help cannot drift.
pub(crate) fn command() -> clap::Command {
    let defaults = Config::default();
    let mut cmd = Cli::command().mut_arg("config", |a| with_sources(a, None, "TERN_CONFIG", None));
    let listeners: Vec<String> = defaults.listeners.iter().map(ToString::to_string).collect();
    let metrics = defaults
        .metrics_bind
        .map_or_else(|| "\"\" (disabled)".to_string(), |a| a.to_string());
    let top: [(&str, String); 14] = [
        ("bind", listeners.join(",")),
        ("workers", "0 (one per core)".into()),
        ("log_level", defaults.log_level.clone()),
        ("log_format", defaults.log_format.to_string()),
        ("metrics_bind", metrics),
        ("metrics_tls_certfile", "none".into()),
        ("metrics_tls_keyfile", "none".into()),
        (
            "socket_send_buffer",
            defaults.socket_send_buffer.to_string(),
        ),
        (
            "socket_recv_buffer",
            defaults.socket_recv_buffer.to_string(),
        ),
        ("sys_interval", defaults.sys_interval.to_string()),
        ("admin_endpoint", defaults.admin_endpoint.to_string()),
        ("admin_token", "none".into()),
        ("admin_token_file", "none".into()),
        ("shutdown_grace", defaults.shutdown_grace.to_string()),
    ];
    for (key, default) in top {
        let env = var_name(key);
        cmd = cmd.mut_arg(key, |a| with_sources(a, Some(&default), &env, Some(key)));
    }
    cmd = cmd.mut_arg("no_metrics", |a| {
        with_sources(
            a,
            None,
            "TERN_METRICS_BIND=\"\"",
            Some("metrics_bind = \"\""),
        )
    });
    let tables = [
        ("limits", defaults.limits.entries()),
        ("mqtt", defaults.mqtt.entries()),
        ("store", defaults.store.entries()),
    ];
    for (table, entries) in tables {
        for (key, default) in entries {
            let env = var_name(key);
            let file_key = format!("{table}.{key}");
            cmd = cmd.mut_arg(key, |a| {
                with_sources(a, Some(&default), &env, Some(&file_key))
            });
        }
    }
    let auth = [
        ("allow_anonymous", defaults.auth.allow_anonymous.to_string()),
        (
            "scram_iterations",
            defaults.auth.scram_iterations.to_string(),
        ),
        ("password_file", "\"\" (none)".to_string()),
        ("acl_file", "\"\" (none)".to_string()),
    ];
    for (key, default) in auth {
        let env = var_name(key);
        let file_key = format!("auth.{key}");
        cmd = cmd.mut_arg(key, |a| {
            with_sources(a, Some(&default), &env, Some(&file_key))
        });
    }
    cmd
}

fn with_sources(arg: clap::Arg, default: Option<&str>, env: &str, key: Option<&str>) -> clap::Arg {
    let text = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut sources = Vec::new();
    if let Some(default) = default {
        sources.push(format!("default: {default}"));
    }
    sources.push(format!("env: {env}"));
    if let Some(key) = key {
        sources.push(format!("config: {key}"));
    }
    arg.long_help(format!("{text}\n[{}]", sources.join("] [")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn long_help_documents_every_flag() {
        let help = command().render_long_help().to_string();
        let defaults = Config::default();
        let tables = [
            ("limits", defaults.limits.entries()),
            ("mqtt", defaults.mqtt.entries()),
            ("store", defaults.store.entries()),
        ];
        for (table, key, value) in tables
            .into_iter()
            .flat_map(|(t, e)| e.into_iter().map(move |(k, v)| (t, k, v)))
        {
            let line = format!(
                "[default: {value}] [env: {}] [config: {table}.{key}]",
                var_name(key)
            );
            assert!(
                help.contains(&format!("--{}", key.replace('_', "-"))),
                "{key}"
            );
            assert!(help.contains(&line), "missing `{line}` in\n{help}");
        }
        for key in crate::layer::KEYS {
            let line = format!("[env: {}] [config: {key}]", var_name(key));
            assert!(
                help.contains(&format!("--{}", key.replace('_', "-"))),
                "{key}"
            );
            assert!(help.contains(&line), "missing `{line}`");
        }
        for key in ["allow_anonymous", "scram_iterations"] {
            let default = match key {
                "allow_anonymous" => defaults.auth.allow_anonymous.to_string(),
                _ => defaults.auth.scram_iterations.to_string(),
            };
            let line = format!(
                "[default: {default}] [env: {}] [config: auth.{key}]",
                var_name(key)
            );
            assert!(help.contains(&line), "missing `{line}`");
        }
        for text in [
            "[default: 0.0.0.0:1883]",
            "[default: 0.0.0.0:9090]",
            "[default: info]",
            "[default: text]",
            "--no-metrics",
            "TERN_CONFIG",
            "check-config",
            "in order of precedence",
        ] {
            assert!(help.contains(text), "missing `{text}`");
        }
    }
}
