//! Tern's configuration: command-line flags, `TERN_*` environment variables
//! and a TOML file, merged into one validated [`Config`].
//!
//! Precedence, highest first: **command-line flag > `TERN_*` environment
//! variable > config file > built-in default**. Each setting is looked up
//! separately, so a file can set most values and a flag override one.
//!
//! * Every file key `k` (top level), `limits.k`, `mqtt.k` or `auth.k` has the
//!   flag `--k` (with `-` for `_`) and the variable `TERN_K` (upper case),
//!   except `auth.users` and the `[[listener]]` tables, which only the file
//!   sets. `TERN_BIND` is comma-separated. Empty variables count as unset, except that an empty
//!   (or `off`) `TERN_METRICS_BIND` disables metrics, like
//!   `metrics_bind = ""` in the file and `--no-metrics`.
//! * The file is named by `--config FILE` or `TERN_CONFIG`; there is no
//!   default path. It is strict: an unknown key or a wrongly typed value is
//!   an error naming the key and its line. `deploy/tern.toml` lists every key
//!   at its default.
//! * Listeners: each `bind` address (file, `--bind`, `TERN_BIND`) is a tcp
//!   listener; the file may add `[[listener]]` tables (`bind`, `kind`,
//!   `name`, `proxy_protocol`, `handshake_timeout`, `tls.*`, and `ws` for
//!   WebSocket listeners) after them. Flag and variable replace the file's
//!   listeners, tables included.
//! * `tern check-config FILE` returns [`Command::CheckConfig`]; the binary then
//!   calls [`parse_file`] and reports.
//!
//! Call [`load`] once in `main`; on error, [`ConfigError::exit`] prints help,
//! version or the error the way clap does.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod admin;
mod auth;
mod cli;
mod diff;
mod env;
mod error;
mod layer;
mod limits;
mod listener;
mod listener_limits;
mod mqtt;
mod store;
mod tls;
mod ws;

use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::FromArgMatches;

pub use access::ListenerAccess;
pub use admin::{check_token as check_admin_token, Secret, MAX_ADMIN_TOKEN_LEN};
pub use auth::{AuthConfig, User, MAX_SCRAM_ITERATIONS, MIN_SCRAM_ITERATIONS};
pub use diff::Change;
pub use error::ConfigError;
pub use limits::{Limits, MAX_CONNECT_TIMEOUT, MAX_FLAP_SECS, MAX_PACKET_SIZE_CAP};
pub use listener::{ListenerConfig, ListenerKindConfig};
pub use listener_limits::ListenerLimits;
pub use mqtt::Mqtt;
pub use store::{Durability, Persistence, Store};
pub use tls::{
    EstablishConfig, TlsConfig, TlsMinVersion, DEFAULT_HANDSHAKE_TIMEOUT, MAX_HANDSHAKE_TIMEOUT,
};
pub use ws::WsConfig;

use layer::Layer;

/// The most worker threads: a route snapshot names workers in a `u64` bit set.
pub const MAX_WORKERS: usize = 64;

/// The longest `shutdown_grace`, in seconds (an hour).
pub const MAX_SHUTDOWN_GRACE: u32 = 3600;

