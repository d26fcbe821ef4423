//! Mosquitto-compatible access control: the password file
//! ([`PasswordFile`], the format `mosquitto_passwd` writes) and the ACL
//! file ([`AclFile`]), compiled once per client at CONNECT into a
//! [`ClientAcl`] whose checks cost no allocation and no lock.
//!
//! No IO and no clock: the broker reads the files, verifies passwords off
//! its message loop (a `$7$` check is thousands of SHA-512 rounds), and
//! asks a client's `ClientAcl` on every PUBLISH, SUBSCRIBE and delivery.
//! [`SuccessCache`] remembers recent successful password checks.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod acl;
mod cache;
mod passwd;

pub use acl::{Access, AclFile, ClientAcl};
pub use cache::SuccessCache;
pub use passwd::{
    PasswordFile, PasswordHash, Verdict, DEFAULT_ITERATIONS, MAX_FIELD, MAX_ITERATIONS, SALT_LEN,
};

/// Why a password or ACL file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// A line of a password file that is not `user:$6$…` or `user:$7$…`.
    #[error("password file line {line}: {reason}")]
    PasswordLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of an ACL file that Mosquitto would not accept either.
    #[error("ACL file line {line}: {reason}")]
    AclLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The system's random source failed (a new salt).
    #[error("no random bytes for a salt: {0}")]
    Random(String),
}
