//! The two candidate engines behind one small interface: a worker's store
//! with a message table (key: sequence u64 big-endian) and a queue table
//! (key: session id u32 + sequence u64, both big-endian).

use std::path::Path;

use fjall::{KeyspaceCreateOptions, PersistMode};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::BenchError;

/// Everything one worker changes in one tick, committed as one batch.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) msg_put: Vec<(u64, Vec<u8>)>,
    pub(crate) queue_put: Vec<(u32, u64, [u8; 9])>,
    pub(crate) queue_del: Vec<(u32, u64)>,
    pub(crate) msg_del: Vec<u64>,
}

impl Batch {
    pub(crate) fn clear(&mut self) {
        self.msg_put.clear();
        self.queue_put.clear();
        self.queue_del.clear();
        self.msg_del.clear();
    }
}

/// Counts found by a recovery scan.
#[derive(Debug, Default)]
pub(crate) struct ScanCounts {
    pub(crate) messages: u64,
    pub(crate) queue_entries: u64,
}

pub(crate) fn queue_key(session: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&session.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// How a worker's store is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenOpts {
    pub(crate) cache_bytes: u64,
    /// fjall: max_memtable_size of each keyspace.
    pub(crate) fjall_memtable_bytes: u64,
    /// fjall: max_journaling_size (at least 64 MiB).
    pub(crate) fjall_journal_bytes: u64,
}

pub(crate) trait Store: Sized {
    fn open(dir: &Path, opts: &OpenOpts) -> Result<Self, BenchError>;
    /// Commit one batch; `sync` makes it (and everything before) durable
    /// with an fdatasync before returning.
    fn commit(&mut self, batch: &Batch, sync: bool) -> Result<(), BenchError>;
    /// Make every earlier commit durable (the periodic flush of `interval`).
    fn flush(&mut self) -> Result<(), BenchError>;
    /// Iterate every message, then each session's queue by prefix.
    fn scan(&self, sessions: u32) -> Result<ScanCounts, BenchError>;
}

/// fjall: one Database (journal + two keyspaces) per worker directory.
pub(crate) struct FjallStore {
    db: fjall::Database,
    msgs: fjall::Keyspace,
    queue: fjall::Keyspace,
}

impl Store for FjallStore {
    fn open(dir: &Path, opts: &OpenOpts) -> Result<Self, BenchError> {
        let db = fjall::Database::builder(dir)
            .cache_size(opts.cache_bytes)
            .worker_threads(1)
            .manual_journal_persist(true)
            .max_journaling_size(opts.fjall_journal_bytes)
            .open()?;
        let ks = || KeyspaceCreateOptions::default().max_memtable_size(opts.fjall_memtable_bytes);
        let msgs = db.keyspace("msgs", ks)?;
        let queue = db.keyspace("queue", ks)?;
        Ok(Self { db, msgs, queue })
    }

    fn commit(&mut self, batch: &Batch, sync: bool) -> Result<(), BenchError> {
        let mut b = self.db.batch().durability(Some(if sync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        }));
        for (seq, value) in &batch.msg_put {
            b.insert(&self.msgs, seq.to_be_bytes(), value.as_slice());
        }
        for (session, seq, value) in &batch.queue_put {
            b.insert(&self.queue, queue_key(*session, *seq), value.as_slice());
        }
        for (session, seq) in &batch.queue_del {
            b.remove(&self.queue, queue_key(*session, *seq));
        }
        for seq in &batch.msg_del {
            b.remove(&self.msgs, seq.to_be_bytes());
        }
        b.commit()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn scan(&self, sessions: u32) -> Result<ScanCounts, BenchError> {
        let mut counts = ScanCounts::default();
        for kv in self.msgs.iter() {
            let (_, v) = kv.into_inner()?;
            counts.messages += u64::from(!v.is_empty());
        }
        for session in 0..sessions {
            for kv in self.queue.prefix(session.to_be_bytes()) {
                let (_, v) = kv.into_inner()?;
                counts.queue_entries += u64::from(!v.is_empty());
            }
        }
        Ok(counts)
    }
}

const MSGS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("msgs");
const QUEUE: TableDefinition<'static, (u32, u64), &[u8]> = TableDefinition::new("queue");

/// redb: one file per worker directory, two tables.
pub(crate) struct RedbStore {
    db: redb::Database,
}

impl Store for RedbStore {
    fn open(dir: &Path, opts: &OpenOpts) -> Result<Self, BenchError> {
        let cache = usize::try_from(opts.cache_bytes).unwrap_or(usize::MAX);
        std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = redb::Database::builder()
            .set_cache_size(cache)
            .create(dir.join("store.redb"))
            .map_err(redb::Error::from)?;
        let tx = db.begin_write().map_err(redb::Error::from)?;
        tx.open_table(MSGS).map_err(redb::Error::from)?;
        tx.open_table(QUEUE).map_err(redb::Error::from)?;
        tx.commit().map_err(redb::Error::from)?;
        Ok(Self { db })
    }

    fn commit(&mut self, batch: &Batch, sync: bool) -> Result<(), BenchError> {
        let mut tx = self.db.begin_write().map_err(redb::Error::from)?;
        tx.set_durability(if sync {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(redb::Error::from)?;
        {
            let mut msgs = tx.open_table(MSGS).map_err(redb::Error::from)?;
            for (seq, value) in &batch.msg_put {
                msgs.insert(*seq, value.as_slice())?;
            }
            let mut queue = tx.open_table(QUEUE).map_err(redb::Error::from)?;
            for (session, seq, value) in &batch.queue_put {
                queue.insert((*session, *seq), value.as_slice())?;
            }
            for key in &batch.queue_del {
                queue.remove(*key)?;
            }
            for seq in &batch.msg_del {
                msgs.remove(*seq)?;
            }
        }
        tx.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BenchError> {
        let mut tx = self.db.begin_write().map_err(redb::Error::from)?;
        tx.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        tx.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    fn scan(&self, sessions: u32) -> Result<ScanCounts, BenchError> {
        let mut counts = ScanCounts::default();
        let tx = self.db.begin_read().map_err(redb::Error::from)?;
        let msgs = tx.open_table(MSGS).map_err(redb::Error::from)?;
        for kv in msgs.iter()? {
            let (_, v) = kv?;
            counts.messages += u64::from(!v.value().is_empty());
        }
        let queue = tx.open_table(QUEUE).map_err(redb::Error::from)?;
        for session in 0..sessions {
            for kv in queue.range((session, 0)..=(session, u64::MAX))? {
                let (_, v) = kv?;
                counts.queue_entries += u64::from(!v.value().is_empty());
            }
        }
        Ok(counts)
    }
}
