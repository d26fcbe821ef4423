//! The process-wide client-id registry: which worker is home to each session.
//!
//! Taken only on CONNECT and when a session ends, never on the message path.
//! A session never leaves its home worker; a new connection for an existing
//! client id migrates to that worker instead (see `worker::Worker::adopt`).

use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which worker holds a client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Home {
    pub(crate) worker: usize,
    /// Changes every time a worker claims the id, so a late release by an
    /// older owner is ignored.
    pub(crate) generation: u64,
}

/// What a worker learns when it claims a client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The session lives (or will live) on the claiming worker.
    Local { generation: u64 },
    /// The session lives on another worker: hand the connection over.
    Elsewhere { worker: usize },
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    homes: HashMap<ByteString, Home>,
    next_generation: u64,
}

impl Registry {
    /// Claims `client_id` for `worker` unless another worker is its home.
    pub(crate) fn claim(&self, client_id: &ByteString, worker: usize) -> Claim {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_generation += 1;
        let generation = inner.next_generation;
        match inner.homes.get_mut(client_id) {
            Some(home) if home.worker != worker => Claim::Elsewhere {
                worker: home.worker,
            },
            Some(home) => {
                home.generation = generation;
                Claim::Local { generation }
            }
            None => {
                inner
                    .homes
                    .insert(client_id.clone(), Home { worker, generation });
                Claim::Local { generation }
            }
        }
    }

    /// Forgets `client_id` if `worker` still holds it with `generation`.
    pub(crate) fn release(&self, client_id: &ByteString, worker: usize, generation: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.homes.get(client_id) == Some(&Home { worker, generation }) {
            inner.homes.remove(client_id);
        }
    }

    /// Number of known client ids (online and offline sessions).
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .homes
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_release_and_stale_release() {
        let r = Registry::default();
        let id = ByteString::from_static("c1");
        let Claim::Local { generation: g1 } = r.claim(&id, 0) else {
            panic!("first claim must be local");
        };
        assert_eq!(r.claim(&id, 1), Claim::Elsewhere { worker: 0 });
        let Claim::Local { generation: g2 } = r.claim(&id, 0) else {
            panic!("home worker reclaims");
        };
        r.release(&id, 0, g1);
        assert_eq!(r.len(), 1, "a stale release is ignored");
        r.release(&id, 0, g2);
        assert_eq!(r.len(), 0);
        assert!(matches!(r.claim(&id, 1), Claim::Local { .. }));
    }
}
