//! The Tern broker: per-core session workers joined by an RCU route snapshot.
//!
//! `start` binds the listeners, starts the route writer, the workers and the
//! acceptor, and returns a [`BrokerHandle`]; `BrokerHandle::shutdown` stops
//! accepting, closes every connection (v5 clients get DISCONNECT 0x8B), and
//! waits for the workers within a grace period. See ARCHITECTURE.md for the
//! path of a PUBLISH.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod acceptor;
mod backpressure;
mod conn;
mod deadlines;
mod health;
mod http;
mod live;
mod outbuf;
mod prom;
mod registry;
mod reload;
mod route_writer;
mod share;
mod shared;
mod stats;
mod sys;
mod worker;

pub use reload::{LoadConfig, ReloadError, ReloadReport, ReloadSource, SetLogLevel};
use shared::{Control, Shared, WorkerLink};
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tern_codec::QoS;
use tern_config::Config;
use tern_routing::{RetainedLimits, RetainedStore, RouteTable};
use tern_session::auth::{AuthPolicy, CredentialStore, UserTable};
use tern_session::SessionConfig;
use tern_transport::{ConnectionLimiter, ListenerKind, ListenerSpec};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: tern_transport::TransportError,
    },
    #[error("cannot start the metrics endpoint: {0}")]
    Metrics(String),
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("cannot prepare the [auth] user table: {0}")]
    Auth(#[from] tern_session::auth::ScramError),
}

/// A running broker.
#[derive(Debug)]
pub struct BrokerHandle {
    local_addrs: Vec<SocketAddr>,
    http_addr: Option<SocketAddr>,
    reloader: Arc<reload::Reloader>,
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
    stop_accepting: tokio::sync::watch::Sender<bool>,
}

impl BrokerHandle {
    /// The addresses the listeners are bound to (with the real ports when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Where the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`,
    /// `/admin/reload`) listen, when `metrics_bind` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Reads the configuration again from the [`ReloadSource`] given to
    /// [`start_reloadable`] and applies what can change while clients stay
    /// connected (SIGHUP does this). Logs one line per changed key. On
    /// `Err` nothing changed.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        self.reloader.reload("SIGHUP")
    }

    /// The grace period a shutdown should give connections to close: the
    /// `shutdown_grace` in force (a reload may have changed it).
    pub fn shutdown_grace(&self) -> Duration {
        let secs = self.shared.live.load().config.shutdown_grace;
        Duration::from_secs(u64::from(secs))
    }

    /// Stops accepting, closes every connection and waits for the workers.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.stop_accepting.send(true);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Every session ends: pending delayed wills go out on every worker
        // before any worker closes its connections.
        let (done_tx, done_rx) = std_mpsc::channel();
        let asked = self
            .shared
            .workers
            .iter()
            .filter(|link| {
                let done = done_tx.clone();
                link.control.send(Control::PublishWills { done }).is_ok()
            })
            .count();
        drop(done_tx);
        for _ in 0..asked {
            if done_rx.recv_timeout(grace).is_err() {
                break;
            }
        }
        for link in &self.shared.workers {
            let _ = link.control.send(Control::Shutdown { grace });
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A current-thread runtime for one of the broker's threads; logs failure.
pub(crate) fn current_thread_runtime(role: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::error!(thread = role, error = %e, "cannot start runtime");
            None
        }
    }
}

/// The session configuration the limits, `[mqtt]` and `[auth]` imply. The
/// users' credentials are derived here (PBKDF2 per user and mechanism), at
/// start and at each reload.
pub(crate) fn session_config(config: &Config) -> Result<SessionConfig, BrokerError> {
    let (l, m) = (&config.limits, &config.mqtt);
    let a = &config.auth;
    let store: Option<Arc<dyn CredentialStore>> = if a.users.is_empty() {
        None
    } else {
        let users = a.users.iter().map(|u| (u.username.as_str(), &u.password));
        Some(Arc::new(UserTable::new(users, a.scram_iterations)?))
    };
    if store.is_none() && !a.allow_anonymous {
        tracing::warn!(
            "auth.allow_anonymous is false and auth.users is empty: every client will be refused"
        );
    }
    tracing::info!(
        users = a.users.len(),
        allow_anonymous = a.allow_anonymous,
        "authentication configured"
    );
    Ok(SessionConfig {
        max_inflight: l.max_inflight,
        max_queued_messages: l.max_queued_messages,
        max_queued_bytes: l.max_queued_bytes,
        max_keep_alive: l.max_keep_alive,
        queue_qos0_offline: l.queue_qos0_offline,
        max_subscriptions: l.max_subscriptions_per_client,
        max_incoming_inflight: l.max_incoming_inflight,
        max_packet_size: l.max_packet_size,
        topic_alias_maximum: m.topic_alias_maximum,
        max_qos: match m.max_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        },
        retain_available: m.retain_available,
        validate_payload_format: m.validate_payload_format,
        response_information: m.response_information.as_str().into(),
        outbound_topic_alias_maximum: m.outbound_topic_alias_maximum,
        server_reference: m.server_reference.as_str().into(),
        server_moved: m.server_moved,
        max_topic_length: l.max_topic_length,
        max_topic_levels: l.max_topic_levels,
        auth: AuthPolicy {
            allow_anonymous: a.allow_anonymous,
            store,
        },
        // The default authorizer (no client PUBLISH to `$SYS`), no journal.
        ..SessionConfig::default()
    })
}

