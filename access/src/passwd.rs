//! The Mosquitto password file: one `user:hash` line per user, as
//! `mosquitto_passwd` writes it.
//!
//! * `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 of the password with
//!   the salt, ITERATIONS rounds (mosquitto 2.x; `mosquitto_passwd`'s
//!   default is 101);
//! * `$6$SALT$HASH`: SHA-512 of the password followed by the salt
//!   (mosquitto 1.x).
//!
//! SALT is 12 bytes and HASH 64, both standard base64 with padding.
//! Comment lines (`#` first) and blank lines are kept when the file is
//! written back. Where Mosquitto skips a line it cannot read with a
//! warning, Tern refuses the whole file and names the line: a typo then
//! fails the start or the reload instead of locking a user out.
//! [`PasswordFile::parse_plain`] reads the plain `user:password` lines that
//! `mosquitto_passwd -U` upgrades.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::fmt;
use subtle::ConstantTimeEq;

use crate::AccessError;

/// Salt length of both formats (Mosquitto's `SALT_LEN`).
pub const SALT_LEN: usize = 12;
/// `$7$` iterations `mosquitto_passwd` uses by default.
pub const DEFAULT_ITERATIONS: u32 = 101;
/// Most `$7$` iterations accepted in a file: a check must stay bounded.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Longest user name or password (MQTT strings are at most 65535 bytes).
pub const MAX_FIELD: usize = 65535;
const HASH_LEN: usize = 64;

/// One user's stored password.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        /// Round count.
        iterations: u32,
        /// The salt.
        salt: [u8; SALT_LEN],
        /// The derived key.
        hash: [u8; HASH_LEN],
    },
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 {
        /// The salt.
        salt: [u8; SALT_LEN],
        /// The digest.
        hash: [u8; HASH_LEN],
    },
}

impl PasswordHash {
    /// A new `$7$` hash of `password` with a random salt.
    pub fn new_pbkdf2(password: &[u8], iterations: u32) -> Result<Self, AccessError> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| AccessError::Random(e.to_string()))?;
        let iterations = iterations.max(1);
        Ok(Self::Pbkdf2 {
            iterations,
            hash: pbkdf2_sha512(password, &salt, iterations),
            salt,
        })
    }

    /// True when `password` is this user's password (constant-time compare).
    /// Slow on purpose for `$7$`: call it off the message path.
    pub fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            Self::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => (pbkdf2_sha512(password, salt, *iterations), hash),
            Self::Sha512 { salt, hash } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                (h.finalize().into(), hash)
            }
        };
        computed.ct_eq(stored).into()
    }

    /// True for a `$6$` hash (what `-U` and a new password replace).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Self::Sha512 { .. })
    }

    /// Parses `$7$…` or `$6$…`; `Err` is the reason, for the line's error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('$').collect();
        match parts.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .map_err(|_| format!("bad $7$ iteration count {iterations:?}"))?;
                if iterations == 0 || iterations > MAX_ITERATIONS {
                    return Err(format!(
                        "$7$ iteration count {iterations} is not in 1..={MAX_ITERATIONS}"
                    ));
                }
                Ok(Self::Pbkdf2 {
                    iterations,
                    salt: decode(salt, "salt")?,
                    hash: decode(hash, "hash")?,
                })
            }
            ["", "6", salt, hash] => Ok(Self::Sha512 {
                salt: decode(salt, "salt")?,
                hash: decode(hash, "hash")?,
            }),
            ["", kind, ..] if *kind == "6" || *kind == "7" => {
                Err(format!("malformed ${kind}$ hash (wrong number of fields)"))
            }
            ["", kind, ..] => Err(format!(
                "unknown hash format ${kind}$ (Tern and Mosquitto read $6$ and $7$)"
            )),
            _ => Err("not a $6$ or $7$ hash (a plain text password? run `tern passwd -U`)".into()),
        }
    }
}

fn decode<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| format!("{what} is not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{what} is {} bytes, expected {N}", b.len()))
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

/// As the file spells it.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                STANDARD.encode(salt),
                STANDARD.encode(hash)
            ),
            Self::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
        }
    }
}

