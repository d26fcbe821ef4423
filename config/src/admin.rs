//! The bearer token that guards `POST /admin/reload`: `admin_token` (the
//! value) or `admin_token_file` (a file holding it, so the secret stays out
//! of the main file, e.g. a Kubernetes Secret mounted as a file). The
//! broker reads the file at start and at every reload.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ConfigError;

/// A secret string: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl crate::env::EnvValue for Secret {
    fn parse_env(s: &str) -> Result<Self, String> {
        Ok(Self::new(s))
    }
}

/// The longest token, in bytes.
pub const MAX_ADMIN_TOKEN_LEN: usize = 4096;

/// One token source at most; a given token is non-empty, without
/// whitespace, at most [`MAX_ADMIN_TOKEN_LEN`] bytes; `admin_endpoint`
/// needs a token (an unauthenticated reload endpoint is refused rather than
/// served).
pub(crate) fn validate(
    endpoint: bool,
    token: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<(), ConfigError> {
    if token.is_some() && file.is_some() {
        return Err(ConfigError::Invalid {
            key: "admin_token",
            reason: "give admin_token or admin_token_file, not both".into(),
        });
    }
    if let Some(token) = token {
        check_token(token.expose()).map_err(|reason| ConfigError::Invalid {
            key: "admin_token",
            reason,
        })?;
    }
    if file.is_some_and(|f| f.as_os_str().is_empty()) {
        return Err(ConfigError::Invalid {
            key: "admin_token_file",
            reason: "must not be empty".into(),
        });
    }
    if endpoint && token.is_none() && file.is_none() {
        return Err(ConfigError::Invalid {
            key: "admin_endpoint",
            reason:
                "needs admin_token or admin_token_file: POST /admin/reload requires a bearer token"
                    .into(),
        });
    }
    Ok(())
}

/// What a token (given or read from its file, trimmed) must be.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token must not be empty".into());
    }
    if token.len() > MAX_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the token must be at most {MAX_ADMIN_TOKEN_LEN} bytes, got {}",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let t = Secret::new("s3cret");
        assert_eq!(format!("{t:?}"), "Secret(..)");
        let file = PathBuf::from("/run/secrets/tern-admin");
        validate(false, None, None).unwrap();
        validate(true, Some(&t), None).unwrap();
        validate(true, None, Some(&file)).unwrap();
        let err = validate(true, None, None).unwrap_err().to_string();
        assert!(err.contains("`admin_endpoint`"), "{err}");
        assert!(
            err.contains("needs admin_token or admin_token_file"),
            "{err}"
        );
        let err = validate(false, Some(&t), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
        for bad in ["", "a b", "tab\t", "é"] {
            assert!(
                validate(false, Some(&Secret::new(bad)), None).is_err(),
                "{bad:?}"
            );
        }
        let long = "x".repeat(MAX_ADMIN_TOKEN_LEN + 1);
        assert!(check_token(&long).is_err());
        let err = validate(false, None, Some(&PathBuf::new())).unwrap_err();
        assert!(err.to_string().contains("admin_token_file"), "{err}");
    }
}
