//! TLS listeners with rustls (ring provider; no OpenSSL): loading the PEM
//! certificate chain, key and client CA bundle, the server configuration a
//! listener hands to each new connection, and reloading it.
//!
//! A [`TlsServer`] holds its `rustls::ServerConfig` in an `ArcSwap`: a
//! handshake takes the one in force when it starts, so a reload
//! ([`TlsServer::reload`], or [`TlsServer::reload_if_changed`] from a poll
//! of the files) changes what new connections see and never touches a
//! connection that is already up. A new certificate that does not load is
//! refused and the old one stays.

mod socket;
mod subject;

pub(crate) use socket::Socket;
pub use subject::CertSubject;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// Where a TLS listener's certificate, key and client CAs come from, and
/// what it asks of clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA or Ed25519).
    pub key: PathBuf,
    /// PEM bundle of the CAs that sign client certificates; with it the
    /// listener asks clients for a certificate (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca`).
    pub require_client_cert: bool,
    /// The lowest version accepted.
    pub min_version: TlsVersion,
    /// ALPN protocols offered, most preferred first (`mqtt` for MQTT over
    /// TLS). A client that offers ALPN with none of these is refused; one
    /// that offers none is served.
    pub alpn: Vec<Vec<u8>>,
}

/// Why a TLS configuration did not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CAs.
    #[error("{0}")]
    Rustls(String),
}

fn file_error(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Builds the server configuration from the files as they are now.
pub fn load_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    // ring, not aws-lc-rs: no cmake and C build of aws-lc in every build.
    // rustls marks it deprecated for lacking post-quantum key exchange;
    // clients then agree on X25519 (or P-256/P-384), as with Mosquitto.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match files.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if files.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = files.alpn.clone();
    Ok(config)
}

/// What the files looked like when last loaded: modification time and size
/// of each, to notice a change without reading them.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &TlsFiles) -> Stamp {
    let paths = [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ];
    paths
        .into_iter()
        .flatten()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// A TLS listener's server configuration, replaceable while it serves.
/// Shared (`Arc`) by the listener's connections being set up and by
/// whatever reloads it.
pub struct TlsServer {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    /// The files' stamp at the last load attempt (good or bad), so a bad
    /// file is reported once, not at every poll.
    seen: Mutex<Stamp>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Loads the files; `Err` when they do not make a configuration.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let seen = stamp(&files);
        let config = load_config(&files)?;
        Ok(Self {
            files,
            config: ArcSwap::from_pointee(config),
            seen: Mutex::new(seen),
        })
    }

    /// The files it loads from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Loads the files again and puts the result in force for new
    /// connections. On `Err` the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = stamp(&self.files);
        let config = load_config(&self.files)?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// [`reload`](Self::reload) if a file's modification time or size
    /// changed since the last attempt: `Ok(false)` when nothing changed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == stamp(&self.files) {
                return Ok(false);
            }
        }
        self.reload().map(|()| true)
    }
}

#[cfg(test)]
mod tests;
