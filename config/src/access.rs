//! A listener's own access settings (`[listener.access]`), Mosquitto's
//! `per_listener_settings`:
//!
//! ```toml
//! [[listener]]
//! bind = "0.0.0.0:1884"
//! [listener.access]
//! password_file = "/etc/tern/passwd.internal"   # mosquitto_passwd format
//! acl_file = "/etc/tern/acl.internal"            # Mosquitto ACL format
//! allow_anonymous = false
//! ```
//!
//! Each key left out falls back to the global one (`[auth] password_file`,
//! `acl_file`, `allow_anonymous`), so a file that sets none of them behaves
//! like Mosquitto with `per_listener_settings false`. The files are read by
//! the broker at start and at every reload.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One listener's access settings; `None` = the global value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerAccess {
    /// Password file (the format `mosquitto_passwd` writes) for this listener.
    pub password_file: Option<PathBuf>,
    /// ACL file (Mosquitto's format) for this listener.
    pub acl_file: Option<PathBuf>,
    /// Accept clients without a user name on this listener.
    pub allow_anonymous: Option<bool>,
}

impl ListenerAccess {
    /// True when nothing is set (every key global).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// As an inline table: `{ password_file = "…", acl_file = "…", allow_anonymous = false }`.
impl fmt::Display for ListenerAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let path = |p: &Path| format!("{:?}", p.display().to_string());
        if let Some(p) = &self.password_file {
            parts.push(format!("password_file = {}", path(p)));
        }
        if let Some(p) = &self.acl_file {
            parts.push(format!("acl_file = {}", path(p)));
        }
        if let Some(a) = self.allow_anonymous {
            parts.push(format!("allow_anonymous = {a}"));
        }
        write!(f, "{{ {} }}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_shows_the_table() {
        let a: ListenerAccess =
            toml::from_str("password_file = \"/p\"\nallow_anonymous = false\n").unwrap();
        assert_eq!(a.password_file.as_deref(), Some(Path::new("/p")));
        assert_eq!(a.acl_file, None);
        assert_eq!(
            a.to_string(),
            "{ password_file = \"/p\", allow_anonymous = false }"
        );
        assert!(!a.is_empty());
        assert!(ListenerAccess::default().is_empty());
        assert!(toml::from_str::<ListenerAccess>("acl = \"/x\"\n").is_err());
    }
}
