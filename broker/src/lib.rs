//! The Tern broker: per-core session workers joined by an RCU route snapshot.
//!
//! `start` binds the listeners, starts the route writer, the workers and the
//! acceptor, and returns a [`BrokerHandle`]; `BrokerHandle::shutdown` stops
//! accepting, closes every connection (v5 clients get DISCONNECT 0x8B), and
//! waits for the workers within a grace period. See ARCHITECTURE.md for the
//! path of a PUBLISH.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

// Top to bottom; a module uses only modules below it (ARCHITECTURE.md).
mod acceptor;
mod http;
pub mod passwd;
mod prom;
mod reload;
mod worker_thread;

mod conn;
mod worker;

mod park;
mod share;
mod shared;

mod client;
mod deadlines;
mod deliver;

mod access;
mod admin_token;
mod backpressure;
mod certs;
mod error;
mod health;
mod live;
mod outbuf;
mod registry;
mod route_writer;
mod runtime;
mod stats;
pub mod store;
mod sys;

pub use error::BrokerError;
pub use reload::{LoadConfig, ReloadError, ReloadReport, ReloadSource, SetLogLevel};
use shared::{Control, Shared, WorkerLink};
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;
use tern_config::{Config, ListenerConfig, ListenerKindConfig, TlsMinVersion};
use tern_routing::{RetainedLimits, RetainedStore, RouteTable};
use tern_transport::{Establish, ListenerKind, ListenerSpec, TlsFiles, TlsServer, TlsVersion};

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

/// The transport's spec for a configured listener: config's kind translated
/// to the transport's, its TLS files loaded.
fn listener_spec(listener: &ListenerConfig) -> Result<ListenerSpec, BrokerError> {
    let est = &listener.establish;
    let kind = match listener.kind {
        ListenerKindConfig::Tcp if est.tls.is_none() => ListenerKind::Tcp,
        ListenerKindConfig::Tls if est.tls.is_some() => ListenerKind::Tls,
        ListenerKindConfig::Ws if est.tls.is_none() => ListenerKind::Ws,
        ListenerKindConfig::Wss if est.tls.is_some() => ListenerKind::Wss,
        kind => {
            return Err(BrokerError::ListenerKind {
                name: listener.name.clone(),
                kind,
            })
        }
    };
    let tls = match &est.tls {
        Some(tls) => {
            let files = TlsFiles {
                cert: tls.certfile.clone(),
                key: tls.keyfile.clone(),
                client_ca: tls.cafile.clone(),
                require_client_cert: tls.require_certificate,
                min_version: match tls.min_version {
                    TlsMinVersion::Tls12 => TlsVersion::Tls12,
                    TlsMinVersion::Tls13 => TlsVersion::Tls13,
                },
                // Browsers offer only http/1.1 for wss; rustls refuses a
                // client whose offer has nothing in common with ours.
                alpn: if kind == ListenerKind::Wss {
                    vec![b"http/1.1".to_vec()]
                } else {
                    vec![b"mqtt".to_vec()]
                },
            };
            let server = TlsServer::load(files).map_err(|source| BrokerError::Tls {
                name: listener.name.clone(),
                source,
            })?;
            Some(Arc::new(server))
        }
        None => None,
    };
    Ok(ListenerSpec {
        name: listener.name.as_str().into(),
        bind: listener.bind,
        kind,
        backlog: ListenerSpec::DEFAULT_BACKLOG,
        establish: Establish {
            proxy_protocol: est.proxy_protocol,
            tls,
            timeout: Duration::from_secs(u64::from(est.handshake_timeout)),
        },
    })
}

/// Starts a broker that cannot reload ([`BrokerHandle::reload`] says so).
/// With `persistence = "on"` it first reads back what its store kept.
pub fn start(config: Config) -> Result<BrokerHandle, BrokerError> {
    start_with(config, None, None)
}

/// Starts a broker that cannot reload and reports every change of its
/// sessions and retained messages to `store` (see [`store`]).
pub fn start_with_store(
    config: Config,
    store: Arc<dyn store::StoreBackend>,
) -> Result<BrokerHandle, BrokerError> {
    start_with(config, None, Some(store))
}

/// Starts a broker whose reloads (SIGHUP, `POST /admin/reload`) read the
/// configuration from `source`.
pub fn start_reloadable(config: Config, source: ReloadSource) -> Result<BrokerHandle, BrokerError> {
    start_with(config, Some(source), None)
}

