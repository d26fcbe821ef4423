//! Opening the store and reading back what it holds, before the broker
//! accepts connections: sessions (with subscriptions, queues, inflight
//! state and QoS 2 ids), delayed wills and retained messages.
//!
//! Expiry counts in wall-clock time: a session whose Session Expiry
//! Interval passed while the broker was down is deleted here; a queued
//! message keeps the wall-clock time it was received, so its Message
//! Expiry Interval counts the downtime too. A data dir written with more
//! workers than run now has its extra databases moved into the others
//! (sessions of `worker-i` go to worker `i % workers`) and removed.

use crate::clock::Clock;
use crate::error::hex;
use crate::record::{self, Entry, SessionMeta, Stage};
use crate::worker::{Held, Mirror, WorkerStore};
use crate::{StoreConfig, StoreError};
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{PacketId, Publish};
use tern_session::{Message, Session, StoredInflight, StoredSession};

/// A session read back, for its worker.
#[derive(Debug)]
pub struct RecoveredSession {
    /// The session, offline.
    pub session: Session,
    /// When its connection closed; `None` when it was connected at the
    /// crash or shutdown (its expiry then counts from this start).
    pub closed_at: Option<Instant>,
}

/// A will waiting for its Will Delay Interval, read back.
#[derive(Debug)]
pub struct RecoveredWill {
    /// Whose will.
    pub client_id: ByteString,
    /// The will message.
    pub will: Publish,
    /// When it is due (now, if that passed while the broker was down).
    pub due: Instant,
}

/// A retained message read back.
#[derive(Debug)]
pub struct RecoveredRetained {
    /// The message (RETAIN set).
    pub publish: Publish,
    /// When its Message Expiry Interval ends.
    pub expires_at: Option<Instant>,
}

/// One worker's part of a recovery.
#[derive(Debug)]
pub struct WorkerRecovery {
    /// The worker's store, ready to record.
    pub store: WorkerStore,
    /// Its persistent sessions.
    pub sessions: Vec<RecoveredSession>,
    /// Its delayed wills.
    pub wills: Vec<RecoveredWill>,
}

/// Counts of a recovery, for the log and the metrics.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Sessions read back.
    pub sessions: usize,
    /// Sessions whose expiry passed while the broker was down (deleted).
    pub expired_sessions: usize,
    /// Distinct stored messages.
    pub messages: usize,
    /// Queued and inflight entries.
    pub entries: usize,
    /// Retained messages.
    pub retained: usize,
    /// Damaged records skipped and deleted (only with `repair`).
    pub damaged: usize,
    /// Records that referred to something missing (deleted).
    pub orphans: usize,
    /// Seconds the recovery took.
    pub seconds: f64,
}

/// Everything a start reads back ([`open`]).
#[derive(Debug)]
pub struct Recovery {
    /// One per worker, in worker order.
    pub workers: Vec<WorkerRecovery>,
    /// Retained messages, merged across workers (the latest set or clear of
    /// each topic wins).
    pub retained: Vec<RecoveredRetained>,
    /// Orders given to retained sets and clears must start above this.
    pub retained_order: u64,
    /// Counts.
    pub report: RecoveryReport,
}

/// The directory of worker `i`'s database.
fn worker_dir(data_dir: &Path, i: usize) -> PathBuf {
    data_dir.join(format!("worker-{i}"))
}

/// Worker database directories present in `data_dir`.
fn existing_dirs(data_dir: &Path) -> Result<usize, StoreError> {
    let io = |source| StoreError::Io {
        path: data_dir.to_owned(),
        source,
    };
    let mut n = 0;
    for entry in std::fs::read_dir(data_dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if let Some(i) = name
            .to_str()
            .and_then(|s| s.strip_prefix("worker-"))
            .and_then(|s| s.parse::<usize>().ok())
        {
            n = n.max(i + 1);
        }
    }
    Ok(n)
}

