//! Recent successful password checks, so that a reconnect storm costs one
//! PBKDF2 run per user instead of one per CONNECT.
//!
//! An entry is the SHA-256 of a per-process random salt, the id of the
//! password file it was checked against (a reloaded file has another id,
//! so its entries never match), the user name and the password. Neither
//! the password nor a hash usable outside this process is kept. Entries
//! live for `ttl`; at `capacity` the expired ones go, and if none had
//! expired the cache starts over (a storm of distinct users then pays
//! their PBKDF2 runs, as without a cache).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::AccessError;

/// See the module docs. No clock is read: `now` is passed in.
#[derive(Debug)]
pub struct SuccessCache {
    salt: [u8; 16],
    entries: HashMap<[u8; 32], Instant, ahash::RandomState>,
    capacity: usize,
    ttl: Duration,
}

impl SuccessCache {
    /// An empty cache of at most `capacity` entries living `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Result<Self, AccessError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AccessError::Random(e.to_string()))?;
        Ok(Self {
            salt,
            entries: HashMap::default(),
            capacity: capacity.max(1),
            ttl,
        })
    }

    fn key(&self, file: u64, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(file.to_le_bytes());
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize().into()
    }

    /// True when `user` proved `password` against file `file` less than
    /// `ttl` ago.
    pub fn hit(&self, now: Instant, file: u64, user: &str, password: &[u8]) -> bool {
        self.entries
            .get(&self.key(file, user, password))
            .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    /// Records a successful check.
    pub fn insert(&mut self, now: Instant, file: u64, user: &str, password: &[u8]) {
        if self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries
                .retain(|_, at| now.saturating_duration_since(*at) < ttl);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        let key = self.key(file, user, password);
        self.entries.insert(key, now);
    }

    /// Number of entries (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_same_file_user_and_password_within_ttl() {
        let t0 = Instant::now();
        let mut c = SuccessCache::new(2, Duration::from_secs(10)).unwrap();
        c.insert(t0, 1, "alice", b"pw");
        assert!(c.hit(t0, 1, "alice", b"pw"));
        assert!(!c.hit(t0, 2, "alice", b"pw"), "another file");
        assert!(!c.hit(t0, 1, "alice", b"pW"));
        assert!(
            !c.hit(t0, 1, "alicep", b"w"),
            "user and password are delimited"
        );
        assert!(
            !c.hit(t0 + Duration::from_secs(10), 1, "alice", b"pw"),
            "expired"
        );
        c.insert(t0, 1, "bob", b"x");
        assert_eq!(c.len(), 2);
        // Full, nothing expired: starts over.
        c.insert(t0, 1, "carol", b"y");
        assert_eq!(c.len(), 1);
        assert!(c.hit(t0, 1, "carol", b"y"));
        // Full with an expired entry: only that one goes.
        c.insert(t0 + Duration::from_secs(5), 1, "dave", b"z");
        c.insert(t0 + Duration::from_secs(11), 1, "erin", b"w");
        assert!(c.hit(t0 + Duration::from_secs(11), 1, "dave", b"z"));
        assert!(c.hit(t0 + Duration::from_secs(11), 1, "erin", b"w"));
    }
}
