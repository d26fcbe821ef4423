//! The `[auth]` table: anonymous access, the user table and the SCRAM
//! iteration count. `allow_anonymous` and `scram_iterations` are also the
//! flags `--allow-anonymous[=BOOL]` / `--scram-iterations` and the variables
//! `TERN_ALLOW_ANONYMOUS` / `TERN_SCRAM_ITERATIONS`; `users` is read from
//! the file only. `password_file` and `acl_file` (Mosquitto's formats)
//! are also `--password-file` / `--acl-file` and `TERN_PASSWORD_FILE` /
//! `TERN_ACL_FILE`; a listener may override all three
//! ([`ListenerAccess`](crate::ListenerAccess)).

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::env::{self, Lookup};
use crate::limits::{at_least, at_most};
use crate::ConfigError;

/// The least PBKDF2 iteration count for SCRAM (RFC 7677 section 4).
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// The most: credentials are derived at start-up, once per user and mechanism.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// Authentication settings (`[auth]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Accept clients that give no user name (and no v5 Authentication
    /// Method). Default true.
    pub allow_anonymous: bool,
    /// Users allowed to authenticate with user name and password (CONNECT)
    /// or SCRAM-SHA-256/512 (MQTT 5 enhanced authentication). Default none.
    pub users: Vec<User>,
    /// PBKDF2 iterations of the SCRAM credentials derived from `users`
    /// (4096..=1000000). Default 4096.
    pub scram_iterations: u32,
    /// A password file as `mosquitto_passwd` writes it (`$6$`/`$7$`
    /// hashes), checked before `users`. Default none.
    pub password_file: Option<PathBuf>,
    /// An ACL file in Mosquitto's format; none (the default) = every topic
    /// allowed except client writes to `$SYS`.
    pub acl_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            users: Vec::new(),
            scram_iterations: MIN_SCRAM_ITERATIONS,
            password_file: None,
            acl_file: None,
        }
    }
}

impl AuthConfig {
    /// Checks the iteration count and the user table.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = "auth.scram_iterations";
        at_least(key, self.scram_iterations, MIN_SCRAM_ITERATIONS)?;
        at_most(key, self.scram_iterations, MAX_SCRAM_ITERATIONS)?;
        let mut seen = HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let invalid = |reason: String| ConfigError::Invalid {
                key: "auth.users",
                reason: format!("user #{} ({:?}): {reason}", i + 1, user.username),
            };
            if user.username.is_empty() {
                return Err(invalid("username must not be empty".into()));
            }
            if user.password.is_empty() {
                return Err(invalid("password must not be empty".into()));
            }
            // Both travel as MQTT strings / binary data: at most 65535 bytes.
            if user.username.len() > 65535 || user.password.len() > 65535 {
                return Err(invalid(
                    "username and password must be at most 65535 bytes".into(),
                ));
            }
            if !seen.insert(user.username.as_str()) {
                return Err(invalid("listed twice".into()));
            }
        }
        Ok(())
    }
}

/// One entry of `[[auth.users]]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user name (CONNECT User Name, SCRAM `n=`).
    pub username: String,
    /// The password, in plain text.
    pub password: String,
}

/// Shows the user name, never the password.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One source's `[auth]` settings, each optional.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthLayer {
    /// Accept clients without a user name (and without an MQTT 5
    /// Authentication Method).
    ///
    /// Give the flag alone or `--allow-anonymous=false`.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub(crate) allow_anonymous: Option<bool>,
    /// The user table: config file only.
    #[arg(skip)]
    pub(crate) users: Option<Vec<User>>,
    /// PBKDF2 iterations for the users' SCRAM credentials (4096..=1000000).
    #[arg(long, value_name = "N")]
    pub(crate) scram_iterations: Option<u32>,
    /// Password file in mosquitto_passwd's format ($6$ / $7$ hashes).
    #[arg(long, value_name = "PATH")]
    pub(crate) password_file: Option<PathBuf>,
    /// ACL file in Mosquitto's format.
    #[arg(long, value_name = "PATH")]
    pub(crate) acl_file: Option<PathBuf>,
}