/// The configured backend: the store read back (`persistence = "on"`), or
/// none; and the retained messages it held.
type Opened = (
    Arc<dyn store::StoreBackend>,
    Vec<tern_store::RecoveredRetained>,
    u64,
);

fn open_store(config: &Config, workers: usize) -> Result<Opened, BrokerError> {
    let s = &config.store;
    if s.persistence == tern_config::Persistence::Off {
        return Ok((Arc::new(store::NullStore), Vec::new(), 0));
    }
    let recovery = tern_store::open(
        &tern_store::StoreConfig {
            data_dir: s.data_dir.clone().into(),
            repair: s.repair,
        },
        workers,
    )?;
    let r = &recovery.report;
    tracing::info!(
        data_dir = %s.data_dir,
        sessions = r.sessions,
        expired_sessions = r.expired_sessions,
        messages = r.messages,
        queued = r.entries,
        retained = r.retained,
        damaged = r.damaged,
        orphans = r.orphans,
        seconds = r.seconds,
        durability = %s.durability,
        "store opened"
    );
    let backend = store::disk::DiskStore::new(
        recovery.workers,
        s.durability,
        Duration::from_millis(u64::from(s.flush_interval_ms)),
        recovery.report.clone(),
        s.data_dir.clone().into(),
    );
    Ok((
        Arc::new(backend),
        recovery.retained,
        recovery.retained_order,
    ))
}

