//! The disk backend (`persistence = "on"`): each worker's changes go to its
//! own `tern_store::WorkerStore`, committed once per turn of the worker's
//! loop and made durable by a thread of its own.
//!
//! * **Group commit.** The first change of a turn wakes the worker's
//!   committer task, which yields once (so every other task ready in this
//!   turn adds its changes), then writes them all in one batch.
//! * **fsync.** With `durability = "sync"` the store thread fsyncs after
//!   each commit it is told of (several waiting commits take one fsync) and
//!   reports the last one durable to the worker (`on_durable`), which then
//!   sends the acknowledgements that waited for it. With `"interval"` it
//!   fsyncs every `flush_interval_ms` when something was committed; a
//!   commit is in the OS's cache at once, so a crash of the process loses
//!   nothing, a crash of the machine at most that interval.

use super::{OnDurable, StoreBackend, StoreEvent, StoreObserver, StoreSignal, WorkerParts};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tern_config::Durability;
use tern_store::{RecoveryReport, SyncHandle, WorkerRecovery, WorkerStore};

/// Upper bounds of the fsync latency histogram, in microseconds.
const FSYNC_BUCKETS_US: [u64; 11] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Counters of every worker's store, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct StoreMetrics {
    pub(crate) commits: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// fsync durations, microseconds, summed.
    pub(crate) fsync_micros: AtomicU64,
    /// fsyncs per bucket of [`FSYNC_BUCKETS_US`] (not cumulative), the
    /// last one past the largest bound.
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_US.len() + 1],
}

