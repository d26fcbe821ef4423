//! Configuration reload (SIGHUP, `POST /admin/reload`): read the
//! configuration again the way it was read at start, apply what can change
//! while clients stay connected, and say what needs a restart.
//!
//! Applied live ([`merge_live`] is the one list): `log_level`,
//! `sys_interval`, `admin_endpoint`, `admin_token`, `admin_token_file` (the
//! file is read again at every reload), `shutdown_grace` (the next shutdown),
//! `socket_send_buffer`,
//! `socket_recv_buffer` (new connections), `limits.max_connections`,
//! `limits.max_connections_per_ip`, `connect_rate_per_ip`,
//! `connect_burst_per_ip`, `flap_connects`, `flap_window`, `flap_ban`,
//! `max_tracked_ips`, `ipv6_prefix_len` (every later accept; addresses keep what was counted
//! and bans their end), each listener's `limits` when the listener stays
//! bound (same name, bind and kind: `max_connections` from the next accept,
//! `connect_timeout` for later connections), `limits.connect_timeout` (for
//! later connections), and for
//! connections made after the reload `limits.max_packet_size`,
//! `max_inflight`, `max_incoming_inflight`, `max_queued_messages`,
//! `max_queued_bytes` (these two and `queue_qos0_offline` also for messages
//! queued to offline sessions from then on), `max_subscriptions_per_client`,
//! `max_keep_alive`, `writer_buffer_bytes`, `max_topic_levels`,
//! `max_topic_length` (checked by the session), every `[mqtt]` key
//! and every `[auth]` key (users and anonymous access, for later CONNECTs and
//! re-authentications of connections made after the reload), and each
//! listener's `[listener.access]` (matched by name). The password and ACL
//! files are read again at every reload (`access`): new connections use
//! them at once, connected clients get a changed ACL at their next check,
//! and a file that does not load keeps the one in force.
//! Everything else needs a restart: `bind`, `workers`, `log_format`,
//! `metrics_bind`, `metrics_tls_certfile`, `metrics_tls_keyfile` (the
//! paths; the files themselves are reloaded, below), `limits.max_retained_messages`, `max_retained_bytes`,
//! `worker_queue_len` (and the backpressure watermarks derived from the
//! startup limits), and every `[store]` key (the store is opened once, at
//! start). Connections keep the settings they connected with.
//!
//! Every TLS listener's certificate, key and client CAs, and the metrics
//! listener's certificate and key, are read again too (for new
//! connections; see `certs`), whatever the configuration does.
//!
//! A configuration that does not load (unreadable file, unknown key, bad
//! value) is rejected whole: nothing changes.

use crate::shared::Shared;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tern_config::{Change, Config};

/// Loads the configuration again (from the same file, flags and
/// environment as at start); `Err` is the reason, for the log.
pub type LoadConfig = dyn Fn() -> Result<Config, String> + Send + Sync;

/// Puts a `log_level` in force; `Err` is the reason.
pub type SetLogLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// Where a reload takes its configuration from, and how it changes the log
/// level (the binary owns the log subscriber).
pub struct ReloadSource {
    /// Reads the configuration again.
    pub load: Box<LoadConfig>,
    /// Applies a new log level.
    pub set_log_level: Box<SetLogLevel>,
}

impl fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadSource")
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys now in force with their new value.
    pub applied: Vec<Change>,
    /// Keys whose new value waits for a restart (the old one stays).
    pub restart_needed: Vec<Change>,
}