/// The whole broker configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The MQTT listeners: the file's `bind` addresses (each a tcp
    /// listener) followed by its `[[listener]]` tables, or the `--bind` /
    /// `TERN_BIND` addresses, which replace both. Default one tcp listener
    /// on `0.0.0.0:1883`.
    pub listeners: Vec<ListenerConfig>,
    /// Worker threads, 1..=64 (`workers`, `--workers`). Always resolved: a
    /// given 0 becomes the number of cores (capped at 64), as is the default.
    pub workers: usize,
    /// A level or a tracing `EnvFilter` directive (`log_level`,
    /// `--log-level`). Default `info`.
    pub log_level: String,
    /// Log line format (`log_format`, `--log-format`). Default text.
    pub log_format: LogFormat,
    /// Prometheus metrics HTTP address, or `None` when disabled
    /// (`metrics_bind`, `--metrics-bind`, `--no-metrics`). Default `0.0.0.0:9090`.
    pub metrics_bind: Option<SocketAddr>,
    /// PEM certificate chain of the metrics/admin HTTP listener
    /// (`metrics_tls_certfile`, `--metrics-tls-certfile`). With
    /// `metrics_tls_keyfile` (both or neither) that listener serves HTTPS
    /// only, ALPN `http/1.1`; the files are reloaded like the TLS
    /// listeners' (SIGHUP, admin reload, a change on disk). Default none.
    pub metrics_tls_certfile: Option<PathBuf>,
    /// PEM private key for `metrics_tls_certfile` (`metrics_tls_keyfile`,
    /// `--metrics-tls-keyfile`). Default none.
    pub metrics_tls_keyfile: Option<PathBuf>,
    /// `SO_SNDBUF` for client sockets in bytes, 0 = OS default
    /// (`socket_send_buffer`, `--socket-send-buffer`).
    pub socket_send_buffer: usize,
    /// `SO_RCVBUF` for client sockets in bytes, 0 = OS default
    /// (`socket_recv_buffer`, `--socket-recv-buffer`).
    pub socket_recv_buffer: usize,
    /// Seconds between `$SYS/broker/…` updates, 0 = no `$SYS` topics
    /// (`sys_interval`, `--sys-interval`). Default 10.
    pub sys_interval: u32,
    /// Serve `POST /admin/reload` on the metrics listener (`admin_endpoint`,
    /// `--admin-endpoint`). Default false. Needs `admin_token` or
    /// `admin_token_file`: requests must carry `Authorization: Bearer TOKEN`.
    pub admin_endpoint: bool,
    /// The admin endpoint's bearer token (`admin_token`, `--admin-token`,
    /// `TERN_ADMIN_TOKEN`). Default none.
    pub admin_token: Option<Secret>,
    /// A file holding the admin endpoint's bearer token (surrounding
    /// whitespace ignored), read at start and at every reload
    /// (`admin_token_file`). Default none.
    pub admin_token_file: Option<PathBuf>,
    /// Seconds a shutdown (SIGTERM, SIGINT) waits for connections to flush
    /// and close before closing the rest (`shutdown_grace`,
    /// `--shutdown-grace`). Default 5, at most 3600.
    pub shutdown_grace: u32,
    /// Resource limits (`[limits]`, `--max-…`).
    pub limits: Limits,
    /// MQTT protocol options (`[mqtt]`).
    pub mqtt: Mqtt,
    /// Authentication (`[auth]`, `--allow-anonymous`, `--scram-iterations`).
    pub auth: AuthConfig,
    /// Persistence (`[store]`, `--persistence`, `--data-dir`, …).
    pub store: Store,
}

impl Default for Config {
    /// The built-in defaults; `workers` is the number of cores (at most 64).
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::tcp(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                1883,
            )))],
            workers: default_workers(),
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            metrics_bind: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9090))),
            metrics_tls_certfile: None,
            metrics_tls_keyfile: None,
            socket_send_buffer: 0,
            socket_recv_buffer: 0,
            sys_interval: 10,
            admin_endpoint: false,
            admin_token: None,
            admin_token_file: None,
            shutdown_grace: 5,
            limits: Limits::default(),
            mqtt: Mqtt::default(),
            auth: AuthConfig::default(),
            store: Store::default(),
        }
    }
}

impl Config {
    /// Checks every value; the error names the key. [`load`] and
    /// [`parse_file`] already call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        listener::validate(&self.listeners)?;
        limits::at_least("workers", self.workers, 1)?;
        limits::at_most("shutdown_grace", self.shutdown_grace, MAX_SHUTDOWN_GRACE)?;
        limits::at_most("workers", self.workers, MAX_WORKERS)?;
        validate_log_level(&self.log_level)?;
        if let Some(metrics) = self.metrics_bind {
            if metrics.port() != 0 && self.listeners.iter().any(|l| l.bind == metrics) {
                return Err(ConfigError::Invalid {
                    key: "metrics_bind",
                    reason: format!("{metrics} is also an MQTT listener address"),
                });
            }
        }
        match (&self.metrics_tls_certfile, &self.metrics_tls_keyfile) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "metrics_tls_certfile",
                    reason: "needs metrics_tls_keyfile (give both or neither)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "metrics_tls_keyfile",
                    reason: "needs metrics_tls_certfile (give both or neither)".into(),
                })
            }
            _ => {}
        }
        admin::validate(
            self.admin_endpoint,
            self.admin_token.as_ref(),
            self.admin_token_file.as_ref(),
        )?;
        self.limits.validate()?;
        self.mqtt.validate()?;
        self.store.validate()?;
        self.auth.validate()
    }

    /// `socket_send_buffer` as an option (`None` = OS default).
    pub fn send_buffer(&self) -> Option<usize> {
        (self.socket_send_buffer != 0).then_some(self.socket_send_buffer)
    }

    /// `socket_recv_buffer` as an option (`None` = OS default).
    pub fn recv_buffer(&self) -> Option<usize> {
        (self.socket_recv_buffer != 0).then_some(self.socket_recv_buffer)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown log format `{s}` (expected text or json)")),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `tern [FLAGS]`: run the broker with this configuration.
    Run(Box<Config>),
    /// `tern check-config FILE`: validate the file with [`parse_file`] and exit.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
    /// `tern passwd …`: change a Mosquitto password file and exit.
    Passwd(PasswdArgs),
}

