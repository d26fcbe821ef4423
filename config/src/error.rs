//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Bad command line, or `--help` / `--version` was asked for: call
    /// [`ConfigError::exit`] to print it the way clap does.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// A `TERN_*` environment variable holds a value that does not parse.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable name.
        var: String,
        /// Its value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The config file is not valid TOML, has an unknown key or a value of the
    /// wrong type. The message shows the line, the key and the reason.
    #[error("config file {}: {source}", path.display())]
    File {
        /// The file (`<string>` for [`parse_str`](crate::parse_str)).
        path: PathBuf,
        /// toml's error, with the span of the offending key or value.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value parsed but is out of range or inconsistent.
    #[error("invalid {}: {reason}", describe_key(key))]
    Invalid {
        /// The config file key, e.g. `limits.max_inflight`.
        key: &'static str,
        /// What is wrong, with the value given.
        reason: String,
    },
}

impl ConfigError {
    /// Prints the error and exits: clap's own handling for [`ConfigError::Cli`]
    /// (help and version go to stdout with status 0, usage errors status 2),
    /// otherwise `tern: <error>` on stderr with status 2.
    pub fn exit(&self) -> ! {
        match self {
            Self::Cli(e) => e.exit(),
            other => {
                eprintln!("tern: {other}");
                std::process::exit(2)
            }
        }
    }
}

/// `limits.max_inflight` → "`limits.max_inflight` (--max-inflight, TERN_MAX_INFLIGHT)".
/// Keys only the file sets (`auth.users`, `listener.*`) are named alone.
fn describe_key(key: &str) -> String {
    if key == "auth.users" || key.starts_with("listener.") {
        return format!("`{key}`");
    }
    let field = key.rsplit('.').next().unwrap_or(key);
    format!(
        "`{key}` (--{}, {})",
        field.replace('_', "-"),
        crate::env::var_name(field)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_key_flag_and_env() {
        let e = ConfigError::Invalid {
            key: "limits.max_inflight",
            reason: "must be at least 1, got 0".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid `limits.max_inflight` (--max-inflight, TERN_MAX_INFLIGHT): must be at least 1, got 0"
        );
    }
}