impl fmt::Display for ReloadReport {
    /// One line per key: `applied KEY: OLD -> NEW` or `restart needed KEY: OLD -> NEW`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() && self.restart_needed.is_empty() {
            return writeln!(f, "no change");
        }
        for c in &self.applied {
            writeln!(f, "applied {}: {} -> {}", c.key, c.old, c.new)?;
        }
        for c in &self.restart_needed {
            writeln!(f, "restart needed {}: {} -> {}", c.key, c.old, c.new)?;
        }
        Ok(())
    }
}

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The broker was started without a [`ReloadSource`].
    #[error("reload is not available (no configuration source)")]
    Unavailable,
    /// The configuration did not load or validate.
    #[error("configuration rejected: {0}")]
    Invalid(String),
    /// The new log level could not be put in force.
    #[error("log level rejected: {0}")]
    LogLevel(String),
}

/// Runs reloads, one at a time.
#[derive(Debug)]
pub(crate) struct Reloader {
    shared: Arc<Shared>,
    source: Option<ReloadSource>,
    lock: Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(shared: Arc<Shared>, source: Option<ReloadSource>) -> Self {
        Self {
            shared,
            source,
            lock: Mutex::new(()),
        }
    }

    /// Reloads; logs the outcome (one line per changed key).
    pub(crate) fn reload(&self, trigger: &str) -> Result<ReloadReport, ReloadError> {
        // The TLS listeners' certificates first: they reload even when the
        // configuration is unavailable or refused.
        self.shared.certs.reload(trigger, false);
        let outcome = self.try_reload();
        let health = &self.shared.health;
        match &outcome {
            Ok(report) => {
                health.reloads_ok.fetch_add(1, Relaxed);
                for c in &report.applied {
                    tracing::info!(key = %c.key, old = %c.old, new = %c.new, "reload ({trigger}): applied");
                }
                for c in &report.restart_needed {
                    tracing::warn!(key = %c.key, old = %c.old, new = %c.new,
                        "reload ({trigger}): needs a restart; the old value stays in force");
                }
                tracing::info!(
                    applied = report.applied.len(),
                    restart_needed = report.restart_needed.len(),
                    "reload ({trigger}) done"
                );
            }
            Err(e) => {
                health.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "reload ({trigger}) rejected; the running configuration stays");
            }
        }
        outcome
    }

    fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        let Some(source) = &self.source else {
            return Err(ReloadError::Unavailable);
        };
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let new = (source.load)().map_err(ReloadError::Invalid)?;
        let old = self.shared.live.load().config.clone();
        let effective = merge_live(&old, &new);
        // Derive everything (the users' credentials too) before changing anything.
        let runtime = crate::live::Runtime::new(
            effective.clone(),
            self.shared.store.records_session_changes(),
            &self.shared.access,
        )
        .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        if effective.log_level != old.log_level {
            (source.set_log_level)(&effective.log_level).map_err(ReloadError::LogLevel)?;
        }
        let limits = &effective.limits;
        self.shared
            .limiter
            .set_limits(limits.max_connections, limits.max_connections_per_ip);
        for (i, l) in effective.listeners.iter().enumerate() {
            self.shared
                .limiter
                .set_listener_limit(i, l.limits.max_connections);
        }
        self.shared.rate.set_limits(
            crate::shared::rate_limits(limits),
            std::time::Instant::now(),
        );
        let report = ReloadReport {
            applied: old.changes(&effective),
            restart_needed: effective.changes(&new),
        };
        self.shared.live.store(runtime);
        // The files are read again even when their paths did not change.
        self.shared.access.reload(&effective);
        Ok(report)
    }
}

