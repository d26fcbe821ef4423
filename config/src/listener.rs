//! Listeners: the `[[listener]]` tables of the file and the `bind` shorthand.
//!
//! ```toml
//! bind = ["0.0.0.0:1883"]          # shorthand: one tcp listener per address
//!
//! [[listener]]
//! bind = "127.0.0.1:1884"          # required
//! kind = "tcp"                     # default tcp
//! name = "internal"                # default "tcp:127.0.0.1:1884"
//! limits = { max_connections = 100 } # see `ListenerLimits`
//! # proxy_protocol, handshake_timeout and the tls table: see `tls`.
//!
//! [[listener]]
//! bind = "0.0.0.0:8080"
//! kind = "ws"                      # MQTT over WebSocket
//! ws = { path = "/mqtt" }          # see `ws.rs`
//! ```
//!
//! A file may use both: its listeners are the `bind` addresses followed by
//! the `[[listener]]` tables. The listeners are one setting for precedence:
//! `--bind` (or `TERN_BIND`) replaces the file's `bind` and `[[listener]]`
//! together, as it replaced the file's `bind` before tables existed.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;

use crate::access::ListenerAccess;
use crate::listener_limits::ListenerLimits;
use crate::tls::{EstablishConfig, TlsConfig};
use crate::ws::{self, WsConfig};
use crate::ConfigError;

/// A listener's transport, as the config file spells it (`kind`). The
/// broker translates it to the transport's own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKindConfig {
    /// MQTT over TCP (`"tcp"`).
    #[default]
    Tcp,
    /// MQTT over TLS (`"tls"`), with its `tls` table.
    Tls,
    /// MQTT over WebSocket (`"ws"`), settings in [`ListenerConfig::ws`].
    Ws,
    /// MQTT over WebSocket over TLS (`"wss"`): the `tls` table and the
    /// [`ListenerConfig::ws`] settings.
    Wss,
}

impl fmt::Display for ListenerKindConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        })
    }
}

/// One listener (`[[listener]]`, or an address of `bind` / `--bind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The listener's name, for logs and (later) per-listener authorization.
    /// Default [`ListenerConfig::default_name`].
    pub name: String,
    /// Local address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The transport. Default tcp.
    pub kind: ListenerKindConfig,
    /// This listener's own limits (`limits = { … }`). Default none.
    pub limits: ListenerLimits,
    /// Password file, ACL file and anonymous access of this listener
    /// (`[listener.access]`); unset keys are the global `[auth]` ones.
    pub access: ListenerAccess,
    /// PROXY header, TLS and handshake timeout (see [`EstablishConfig`]).
    pub establish: EstablishConfig,
    /// WebSocket settings (`ws` table), for kinds `ws` and `wss`.
    pub ws: WsConfig,
}

impl ListenerConfig {
    /// A tcp listener on `bind` with its default name: what one address of
    /// `bind` / `--bind` / `TERN_BIND` stands for.
    pub fn tcp(bind: SocketAddr) -> Self {
        Self {
            name: Self::default_name(ListenerKindConfig::Tcp, bind),
            bind,
            kind: ListenerKindConfig::Tcp,
            limits: ListenerLimits::default(),
            access: ListenerAccess::default(),
            establish: EstablishConfig::default(),
            ws: WsConfig::default(),
        }
    }

    /// The name a listener gets when none is given: `tcp:0.0.0.0:1883`.
    pub fn default_name(kind: ListenerKindConfig, bind: SocketAddr) -> String {
        format!("{kind}:{bind}")
    }

    /// True when the listener carries the name it would get by default.
    fn has_default_name(&self) -> bool {
        self.name == Self::default_name(self.kind, self.bind)
    }

    /// True when the bare address says it all (tcp, default name, no limits
    /// of its own).
    fn is_shorthand(&self) -> bool {
        self.kind == ListenerKindConfig::Tcp
            && self.has_default_name()
            && self.limits.is_default()
            && self.access.is_empty()
            && self.establish == EstablishConfig::default()
            && self.ws == WsConfig::default()
    }

    /// True for the kinds that speak WebSocket (`ws`, `wss`).
    pub fn is_websocket(&self) -> bool {
        matches!(self.kind, ListenerKindConfig::Ws | ListenerKindConfig::Wss)
    }
}

impl From<SocketAddr> for ListenerConfig {
    fn from(bind: SocketAddr) -> Self {
        Self::tcp(bind)
    }
}

/// `"ADDR:PORT"` is the tcp listener [`ListenerConfig::tcp`] on it.
impl FromStr for ListenerConfig {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self::tcp)
    }
}

