//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side,
//! without channel binding. Pure functions of their inputs: the caller
//! supplies the server nonce.
//!
//! Exchange: client-first (`n,,n=user,r=cnonce`) → server-first
//! (`r=cnonce+snonce,s=salt,i=iterations`) → client-final
//! (`c=biws,r=…,p=proof`) → server-final (`v=signature`). User names are
//! compared as given (no SASLprep); `=2C` and `=3D` are decoded.

use super::CredentialStore;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use std::sync::OnceLock;
use subtle::ConstantTimeEq;

/// Longest SCRAM message accepted from a client, in bytes.
pub const MAX_SCRAM_MESSAGE: usize = 2048;

/// A SCRAM mechanism, named as the MQTT Authentication Method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (RFC 7677).
    Sha256,
    /// `SCRAM-SHA-512`.
    Sha512,
}

impl ScramMechanism {
    /// Every supported mechanism.
    pub const ALL: [Self; 2] = [Self::Sha256, Self::Sha512];

    /// The SASL mechanism name, used as the MQTT Authentication Method.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism called `name` (exact, case-sensitive as SASL names are).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Output length of the hash in bytes.
    fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// Runs `$e` with `$d` aliased to the mechanism's hash type.
macro_rules! with_digest {
    ($mech:expr, $d:ident => $e:expr) => {
        match $mech {
            ScramMechanism::Sha256 => {
                type $d = Sha256;
                $e
            }
            ScramMechanism::Sha512 => {
                type $d = Sha512;
                $e
            }
        }
    };
}

fn hmac(mech: ScramMechanism, key: &[u8], msg: &[u8]) -> Vec<u8> {
    with_digest!(mech, D => {
        // HMAC accepts keys of any length; the error branch is unreachable
        // and fails closed (an empty signature never verifies).
        match <Hmac<D> as Mac>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    })
}

fn hash(mech: ScramMechanism, data: &[u8]) -> Vec<u8> {
    with_digest!(mech, D => D::digest(data).to_vec())
}

/// What a server stores to verify one user with one mechanism
/// (RFC 5802 section 3): never the password itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt given to the client.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count given to the client.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Derives the stored credential from a password (PBKDF2 with
    /// `iterations` rounds: slow on purpose, do it once at load).
    pub fn derive(mech: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let mut salted = vec![0u8; mech.len()];
        with_digest!(mech, D => pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut salted));
        let client_key = hmac(mech, &salted, b"Client Key");
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash(mech, &client_key),
            server_key: hmac(mech, &salted, b"Server Key"),
        }
    }

    /// A credential no proof matches, with a salt that is the same for every
    /// attempt on `user`, so an unknown user looks like a wrong password.
    fn decoy(mech: ScramMechanism, user: &str, iterations: u32) -> Result<Self, ScramError> {
        let secret = decoy_secret()?;
        let mut tagged = mech.name().as_bytes().to_vec();
        tagged.push(0);
        tagged.extend_from_slice(user.as_bytes());
        let mut salt = hmac(ScramMechanism::Sha256, secret, &tagged);
        salt.truncate(16);
        let mut keys = vec![0u8; 2 * mech.len()];
        fill_random(&mut keys)?;
        let server_key = keys.split_off(mech.len());
        Ok(Self {
            salt,
            iterations,
            stored_key: keys,
            server_key,
        })
    }
}

/// Shows the salt length and iterations, never the keys.
impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ScramError> {
    getrandom::fill(buf).map_err(|_| ScramError::Random)
}

/// A random server nonce: 18 random bytes in base64 (24 printable characters, no `,`).
pub(crate) fn server_nonce() -> Result<String, ScramError> {
    let mut raw = [0u8; 18];
    fill_random(&mut raw)?;
    Ok(B64.encode(raw))
}

/// A per-process secret for decoy salts.
fn decoy_secret() -> Result<&'static [u8; 32], ScramError> {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(s) = SECRET.get() {
        return Ok(s);
    }
    let mut s = [0u8; 32];
    fill_random(&mut s)?;
    let _ = SECRET.set(s);
    SECRET.get().ok_or(ScramError::Random)
}