/// What one database holds, decoded.
#[derive(Default)]
struct Raw {
    sessions: Vec<(ByteString, SessionMeta)>,
    subscriptions: HashMap<u64, Vec<(ByteString, tern_codec::SubscriptionOptions, Option<u32>)>>,
    entries: HashMap<u64, BTreeMap<u64, Entry>>,
    stages: HashMap<(u64, u64), (Stage, u64)>,
    incoming: HashMap<u64, Vec<PacketId>>,
    messages: HashMap<u64, (u64, Arc<Publish>)>,
    wills: Vec<(ByteString, u64, Publish)>,
    /// topic → (order, expires ms or 0, message; `None` for a tombstone).
    retained: Vec<(ByteString, u64, u64, Option<Publish>)>,
    format: Option<u32>,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn text(b: &[u8]) -> Option<ByteString> {
    std::str::from_utf8(b).ok().map(ByteString::from)
}

/// Reads every record of `store`. A damaged one is an error, or with
/// `repair` counted and deleted.
fn read(
    store: &mut WorkerStore,
    repair: bool,
    report: &mut RecoveryReport,
) -> Result<Raw, StoreError> {
    let mut raw = Raw::default();
    let mut damaged: Vec<Vec<u8>> = Vec::new();
    let path = store.path.clone();
    for kv in store.ks.iter() {
        let (k, v) = kv.into_inner().map_err(|source| StoreError::Engine {
            path: path.clone(),
            source,
        })?;
        let (k, v): (&[u8], &[u8]) = (&k, &v);
        let parsed = parse(&mut raw, k, v);
        if let Err(what) = parsed {
            if !repair {
                return Err(StoreError::Corrupt {
                    path,
                    key: hex(k),
                    what,
                });
            }
            tracing::warn!(path = %path.display(), key = %hex(k), what, "damaged record skipped");
            report.damaged += 1;
            damaged.push(k.to_vec());
        }
    }
    for k in damaged {
        store.delete(k);
    }
    Ok(raw)
}

fn parse(raw: &mut Raw, k: &[u8], v: &[u8]) -> Result<(), &'static str> {
    let body = record::open(k, v).ok_or("checksum")?;
    let (&tag, rest) = k.split_first().ok_or("empty key")?;
    let bad = "does not decode";
    match tag {
        b'V' => {
            let f: [u8; 4] = body.try_into().map_err(|_| bad)?;
            raw.format = Some(u32::from_be_bytes(f));
        }
        record::SESSION => {
            let meta = SessionMeta::decode(body).ok_or(bad)?;
            raw.sessions.push((text(rest).ok_or(bad)?, meta));
        }
        record::SUBSCRIPTION => {
            let number = u64_at(rest, 0).ok_or(bad)?;
            let filter = text(&rest[8..]).ok_or(bad)?;
            let (options, id) = record::decode_options(body).ok_or(bad)?;
            raw.subscriptions
                .entry(number)
                .or_default()
                .push((filter, options, id));
        }
        record::ENTRY => {
            let (number, id) = (u64_at(rest, 0).ok_or(bad)?, u64_at(rest, 8).ok_or(bad)?);
            let entry = Entry::decode(body).ok_or(bad)?;
            raw.entries.entry(number).or_default().insert(id, entry);
        }
        record::STAGE => {
            let (number, id) = (u64_at(rest, 0).ok_or(bad)?, u64_at(rest, 8).ok_or(bad)?);
            raw.stages
                .insert((number, id), record::decode_stage(body).ok_or(bad)?);
        }
        record::INCOMING => {
            let number = u64_at(rest, 0).ok_or(bad)?;
            let pid: [u8; 2] = rest.get(8..10).ok_or(bad)?.try_into().map_err(|_| bad)?;
            let pid = PacketId::new(u16::from_be_bytes(pid)).ok_or(bad)?;
            raw.incoming.entry(number).or_default().push(pid);
        }
        record::MESSAGE => {
            let number = u64_at(rest, 0).ok_or(bad)?;
            let (received, _, publish) = record::decode_publish(Bytes::copy_from_slice(body))?;
            raw.messages.insert(number, (received, Arc::new(publish)));
        }
        record::WILL => {
            let (due, _, publish) = record::decode_publish(Bytes::copy_from_slice(body))?;
            raw.wills.push((text(rest).ok_or(bad)?, due, publish));
        }
        record::RETAINED => {
            let topic = text(rest).ok_or(bad)?;
            if let Some(order) = record::tombstone(body) {
                raw.retained.push((topic, order, 0, None));
            } else {
                let (expires, order, publish) =
                    record::decode_publish(Bytes::copy_from_slice(body))?;
                raw.retained.push((topic, order, expires, Some(publish)));
            }
        }
        _ => return Err("unknown record kind"),
    }
    Ok(())
}