impl AuthLayer {
    /// Every key name, in file order.
    #[cfg(test)]
    pub(crate) const KEYS: &'static [&'static str] = &[
        "allow_anonymous",
        "users",
        "scram_iterations",
        "password_file",
        "acl_file",
    ];

    /// Reads `TERN_ALLOW_ANONYMOUS` and `TERN_SCRAM_ITERATIONS`.
    pub(crate) fn from_env(env: Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_anonymous: env::get(env, "allow_anonymous")?,
            users: None,
            scram_iterations: env::get(env, "scram_iterations")?,
            password_file: env::get(env, "password_file")?,
            acl_file: env::get(env, "acl_file")?,
        })
    }

    /// `self`'s values where given, `lower`'s elsewhere.
    pub(crate) fn or(self, lower: Self) -> Self {
        Self {
            allow_anonymous: self.allow_anonymous.or(lower.allow_anonymous),
            users: self.users.or(lower.users),
            scram_iterations: self.scram_iterations.or(lower.scram_iterations),
            password_file: self.password_file.or(lower.password_file),
            acl_file: self.acl_file.or(lower.acl_file),
        }
    }

    /// Overwrites the given values in `auth`.
    pub(crate) fn apply(self, auth: &mut AuthConfig) {
        if let Some(v) = self.allow_anonymous {
            auth.allow_anonymous = v;
        }
        if let Some(v) = self.users {
            auth.users = v;
        }
        if let Some(v) = self.scram_iterations {
            auth.scram_iterations = v;
        }
        // `""` (how deploy/tern.toml spells "none") clears a file.
        let path = |p: PathBuf| (!p.as_os_str().is_empty()).then_some(p);
        if let Some(v) = self.password_file {
            auth.password_file = path(v);
        }
        if let Some(v) = self.acl_file {
            auth.acl_file = path(v);
        }
    }

    /// Keys without a value.
    #[cfg(test)]
    pub(crate) fn missing(&self) -> Vec<&'static str> {
        let given = [
            self.allow_anonymous.is_some(),
            self.users.is_some(),
            self.scram_iterations.is_some(),
            self.password_file.is_some(),
            self.acl_file.is_some(),
        ];
        Self::KEYS
            .iter()
            .zip(given)
            .filter(|(_, g)| !g)
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str) -> User {
        User {
            username: name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn defaults_are_valid_and_open() {
        let a = AuthConfig::default();
        a.validate().unwrap();
        assert!(a.allow_anonymous);
        assert!(a.users.is_empty());
        assert_eq!(a.scram_iterations, 4096);
    }

    #[test]
    fn bad_values_name_the_key() {
        type Case = (fn(&mut AuthConfig), &'static str, &'static str);
        let cases: &[Case] = &[
            (
                |a| a.scram_iterations = 4095,
                "auth.scram_iterations",
                "at least 4096, got 4095",
            ),
            (
                |a| a.scram_iterations = MAX_SCRAM_ITERATIONS + 1,
                "auth.scram_iterations",
                "at most 1000000",
            ),
            (
                |a| a.users = vec![user("", "x")],
                "auth.users",
                "user #1 (\"\"): username must not be empty",
            ),
            (
                |a| a.users = vec![user("a", "x"), user("b", "")],
                "auth.users",
                "user #2 (\"b\"): password must not be empty",
            ),
            (
                |a| a.users = vec![user("a", "x"), user("a", "y")],
                "auth.users",
                "user #2 (\"a\"): listed twice",
            ),
            (
                |a| a.users = vec![user(&"u".repeat(65536), "x")],
                "auth.users",
                "at most 65535 bytes",
            ),
        ];
        for (edit, key, reason) in cases {
            let mut a = AuthConfig::default();
            edit(&mut a);
            let err = a.validate().unwrap_err();
            let ConfigError::Invalid { key: k, reason: r } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(k, key);
            assert!(r.contains(reason), "{key}: {r}");
        }
    }

    #[test]
    fn debug_hides_passwords() {
        let shown = format!("{:?}", user("alice", "s3cret"));
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<crate::Config, ConfigError> {
        let argv = std::iter::once("tern").chain(args.iter().copied());
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match crate::load_from(argv, &env)? {
            crate::Command::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_table_and_array_of_tables() {
        let c = crate::parse_str(
            "[auth]\nallow_anonymous = false\nscram_iterations = 8192\n\
             [[auth.users]]\nusername = \"alice\"\npassword = \"wonderland\"\n\
             [[auth.users]]\nusername = \"bob\"\npassword = \"builder\"\n",
        )
        .unwrap();
        assert!(!c.auth.allow_anonymous);
        assert_eq!(c.auth.scram_iterations, 8192);
        assert_eq!(
            c.auth.users,
            vec![user("alice", "wonderland"), user("bob", "builder")]
        );
        let inline = crate::parse_str(
            "[auth]\nusers = [{ username = \"alice\", password = \"wonderland\" }]\n",
        )
        .unwrap();
        assert_eq!(inline.auth.users, vec![user("alice", "wonderland")]);
        assert!(inline.auth.allow_anonymous, "default kept");

        let err =
            crate::parse_str("[[auth.users]]\nusername = \"a\"\npasswd = \"b\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `passwd`"), "{err}");
        let err = crate::parse_str("[auth]\nallow_anonymus = true\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `allow_anonymus`"),
            "{err}"
        );
        let err = crate::parse_str("[auth]\nscram_iterations = 100\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `auth.scram_iterations` (--scram-iterations, TERN_SCRAM_ITERATIONS): \
             must be at least 4096, got 100"
        );
        let err =
            crate::parse_str("[[auth.users]]\nusername = \"a\"\npassword = \"\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `auth.users`: user #1 (\"a\"): password must not be empty"
        );
    }

    #[test]
    fn flags_and_environment() {
        let c = run(&[], &[("TERN_ALLOW_ANONYMOUS", "false")]).unwrap();
        assert!(!c.auth.allow_anonymous);
        let c = run(&[], &[("TERN_SCRAM_ITERATIONS", "5000")]).unwrap();
        assert_eq!(c.auth.scram_iterations, 5000);
        let c = run(
            &["--allow-anonymous=false", "--scram-iterations", "6000"],
            &[],
        )
        .unwrap();
        assert!(!c.auth.allow_anonymous);
        assert_eq!(c.auth.scram_iterations, 6000);
        // The flag beats the variable.
        let c = run(&["--allow-anonymous"], &[("TERN_ALLOW_ANONYMOUS", "no")]).unwrap();
        assert!(c.auth.allow_anonymous);
        let err = run(&[], &[("TERN_SCRAM_ITERATIONS", "10")]).unwrap_err();
        assert!(err.to_string().contains("auth.scram_iterations"), "{err}");
        let err = run(&[], &[("TERN_ALLOW_ANONYMOUS", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("TERN_ALLOW_ANONYMOUS"), "{err}");
        assert_eq!(run(&[], &[]).unwrap().auth, AuthConfig::default());
    }

    #[test]
    fn layer_merge_and_apply() {
        let high = AuthLayer {
            allow_anonymous: Some(false),
            ..AuthLayer::default()
        };
        let low = AuthLayer {
            allow_anonymous: Some(true),
            users: Some(vec![user("a", "b")]),
            ..AuthLayer::default()
        };
        let merged = high.or(low);
        assert_eq!(
            merged.missing(),
            vec!["scram_iterations", "password_file", "acl_file"]
        );
        let mut a = AuthConfig::default();
        merged.apply(&mut a);
        assert!(!a.allow_anonymous);
        assert_eq!(a.users, vec![user("a", "b")]);
        assert_eq!(a.scram_iterations, 4096);
    }
}
