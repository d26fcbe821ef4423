//! A listener's connection setup before MQTT: the PROXY protocol header,
//! TLS (and mTLS) with rustls, and the time both may take.
//!
//! ```toml
//! [[listener]]
//! bind = "0.0.0.0:8883"
//! kind = "tls"
//! proxy_protocol = false           # PROXY v1/v2 header first (behind a load balancer)
//! handshake_timeout = 10           # seconds for PROXY header + TLS handshake
//! tls.certfile = "/etc/tern/certs/server.pem"  # PEM chain, server certificate first
//! tls.keyfile = "/etc/tern/certs/server.key"   # PEM key: RSA, ECDSA or Ed25519
//! tls.cafile = "/etc/tern/certs/ca.pem"        # client CAs: ask for client certificates
//! tls.require_certificate = false  # refuse clients without a valid certificate
//! tls.use_identity_as_username = false  # user name = certificate CN
//! tls.use_subject_as_username = false   # user name = certificate subject (RFC 2253)
//! tls.min_version = "1.2"          # or "1.3"
//! ```
//!
//! The key names are Mosquitto's (`certfile`, `keyfile`, `cafile`,
//! `require_certificate`, `use_identity_as_username`,
//! `use_subject_as_username`), so its listener settings carry over.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::listener::ListenerKindConfig;
use crate::ConfigError;

/// Default `handshake_timeout`, seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: u32 = 10;
/// Longest `handshake_timeout`, seconds.
pub const MAX_HANDSHAKE_TIMEOUT: u32 = 300;

/// The lowest TLS version a listener accepts (`tls.min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsMinVersion {
    /// `"1.2"`: TLS 1.2 and 1.3 (the default).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// `"1.3"`: TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

impl fmt::Display for TlsMinVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        })
    }
}

/// A listener's `tls` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub certfile: PathBuf,
    /// PEM private key.
    pub keyfile: PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted; with
    /// it the listener asks each client for a certificate.
    #[serde(default)]
    pub cafile: Option<PathBuf>,
    /// Refuse a client without a valid certificate (needs `cafile`).
    #[serde(default)]
    pub require_certificate: bool,
    /// The certificate's common name becomes the user name, and the
    /// certificate stands for the password (needs `require_certificate`).
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// The certificate's subject (RFC 2253) becomes the user name, and the
    /// certificate stands for the password (needs `require_certificate`).
    #[serde(default)]
    pub use_subject_as_username: bool,
    /// The lowest TLS version.
    #[serde(default)]
    pub min_version: TlsMinVersion,
}

impl TlsConfig {
    /// True when the client's certificate names the user.
    pub fn certificate_is_username(&self) -> bool {
        self.use_identity_as_username || self.use_subject_as_username
    }
}

/// How a listener sets up a connection before MQTT: its one field on
/// [`ListenerConfig`](crate::ListenerConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstablishConfig {
    /// Each connection starts with a PROXY protocol v1 or v2 header, whose
    /// client address is used for logs, limits, ACL patterns and metrics;
    /// a connection without one is refused (`proxy_protocol`, default
    /// false).
    pub proxy_protocol: bool,
    /// Seconds the PROXY header and the TLS handshake may take together
    /// (`handshake_timeout`, 1..=300, default 10).
    pub handshake_timeout: u32,
    /// TLS settings (`tls`), required by `kind = "tls"` and only allowed
    /// there.
    pub tls: Option<TlsConfig>,
}

impl Default for EstablishConfig {
    fn default() -> Self {
        Self {
            proxy_protocol: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            tls: None,
        }
    }
}

impl EstablishConfig {
    /// From the keys of a `[[listener]]` table.
    pub(crate) fn from_table(
        proxy_protocol: Option<bool>,
        handshake_timeout: Option<u32>,
        tls: Option<TlsConfig>,
    ) -> Self {
        Self {
            proxy_protocol: proxy_protocol.unwrap_or(false),
            handshake_timeout: handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            tls,
        }
    }