/// A listener equals an address when it is that address's shorthand (tcp,
/// default name).
impl PartialEq<SocketAddr> for ListenerConfig {
    fn eq(&self, addr: &SocketAddr) -> bool {
        self.bind == *addr && self.is_shorthand()
    }
}

/// As the file would write it: the bare address for a shorthand, otherwise
/// an inline table `{ name = "…", bind = "…", kind = "…" }` (with its
/// TLS, access and `ws` settings when they are not the defaults). The
/// listener's `limits` are not part of it (`Config::entries` lists them
/// apart, as a reload applies them while the listener stays bound).
impl fmt::Display for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_shorthand() {
            return write!(f, "{}", self.bind);
        }
        write!(
            f,
            "{{ name = {:?}, bind = \"{}\", kind = \"{}\"{}",
            self.name, self.bind, self.kind, self.establish
        )?;
        if !self.access.is_empty() {
            write!(f, ", access = {}", self.access)?;
        }
        if self.ws != WsConfig::default() {
            write!(
                f,
                ", ws = {{ path = {:?}, max_frame_size = {} }}",
                self.ws.path, self.ws.max_frame_size
            )?;
        }
        f.write_str(" }")
    }
}

/// One `[[listener]]` table of a file, before defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerTable {
    bind: SocketAddr,
    #[serde(default)]
    kind: ListenerKindConfig,
    name: Option<String>,
    #[serde(default)]
    limits: ListenerLimits,
    #[serde(default)]
    access: ListenerAccess,
    proxy_protocol: Option<bool>,
    handshake_timeout: Option<u32>,
    tls: Option<TlsConfig>,
    ws: Option<WsConfig>,
}

impl ListenerTable {
    fn into_config(self) -> ListenerConfig {
        let name = self
            .name
            .unwrap_or_else(|| ListenerConfig::default_name(self.kind, self.bind));
        ListenerConfig {
            name,
            bind: self.bind,
            kind: self.kind,
            limits: self.limits,
            access: self.access,
            establish: EstablishConfig::from_table(
                self.proxy_protocol,
                self.handshake_timeout,
                self.tls,
            ),
            ws: self.ws.unwrap_or_default(),
        }
    }
}

/// One source's listeners: the `bind` addresses, then the tables.
pub(crate) fn merge(bind: Vec<SocketAddr>, tables: Vec<ListenerTable>) -> Vec<ListenerConfig> {
    bind.into_iter()
        .map(ListenerConfig::tcp)
        .chain(tables.into_iter().map(ListenerTable::into_config))
        .collect()
}

