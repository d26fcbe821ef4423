//! [`UserTable`]: the credential store for users listed in the configuration.

use super::scram::{fill_random, ScramCredential, ScramError, ScramMechanism};
use super::CredentialStore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use subtle::ConstantTimeEq;

/// Users with their credentials, derived once when the table is built:
/// for CONNECT passwords a salted SHA-256 (compared in constant time), for
/// each SCRAM mechanism a salted PBKDF2 credential. Passwords themselves
/// are not kept.
pub struct UserTable {
    users: HashMap<String, Entry>,
    iterations: u32,
}

struct Entry {
    password_salt: [u8; 16],
    password_hash: [u8; 32],
    /// One per [`ScramMechanism::ALL`], in that order.
    scram: [ScramCredential; 2],
}

impl UserTable {
    /// Builds the table from `(user name, password)` pairs with a random salt
    /// per user and mechanism. `iterations` is the PBKDF2 round count for
    /// SCRAM (at least 4096 by RFC 7677); the cost is paid here, once per
    /// user. A user listed twice keeps the last password.
    pub fn new<I, U, P>(users: I, iterations: u32) -> Result<Self, ScramError>
    where
        I: IntoIterator<Item = (U, P)>,
        U: Into<String>,
        P: AsRef<[u8]>,
    {
        let mut table = HashMap::new();
        for (user, password) in users {
            let password = password.as_ref();
            let mut salts = [0u8; 48];
            fill_random(&mut salts)?;
            let mut password_salt = [0u8; 16];
            password_salt.copy_from_slice(&salts[..16]);
            let scram = [
                ScramCredential::derive(
                    ScramMechanism::ALL[0],
                    password,
                    &salts[16..32],
                    iterations,
                ),
                ScramCredential::derive(ScramMechanism::ALL[1], password, &salts[32..], iterations),
            ];
            let entry = Entry {
                password_salt,
                password_hash: salted_hash(&password_salt, password),
                scram,
            };
            table.insert(user.into(), entry);
        }
        Ok(Self {
            users: table,
            iterations,
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn salted_hash(salt: &[u8], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

impl CredentialStore for UserTable {
    fn check_password(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(e) => salted_hash(&e.password_salt, password)
                .ct_eq(&e.password_hash)
                .into(),
            None => {
                // Same work as for a known user.
                let _ = salted_hash(&[0; 16], password);
                false
            }
        }
    }

    fn scram(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        let i = ScramMechanism::ALL.iter().position(|m| *m == mech)?;
        self.users.get(user).map(|e| e.scram[i].clone())
    }

    fn scram_iterations(&self) -> u32 {
        self.iterations
    }
}

/// Shows the number of users, never names or credentials.
impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTable")
            .field("users", &self.users.len())
            .finish()
    }
}