/// `running` with every value of `new` that a reload applies live (see the
/// module docs); the rest stays as running.
pub(crate) fn merge_live(running: &Config, new: &Config) -> Config {
    let mut c = running.clone();
    c.log_level.clone_from(&new.log_level);
    c.sys_interval = new.sys_interval;
    c.admin_endpoint = new.admin_endpoint;
    c.admin_token.clone_from(&new.admin_token);
    c.admin_token_file.clone_from(&new.admin_token_file);
    c.shutdown_grace = new.shutdown_grace;
    c.socket_send_buffer = new.socket_send_buffer;
    c.socket_recv_buffer = new.socket_recv_buffer;
    let (l, n) = (&mut c.limits, &new.limits);
    l.max_packet_size = n.max_packet_size;
    l.max_inflight = n.max_inflight;
    l.max_incoming_inflight = n.max_incoming_inflight;
    l.max_queued_messages = n.max_queued_messages;
    l.max_queued_bytes = n.max_queued_bytes;
    l.max_connections = n.max_connections;
    l.max_connections_per_ip = n.max_connections_per_ip;
    l.max_topic_levels = n.max_topic_levels;
    l.max_topic_length = n.max_topic_length;
    l.max_subscriptions_per_client = n.max_subscriptions_per_client;
    l.max_keep_alive = n.max_keep_alive;
    l.writer_buffer_bytes = n.writer_buffer_bytes;
    l.queue_qos0_offline = n.queue_qos0_offline;
    l.connect_rate_per_ip = n.connect_rate_per_ip;
    l.connect_burst_per_ip = n.connect_burst_per_ip;
    l.flap_connects = n.flap_connects;
    l.flap_window = n.flap_window;
    l.flap_ban = n.flap_ban;
    l.max_tracked_ips = n.max_tracked_ips;
    l.ipv6_prefix_len = n.ipv6_prefix_len;
    l.connect_timeout = n.connect_timeout;
    // A listener that stays bound takes its new limits.
    for running in &mut c.listeners {
        let same = new
            .listeners
            .iter()
            .find(|l| l.name == running.name && l.bind == running.bind && l.kind == running.kind);
        if let Some(l) = same {
            running.limits = l.limits;
        }
    }
    c.mqtt = new.mqtt.clone();
    c.auth = new.auth.clone();
    // A listener's access settings (not its address) apply live.
    for l in &mut c.listeners {
        if let Some(n) = new.listeners.iter().find(|n| n.name == l.name) {
            l.access.clone_from(&n.access);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.key.as_str()).collect()
    }

    #[test]
    fn live_keys_apply_and_the_rest_waits_for_a_restart() {
        let running = Config::default();
        let mut new = running.clone();
        new.log_level = "debug".into();
        new.limits.max_connections = 10;
        new.limits.max_keep_alive = 30;
        new.mqtt.max_qos = 1;
        new.sys_interval = 1;
        new.workers = running.workers + 1;
        new.limits.worker_queue_len = 8;
        new.metrics_bind = None;
        let merged = merge_live(&running, &new);
        assert_eq!(
            keys(&running.changes(&merged)),
            [
                "log_level",
                "sys_interval",
                "limits.max_connections",
                "limits.max_keep_alive",
                "mqtt.max_qos"
            ]
        );
        assert_eq!(
            keys(&merged.changes(&new)),
            ["workers", "metrics_bind", "limits.worker_queue_len"]
        );
        assert_eq!(merged.workers, running.workers, "still the running value");
    }

    #[test]
    fn which_keys_need_a_restart() {
        // Every key changed: the restart list is exactly the documented one.
        let running = Config::default();
        let workers = if running.workers == 1 { 2 } else { 1 };
        let text = format!(
            "bind = [\"127.0.0.1:1\"]\nworkers = {workers}\nlog_level = \"warn\"\n\
            log_format = \"json\"\nmetrics_bind = \"\"\nmetrics_tls_certfile = \"/c\"\n\
            metrics_tls_keyfile = \"/k\"\nsocket_send_buffer = 1\n\
            socket_recv_buffer = 1\nsys_interval = 1\nadmin_endpoint = true\nadmin_token_file = \"/t\"\n\
            shutdown_grace = 9\n\
            [limits]\nmax_packet_size = 2000\nmax_inflight = 5\nmax_incoming_inflight = 6\n\
            max_queued_messages = 7\nmax_queued_bytes = 8\nmax_connections = 9\n\
            max_connections_per_ip = 10\nmax_topic_levels = 11\nmax_topic_length = 12\n\
            max_subscriptions_per_client = 13\nmax_keep_alive = 14\n\
            max_retained_messages = 15\nmax_retained_bytes = 16\nwriter_buffer_bytes = 17\n\
            worker_queue_len = 18\nqueue_qos0_offline = true\nconnect_rate_per_ip = 19\n\
            connect_burst_per_ip = 20\nflap_connects = 21\nflap_window = 22\nflap_ban = 23\n\
            max_tracked_ips = 24\nipv6_prefix_len = 48\nconnect_timeout = 25\n\
            [mqtt]\nmax_qos = 1\nretain_available = false\ntopic_alias_maximum = 1\n\
            outbound_topic_alias_maximum = 1\nvalidate_payload_format = true\n\
            response_information = \"r/\"\nserver_reference = \"x:1\"\nserver_moved = true\n\
            [store]\npersistence = \"on\"\ndata_dir = \"/d\"\ndurability = \"interval\"\n\
            flush_interval_ms = 7\nrepair = true\n\
            [auth]\nallow_anonymous = false\nscram_iterations = 5000\n\
            password_file = \"/p\"\nacl_file = \"/a\"\n\
            users = [{{ username = \"u\", password = \"p\" }}]\n\
            [[listener]]\nbind = \"127.0.0.1:2\"\nlimits = {{ max_connections = 1 }}\n"
        );
        let new = tern_config::parse_str(&text).unwrap();
        assert_eq!(
            running.changes(&new).len(),
            running.entries().len() - 1,
            "the test changes every key but admin_token (admin_token_file excludes it)"
        );
        let merged = merge_live(&running, &new);
        assert_eq!(
            keys(&merged.changes(&new)),
            [
                "bind",
                "workers",
                "log_format",
                "metrics_bind",
                "metrics_tls_certfile",
                "metrics_tls_keyfile",
                "limits.max_retained_messages",
                "limits.max_retained_bytes",
                "limits.worker_queue_len",
                "store.persistence",
                "store.data_dir",
                "store.durability",
                "store.flush_interval_ms",
                "store.repair",
                "listener.limits"
            ]
        );
    }

    #[test]
    fn listener_limits_apply_to_a_listener_that_stays_bound() {
        let text = |max: usize, bind: &str| {
            format!(
                "[[listener]]\nname = \"a\"\nbind = \"{bind}\"\nlimits = {{ max_connections = {max} }}\n\
                 [[listener]]\nname = \"b\"\nbind = \"127.0.0.1:2\"\n"
            )
        };
        let running = tern_config::parse_str(&text(1, "127.0.0.1:1")).unwrap();
        let new = tern_config::parse_str(&text(5, "127.0.0.1:1")).unwrap();
        let merged = merge_live(&running, &new);
        assert_eq!(merged.listeners[0].limits.max_connections, 5);
        assert_eq!(keys(&running.changes(&merged)), ["listener.limits"]);
        assert!(merged.changes(&new).is_empty());
        // Moved to another address: a restart, and the old limits stay.
        let moved = tern_config::parse_str(&text(5, "127.0.0.1:3")).unwrap();
        let merged = merge_live(&running, &moved);
        assert_eq!(merged.listeners[0].limits.max_connections, 1);
        assert_eq!(keys(&merged.changes(&moved)), ["bind", "listener.limits"]);
    }

    #[test]
    fn report_lines() {
        let report = ReloadReport {
            applied: vec![Change {
                key: "log_level".into(),
                old: "info".into(),
                new: "debug".into(),
            }],
            restart_needed: vec![Change {
                key: "workers".into(),
                old: "2".into(),
                new: "4".into(),
            }],
        };
        assert_eq!(
            report.to_string(),
            "applied log_level: info -> debug\nrestart needed workers: 2 -> 4\n"
        );
        assert_eq!(ReloadReport::default().to_string(), "no change\n");
    }
}