    /// Checks the settings of the listener `name` of `kind`.
    pub(crate) fn validate(&self, name: &str, kind: ListenerKindConfig) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            key,
            reason: format!("listener `{name}`: {reason}"),
        };
        if !(1..=MAX_HANDSHAKE_TIMEOUT).contains(&self.handshake_timeout) {
            return Err(invalid(
                "listener.handshake_timeout",
                &format!("must be 1..={MAX_HANDSHAKE_TIMEOUT} seconds"),
            ));
        }
        let wants_tls = matches!(kind, ListenerKindConfig::Tls | ListenerKindConfig::Wss);
        let Some(tls) = &self.tls else {
            if wants_tls {
                return Err(invalid(
                    "listener.tls",
                    &format!("kind \"{kind}\" needs tls.certfile and tls.keyfile"),
                ));
            }
            return Ok(());
        };
        if !wants_tls {
            return Err(invalid(
                "listener.tls",
                &format!("tls settings on a \"{kind}\" listener (use kind = \"tls\")"),
            ));
        }
        if tls.require_certificate && tls.cafile.is_none() {
            return Err(invalid(
                "listener.tls.require_certificate",
                "needs tls.cafile (the CAs that sign client certificates)",
            ));
        }
        if tls.use_identity_as_username && tls.use_subject_as_username {
            return Err(invalid(
                "listener.tls.use_subject_as_username",
                "use_identity_as_username and use_subject_as_username exclude each other",
            ));
        }
        if tls.certificate_is_username() && !tls.require_certificate {
            return Err(invalid(
                "listener.tls.use_identity_as_username",
                "a user name from the certificate needs tls.require_certificate = true",
            ));
        }
        Ok(())
    }
}

/// The keys that differ from the defaults, each as `, key = value`, for
/// the inline-table form of a listener.
impl fmt::Display for EstablishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.proxy_protocol {
            write!(f, ", proxy_protocol = true")?;
        }
        if self.handshake_timeout != DEFAULT_HANDSHAKE_TIMEOUT {
            write!(f, ", handshake_timeout = {}", self.handshake_timeout)?;
        }
        if let Some(tls) = &self.tls {
            write!(
                f,
                ", tls = {{ certfile = {:?}, keyfile = {:?}",
                tls.certfile.display().to_string(),
                tls.keyfile.display().to_string()
            )?;
            if let Some(ca) = &tls.cafile {
                write!(f, ", cafile = {:?}", ca.display().to_string())?;
            }
            for (key, on) in [
                ("require_certificate", tls.require_certificate),
                ("use_identity_as_username", tls.use_identity_as_username),
                ("use_subject_as_username", tls.use_subject_as_username),
            ] {
                if on {
                    write!(f, ", {key} = true")?;
                }
            }
            if tls.min_version != TlsMinVersion::default() {
                write!(f, ", min_version = \"{}\"", tls.min_version)?;
            }
            write!(f, " }}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsConfig {
        TlsConfig {
            certfile: "c.pem".into(),
            keyfile: "k.pem".into(),
            cafile: None,
            require_certificate: false,
            use_identity_as_username: false,
            use_subject_as_username: false,
            min_version: TlsMinVersion::Tls12,
        }
    }

    fn check(e: EstablishConfig, kind: ListenerKindConfig) -> Result<(), String> {
        e.validate("l", kind).map_err(|e| e.to_string())
    }

    #[test]
    fn validation() {
        let with = |t: TlsConfig| EstablishConfig {
            tls: Some(t),
            ..EstablishConfig::default()
        };
        check(with(tls()), ListenerKindConfig::Tls).unwrap();
        check(EstablishConfig::default(), ListenerKindConfig::Tcp).unwrap();
        let err = check(EstablishConfig::default(), ListenerKindConfig::Tls).unwrap_err();
        assert!(
            err.contains("`listener.tls`") && err.contains("needs tls.certfile"),
            "{err}"
        );
        let err = check(with(tls()), ListenerKindConfig::Tcp).unwrap_err();
        assert!(err.contains("tls settings on a \"tcp\" listener"), "{err}");
        let err = check(
            with(TlsConfig {
                require_certificate: true,
                ..tls()
            }),
            ListenerKindConfig::Tls,
        )
        .unwrap_err();
        assert!(err.contains("needs tls.cafile"), "{err}");
        let mtls = TlsConfig {
            cafile: Some("ca.pem".into()),
            require_certificate: true,
            ..tls()
        };
        let both = TlsConfig {
            use_identity_as_username: true,
            use_subject_as_username: true,
            ..mtls.clone()
        };
        assert!(check(with(both), ListenerKindConfig::Tls)
            .unwrap_err()
            .contains("exclude"));
        let optional = TlsConfig {
            require_certificate: false,
            use_identity_as_username: true,
            ..mtls.clone()
        };
        let err = check(with(optional), ListenerKindConfig::Tls).unwrap_err();
        assert!(err.contains("needs tls.require_certificate"), "{err}");
        let ok = TlsConfig {
            use_identity_as_username: true,
            ..mtls
        };
        check(with(ok), ListenerKindConfig::Tls).unwrap();
        for t in [0, MAX_HANDSHAKE_TIMEOUT + 1] {
            let e = EstablishConfig {
                handshake_timeout: t,
                ..EstablishConfig::default()
            };
            let err = check(e, ListenerKindConfig::Tcp).unwrap_err();
            assert!(err.contains("`listener.handshake_timeout`"), "{err}");
        }
    }
}
