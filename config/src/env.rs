//! Reading `TERN_*` environment variables through an injectable lookup.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{ConfigError, LogFormat};

/// A variable lookup: `std::env::var` in production, a map in tests.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `max_inflight` → `TERN_MAX_INFLIGHT`.
pub(crate) fn var_name(key: &str) -> String {
    format!("TERN_{}", key.to_ascii_uppercase())
}

/// The value of `TERN_<KEY>`, parsed. Unset or empty means "not given".
pub(crate) fn get<T: EnvValue>(env: Lookup<'_>, key: &str) -> Result<Option<T>, ConfigError> {
    let var = var_name(key);
    let Some(value) = env(&var) else {
        return Ok(None);
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    T::parse_env(value.trim())
        .map(Some)
        .map_err(|reason| ConfigError::Env { var, value, reason })
}

/// `TERN_METRICS_BIND`: an address, or empty / `off` to disable metrics.
pub(crate) fn metrics_bind(env: Lookup<'_>) -> Result<Option<Option<SocketAddr>>, ConfigError> {
    let var = var_name("metrics_bind");
    let Some(value) = env(&var) else {
        return Ok(None);
    };
    crate::layer::parse_metrics_bind(&value)
        .map(Some)
        .map_err(|reason| ConfigError::Env { var, value, reason })
}

/// A type that can be read from an environment variable.
pub(crate) trait EnvValue: Sized {
    /// Parses a trimmed, non-empty value.
    fn parse_env(s: &str) -> Result<Self, String>;
}

macro_rules! env_from_str {
    ($($ty:ty),*) => {$(
        impl EnvValue for $ty {
            fn parse_env(s: &str) -> Result<Self, String> {
                s.parse().map_err(|e| format!("{e}"))
            }
        }
    )*};
}
env_from_str!(u8, u16, u32, usize, String, PathBuf, LogFormat);

impl EnvValue for bool {
    fn parse_env(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
}

/// `TERN_BIND`: comma-separated addresses.
impl EnvValue for Vec<SocketAddr> {
    fn parse_env(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse()
                    .map_err(|_| format!("`{a}` is not an ADDR:PORT socket address"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parsing() {
        assert_eq!(var_name("max_packet_size"), "TERN_MAX_PACKET_SIZE");
        let env = |k: &str| match k {
            "TERN_A" => Some(" 42 ".to_string()),
            "TERN_B" => Some(String::new()),
            "TERN_C" => Some("lots".to_string()),
            "TERN_D" => Some("Yes".to_string()),
            "TERN_E" => Some("127.0.0.1:1, [::1]:2,".to_string()),
            _ => None,
        };
        assert_eq!(get::<u16>(&env, "a").unwrap(), Some(42));
        assert_eq!(get::<u16>(&env, "b").unwrap(), None, "empty is unset");
        assert_eq!(get::<u16>(&env, "z").unwrap(), None);
        assert_eq!(get::<bool>(&env, "d").unwrap(), Some(true));
        let addrs = get::<Vec<SocketAddr>>(&env, "e").unwrap().unwrap();
        assert_eq!(addrs.len(), 2);
        let err = get::<u16>(&env, "c").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable TERN_C=\"lots\": "),
            "{err}"
        );
        assert!(get::<bool>(&env, "c").is_err());
    }
}