/// What `tern passwd` was asked to do (mosquitto_passwd's flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdArgs {
    /// The password file.
    pub file: PathBuf,
    /// What to do with it.
    pub action: PasswdAction,
    /// PBKDF2 iterations of new hashes (`-I`); `None` = 101.
    pub iterations: Option<u32>,
}

/// One `tern passwd` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswdAction {
    /// Add or change `user` (`-c`: in a new file). `password: None` = ask
    /// on the terminal; `Some` = `-b`.
    Set {
        /// The user name.
        user: String,
        /// The password given with `-b`.
        password: Option<String>,
        /// `-c`: start a new file.
        create: bool,
    },
    /// `-D`: delete `user`.
    Delete {
        /// The user name.
        user: String,
    },
    /// `-U`: hash every plain-text password.
    Upgrade,
}

/// Reads `std::env::args_os()`, the process environment and the config file
/// (see the crate docs for precedence).
pub fn load() -> Result<Command, ConfigError> {
    load_from(std::env::args_os(), &|name| std::env::var(name).ok())
}

/// [`load`] with the arguments (the first is the program name) and the
/// environment lookup given, for tests.
pub fn load_from<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = cli::command().try_get_matches_from(args)?;
    let cli = cli::Cli::from_arg_matches(&matches)?;
    match cli.command {
        Some(cli::Sub::CheckConfig { file }) => return Ok(Command::CheckConfig { path: file }),
        Some(cli::Sub::Passwd {
            create,
            batch,
            delete,
            upgrade,
            iterations,
            file,
            username,
            password,
        }) => {
            if password.is_some() && !batch {
                return Err(ConfigError::Invalid {
                    key: "passwd",
                    reason: "a password on the command line needs -b".into(),
                });
            }
            let action = match (upgrade, delete, username) {
                (true, _, _) => PasswdAction::Upgrade,
                (false, true, Some(user)) => PasswdAction::Delete { user },
                (false, false, Some(user)) => PasswdAction::Set {
                    user,
                    password,
                    create,
                },
                (false, _, None) => {
                    return Err(ConfigError::Invalid {
                        key: "passwd",
                        reason: "a user name is required".into(),
                    })
                }
            };
            return Ok(Command::Passwd(PasswdArgs {
                file,
                action,
                iterations,
            }));
        }
        None => {}
    }
    let file = match cli.config.clone().or(env::get::<PathBuf>(env, "config")?) {
        Some(path) => read_layer(&path)?,
        None => Layer::default(),
    };
    let layer = cli.layer().or(Layer::from_env(env)?).or(file);
    layer.into_config().map(|c| Command::Run(Box::new(c)))
}

/// Reads and validates a config file on its own: its values over the
/// defaults, no flags or environment. For `check-config`.
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    read_layer(path)?.into_config()
}

/// [`parse_file`] for text already in memory.
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    layer_from_str(text, Path::new("<string>"))?.into_config()
}

fn read_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    layer_from_str(&text, path)
}

fn layer_from_str(text: &str, path: &Path) -> Result<Layer, ConfigError> {
    Layer::from_toml(text).map_err(|source| ConfigError::File {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// The number of cores, at most [`MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// 0 → [`default_workers`]; above [`MAX_WORKERS`] is an error.
fn resolve_workers(workers: usize) -> Result<usize, ConfigError> {
    limits::at_most("workers", workers, MAX_WORKERS)?;
    Ok(if workers == 0 {
        default_workers()
    } else {
        workers
    })
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A bare word must be a level (so a typo is not taken for a target name);
/// anything with `=`, `,` or `[` must parse as an `EnvFilter`.
fn validate_log_level(filter: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "log_level",
        reason,
    };
    let filter = filter.trim();
    if filter.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if !filter.contains(['=', ',', '[']) {
        if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(filter)) {
            return Ok(());
        }
        return Err(invalid(format!(
            "unknown level `{filter}` (expected one of {} or a directive like `info,tern_session=debug`)",
            LEVELS.join(", ")
        )));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|e| invalid(format!("`{filter}`: {e}")))
}

#[cfg(test)]
mod tests;