impl StoreMetrics {
    fn fsync_took(&self, micros: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_micros.fetch_add(micros, Ordering::Relaxed);
        let i = FSYNC_BUCKETS_US
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(FSYNC_BUCKETS_US.len());
        if let Some(b) = self.fsync_buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The backend: what recovery read, handed to each worker as it starts.
#[derive(Debug)]
pub(crate) struct DiskStore {
    parts: Mutex<Vec<Option<WorkerRecovery>>>,
    durability: Durability,
    flush_interval: Duration,
    /// Persistent sessions per worker.
    persistent: Arc<[AtomicUsize]>,
    pub(crate) metrics: Arc<StoreMetrics>,
    /// What the start read back.
    recovery: RecoveryReport,
    data_dir: std::path::PathBuf,
}

impl DiskStore {
    pub(crate) fn new(
        workers: Vec<WorkerRecovery>,
        durability: Durability,
        flush_interval: Duration,
        recovery: RecoveryReport,
        data_dir: std::path::PathBuf,
    ) -> Self {
        let persistent: Arc<[AtomicUsize]> = workers
            .iter()
            .map(|w| AtomicUsize::new(w.sessions.len()))
            .collect();
        Self {
            parts: Mutex::new(workers.into_iter().map(Some).collect()),
            durability,
            flush_interval,
            persistent,
            metrics: Arc::default(),
            recovery,
            data_dir,
        }
    }
}

impl StoreBackend for DiskStore {
    fn records_session_changes(&self) -> bool {
        true
    }

    fn observer(&self, worker: usize, on_durable: OnDurable) -> WorkerParts {
        let taken = self
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(worker)
            .and_then(Option::take);
        let Some(recovery) = taken else {
            tracing::error!(worker, "no store for this worker: its changes are not kept");
            return WorkerParts {
                observer: Box::new(super::NullStore),
                sessions: Vec::new(),
                wills: Vec::new(),
            };
        };
        let WorkerRecovery {
            store,
            sessions,
            wills,
        } = recovery;
        let observer = DiskObserver::start(
            worker,
            store,
            self.durability,
            self.flush_interval,
            on_durable,
            Arc::clone(&self.persistent),
            Arc::clone(&self.metrics),
        );
        WorkerParts {
            observer: Box::new(observer),
            sessions,
            wills,
        }
    }

    fn sync_acks(&self) -> bool {
        self.durability == Durability::Sync
    }

    fn persistent_sessions(&self, worker: usize) -> usize {
        self.persistent
            .get(worker)
            .map_or(0, |n| n.load(Ordering::SeqCst))
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let m = &*self.metrics;
        let sessions: usize = self
            .persistent
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum();
        let r = &self.recovery;
        let _ = writeln!(
            out,
            "# HELP tern_store_commits_total Batches written to the store (one per worker loop turn with changes).\n\
             # TYPE tern_store_commits_total counter\n\
             tern_store_commits_total {}\n\
             # HELP tern_store_bytes_written_total Key and value bytes the broker wrote to the store.\n\
             # TYPE tern_store_bytes_written_total counter\n\
             tern_store_bytes_written_total {}\n\
             # HELP tern_store_errors_total Failed store commits and fsyncs.\n\
             # TYPE tern_store_errors_total counter\n\
             tern_store_errors_total {}\n\
             # HELP tern_store_size_bytes Bytes of the files in data_dir, read at the scrape.\n\
             # TYPE tern_store_size_bytes gauge\n\
             tern_store_size_bytes {}\n\
             # HELP tern_store_sessions Persistent sessions in the store.\n\
             # TYPE tern_store_sessions gauge\n\
             tern_store_sessions {sessions}\n\
             # HELP tern_store_recovery_seconds How long the start took to read the store back.\n\
             # TYPE tern_store_recovery_seconds gauge\n\
             tern_store_recovery_seconds {}\n\
             # HELP tern_store_recovered Sessions, queued messages and retained messages read back at the start.\n\
             # TYPE tern_store_recovered gauge\n\
             tern_store_recovered{{kind=\"sessions\"}} {}\n\
             tern_store_recovered{{kind=\"queued\"}} {}\n\
             tern_store_recovered{{kind=\"retained\"}} {}\n\
             tern_store_recovered{{kind=\"damaged\"}} {}\n\
             # HELP tern_store_fsync_seconds Time of each fsync of a worker's store journal.\n\
             # TYPE tern_store_fsync_seconds histogram",
            m.commits.load(Ordering::Relaxed),
            m.bytes_written.load(Ordering::Relaxed),
            m.errors.load(Ordering::Relaxed),
            dir_size(&self.data_dir),
            r.seconds,
            r.sessions,
            r.entries,
            r.retained,
            r.damaged,
        );
        let mut cumulative = 0;
        for (i, bound) in FSYNC_BUCKETS_US.iter().enumerate() {
            cumulative += m.fsync_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tern_store_fsync_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = m.fsyncs.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tern_store_fsync_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             tern_store_fsync_seconds_sum {}\n\
             tern_store_fsync_seconds_count {count}",
            m.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

/// One worker's observer (lives on the worker's thread).
pub(crate) struct DiskObserver {
    worker: usize,
    store: Rc<RefCell<WorkerStore>>,
    /// A commit is scheduled for this turn.
    scheduled: Rc<Cell<bool>>,
    wake: Rc<tokio::sync::Notify>,
    /// Commits written so far.
    commits: Rc<Cell<u64>>,
    /// The last commit fsync'd (written by the store thread).
    synced: Arc<AtomicU64>,
    /// A commit or fsync failed: nothing more is written.
    failed: Arc<AtomicBool>,
    persistent: Arc<[AtomicUsize]>,
    metrics: Arc<StoreMetrics>,
    /// Tells the store thread of each commit; dropped to stop it.
    to_thread: mpsc::Sender<u64>,
}

impl std::fmt::Debug for DiskObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskObserver")
            .field("worker", &self.worker)
            .field("commits", &self.commits.get())
            .finish_non_exhaustive()
    }
}

impl DiskObserver {
    fn start(
        worker: usize,
        store: WorkerStore,
        durability: Durability,
        flush_interval: Duration,
        on_durable: OnDurable,
        persistent: Arc<[AtomicUsize]>,
        metrics: Arc<StoreMetrics>,
    ) -> Self {
        let handle = store.sync_handle();
        let synced = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let on_durable: Arc<OnDurable> = Arc::new(on_durable);
        let (tx, rx) = mpsc::channel();
        let thread_synced = Arc::clone(&synced);
        let thread_failed = Arc::clone(&failed);
        let thread_signal = Arc::clone(&on_durable);
        let thread_metrics = Arc::clone(&metrics);
        let thread = std::thread::Builder::new()
            .name(format!("tern-store-{worker}"))
            .spawn(move || {
                store_thread(
                    handle,
                    rx,
                    (durability, flush_interval),
                    &thread_synced,
                    &thread_failed,
                    &**thread_signal,
                    &thread_metrics,
                );
            });
        // Detached: it ends once the last sender of `tx` is gone.
        if let Err(e) = thread {
            tracing::error!(worker, error = %e, "cannot start the store thread: nothing is fsync'd");
        }
        let observer = Self {
            worker,
            store: Rc::new(RefCell::new(store)),
            scheduled: Rc::new(Cell::new(false)),
            wake: Rc::new(tokio::sync::Notify::new()),
            commits: Rc::new(Cell::new(0)),
            synced,
            failed: Arc::clone(&failed),
            persistent,
            metrics,
            to_thread: tx.clone(),
        };
        let committer = Committer {
            worker,
            store: Rc::clone(&observer.store),
            scheduled: Rc::clone(&observer.scheduled),
            wake: Rc::clone(&observer.wake),
            commits: Rc::clone(&observer.commits),
            metrics: Arc::clone(&observer.metrics),
            to_thread: tx,
            failed,
            signal: on_durable,
        };
        tokio::task::spawn_local(committer.run());
        observer
    }

    fn schedule(&self) {
        if !self.scheduled.replace(true) {
            self.wake.notify_one();
        }
    }
}

/// The worker-local task that commits once per turn.
struct Committer {
    worker: usize,
    store: Rc<RefCell<WorkerStore>>,
    scheduled: Rc<Cell<bool>>,
    wake: Rc<tokio::sync::Notify>,
    commits: Rc<Cell<u64>>,
    metrics: Arc<StoreMetrics>,
    to_thread: mpsc::Sender<u64>,
    failed: Arc<AtomicBool>,
    signal: Arc<OnDurable>,
}

impl Committer {
    async fn run(self) {
        loop {
            self.wake.notified().await;
            // Everything else ready in this turn adds its changes first.
            tokio::task::yield_now().await;
            self.scheduled.set(false);
            if self.failed.load(Ordering::Acquire) {
                continue;
            }
            let ok = commit(
                self.worker,
                &self.store,
                &self.commits,
                &self.metrics,
                &self.to_thread,
            );
            if !ok && !self.failed.swap(true, Ordering::AcqRel) {
                (self.signal)(StoreSignal::Failed);
            }
        }
    }
}

/// Writes `store`'s pending changes and tells the store thread; false
/// when the write failed.
fn commit(
    worker: usize,
    store: &RefCell<WorkerStore>,
    commits: &Cell<u64>,
    metrics: &StoreMetrics,
    to_thread: &mpsc::Sender<u64>,
) -> bool {
    let Ok(mut store) = store.try_borrow_mut() else {
        return true;
    };
    let before = store.stats().bytes_written;
    match store.commit() {
        Ok(0) => {}
        Ok(_) => {
            commits.set(commits.get() + 1);
            metrics.commits.fetch_add(1, Ordering::Relaxed);
            metrics
                .bytes_written
                .fetch_add(store.stats().bytes_written - before, Ordering::Relaxed);
            let _ = to_thread.send(commits.get());
        }
        Err(e) => {
            metrics.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(worker, error = %e,
                "store commit failed: nothing more is written until a restart; QoS 1/2 messages for persistent sessions are refused");
            return false;
        }
    }
    true
}

/// fsyncs `handle` as `durability` says until the observer goes.
fn store_thread(
    handle: SyncHandle,
    rx: mpsc::Receiver<u64>,
    (durability, flush_interval): (Durability, Duration),
    synced: &AtomicU64,
    failed: &AtomicBool,
    signal: &(dyn Fn(StoreSignal) + Send + Sync),
    metrics: &StoreMetrics,
) {
    let mut committed = 0;
    let mut open = true;
    while open {
        match durability {
            Durability::Sync => match rx.recv() {
                Ok(n) => committed = n,
                Err(_) => open = false,
            },
            Durability::Interval => match rx.recv_timeout(flush_interval) {
                Ok(n) => {
                    committed = n;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            },
        }
        // Every commit told of meanwhile takes this one fsync.
        while let Ok(n) = rx.try_recv() {
            committed = n;
        }
        if committed <= synced.load(Ordering::Acquire) || failed.load(Ordering::Acquire) {
            continue;
        }
        let started = std::time::Instant::now();
        match handle.sync() {
            Ok(()) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                metrics.fsync_took(micros);
                synced.store(committed, Ordering::Release);
                signal(StoreSignal::Durable(committed));
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the
                // pages: nothing since the last good one can be trusted.
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e,
                    "store fsync failed: nothing more is written until a restart; QoS 1/2 messages for persistent sessions are refused");
                if !failed.swap(true, Ordering::AcqRel) {
                    signal(StoreSignal::Failed);
                }
            }
        }
    }
}

impl StoreObserver for DiskObserver {
    fn observe(&self, event: StoreEvent<'_>) {
        let Ok(mut store) = self.store.try_borrow_mut() else {
            tracing::error!(worker = self.worker, "store busy: change not kept");
            return;
        };
        let sessions_changed = matches!(
            event,
            StoreEvent::SessionOpened { .. } | StoreEvent::SessionEnded { .. }
        );
        match event {
            StoreEvent::SessionOpened { session, resumed } => {
                store.session_opened(session, resumed)
            }
            StoreEvent::SessionOffline { session } => {
                store.session_offline(session, std::time::Instant::now())
            }
            StoreEvent::SessionEnded { client_id } => store.session_ended(client_id),
            StoreEvent::SessionChanged { client_id, change } => {
                store.session_changed(client_id, change)
            }
            StoreEvent::WillScheduled {
                client_id,
                will,
                due,
            } => store.will_scheduled(client_id, will, due),
            StoreEvent::WillCleared { client_id } => store.will_cleared(client_id),
            StoreEvent::RetainedSet {
                msg,
                order,
                expires_at,
            } => store.retained_set(msg, order, expires_at),
            StoreEvent::RetainedCleared { topic, order } => store.retained_cleared(topic, order),
        }
        if sessions_changed {
            let (sessions, _) = store.counts();
            if let Some(n) = self.persistent.get(self.worker) {
                n.store(sessions, Ordering::SeqCst);
            }
        }
        let pending = store.has_pending();
        drop(store);
        if pending {
            self.schedule();
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn close(&self) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        if !commit(
            self.worker,
            &self.store,
            &self.commits,
            &self.metrics,
            &self.to_thread,
        ) {
            self.failed.store(true, Ordering::Release);
            return;
        }
        if let Ok(store) = self.store.try_borrow() {
            if let Err(e) = store.sync_handle().sync() {
                tracing::error!(worker = self.worker, error = %e, "final store fsync failed");
            }
        }
    }

    fn pending_commit(&self) -> Option<u64> {
        let commits = self.commits.get();
        let pending = self.store.try_borrow().map_or(true, |s| s.has_pending());
        if pending {
            Some(commits + 1)
        } else if commits > self.synced.load(Ordering::Acquire) {
            Some(commits)
        } else {
            None
        }
    }
}

impl Drop for DiskObserver {
    /// The worker is stopping: what is pending is committed and fsync'd
    /// (the store thread ends when its last sender goes).
    fn drop(&mut self) {
        self.close();
    }
}