/// Starts a broker that cannot reload ([`BrokerHandle::reload`] says so).
pub fn start(config: Config) -> Result<BrokerHandle, BrokerError> {
    start_with(config, None)
}

/// Starts a broker whose reloads (SIGHUP, `POST /admin/reload`) read the
/// configuration from `source`.
pub fn start_reloadable(config: Config, source: ReloadSource) -> Result<BrokerHandle, BrokerError> {
    start_with(config, Some(source))
}

fn start_with(config: Config, source: Option<ReloadSource>) -> Result<BrokerHandle, BrokerError> {
    let mut listeners = Vec::new();
    let mut local_addrs = Vec::new();
    for addr in &config.listeners {
        let spec = ListenerSpec {
            bind: *addr,
            kind: ListenerKind::Tcp,
            backlog: 1024,
        };
        let l = tern_transport::bind(&spec).map_err(|source| BrokerError::Bind {
            addr: *addr,
            source,
        })?;
        local_addrs.push(l.local_addr()?);
        listeners.push(l);
    }

    let live = live::Live::new(config.clone())?;
    let n = config.workers.clamp(1, 64);
    let routes = Arc::new(RouteTable::new());
    let (route_tx, route_rx) = std_mpsc::channel();
    let mut links = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    for _ in 0..n {
        let (data_tx, data_rx) = tokio::sync::mpsc::channel(config.limits.worker_queue_len.max(1));
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        links.push(WorkerLink {
            data: data_tx,
            control: control_tx,
            connections: Default::default(),
        });
        inboxes.push((data_rx, control_rx));
    }
    let limiter = ConnectionLimiter::new(
        config.limits.max_connections,
        config.limits.max_connections_per_ip,
    );
    // Bound before anything starts, so a taken port is a start error.
    let http_listener = match config.metrics_bind {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| BrokerError::Metrics(format!("cannot bind {addr}: {e}")))?,
        ),
        None => None,
    };
    let http_addr = match &http_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let shared = Arc::new(Shared {
        live,
        limiter: limiter.clone(),
        health: health::Health::new(n),
        sys: Default::default(),
        retained: Mutex::new(RetainedStore::new(RetainedLimits {
            max_messages: config.limits.max_retained_messages,
            max_bytes: config.limits.max_retained_bytes,
        })),
        config,
        routes: Arc::clone(&routes),
        route_tx,
        registry: Default::default(),
        workers: links,
        worker_stats: (0..n).map(|_| Default::default()).collect(),
        route_stats: Default::default(),
        rejected_limit: Default::default(),
    });

    let route_stats = Arc::clone(&shared.route_stats);
    std::thread::Builder::new()
        .name("tern-routes".into())
        .spawn(move || route_writer::run(routes, route_rx, &route_stats))?;

    let mut workers = Vec::with_capacity(n);
    for (id, (data_rx, control_rx)) in inboxes.into_iter().enumerate() {
        workers.push(worker::spawn(id, Arc::clone(&shared), data_rx, control_rx)?);
    }

    let reloader = Arc::new(reload::Reloader::new(Arc::clone(&shared), source));
    if let Some(listener) = http_listener {
        let metrics = prom::start(Arc::clone(&shared))?;
        http::start(
            listener,
            http::Endpoints {
                metrics,
                shared: Arc::clone(&shared),
                reloader: Arc::clone(&reloader),
            },
        )?;
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let acceptor_shared = Arc::clone(&shared);
    let acceptor = std::thread::Builder::new()
        .name("tern-acceptor".into())
        .spawn(move || {
            let Some(rt) = current_thread_runtime("acceptor") else {
                return;
            };
            rt.block_on(acceptor::run(acceptor_shared, listeners, limiter, stop_rx));
        })?;

    Ok(BrokerHandle {
        local_addrs,
        http_addr,
        reloader,
        shared,
        workers,
        acceptor: Some(acceptor),
        stop_accepting: stop_tx,
    })
}
