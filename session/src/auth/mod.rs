//! Authentication: the credential store interface, CONNECT user name and
//! password checks, and MQTT 5 enhanced authentication (4.12) with SCRAM.
//!
//! * [`CredentialStore`] answers two questions: does this password match,
//!   and what is this user's SCRAM credential. [`UserTable`] implements it
//!   for users given in the configuration; a password file can plug in later.
//! * [`AuthPolicy`] (in [`SessionConfig`](crate::SessionConfig)) holds the
//!   store and whether anonymous clients are accepted;
//!   [`Connection::check_connect`](crate::Connection::check_connect) applies it.
//! * [`AuthExchange`] runs one SCRAM exchange over AUTH packets. The broker
//!   drives the first one between CONNECT and CONNACK, then passes the
//!   [`Authenticated`] outcome in [`ConnectCheck`](crate::ConnectCheck) to
//!   [`Connection::new`](crate::Connection::new), whose CONNACK carries the
//!   method and the server-final data. Re-authentication (AUTH 0x19) is
//!   handled inside [`Connection::handle_packet`](crate::Connection::handle_packet).

mod exchange;
pub(crate) mod reauth;
mod scram;
mod store;

pub use exchange::{AuthExchange, Authenticated};
pub use scram::{ScramCredential, ScramError, ScramMechanism, ScramServer, MAX_SCRAM_MESSAGE};
pub use store::UserTable;

use std::fmt;
use std::sync::Arc;
use tern_codec::{Connect, ReasonCode};

/// Where user names, passwords and SCRAM credentials are looked up.
/// Implementations must be cheap to call on a worker thread: no IO, no
/// password hashing with many rounds per call.
pub trait CredentialStore: Send + Sync {
    /// True when `user` exists and `password` is its password.
    fn check_password(&self, user: &str, password: &[u8]) -> bool;
    /// The SCRAM credential of `user` for `mech`; `None` for an unknown
    /// user (the exchange then fails at the proof, like a wrong password).
    fn scram(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential>;
    /// The iteration count shown to a client naming an unknown user, so
    /// that it looks like a known one: the store's usual count.
    fn scram_iterations(&self) -> u32 {
        4096
    }
}

/// Who may connect: the credential store (if any) and whether clients
/// without a user name are accepted.
#[derive(Clone)]
pub struct AuthPolicy {
    /// Accept a CONNECT with neither a user name nor an Authentication Method.
    pub allow_anonymous: bool,
    /// Checks user names, passwords and SCRAM; `None` = no users configured
    /// (user names are then not checked, and only accepted when
    /// `allow_anonymous` is set; enhanced authentication is refused).
    pub store: Option<Arc<dyn CredentialStore>>,
}

impl Default for AuthPolicy {
    /// Anonymous clients accepted, no store: every CONNECT passes.
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            store: None,
        }
    }
}

impl fmt::Debug for AuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthPolicy")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("store", &self.store.as_ref().map(|_| "CredentialStore"))
            .finish()
    }
}

/// Equal when both accept the same anonymous clients and share one store.
impl PartialEq for AuthPolicy {
    fn eq(&self, other: &Self) -> bool {
        let same_store = match (&self.store, &other.store) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.allow_anonymous == other.allow_anonymous && same_store
    }
}

impl Eq for AuthPolicy {}

impl AuthPolicy {
    /// The SCRAM mechanism for a v5 Authentication Method, when a store is
    /// configured to answer it.
    pub fn mechanism(&self, method: &str) -> Option<ScramMechanism> {
        self.store.as_ref()?;
        ScramMechanism::from_name(method)
    }

    /// The CONNECT checks of this policy:
    /// * v5 with an Authentication Method: supported (SCRAM with a store) →
    ///   accepted here, the exchange decides; otherwise 0x8C
    ///   ([MQTT-4.12.0-1]). User Name and Password are then not checked.
    /// * a User Name: checked against the store (wrong or unknown → 0x86,
    ///   v3 return code 4); without a store it is not checked and counts as
    ///   anonymous.
    /// * anonymous while `allow_anonymous` is off → 0x87 (v3 return code 5).
    pub fn check_connect(&self, connect: &Connect) -> Result<(), ReasonCode> {
        if let Some(method) = &connect.properties.authentication_method {
            if connect.protocol.is_v5() {
                return match self.mechanism(method) {
                    Some(_) => Ok(()),
                    None => Err(ReasonCode::BAD_AUTHENTICATION_METHOD),
                };
            }
        }
        match (&connect.username, &self.store) {
            (Some(user), Some(store)) => {
                let password = connect.password.as_deref().unwrap_or_default();
                if store.check_password(user, password) {
                    Ok(())
                } else {
                    Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
                }
            }
            _ if self.allow_anonymous => Ok(()),
            (Some(_), None) => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            (None, _) => Err(ReasonCode::NOT_AUTHORIZED),
        }
    }
}

#[cfg(test)]
mod tests;