/// Deletes the queue entry and stage records of message `id` of session `number`.
fn delete_entry(store: &mut WorkerStore, number: u64, id: u64) {
    for tag in [record::ENTRY, record::STAGE] {
        store.delete(record::key(
            tag,
            &[&number.to_be_bytes(), &id.to_be_bytes()],
        ));
    }
}

/// A session assembled from its records.
struct Assembled {
    client_id: ByteString,
    meta: SessionMeta,
    stored: StoredSession,
    /// Message id → stored message number.
    numbers: Vec<(u64, u64)>,
}

/// Builds the sessions of `raw`, dropping the expired (their records are
/// deleted from `from`) and what refers to a missing message.
fn assemble(
    raw: &mut Raw,
    from: &mut WorkerStore,
    clock: &Clock,
    report: &mut RecoveryReport,
) -> Vec<Assembled> {
    let mut out = Vec::new();
    let sessions = std::mem::take(&mut raw.sessions);
    let mut live_numbers = std::collections::HashSet::new();
    for (client_id, meta) in sessions {
        let number = meta.number;
        let entries = raw.entries.remove(&number).unwrap_or_default();
        let subscriptions = raw.subscriptions.remove(&number).unwrap_or_default();
        let incoming = raw.incoming.remove(&number).unwrap_or_default();
        let expired = meta.closed_at_ms != 0
            && meta.expiry_interval != u32::MAX
            && meta
                .closed_at_ms
                .saturating_add(u64::from(meta.expiry_interval) * 1000)
                <= clock.now_ms();
        if expired {
            report.expired_sessions += 1;
            from.delete(record::key(record::SESSION, &[client_id.as_bytes()]));
            for (f, _, _) in &subscriptions {
                from.delete(record::key(
                    record::SUBSCRIPTION,
                    &[&number.to_be_bytes(), f.as_bytes()],
                ));
            }
            for id in entries.keys() {
                delete_entry(from, number, *id);
                raw.stages.remove(&(number, *id));
            }
            for pid in &incoming {
                from.delete(record::key(
                    record::INCOMING,
                    &[&number.to_be_bytes(), &pid.get().to_be_bytes()],
                ));
            }
            continue;
        }
        live_numbers.insert(number);
        let mut stored = StoredSession {
            client_id: client_id.clone(),
            expiry_interval: meta.expiry_interval,
            subscriptions,
            incoming_qos2: incoming,
            last_packet_id: PacketId::new(meta.last_packet_id),
            ..StoredSession::default()
        };
        let mut numbers = Vec::with_capacity(entries.len());
        for (id, entry) in entries {
            let (stage, order) = raw
                .stages
                .remove(&(number, id))
                .unwrap_or((Stage::Queued, 0));
            let Some((received, msg)) = raw.messages.get(&entry.message) else {
                report.orphans += 1;
                delete_entry(from, number, id);
                continue;
            };
            let message = Message {
                msg: Arc::clone(msg),
                qos: entry.qos,
                retain: entry.retain,
                sub_ids: entry.sub_ids,
                received_at: clock.instant(*received),
                share: entry.share,
                id,
            };
            numbers.push((id, entry.message));
            match record::inflight_state(stage, entry.qos) {
                Some((packet_id, state)) => stored.inflight.push(StoredInflight {
                    packet_id,
                    state,
                    message,
                    resend_order: order,
                }),
                None => stored.queue.push(message),
            }
        }
        out.push(Assembled {
            client_id,
            meta,
            stored,
            numbers,
        });
    }
    // Records of sessions that are gone.
    for (number, subs) in raw.subscriptions.drain() {
        for (f, _, _) in subs {
            report.orphans += 1;
            from.delete(record::key(
                record::SUBSCRIPTION,
                &[&number.to_be_bytes(), f.as_bytes()],
            ));
        }
    }
    for (number, entries) in raw.entries.drain() {
        for id in entries.keys() {
            report.orphans += 1;
            from.delete(record::key(
                record::ENTRY,
                &[&number.to_be_bytes(), &id.to_be_bytes()],
            ));
        }
    }
    for ((number, id), _) in raw.stages.drain() {
        if !live_numbers.contains(&number) {
            report.orphans += 1;
        }
        from.delete(record::key(
            record::STAGE,
            &[&number.to_be_bytes(), &id.to_be_bytes()],
        ));
    }
    for (number, pids) in raw.incoming.drain() {
        for pid in pids {
            report.orphans += 1;
            from.delete(record::key(
                record::INCOMING,
                &[&number.to_be_bytes(), &pid.get().to_be_bytes()],
            ));
        }
    }
    out
}