/// At least one listener; every name non-empty and every kind supported,
/// with valid `ws` settings where it speaks WebSocket (and none elsewhere);
/// no address (port 0 aside) and no name used twice.
pub(crate) fn validate(listeners: &[ListenerConfig]) -> Result<(), ConfigError> {
    if listeners.is_empty() {
        return Err(ConfigError::Invalid {
            key: "bind",
            reason: "at least one listener address is required".into(),
        });
    }
    for (i, l) in listeners.iter().enumerate() {
        if l.name.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "listener.name",
                reason: format!("listener #{} ({}): name must not be empty", i + 1, l.bind),
            });
        }
        l.limits.validate(&l.name)?;
        l.establish.validate(&l.name, l.kind)?;
        if l.is_websocket() {
            ws::validate(&l.name, &l.ws)?;
        } else if l.ws != WsConfig::default() {
            return Err(ConfigError::Invalid {
                key: "listener.ws",
                reason: format!(
                    "listener `{}` ({}): `ws` settings on a \"{}\" listener; they apply to kinds \"ws\" and \"wss\"",
                    l.name, l.bind, l.kind
                ),
            });
        }
    }
    for (i, l) in listeners.iter().enumerate() {
        for earlier in &listeners[..i] {
            if l.bind.port() != 0 && l.bind == earlier.bind {
                let names = if l.name == earlier.name {
                    String::new()
                } else {
                    format!(" (listeners `{}` and `{}`)", earlier.name, l.name)
                };
                return Err(ConfigError::Invalid {
                    key: "bind",
                    reason: format!("{} is listed twice{names}", l.bind),
                });
            }
            // Two listeners on port 0 may share their default name as they
            // share their address: each bind picks its own port.
            let both_port_zero_defaults = l.bind.port() == 0
                && earlier.bind.port() == 0
                && l.has_default_name()
                && earlier.has_default_name();
            if l.name == earlier.name && !both_port_zero_defaults {
                return Err(ConfigError::Invalid {
                    key: "listener.name",
                    reason: format!(
                        "`{}` names two listeners ({} and {})",
                        l.name, earlier.bind, l.bind
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn named(name: &str, bind: &str, kind: ListenerKindConfig) -> ListenerConfig {
        ListenerConfig {
            name: name.into(),
            bind: addr(bind),
            kind,
            limits: ListenerLimits::default(),
            access: ListenerAccess::default(),
            establish: EstablishConfig::default(),
            ws: WsConfig::default(),
        }
    }

    #[test]
    fn shorthand_forms() {
        let l: ListenerConfig = "[::]:1883".parse().unwrap();
        assert_eq!(l, ListenerConfig::tcp(addr("[::]:1883")));
        assert_eq!(l.name, "tcp:[::]:1883");
        assert_eq!(l, addr("[::]:1883"));
        assert_eq!(l.to_string(), "[::]:1883");
        assert!("localhost:1883".parse::<ListenerConfig>().is_err());

        let l = named("internal", "127.0.0.1:1884", ListenerKindConfig::Tcp);
        assert_ne!(
            l,
            addr("127.0.0.1:1884"),
            "a named listener is no shorthand"
        );
        assert_eq!(
            l.to_string(),
            "{ name = \"internal\", bind = \"127.0.0.1:1884\", kind = \"tcp\" }"
        );
    }

    #[test]
    fn merge_puts_bind_first() {
        let tables = vec![ListenerTable {
            bind: addr("127.0.0.1:2"),
            kind: ListenerKindConfig::Tcp,
            name: None,
            limits: ListenerLimits::default(),
            access: ListenerAccess::default(),
            proxy_protocol: None,
            handshake_timeout: None,
            tls: None,
            ws: None,
        }];
        let all = merge(vec![addr("127.0.0.1:1")], tables);
        assert_eq!(all, [addr("127.0.0.1:1"), addr("127.0.0.1:2")]);
    }

    #[test]
    fn validation_names_the_key() {
        let tls = named("secure", "0.0.0.0:8883", ListenerKindConfig::Tls);
        let err = validate(&[tls]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `listener.tls`: listener `secure`: kind \"tls\" needs tls.certfile and tls.keyfile"
        );
        let l = named("w", "0.0.0.0:8443", ListenerKindConfig::Wss);
        let err = validate(&[l]).unwrap_err().to_string();
        assert!(err.contains("kind \"wss\" needs tls.certfile"), "{err}");

        // A ws listener's settings are checked; a tcp listener has none.
        let mut w = named("w", "0.0.0.0:8080", ListenerKindConfig::Ws);
        validate(std::slice::from_ref(&w)).unwrap();
        w.ws.path = "mqtt".into();
        let err = validate(std::slice::from_ref(&w)).unwrap_err().to_string();
        assert!(err.contains("`listener.ws.path`"), "{err}");
        let mut t = named("t", "0.0.0.0:1883", ListenerKindConfig::Tcp);
        t.ws.path = "/x".into();
        let err = validate(&[t]).unwrap_err().to_string();
        assert!(err.contains("`listener.ws`: listener `t`"), "{err}");

        let err = validate(&[named(" ", "127.0.0.1:1", ListenerKindConfig::Tcp)]).unwrap_err();
        assert!(err.to_string().contains("`listener.name`"), "{err}");
        assert!(err.to_string().contains("must not be empty"), "{err}");

        let a = named("a", "127.0.0.1:1", ListenerKindConfig::Tcp);
        let b = named("b", "127.0.0.1:1", ListenerKindConfig::Tcp);
        let err = validate(&[a.clone(), b]).unwrap_err().to_string();
        assert!(
            err.contains("127.0.0.1:1 is listed twice (listeners `a` and `b`)"),
            "{err}"
        );

        let a2 = named("a", "127.0.0.1:2", ListenerKindConfig::Tcp);
        let err = validate(&[a.clone(), a2]).unwrap_err().to_string();
        assert!(err.contains("`a` names two listeners"), "{err}");

        // Port 0 repeats, with its default name; a chosen name stays unique.
        let zero = ListenerConfig::tcp(addr("127.0.0.1:0"));
        validate(&[zero.clone(), zero.clone()]).unwrap();
        let taken = named(&zero.name, "127.0.0.1:5", ListenerKindConfig::Tcp);
        assert!(validate(&[zero.clone(), taken.clone()]).is_err());
        assert!(validate(&[taken, zero]).is_err());
    }
}