fn start_with(
    config: Config,
    source: Option<ReloadSource>,
    store: Option<Arc<dyn store::StoreBackend>>,
) -> Result<BrokerHandle, BrokerError> {
    let mut listeners = Vec::new();
    let mut local_addrs = Vec::new();
    let mut tls_servers = Vec::new();
    for listener in &config.listeners {
        let spec = listener_spec(listener)?;
        if let Some(tls) = &spec.establish.tls {
            tls_servers.push((Arc::clone(&spec.name), Arc::clone(tls)));
        }
        let l = tern_transport::bind(&spec).map_err(|source| BrokerError::Bind {
            addr: spec.bind,
            source,
        })?;
        local_addrs.push(l.local_addr()?);
        listeners.push((spec, l));
    }

    let access = access::Access::new(&config)?;
    let n = config.workers.clamp(1, 64);
    let (store, retained, retained_order) = match store {
        Some(store) => (store, Vec::new(), 0),
        None => open_store(&config, n)?,
    };
    let live = live::Live::new(config.clone(), store.records_session_changes(), &access)?;
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
    let limiter = shared::connection_limiter(&config);
    let rate = tern_transport::ConnectRate::new(shared::rate_limits(&config.limits));
    // Bound before anything starts, so a taken port is a start error.
    let http_listener = match config.metrics_bind {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| BrokerError::Metrics(format!("cannot bind {addr}: {e}")))?,
        ),
        None => None,
    };
    let http_tls = http::tls_server(&config)?;
    if let Some(tls) = &http_tls {
        tls_servers.push((http::TLS_NAME.into(), Arc::clone(tls)));
    }
    let http_addr = match &http_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let mut retained_store = RetainedStore::new(RetainedLimits {
        max_messages: config.limits.max_retained_messages,
        max_bytes: config.limits.max_retained_bytes,
    });
    for r in retained {
        let topic = r.publish.topic.clone();
        if let Err(e) = retained_store.set(tern_routing::RetainedMessage {
            publish: Arc::new(r.publish),
            expires_at: r.expires_at,
        }) {
            tracing::warn!(%topic, error = %e, "stored retained message not restored");
        }
    }
    let shared = Arc::new(Shared {
        live,
        access,
        store,
        retained_order: std::sync::atomic::AtomicU64::new(retained_order),
        limiter: limiter.clone(),
        health: health::Health::new(n),
        sys: Default::default(),
        retained: Mutex::new(retained_store),
        config,
        routes: Arc::clone(&routes),
        route_tx,
        registry: Default::default(),
        workers: links,
        worker_stats: (0..n).map(|_| Default::default()).collect(),
        route_stats: Default::default(),
        rejected_limit: Default::default(),
        rate,
        rejected_listener_limit: Default::default(),
        rejected_rate: Default::default(),
        rejected_banned: Default::default(),
        certs: Arc::new(certs::Certs::new(tls_servers)),
    });
    certs::Certs::watch(&shared.certs)?;

    let route_stats = Arc::clone(&shared.route_stats);
    std::thread::Builder::new()
        .name("tern-routes".into())
        .spawn(move || route_writer::run(routes, route_rx, &route_stats))?;

    let mut workers = Vec::with_capacity(n);
    let (ready_tx, ready_rx) = std_mpsc::channel();
    for (id, (data_rx, control_rx)) in inboxes.into_iter().enumerate() {
        workers.push(worker_thread::spawn(
            id,
            Arc::clone(&shared),
            data_rx,
            control_rx,
            ready_tx.clone(),
        )?);
    }
    drop(ready_tx);
    // Every worker has put back what the store kept (and the route table
    // holds its filters) before the first client is accepted.
    for _ in 0..n {
        if ready_rx.recv().is_err() {
            break;
        }
    }

    let reloader = Arc::new(reload::Reloader::new(Arc::clone(&shared), source));
    if let Some(listener) = http_listener {
        let metrics = prom::start(Arc::clone(&shared))?;
        http::start(
            listener,
            http_tls,
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
            let Some(rt) = runtime::current_thread_runtime("acceptor") else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_specs_carry_name_and_kind() {
        let config = ListenerConfig {
            name: "internal".into(),
            bind: "127.0.0.1:1884".parse().unwrap(),
            kind: ListenerKindConfig::Tcp,
            limits: Default::default(),
            access: Default::default(),
            establish: Default::default(),
            ws: Default::default(),
        };
        let spec = listener_spec(&config).unwrap();
        assert_eq!(&*spec.name, "internal");
        assert_eq!(spec.bind, config.bind);
        assert_eq!(spec.kind, ListenerKind::Tcp);
        assert_eq!(spec.backlog, ListenerSpec::DEFAULT_BACKLOG);

        let ws = ListenerConfig {
            kind: ListenerKindConfig::Ws,
            ..config.clone()
        };
        assert_eq!(listener_spec(&ws).unwrap().kind, ListenerKind::Ws);

        // A hand-built Config skips validation: the broker refuses too.
        let tls = ListenerConfig {
            kind: ListenerKindConfig::Tls,
            ..config
        };
        let err = listener_spec(&tls).unwrap_err();
        assert_eq!(
            err.to_string(),
            "listener `internal`: kind \"tls\" is not supported yet"
        );
        assert!(spec.establish.is_plain());
        let bad = Config {
            listeners: vec![tls],
            ..Config::default()
        };
        assert!(matches!(start(bad), Err(BrokerError::ListenerKind { .. })));
    }

    /// The store observer sees a persistent session open, the retained set
    /// and clear it publishes, the session kept offline at DISCONNECT, and
    /// the session resumed on the next CONNECT.
    #[test]
    fn the_store_observer_sees_sessions_and_retained_messages() {
        use std::io::{Read, Write};
        let recorder = store::Recorder::default();
        let config = Config {
            listeners: vec![ListenerConfig {
                name: "test".into(),
                bind: "127.0.0.1:0".parse().unwrap(),
                kind: ListenerKindConfig::Tcp,
                limits: Default::default(),
                access: Default::default(),
                establish: Default::default(),
                ws: Default::default(),
            }],
            metrics_bind: None,
            workers: 1,
            ..Config::default()
        };
        let broker = start_with_store(config, Arc::new(recorder.clone())).unwrap();
        let addr = broker.local_addrs()[0];
        // MQTT 3.1.1 CONNECT, Clean Session 0, keep-alive 60, client id "p1".
        let connect = [
            0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0, 60, 0, 2, b'p', b'1',
        ];
        let session = |packets: &[&[u8]]| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(&connect).unwrap();
            let mut connack = [0u8; 4];
            s.read_exact(&mut connack).unwrap();
            assert_eq!(connack[3], 0, "accepted");
            for p in packets {
                s.write_all(p).unwrap();
            }
            s.write_all(&[0xE0, 0]).unwrap();
            // The server closes after DISCONNECT.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        };
        let retain = [0x31, 6, 0, 3, b'r', b'/', b'1', b'x'];
        let clear = [0x31, 5, 0, 3, b'r', b'/', b'1'];
        session(&[&retain, &clear]);
        session(&[]);
        let want = [
            "opened p1 resumed=false",
            "retained r/1",
            "retained-cleared r/1",
            "offline p1",
            "opened p1 resumed=true",
            "offline p1",
        ];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while recorder.lines().len() < want.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(recorder.lines(), want);
        broker.shutdown(Duration::from_secs(1));
    }
}