/// Takes `a` into `store`'s memory (the records are there already when
/// `rewrite` is false; otherwise they are written, with a new number).
fn adopt(
    store: &mut WorkerStore,
    a: Assembled,
    messages: &HashMap<u64, (u64, Arc<Publish>)>,
    rewrite: bool,
) -> RecoveredSession {
    let mut meta = a.meta;
    if rewrite {
        meta.number = store.next_session;
    }
    store.next_session = store.next_session.max(meta.number + 1);
    let n8 = meta.number.to_be_bytes();
    let mut mirror = Mirror {
        meta,
        dirty: rewrite,
        ..Mirror::default()
    };
    let mut renumber: HashMap<u64, u64> = HashMap::new();
    for &(id, number) in &a.numbers {
        let Some((received, msg)) = messages.get(&number) else {
            continue;
        };
        let addr = Arc::as_ptr(msg) as usize;
        let local = if let Some(held) = store.messages.get_mut(&addr) {
            held.refs += 1;
            held.number
        } else {
            let local = if rewrite {
                let n = store.next_message;
                store.next_message += 1;
                store.put(
                    record::key(record::MESSAGE, &[&n.to_be_bytes()]),
                    record::encode_publish(*received, 0, msg),
                );
                n
            } else {
                number
            };
            store.next_message = store.next_message.max(local + 1);
            store.messages.insert(
                addr,
                Held {
                    msg: Arc::clone(msg),
                    number: local,
                    refs: 1,
                },
            );
            store.by_number.insert(local, addr);
            local
        };
        renumber.insert(id, local);
        mirror.entries.insert(id, local);
    }
    for e in &a.stored.inflight {
        mirror.by_pid.insert(e.packet_id, e.message.id);
    }
    if rewrite {
        for (filter, options, id) in &a.stored.subscriptions {
            store.put(
                record::key(record::SUBSCRIPTION, &[&n8, filter.as_bytes()]),
                record::encode_options(options, *id),
            );
        }
        let queued = a.stored.queue.iter().map(|m| (m, Stage::Queued, 0));
        let sent = a.stored.inflight.iter().map(|e| {
            let stage = match e.state {
                tern_session::InflightState::AwaitPubComp => Stage::Released(e.packet_id),
                _ => Stage::Sent(e.packet_id),
            };
            (&e.message, stage, e.resend_order)
        });
        for (m, stage, order) in queued.chain(sent) {
            let entry = Entry {
                message: renumber.get(&m.id).copied().unwrap_or(0),
                qos: m.qos,
                retain: m.retain,
                sub_ids: m.sub_ids.clone(),
                share: m.share.clone(),
            };
            store.put(
                record::key(record::ENTRY, &[&n8, &m.id.to_be_bytes()]),
                entry.encode(),
            );
            if stage != Stage::Queued {
                store.put(
                    record::key(record::STAGE, &[&n8, &m.id.to_be_bytes()]),
                    record::encode_stage(stage, order),
                );
            }
        }
        for pid in &a.stored.incoming_qos2 {
            store.put(
                record::key(record::INCOMING, &[&n8, &pid.get().to_be_bytes()]),
                Vec::new(),
            );
        }
    }
    if rewrite {
        store.dirty.push(a.client_id.clone());
    }
    let closed_at = (meta.closed_at_ms != 0).then(|| store.clock.instant(meta.closed_at_ms));
    store.sessions.insert(a.client_id, mirror);
    let (session, report) = Session::restore(a.stored);
    if report.duplicate_packet_ids > 0 {
        tracing::warn!(client_id = %session.client_id(), n = report.duplicate_packet_ids,
            "stored inflight messages with a packet id taken twice: dropped");
    }
    RecoveredSession { session, closed_at }
}

