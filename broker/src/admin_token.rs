//! The bearer token of `POST /admin/reload` (`admin_token`, or the file
//! `admin_token_file` names, read at start and at every reload).
//!
//! Only a SHA-256 digest of the token is kept; a request's token is hashed
//! the same way and the digests compared in constant time, so neither the
//! token's bytes nor its length show in how long a refusal takes.

use crate::error::BrokerError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tern_config::Config;

/// The expected token, as a digest.
#[derive(Clone)]
pub(crate) struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unauthorized {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A bearer token, but not this one.
    Wrong,
}

impl AdminToken {
    /// The token `config` names, if any: `admin_token`, or the contents of
    /// `admin_token_file` without surrounding whitespace.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, BrokerError> {
        if let Some(token) = &config.admin_token {
            return Ok(Some(Self::new(token.expose())));
        }
        let Some(path) = &config.admin_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            BrokerError::AdminToken(format!(
                "cannot read admin_token_file {}: {e}",
                path.display()
            ))
        })?;
        let token = text.trim();
        tern_config::check_admin_token(token).map_err(|reason| {
            BrokerError::AdminToken(format!("admin_token_file {}: {reason}", path.display()))
        })?;
        Ok(Some(Self::new(token)))
    }

    fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Checks an `Authorization` header value (`Bearer TOKEN`, the scheme
    /// case-insensitive, RFC 6750).
    pub(crate) fn check(&self, authorization: Option<&[u8]>) -> Result<(), Unauthorized> {
        let Some(value) = authorization else {
            return Err(Unauthorized::Missing);
        };
        let Some((scheme, token)) = value.split_at_checked(7) else {
            return Err(Unauthorized::Missing);
        };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return Err(Unauthorized::Missing);
        }
        let given: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        if bool::from(given.ct_eq(&self.digest)) {
            Ok(())
        } else {
            Err(Unauthorized::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let t = AdminToken::new("s3cret");
        assert_eq!(t.check(Some(b"Bearer s3cret")), Ok(()));
        assert_eq!(t.check(Some(b"bearer s3cret")), Ok(()));
        assert_eq!(t.check(Some(b"Bearer s3cret2")), Err(Unauthorized::Wrong));
        assert_eq!(t.check(Some(b"Bearer ")), Err(Unauthorized::Wrong));
        assert_eq!(t.check(Some(b"Basic czNjcmV0")), Err(Unauthorized::Missing));
        assert_eq!(t.check(Some(b"s3cret")), Err(Unauthorized::Missing));
        assert_eq!(t.check(None), Err(Unauthorized::Missing));
        assert_eq!(format!("{t:?}"), "AdminToken(..)");
    }

    #[test]
    fn from_config_reads_the_file() {
        let path = std::env::temp_dir().join(format!("tern-admin-token-{}", std::process::id()));
        std::fs::write(&path, "  from-file\n").unwrap();
        let config = Config {
            admin_token_file: Some(path.clone()),
            ..Config::default()
        };
        let t = AdminToken::from_config(&config).unwrap().unwrap();
        assert_eq!(t.check(Some(b"Bearer from-file")), Ok(()));
        std::fs::write(&path, "two words\n").unwrap();
        let err = AdminToken::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("printable ASCII"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = AdminToken::from_config(&config).unwrap_err().to_string();
        assert!(err.contains("cannot read admin_token_file"), "{err}");
        assert!(AdminToken::from_config(&Config::default())
            .unwrap()
            .is_none());
    }
}
