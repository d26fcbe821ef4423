//! Durable sessions and retained messages: the `[store]` table,
//! `--<key>` flags and `TERN_<KEY>` variables.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::env::{self, EnvValue, Lookup};
use crate::limits::settings;
use crate::ConfigError;

/// Whether sessions and retained messages outlive the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// In memory only: a restart forgets them (the quick-start default).
    #[default]
    Off,
    /// Kept in `data_dir` and read back at start.
    On,
}

/// When a change is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A QoS 1/2 PUBLISH routed to a persistent session is acknowledged
    /// only once it is fsync'd (group commit): nothing acknowledged is lost.
    #[default]
    Sync,
    /// fsync every `flush_interval_ms`: a crash loses at most that much.
    Interval,
}

macro_rules! word_enum {
    ($ty:ty, $($variant:ident = $word:literal),+) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $( Self::$variant => $word, )+ })
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_lowercase().as_str() {
                    $( $word => Ok(Self::$variant), )+
                    _ => Err(format!(concat!("`{}`: expected one of", $(" ", $word),+), s)),
                }
            }
        }

        impl EnvValue for $ty {
            fn parse_env(s: &str) -> Result<Self, String> {
                s.parse()
            }
        }
    };
}

word_enum!(Persistence, Off = "off", On = "on");
word_enum!(Durability, Sync = "sync", Interval = "interval");

settings! {
    /// Persistence, the `[store]` table of the config file. Each is also a
    /// `--<key>` flag and a `TERN_<KEY>` environment variable.
    Store, StoreLayer;

    /// "on": persistent sessions (with their subscriptions, queued and
    /// inflight messages), delayed wills and retained messages are kept in
    /// data_dir and read back at start; "off": memory only.
    [value_name = "on|off"]
    persistence: Persistence = Persistence::Off;

    /// The store's directory (one database per worker inside).
    [value_name = "DIR"]
    data_dir: String = "/var/lib/tern".to_string();

    /// "sync": a QoS 1/2 PUBLISH that reaches a persistent session is
    /// acknowledged only once it is on disk (fsync, shared by every change
    /// of the moment); "interval": fsync every flush_interval_ms, a crash
    /// loses at most that much.
    [value_name = "sync|interval"]
    durability: Durability = Durability::Sync;

    /// Milliseconds between fsyncs with durability = "interval" (1..=60000).
    [value_name = "MS"]
    flush_interval_ms: u32 = 100;

    /// Start even if the store holds damaged records: each is logged,
    /// counted and deleted (otherwise the broker refuses to start and names
    /// the record).
    [value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true"]
    repair: bool = false;
}

impl Store {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::limits::at_least("store.flush_interval_ms", self.flush_interval_ms, 1)?;
        crate::limits::at_most("store.flush_interval_ms", self.flush_interval_ms, 60_000)?;
        if self.persistence == Persistence::On && self.data_dir.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "store.data_dir",
                reason: "must be set when persistence is on".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_words_parse_and_checks_name_the_key() {
        Store::default().validate().unwrap();
        assert_eq!("ON".parse::<Persistence>(), Ok(Persistence::On));
        assert_eq!("interval".parse::<Durability>(), Ok(Durability::Interval));
        assert!("maybe"
            .parse::<Durability>()
            .unwrap_err()
            .contains("sync interval"));
        let bad = Store {
            flush_interval_ms: 0,
            ..Store::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("store.flush_interval_ms"), "{err}");
        let env = |k: &str| match k {
            "TERN_PERSISTENCE" => Some("on".to_string()),
            "TERN_DATA_DIR" => Some("/tmp/x".to_string()),
            _ => None,
        };
        let mut s = Store::default();
        StoreLayer::from_env(&env).unwrap().apply(&mut s);
        assert_eq!(
            (s.persistence, s.data_dir.as_str()),
            (Persistence::On, "/tmp/x")
        );
        let empty = Store {
            persistence: Persistence::On,
            data_dir: " ".into(),
            ..Store::default()
        };
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .contains("store.data_dir"));
    }
}
