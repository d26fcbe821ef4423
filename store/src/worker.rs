//! One worker's part of the store: its own fjall database (journal and
//! keyspace), written only by that worker's thread.
//!
//! The worker reports each change as it happens ([`WorkerStore::session_changed`]
//! and the other `*_opened`/`*_set` calls); they become operations of the
//! pending batch, kept in memory. [`WorkerStore::commit`] writes the batch
//! to the journal in one atomic write, without fsync: the worker calls it
//! once per turn of its event loop (group commit). [`SyncHandle::sync`]
//! makes everything committed so far durable (fsync); the broker runs it
//! off the worker thread, as often as the durability mode says.
//!
//! A message that fans out to several persistent sessions of the worker is
//! stored once (an `M` record) and referenced by each session's `Q` entry;
//! the store counts the references and deletes the message with the last.

use crate::clock::Clock;
use crate::record::{self, Entry, SessionMeta, Stage};
use crate::{StoreError, StoreStats};
use bytestring::ByteString;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{PacketId, Publish};
use tern_session::{Session, SessionChange};

/// A message held for the sessions that reference it.
#[derive(Debug)]
pub(crate) struct Held {
    /// Keeps the allocation (and so the pointer this map is keyed by)
    /// alive while stored.
    #[expect(dead_code, reason = "held only to pin the allocation")]
    pub(crate) msg: Arc<Publish>,
    pub(crate) number: u64,
    pub(crate) refs: u32,
}

/// What the store knows of one persistent session besides its records.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    pub(crate) meta: SessionMeta,
    /// Message id → `M` record number, for every queued or inflight message.
    pub(crate) entries: HashMap<u64, u64>,
    /// Packet id → message id, for inflight messages.
    pub(crate) by_pid: HashMap<PacketId, u64>,
    /// The meta changed since the last commit (its client id is in
    /// `WorkerStore::dirty`).
    pub(crate) dirty: bool,
}

/// Marks `mirror`'s meta for the next commit, listing `client_id` once.
pub(crate) fn mark_dirty(mirror: &mut Mirror, dirty: &mut Vec<ByteString>, client_id: &str) {
    if !mirror.dirty {
        mirror.dirty = true;
        dirty.push(ByteString::from(client_id));
    }
}

/// Makes committed changes durable; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct SyncHandle {
    db: fjall::Database,
    path: PathBuf,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// fsyncs the journal: every batch committed before this call is durable
    /// when it returns `Ok`.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db
            .persist(fjall::PersistMode::SyncData)
            .map_err(|source| StoreError::Engine {
                path: self.path.clone(),
                source,
            })
    }
}

/// One worker's store (see the module docs).
pub struct WorkerStore {
    pub(crate) path: PathBuf,
    pub(crate) db: fjall::Database,
    pub(crate) ks: fjall::Keyspace,
    /// Operations not committed yet, in order: a value to put, or `None` to delete.
    pub(crate) batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub(crate) sessions: HashMap<ByteString, Mirror>,
    /// Sessions whose meta changed since the last commit: a commit and
    /// `has_pending` cost what changed, not the number of sessions.
    pub(crate) dirty: Vec<ByteString>,
    /// Stored messages by their allocation's address.
    pub(crate) messages: HashMap<usize, Held>,
    /// `M` record number → key of `messages`.
    pub(crate) by_number: HashMap<u64, usize>,
    pub(crate) next_message: u64,
    pub(crate) next_session: u64,
    pub(crate) clock: Clock,
    pub(crate) stats: StoreStats,
}

impl std::fmt::Debug for WorkerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerStore")
            .field("path", &self.path)
            .field("sessions", &self.sessions.len())
            .field("messages", &self.messages.len())
            .field("pending", &self.batch.len())
            .finish_non_exhaustive()
    }
}

/// Block cache of one worker's database.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest memtable of one worker's keyspace before it is flushed.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

