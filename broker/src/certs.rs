//! The TLS listeners' certificates: reloaded for new connections on SIGHUP
//! and `POST /admin/reload` (`reload`), and when their files change on
//! disk (a thread polls their modification times and sizes every
//! [`POLL`]). Connections that are up keep the session they have. A
//! certificate or key that does not load is refused, logged and counted;
//! the one in force stays.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tern_transport::TlsServer;

/// How often the files are looked at.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// Every TLS listener's server configuration, by listener name.
#[derive(Debug, Default)]
pub(crate) struct Certs {
    servers: Vec<(Arc<str>, Arc<TlsServer>)>,
    /// Reloads that put a new certificate in force.
    pub(crate) reloads_ok: AtomicU64,
    /// Reloads refused (the old certificate stayed).
    pub(crate) reloads_failed: AtomicU64,
}

impl Certs {
    pub(crate) fn new(servers: Vec<(Arc<str>, Arc<TlsServer>)>) -> Self {
        Self {
            servers,
            ..Self::default()
        }
    }

    /// Loads every listener's files again (`changed_only`: only those
    /// whose files changed since the last attempt). Returns how many
    /// failed.
    pub(crate) fn reload(&self, trigger: &str, changed_only: bool) -> usize {
        let mut failed = 0;
        for (name, server) in &self.servers {
            let outcome = if changed_only {
                server.reload_if_changed()
            } else {
                server.reload().map(|()| true)
            };
            match outcome {
                Ok(false) => {}
                Ok(true) => {
                    self.reloads_ok.fetch_add(1, Relaxed);
                    tracing::info!(listener = %name, "TLS certificate reloaded ({trigger}); new connections use it");
                }
                Err(e) => {
                    failed += 1;
                    self.reloads_failed.fetch_add(1, Relaxed);
                    tracing::error!(listener = %name, error = %e,
                        "TLS certificate reload ({trigger}) refused; the one in force stays");
                }
            }
        }
        failed
    }

    /// Starts the thread that polls the files, if there are any. It ends
    /// when the broker drops its `Certs`.
    pub(crate) fn watch(certs: &Arc<Self>) -> std::io::Result<()> {
        if certs.servers.is_empty() {
            return Ok(());
        }
        let weak: Weak<Self> = Arc::downgrade(certs);
        std::thread::Builder::new()
            .name("tern-certs".into())
            .spawn(move || loop {
                std::thread::sleep(POLL);
                let Some(certs) = weak.upgrade() else {
                    return;
                };
                certs.reload("file change", true);
            })?;
        Ok(())
    }
}