/// Why a SCRAM exchange failed. Every failure refuses the client (0x87).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// No Authentication Data where a SCRAM message was due.
    #[error("no SCRAM message in the Authentication Data")]
    MissingData,
    /// A client message over [`MAX_SCRAM_MESSAGE`] bytes.
    #[error("SCRAM message longer than {MAX_SCRAM_MESSAGE} bytes")]
    TooLong,
    /// A client message that does not follow RFC 5802's grammar.
    #[error("malformed SCRAM {0} message")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=`), which is not offered.
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    /// The mandatory extension `m=` is not supported.
    #[error("unsupported mandatory SCRAM extension")]
    Extension,
    /// An authorization identity other than the user name.
    #[error("SCRAM authorization identity differs from the user name")]
    AuthzId,
    /// The client-final nonce is not the one the server sent.
    #[error("SCRAM nonce mismatch")]
    Nonce,
    /// The client-final channel binding data is not the client-first GS2 header.
    #[error("SCRAM channel binding data mismatch")]
    Binding,
    /// Wrong password (or unknown user).
    #[error("SCRAM proof does not verify")]
    InvalidProof,
    /// A re-authentication with another user name.
    #[error("re-authentication must keep the user name")]
    UserChanged,
    /// The operating system gave no random bytes.
    #[error("no randomness available for SCRAM")]
    Random,
}

/// The server side of one SCRAM exchange, after the client-first message.
pub struct ScramServer {
    mech: ScramMechanism,
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    cred: ScramCredential,
    /// False for an unknown user: the exchange runs on a decoy and fails.
    known: bool,
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("mech", &self.mech)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Reads the client-first message and prepares the server-first message
    /// (returned) with `server_nonce` appended to the client's nonce. An
    /// unknown user continues with a decoy credential and fails at the proof.
    pub fn start(
        mech: ScramMechanism,
        store: &dyn CredentialStore,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let msg = text(client_first, "client-first")?;
        let (gs2_header, bare) = split_gs2(msg)?;
        let mut attrs = bare.split(',');
        let user = match attrs.next() {
            Some(a) if a.starts_with("m=") => return Err(ScramError::Extension),
            Some(a) => sasl_name(a.strip_prefix("n=").ok_or(malformed("client-first"))?)?,
            None => return Err(malformed("client-first")),
        };
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or(malformed("client-first"))?;
        if let Some(authzid) = gs2_header.authzid {
            if sasl_name(authzid)? != user {
                return Err(ScramError::AuthzId);
            }
        }
        let (cred, known) = match store.scram(&user, mech) {
            Some(c) => (c, true),
            None => {
                let decoy = ScramCredential::decoy(mech, &user, store.scram_iterations())?;
                (decoy, false)
            }
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&cred.salt),
            cred.iterations
        );
        let server = Self {
            mech,
            user,
            gs2_header: gs2_header.text.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            cred,
            known,
        };
        Ok((server, server_first))
    }

    /// The user name from the client-first message.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mech
    }

    /// Verifies the client-final message; returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let msg = text(client_final, "client-final")?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(malformed("client-final"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(malformed("client-final"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(malformed("client-final"))?;
        if binding != B64.encode(&self.gs2_header) {
            return Err(ScramError::Binding);
        }
        if nonce != self.nonce {
            return Err(ScramError::Nonce);
        }
        let proof = B64.decode(proof).map_err(|_| malformed("client-final"))?;
        if proof.len() != self.mech.len() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = hmac(self.mech, &self.cred.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let matches: bool = hash(self.mech, &client_key)
            .ct_eq(&self.cred.stored_key)
            .into();
        if !(matches && self.known) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac(self.mech, &self.cred.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

fn malformed(which: &'static str) -> ScramError {
    ScramError::Malformed(which)
}

/// A client message as text, within the size bound.
fn text<'a>(raw: &'a [u8], which: &'static str) -> Result<&'a str, ScramError> {
    if raw.len() > MAX_SCRAM_MESSAGE {
        return Err(ScramError::TooLong);
    }
    std::str::from_utf8(raw).map_err(|_| malformed(which))
}

/// The GS2 header of a client-first message.
struct Gs2Header<'a> {
    /// The header as sent, with its trailing comma (`n,,`).
    text: &'a str,
    /// The `a=` authorization identity, still encoded.
    authzid: Option<&'a str>,
}

/// Splits `n,[a=authzid],bare` into the header and the bare message.
fn split_gs2(msg: &str) -> Result<(Gs2Header<'_>, &str), ScramError> {
    let (flag, rest) = msg.split_once(',').ok_or(malformed("client-first"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(malformed("client-first")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(malformed("client-first"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=").ok_or(malformed("client-first"))?),
    };
    let text = &msg[..msg.len() - bare.len()];
    Ok((Gs2Header { text, authzid }, bare))
}

/// Decodes a SASL name (`=2C` → `,`, `=3D` → `=`); it must not be empty.
fn sasl_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let decoded = match after.get(..2) {
            Some("2C") => ',',
            Some("3D") => '=',
            _ => return Err(malformed("user name")),
        };
        out.push(decoded);
        rest = &after[2..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("user name"));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