fn n8(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

impl WorkerStore {
    /// Opens (creating) the database in `path`.
    pub(crate) fn open(path: &Path, clock: Clock) -> Result<Self, StoreError> {
        let engine = |source| StoreError::Engine {
            path: path.to_owned(),
            source,
        };
        // Sized for a broker, not a database server: fjall's defaults hold
        // 100-400 MiB per database (block cache, 64 MiB memtables); these
        // hold ~40 MiB (BENCHMARKS.md, "Store engine").
        let db = fjall::Database::builder(path)
            .manual_journal_persist(true)
            .worker_threads(1)
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(engine)?;
        let ks = db
            .keyspace("tern", || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
            .map_err(engine)?;
        Ok(Self {
            path: path.to_owned(),
            db,
            ks,
            batch: Vec::new(),
            sessions: HashMap::new(),
            dirty: Vec::new(),
            messages: HashMap::new(),
            by_number: HashMap::new(),
            next_message: 1,
            next_session: 1,
            clock,
            stats: StoreStats::default(),
        })
    }

    /// The handle that fsyncs this worker's journal.
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            db: self.db.clone(),
            path: self.path.clone(),
        }
    }

    /// The directory of this worker's database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters since the store opened.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Persistent sessions and distinct messages stored.
    pub fn counts(&self) -> (usize, usize) {
        (self.sessions.len(), self.messages.len())
    }

    /// True when changes wait for [`commit`](Self::commit).
    pub fn has_pending(&self) -> bool {
        !self.batch.is_empty() || !self.dirty.is_empty()
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let value = record::seal(&key, value);
        self.batch.push((key, Some(value)));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.batch.push((key, None));
    }

    /// Writes the pending batch to the journal as one atomic write (no
    /// fsync). Returns the number of operations written.
    pub fn commit(&mut self) -> Result<usize, StoreError> {
        for client_id in std::mem::take(&mut self.dirty) {
            // Gone since (its records are deleted), or listed twice.
            let Some(m) = self.sessions.get_mut(&client_id).filter(|m| m.dirty) else {
                continue;
            };
            m.dirty = false;
            let meta = m.meta.encode();
            self.put(record::key(record::SESSION, &[client_id.as_bytes()]), meta);
        }
        if self.batch.is_empty() {
            return Ok(0);
        }
        let ops = std::mem::take(&mut self.batch);
        let n = ops.len();
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::Buffer));
        let mut bytes = 0u64;
        for (k, v) in ops {
            bytes += (k.len() + v.as_ref().map_or(0, Vec::len)) as u64;
            match v {
                Some(v) => batch.insert(&self.ks, k, v),
                None => batch.remove(&self.ks, k),
            }
        }
        batch.commit().map_err(|source| StoreError::Engine {
            path: self.path.clone(),
            source,
        })?;
        self.stats.commits += 1;
        self.stats.bytes_written += bytes;
        Ok(n)
    }

    /// A connection holds `session` now (see the broker's `StoreEvent::SessionOpened`).
    pub fn session_opened(&mut self, session: &Session, resumed: bool) {
        let client_id = session.client_id();
        if !resumed && self.sessions.contains_key(client_id) {
            // A clean start: what was stored for this client id is gone.
            self.session_ended(client_id);
        }
        if !session.is_persistent() {
            if self.sessions.contains_key(client_id) {
                self.session_ended(client_id);
            }
            return;
        }
        if !self.sessions.contains_key(client_id) {
            if resumed {
                tracing::warn!(%client_id, "a resumed session the store did not know: only its subscriptions are stored");
            }
            let number = self.next_session;
            self.next_session += 1;
            self.sessions.insert(
                client_id.clone(),
                Mirror {
                    meta: SessionMeta {
                        number,
                        ..SessionMeta::default()
                    },
                    ..Mirror::default()
                },
            );
            if resumed {
                let subs: Vec<_> = session
                    .subscriptions()
                    .map(|(f, o, i)| (f, *o, i))
                    .collect();
                for (filter, options, id) in subs {
                    self.put(
                        record::key(record::SUBSCRIPTION, &[&n8(number), filter.as_bytes()]),
                        record::encode_options(&options, id),
                    );
                }
            }
        }
        if let Some(m) = self.sessions.get_mut(client_id) {
            m.meta.expiry_interval = session.expiry_interval();
            m.meta.closed_at_ms = 0;
            mark_dirty(m, &mut self.dirty, client_id);
        }
    }

    /// The connection of `session` closed at `closed_at`; the session is kept.
    pub fn session_offline(&mut self, session: &Session, closed_at: Instant) {
        let ms = self.clock.wall_ms(closed_at);
        if let Some(m) = self.sessions.get_mut(session.client_id()) {
            m.meta.expiry_interval = session.expiry_interval();
            m.meta.closed_at_ms = ms;
            mark_dirty(m, &mut self.dirty, session.client_id());
        }
    }

    /// The session of `client_id` ended: every record of it goes.
    pub fn session_ended(&mut self, client_id: &str) {
        let Some(mirror) = self.sessions.remove(client_id) else {
            return;
        };
        let number = mirror.meta.number;
        self.delete(record::key(record::SESSION, &[client_id.as_bytes()]));
        for (id, message) in mirror.entries {
            self.delete(record::key(record::ENTRY, &[&n8(number), &n8(id)]));
            self.delete(record::key(record::STAGE, &[&n8(number), &n8(id)]));
            self.release(message);
        }
        // Subscriptions and QoS 2 ids are not mirrored: read them back.
        for tag in [record::SUBSCRIPTION, record::INCOMING] {
            let prefix = record::key(tag, &[&n8(number)]);
            let keys: Vec<Vec<u8>> = self
                .ks
                .prefix(&prefix)
                .filter_map(|kv| kv.key().ok().map(|k| k.to_vec()))
                .collect();
            for k in keys {
                self.delete(k);
            }
        }
        // Those written in this batch are not readable yet: drop them too.
        let pending: Vec<Vec<u8>> = self
            .batch
            .iter()
            .filter(|(k, v)| {
                v.is_some()
                    && (k.first() == Some(&record::SUBSCRIPTION)
                        || k.first() == Some(&record::INCOMING))
                    && k.get(1..9) == Some(&n8(number)[..])
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in pending {
            self.delete(k);
        }
    }

    /// One change of a persistent session's journal.
    pub fn session_changed(&mut self, client_id: &str, change: SessionChange) {
        let Some(mirror) = self.sessions.get_mut(client_id) else {
            tracing::debug!(%client_id, ?change, "change of a session the store does not keep");
            return;
        };
        let number = mirror.meta.number;
        match change {
            SessionChange::Subscribed {
                filter,
                options,
                subscription_identifier,
            } => self.put(
                record::key(record::SUBSCRIPTION, &[&n8(number), filter.as_bytes()]),
                record::encode_options(&options, subscription_identifier),
            ),
            SessionChange::Unsubscribed { filter } => {
                self.delete(record::key(
                    record::SUBSCRIPTION,
                    &[&n8(number), filter.as_bytes()],
                ));
            }
            SessionChange::Queued { message } => {
                let stored = self.hold(&message.msg, message.received_at);
                if let Some(m) = self.sessions.get_mut(client_id) {
                    m.entries.insert(message.id, stored);
                }
                let entry = Entry {
                    message: stored,
                    qos: message.qos,
                    retain: message.retain,
                    sub_ids: message.sub_ids,
                    share: message.share,
                };
                self.put(
                    record::key(record::ENTRY, &[&n8(number), &n8(message.id)]),
                    entry.encode(),
                );
            }
            SessionChange::Sent { id, packet_id } => {
                mirror.by_pid.insert(packet_id, id);
                mirror.meta.order += 1;
                mirror.meta.last_packet_id = packet_id.get();
                mark_dirty(mirror, &mut self.dirty, client_id);
                let order = mirror.meta.order;
                self.put(
                    record::key(record::STAGE, &[&n8(number), &n8(id)]),
                    record::encode_stage(Stage::Sent(packet_id), order),
                );
            }
            SessionChange::Released { packet_id } => {
                let Some(&id) = mirror.by_pid.get(&packet_id) else {
                    return;
                };
                mirror.meta.order += 1;
                mark_dirty(mirror, &mut self.dirty, client_id);
                let order = mirror.meta.order;
                self.put(
                    record::key(record::STAGE, &[&n8(number), &n8(id)]),
                    record::encode_stage(Stage::Released(packet_id), order),
                );
            }
            SessionChange::Acked { packet_id } => {
                if let Some(id) = mirror.by_pid.remove(&packet_id) {
                    self.remove_entry(client_id, number, id);
                }
            }
            SessionChange::Removed { id } => self.remove_entry(client_id, number, id),
            SessionChange::InboundQos2 { packet_id, done } => {
                let k = record::key(
                    record::INCOMING,
                    &[&n8(number), &packet_id.get().to_be_bytes()],
                );
                if done {
                    self.delete(k);
                } else {
                    self.put(k, Vec::new());
                }
            }
            SessionChange::ExpiryChanged { secs } => {
                mirror.meta.expiry_interval = secs;
                mark_dirty(mirror, &mut self.dirty, client_id);
            }
        }
    }

    fn remove_entry(&mut self, client_id: &str, number: u64, id: u64) {
        let Some(message) = self
            .sessions
            .get_mut(client_id)
            .and_then(|m| m.entries.remove(&id))
        else {
            return;
        };
        self.delete(record::key(record::ENTRY, &[&n8(number), &n8(id)]));
        self.delete(record::key(record::STAGE, &[&n8(number), &n8(id)]));
        self.release(message);
    }

    /// The `M` record number of `msg`, stored now if it is not yet.
    fn hold(&mut self, msg: &Arc<Publish>, received_at: Instant) -> u64 {
        let addr = Arc::as_ptr(msg) as usize;
        if let Some(held) = self.messages.get_mut(&addr) {
            held.refs += 1;
            return held.number;
        }
        let number = self.next_message;
        self.next_message += 1;
        let received = self.clock.wall_ms(received_at);
        self.put(
            record::key(record::MESSAGE, &[&n8(number)]),
            record::encode_publish(received, 0, msg),
        );
        self.messages.insert(
            addr,
            Held {
                msg: Arc::clone(msg),
                number,
                refs: 1,
            },
        );
        self.by_number.insert(number, addr);
        number
    }

    /// One reference to message `number` is gone.
    pub(crate) fn release(&mut self, number: u64) {
        let Some(&addr) = self.by_number.get(&number) else {
            return;
        };
        let Some(held) = self.messages.get_mut(&addr) else {
            return;
        };
        held.refs -= 1;
        if held.refs == 0 {
            self.messages.remove(&addr);
            self.by_number.remove(&number);
            self.delete(record::key(record::MESSAGE, &[&n8(number)]));
        }
    }

    /// The will of `client_id` waits to be published at `due`.
    pub fn will_scheduled(&mut self, client_id: &str, will: &Publish, due: Instant) {
        let due = self.clock.wall_ms(due);
        self.put(
            record::key(record::WILL, &[client_id.as_bytes()]),
            record::encode_publish(due, 0, will),
        );
    }

    /// The pending will of `client_id` is gone.
    pub fn will_cleared(&mut self, client_id: &str) {
        self.delete(record::key(record::WILL, &[client_id.as_bytes()]));
    }

    /// A retained message was set; `order` orders it against the sets and
    /// clears of the same topic on other workers (higher wins at recovery).
    pub fn retained_set(&mut self, msg: &Publish, order: u64, expires_at: Option<Instant>) {
        let expires = expires_at.map_or(0, |t| self.clock.wall_ms(t));
        self.put(
            record::key(record::RETAINED, &[msg.topic.as_bytes()]),
            record::encode_publish(expires, order, msg),
        );
    }

    /// The retained message of `topic` was cleared (see [`retained_set`](Self::retained_set)).
    pub fn retained_cleared(&mut self, topic: &str, order: u64) {
        self.put(
            record::key(record::RETAINED, &[topic.as_bytes()]),
            record::encode_tombstone(order),
        );
    }
}