/// Opens the store in `cfg.data_dir` for `workers` workers and reads back
/// everything it holds (see the module docs).
pub fn open(cfg: &StoreConfig, workers: usize) -> Result<Recovery, StoreError> {
    let started = Instant::now();
    let workers = workers.max(1);
    let clock = Clock::now();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StoreError::Io {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let dirs = existing_dirs(&cfg.data_dir)?.max(workers);
    let mut report = RecoveryReport::default();
    let mut stores = Vec::with_capacity(dirs);
    let mut raws = Vec::with_capacity(dirs);
    for i in 0..dirs {
        let mut store = WorkerStore::open(&worker_dir(&cfg.data_dir, i), clock)?;
        let raw = read(&mut store, cfg.repair, &mut report)?;
        match raw.format {
            Some(f) if f != record::FORMAT => {
                return Err(StoreError::Format {
                    path: store.path.clone(),
                    found: f,
                    expected: record::FORMAT,
                })
            }
            Some(_) => {}
            None => store.put(
                record::VERSION_KEY.to_vec(),
                record::FORMAT.to_be_bytes().to_vec(),
            ),
        }
        stores.push(store);
        raws.push(raw);
    }
    let mut recovered: Vec<(Vec<RecoveredSession>, Vec<RecoveredWill>)> =
        (0..workers).map(|_| (Vec::new(), Vec::new())).collect();
    // Retained: the highest order of each topic wins, across databases.
    let mut best: HashMap<ByteString, (u64, usize)> = HashMap::new();
    for (i, raw) in raws.iter().enumerate() {
        for (topic, order, _, _) in &raw.retained {
            let e = best.entry(topic.clone()).or_insert((*order, i));
            if *order > e.0 {
                *e = (*order, i);
            }
        }
    }
    let mut retained = Vec::new();
    let mut retained_order = 0;
    for (i, raw) in raws.iter_mut().enumerate() {
        let (head, tail) = stores.split_at_mut(i);
        let Some((store, _)) = tail.split_first_mut() else {
            continue;
        };
        let target = i % workers;
        let sessions = assemble(raw, store, &clock, &mut report);
        for a in sessions {
            report.sessions += 1;
            report.entries += a.numbers.len();
            let session = if target == i {
                adopt(store, a, &raw.messages, false)
            } else {
                adopt(&mut head[target], a, &raw.messages, true)
            };
            recovered[target].0.push(session);
        }
        for (client_id, due, will) in std::mem::take(&mut raw.wills) {
            if target != i {
                let s = &mut head[target];
                s.put(
                    record::key(record::WILL, &[client_id.as_bytes()]),
                    record::encode_publish(due, 0, &will),
                );
            }
            recovered[target].1.push(RecoveredWill {
                client_id,
                will,
                due: clock.instant(due),
            });
        }
        // Messages nobody refers to any more.
        for number in raw.messages.keys() {
            if target == i && !store.by_number.contains_key(number) {
                report.orphans += 1;
                store.delete(record::key(record::MESSAGE, &[&number.to_be_bytes()]));
            }
        }
        for (topic, order, expires, publish) in std::mem::take(&mut raw.retained) {
            retained_order = retained_order.max(order);
            let wins = best.get(&topic) == Some(&(order, i));
            let expired = expires != 0 && expires <= clock.now_ms();
            let k = record::key(record::RETAINED, &[topic.as_bytes()]);
            match publish {
                Some(publish) if wins && !expired => {
                    if target != i {
                        head[target].put(k, record::encode_publish(expires, order, &publish));
                    }
                    retained.push(RecoveredRetained {
                        publish,
                        expires_at: (expires != 0).then(|| clock.instant(expires)),
                    });
                }
                _ => store.delete(k),
            }
        }
    }
    report.retained = retained.len();
    // Extra databases were moved: commit the others, make them durable,
    // then remove the extra ones.
    let mut stores: Vec<WorkerStore> = stores;
    let extra: Vec<WorkerStore> = stores.split_off(workers);
    for store in &mut stores {
        store.commit()?;
        store.sync_handle().sync()?;
        report.messages += store.messages.len();
    }
    for store in extra {
        let path = store.path.clone();
        drop(store);
        std::fs::remove_dir_all(&path).map_err(|source| StoreError::Io { path, source })?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    let workers = stores
        .into_iter()
        .zip(recovered)
        .map(|(store, (sessions, wills))| WorkerRecovery {
            store,
            sessions,
            wills,
        })
        .collect();
    Ok(Recovery {
        workers,
        retained,
        retained_order,
        report,
    })
}
