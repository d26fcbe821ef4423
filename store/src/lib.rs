//! Tern's durable store: persistent sessions, their queued and inflight
//! messages, delayed wills and retained messages, kept across restarts.
//!
//! Shared-nothing like the broker: each worker owns one [`WorkerStore`],
//! its own fjall database (journal and keyspace) in `data_dir/worker-N`,
//! written only from that worker's thread. Call order:
//!
//! 1. [`open`] before the broker accepts connections: it reads back every
//!    worker's database ([`Recovery`]) and hands each worker its store.
//! 2. The worker reports each change ([`WorkerStore::session_changed`] with
//!    the session's journal, [`WorkerStore::session_opened`], …,
//!    [`WorkerStore::retained_set`]); nothing is written yet.
//! 3. Once per turn of its loop the worker calls [`WorkerStore::commit`]:
//!    one atomic write of the turn's changes to the journal (group commit).
//! 4. [`SyncHandle::sync`] (on another thread) fsyncs the journal: with
//!    `durability = "sync"` after every commit that a client's
//!    acknowledgement waits for, with `"interval"` every `flush_interval_ms`.
//!
//! No tokio here: the broker decides which thread runs what.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod clock;
mod error;
mod record;
mod recover;
mod worker;

pub use clock::Clock;
pub use error::StoreError;
pub use recover::{
    open, RecoveredRetained, RecoveredSession, RecoveredWill, Recovery, RecoveryReport,
    WorkerRecovery,
};
pub use worker::{SyncHandle, WorkerStore};

use std::path::PathBuf;

/// Where and how to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory (one `worker-N` database inside per worker).
    pub data_dir: PathBuf,
    /// Skip damaged records (counted, logged and deleted) instead of
    /// refusing to start.
    pub repair: bool,
}

/// Counters of one worker's store.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreStats {
    /// Batches written.
    pub commits: u64,
    /// Key and value bytes written.
    pub bytes_written: u64,
}