/// Never shows the hash.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pbkdf2 { iterations, .. } => write!(f, "Pbkdf2 {{ iterations: {iterations} }}"),
            Self::Sha512 { .. } => f.write_str("Sha512"),
        }
    }
}

/// One line of the file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept as it was.
    Other(String),
    /// A user, by name (its entry is in `users`).
    User(String),
}

/// A password file: users with their hashes, and the file's other lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    lines: Vec<Line>,
    users: HashMap<String, Entry>,
}

/// A user's stored password: a hash, or (only before `-U`) plain text.
#[derive(Clone, PartialEq, Eq)]
enum Entry {
    Hash(PasswordHash),
    Plain(String),
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hash(h) => h.fmt(f),
            Self::Plain(_) => f.write_str("Plain"),
        }
    }
}

/// What [`PasswordFile::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user is in the file and the password is right.
    Accepted,
    /// The user is in the file and the password is wrong.
    Refused,
    /// The user is not in the file.
    UnknownUser,
}

impl PasswordFile {
    /// Reads a file as Mosquitto writes it: every user line must carry a
    /// `$6$` or `$7$` hash. `Err` names the line and the reason.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        Self::parse_inner(text, false)
    }

    /// Like [`parse`](Self::parse), but a password that is not a hash is
    /// taken as plain text (the input of `mosquitto_passwd -U`).
    pub fn parse_plain(text: &str) -> Result<Self, AccessError> {
        Self::parse_inner(text, true)
    }

    fn parse_inner(text: &str, plain: bool) -> Result<Self, AccessError> {
        let mut file = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let bad = |reason: String| AccessError::PasswordLine {
                line: i + 1,
                reason,
            };
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                file.lines.push(Line::Other(line.to_string()));
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(bad("no ':' between user name and password hash".into()));
            };
            let (user, hash) = (user.trim(), hash.trim());
            if user.is_empty() {
                return Err(bad("empty user name".into()));
            }
            if user.len() > MAX_FIELD || hash.len() > MAX_FIELD {
                return Err(bad("user name or hash longer than 65535 bytes".into()));
            }
            let entry = match PasswordHash::parse(hash) {
                Ok(h) => Entry::Hash(h),
                Err(_) if plain && !hash.starts_with('$') => Entry::Plain(hash.to_string()),
                Err(reason) => return Err(bad(format!("user {user:?}: {reason}"))),
            };
            if file.users.insert(user.to_string(), entry).is_some() {
                return Err(bad(format!("user {user:?} is listed twice")));
            }
            file.lines.push(Line::User(user.to_string()));
        }
        Ok(file)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when `user` is in the file.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The hash of `user`, when the file has one.
    pub fn hash(&self, user: &str) -> Option<&PasswordHash> {
        match self.users.get(user)? {
            Entry::Hash(h) => Some(h),
            Entry::Plain(_) => None,
        }
    }

    /// Checks `password` for `user` (slow for `$7$`: off the message path).
    /// A plain-text entry never matches: only [`parse_plain`](Self::parse_plain)
    /// makes one, for `-U`.
    pub fn check(&self, user: &str, password: &[u8]) -> Verdict {
        match self.users.get(user) {
            None => Verdict::UnknownUser,
            Some(Entry::Hash(h)) if h.verify(password) => Verdict::Accepted,
            Some(_) => Verdict::Refused,
        }
    }

    /// Sets `user`'s hash (a new user goes at the end).
    pub fn set(&mut self, user: &str, hash: PasswordHash) {
        if self
            .users
            .insert(user.to_string(), Entry::Hash(hash))
            .is_none()
        {
            self.lines.push(Line::User(user.to_string()));
        }
    }

    /// Removes `user`; false when it was not there.
    pub fn remove(&mut self, user: &str) -> bool {
        if self.users.remove(user).is_none() {
            return false;
        }
        self.lines
            .retain(|l| !matches!(l, Line::User(u) if u == user));
        true
    }

    /// Hashes every plain-text password (`mosquitto_passwd -U`) with
    /// `$7$` and `iterations`; returns how many it hashed.
    pub fn upgrade_plain(&mut self, iterations: u32) -> Result<usize, AccessError> {
        let mut n = 0;
        for entry in self.users.values_mut() {
            if let Entry::Plain(p) = entry {
                *entry = Entry::Hash(PasswordHash::new_pbkdf2(p.as_bytes(), iterations)?);
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The file as `mosquitto_passwd` writes it: one `user:hash` line per
/// user, comments kept, a newline after every line.
impl fmt::Display for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Other(s) => writeln!(f, "{s}")?,
                Line::User(u) => match self.users.get(u) {
                    Some(Entry::Hash(h)) => writeln!(f, "{u}:{h}")?,
                    Some(Entry::Plain(p)) => writeln!(f, "{u}:{p}")?,
                    None => {}
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by mosquitto_passwd 2.0.11 (`-c -b`, password "secret"); the
    // `$6$` line is built here the way mosquitto 1.x hashed.
    const P7: &str = "alice:$7$101$tSkyTC4WfbAM/mXf$6Tj2JzqNy+PrDtd0NGDWRuwxbLLU5ofDwqi6+jjxe/RCfge63uFVIiE0+E3Yv5Ms6AxsFI0CXANc0Wq6QE0Mow==";

    fn sha512_line(user: &str, password: &str, salt: [u8; SALT_LEN]) -> String {
        let mut h = Sha512::new();
        h.update(password.as_bytes());
        h.update(salt);
        let hash: [u8; 64] = h.finalize().into();
        format!(
            "{user}:$6${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(hash)
        )
    }

    #[test]
    fn both_formats_verify() {
        let text = format!(
            "# users\n{}\n\n{}\n",
            P7,
            sha512_line("bob", "pw6", [7; 12])
        );
        let f = PasswordFile::parse(&text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.check("alice", b"secret"), Verdict::Accepted);
        assert_eq!(f.check("alice", b"Secret"), Verdict::Refused);
        assert_eq!(f.check("bob", b"pw6"), Verdict::Accepted);
        assert_eq!(f.check("bob", b"pw"), Verdict::Refused);
        assert_eq!(f.check("carol", b"pw6"), Verdict::UnknownUser);
        assert_eq!(f.to_string(), text, "written back as read");
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, needle) in [
            ("a:$5$x$y\n", 1, "unknown hash format $5$"),
            ("# c\nb:$7$101$AAAA\n", 2, "malformed $7$"),
            ("a:$7$zero$AAAAAAAAAAAAAAAA$AAAA\n", 1, "iteration"),
            ("a:$6$AAAA$AAAA\n", 1, "salt is 3 bytes"),
            ("a:$6$!!$AAAA\n", 1, "not base64"),
            ("nocolon\n", 1, "no ':'"),
            ("a:plain\n", 1, "plain text"),
            (":$6$x$y\n", 1, "empty user name"),
        ] {
            let e = PasswordFile::parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")), "{e}");
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let dup = format!("{P7}\n{P7}\n");
        let e = PasswordFile::parse(&dup).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");
    }

    #[test]
    fn set_remove_upgrade_round_trip() {
        let mut f = PasswordFile::parse_plain("# x\nu1:plain1\nu2:plain2\n").unwrap();
        assert_eq!(
            f.check("u1", b"plain1"),
            Verdict::Refused,
            "plain never matches"
        );
        assert_eq!(f.upgrade_plain(5).unwrap(), 2);
        f.set("u3", PasswordHash::new_pbkdf2(b"p3", 7).unwrap());
        assert!(f.remove("u2"));
        assert!(!f.remove("u2"));
        let again = PasswordFile::parse(&f.to_string()).unwrap();
        assert_eq!(again.check("u1", b"plain1"), Verdict::Accepted);
        assert_eq!(again.check("u3", b"p3"), Verdict::Accepted);
        assert_eq!(again.check("u2", b"plain2"), Verdict::UnknownUser);
        assert!(again.to_string().starts_with("# x\nu1:$7$5$"));
        assert!(again.to_string().contains("\nu3:$7$7$"));
    }
}
