//! store-bench: fjall vs redb on Tern's durable-session write pattern
//! (issue 12). Each worker thread owns its own store directory; per QoS 1
//! message it appends the message once and one queue entry per recipient
//! session, and deletes the entries and the message again `--ack-lag`
//! messages later (the subscriber's PUBACK), all changes of one tick in one
//! commit. See benches/store-bench.sh for the matrix in BENCHMARKS.md.

mod engines;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use engines::{Batch, FjallStore, OpenOpts, RedbStore, Store};

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    #[error("redb: {0}")]
    RedbStorage(#[from] redb::StorageError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a worker thread panicked")]
    WorkerPanicked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    Fjall,
    Redb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// fdatasync once per batch before the commit returns.
    Sync,
    /// No sync per batch; everything is synced every `--flush-ms`.
    Interval,
}

#[derive(Debug, Parser)]
#[command(about = "fjall vs redb on Tern's durable-session write pattern")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Args)]
struct Common {
    #[arg(long, value_enum)]
    engine: Engine,
    /// Data directory; worker i uses `<dir>/w<i>`. Must not exist for `run` and `fill`.
    #[arg(long)]
    dir: PathBuf,
    /// Recipient sessions a message is spread over (per worker).
    #[arg(long, default_value_t = 1000)]
    sessions: u32,
    /// Block cache per worker store, MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// fjall: memtable size per keyspace, MiB (fjall's default 64).
    #[arg(long, default_value_t = 64)]
    fjall_memtable_mib: u64,
    /// fjall: journal size that forces memtable flushes, MiB (fjall's default 512, at least 64).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(64..))]
    fjall_journal_mib: u64,
}

impl Common {
    fn open_opts(&self) -> OpenOpts {
        OpenOpts {
            cache_bytes: self.cache_mib << 20,
            fjall_memtable_bytes: self.fjall_memtable_mib << 20,
            fjall_journal_bytes: self.fjall_journal_mib << 20,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sustained write/ack throughput, commit latency, bytes written, disk, RSS.
    Run {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Persistent sessions each message is queued for.
        #[arg(long, default_value_t = 1)]
        fanout: u32,
        /// Messages per commit.
        #[arg(long, default_value_t = 16)]
        batch: u32,
        #[arg(long, value_enum, default_value_t = Mode::Sync)]
        mode: Mode,
        #[arg(long, default_value_t = 100)]
        flush_ms: u64,
        /// Messages per worker (the run may stop earlier at --max-secs).
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        #[arg(long, default_value_t = 10.0)]
        max_secs: f64,
        /// A message is acked (entries and message deleted) this many messages after it was written.
        #[arg(long, default_value_t = 1000)]
        ack_lag: u64,
    },
    /// Write messages that are never acked (for `recover`), one worker.
    Fill {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        fanout: u32,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Exit without closing the store after the last durable flush, as a kill -9 would.
        #[arg(long)]
        crash: bool,
        /// Full-disk probe: on the first failed commit, print the error, delete this file
        /// (space set aside on the same filesystem), retry the commit and a flush, print
        /// what they return, and stop.
        #[arg(long)]
        ballast: Option<PathBuf>,
    },
    /// Open a filled store and iterate every message and every session's queue.
    Recover {
        #[command(flatten)]
        common: Common,
    },
}

/// ~40 bytes of topic and properties, then a 100-byte payload.
fn message_value(seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(140);
    v.extend_from_slice(b"\x00\x18fleet/site-07/dev-1234/tel\x01\x00\x00\x00\x3c\x23\x00\x05");
    v.resize(40, 0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.resize(140, 0x5a);
    v
}

fn queue_value(seq: u64) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[0] = 1;
    v[1..].copy_from_slice(&seq.to_be_bytes());
    v
}

fn session_of(seq: u64, k: u32, fanout: u32, sessions: u32) -> u32 {
    ((seq * u64::from(fanout) + u64::from(k)) % u64::from(sessions)) as u32
}

struct RunParams {
    fanout: u32,
    batch: u32,
    mode: Mode,
    flush: Duration,
    messages: u64,
    max: Duration,
    ack_lag: u64,
    sessions: u32,
}

struct WorkerResult {
    messages: u64,
    secs: f64,
    commit_us: Vec<u32>,
}

fn worker<S: Store>(
    dir: &Path,
    opts: &OpenOpts,
    p: &RunParams,
    start: &Barrier,
) -> Result<WorkerResult, BenchError> {
    let mut store = S::open(dir, opts)?;
    let mut batch = Batch::default();
    let mut commit_us = Vec::new();
    let mut seq = 0u64;
    start.wait();
    let t0 = Instant::now();
    let mut last_flush = t0;
    while seq < p.messages && t0.elapsed() < p.max {
        batch.clear();
        for _ in 0..p.batch {
            if seq >= p.messages {
                break;
            }
            batch.msg_put.push((seq, message_value(seq)));
            for k in 0..p.fanout {
                let s = session_of(seq, k, p.fanout, p.sessions);
                batch.queue_put.push((s, seq, queue_value(seq)));
            }
            if seq >= p.ack_lag {
                let acked = seq - p.ack_lag;
                for k in 0..p.fanout {
                    let s = session_of(acked, k, p.fanout, p.sessions);
                    batch.queue_del.push((s, acked));
                }
                batch.msg_del.push(acked);
            }
            seq += 1;
        }
        let t = Instant::now();
        store.commit(&batch, p.mode == Mode::Sync)?;
        if p.mode == Mode::Interval && last_flush.elapsed() >= p.flush {
            store.flush()?;
            last_flush = Instant::now();
        }
        commit_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    store.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    drop(store);
    Ok(WorkerResult {
        messages: seq,
        secs,
        commit_us,
    })
}

fn run_workers<S: Store>(
    dir: &Path,
    opts: &OpenOpts,
    workers: u32,
    p: &RunParams,
) -> Result<Vec<WorkerResult>, BenchError> {
    let barrier = Barrier::new(workers as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let wdir = dir.join(format!("w{i}"));
                let barrier = &barrier;
                scope.spawn(move || worker::<S>(&wdir, opts, p, barrier))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| BenchError::WorkerPanicked)?)
            .collect()
    })
}

/// write_bytes of /proc/self/io: bytes this process caused to be sent to storage.
fn write_bytes() -> u64 {
    proc_field("/proc/self/io", "write_bytes:")
}

/// Peak resident set (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    proc_field("/proc/self/status", "VmHWM:")
}

fn proc_field(path: &str, name: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Fjall => "fjall",
        Engine::Redb => "redb",
    }
}

fn create_dir(dir: &Path) -> Result<(), BenchError> {
    fs::create_dir_all(dir).map_err(|source| BenchError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn main() -> Result<(), BenchError> {
    match Cli::parse().cmd {
        Cmd::Run {
            common,
            workers,
            fanout,
            batch,
            mode,
            flush_ms,
            messages,
            max_secs,
            ack_lag,
        } => {
            create_dir(&common.dir)?;
            let p = RunParams {
                fanout,
                batch,
                mode,
                flush: Duration::from_millis(flush_ms),
                messages,
                max: Duration::from_secs_f64(max_secs),
                ack_lag,
                sessions: common.sessions,
            };
            let opts = common.open_opts();
            let io0 = write_bytes();
            let results = match common.engine {
                Engine::Fjall => run_workers::<FjallStore>(&common.dir, &opts, workers, &p)?,
                Engine::Redb => run_workers::<RedbStore>(&common.dir, &opts, workers, &p)?,
            };
            let written = write_bytes().saturating_sub(io0);
            let total: u64 = results.iter().map(|r| r.messages).sum();
            let secs = results.iter().map(|r| r.secs).fold(0.0, f64::max);
            let mut lat: Vec<u32> = results.iter().flat_map(|r| r.commit_us.clone()).collect();
            lat.sort_unstable();
            let mode = match mode {
                Mode::Sync => "sync",
                Mode::Interval => "interval",
            };
            println!(
                "RESULT engine={} workers={workers} fanout={fanout} batch={batch} mode={mode} \
                 messages={total} secs={secs:.3} msgs_per_s={:.0} commits={} commit_p50_us={} \
                 commit_p99_us={} bytes_per_msg={:.0} disk_kib={} rss_kib={}",
                engine_name(common.engine),
                total as f64 / secs,
                lat.len(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                written as f64 / total.max(1) as f64,
                disk_bytes(&common.dir) / 1024,
                peak_rss_kib(),
            );
        }
        Cmd::Fill {
            common,
            fanout,
            messages,
            crash,
            ballast,
        } => {
            create_dir(&common.dir)?;
            let wdir = common.dir.join("w0");
            let opts = common.open_opts();
            let p = RunParams {
                fanout,
                batch: 128,
                mode: Mode::Interval,
                flush: Duration::from_millis(100),
                messages,
                max: Duration::from_secs(3600),
                ack_lag: u64::MAX,
                sessions: common.sessions,
            };
            let t0 = Instant::now();
            match common.engine {
                Engine::Fjall => fill::<FjallStore>(&wdir, &opts, &p, crash, ballast.as_deref())?,
                Engine::Redb => fill::<RedbStore>(&wdir, &opts, &p, crash, ballast.as_deref())?,
            }
            println!(
                "FILL engine={} messages={messages} fanout={fanout} sessions={} crash={crash} \
                 secs={:.1} disk_kib={}",
                engine_name(common.engine),
                common.sessions,
                t0.elapsed().as_secs_f64(),
                disk_bytes(&common.dir) / 1024,
            );
            if crash {
                // No destructor runs: the store is left as a SIGKILL after the last sync would leave it.
                std::process::exit(0);
            }
        }
        Cmd::Recover { common } => {
            let wdir = common.dir.join("w0");
            let opts = common.open_opts();
            let (open, scan, counts) = match common.engine {
                Engine::Fjall => recover::<FjallStore>(&wdir, &opts, common.sessions)?,
                Engine::Redb => recover::<RedbStore>(&wdir, &opts, common.sessions)?,
            };
            println!(
                "RECOVER engine={} open_s={open:.2} scan_s={scan:.2} messages={} queue_entries={} \
                 rss_kib={} disk_kib={}",
                engine_name(common.engine),
                counts.messages,
                counts.queue_entries,
                peak_rss_kib(),
                disk_bytes(&common.dir) / 1024,
            );
        }
    }
    Ok(())
}

fn fill<S: Store>(
    dir: &Path,
    opts: &OpenOpts,
    p: &RunParams,
    crash: bool,
    ballast: Option<&Path>,
) -> Result<(), BenchError> {
    let mut store = S::open(dir, opts)?;
    let mut batch = Batch::default();
    let mut seq = 0u64;
    let mut last_flush = Instant::now();
    while seq < p.messages {
        batch.clear();
        for _ in 0..p.batch {
            if seq >= p.messages {
                break;
            }
            batch.msg_put.push((seq, message_value(seq)));
            for k in 0..p.fanout {
                let s = session_of(seq, k, p.fanout, p.sessions);
                batch.queue_put.push((s, seq, queue_value(seq)));
            }
            seq += 1;
        }
        let mut done = store.commit(&batch, false);
        if done.is_ok() && last_flush.elapsed() >= p.flush {
            done = store.flush();
            last_flush = Instant::now();
        }
        if let (Err(e), Some(ballast)) = (&done, ballast) {
            println!("FULL first_error_at_message={seq} error={e}");
            fs::remove_file(ballast).map_err(|source| BenchError::Io {
                path: ballast.to_path_buf(),
                source,
            })?;
            let retry = store.commit(&batch, false);
            let flush = store.flush();
            println!("FULL after_freeing_space commit={retry:?} flush={flush:?}");
            return Ok(());
        }
        done?;
    }
    store.flush()?;
    if crash {
        std::mem::forget(store);
    }
    Ok(())
}

fn recover<S: Store>(
    dir: &Path,
    opts: &OpenOpts,
    sessions: u32,
) -> Result<(f64, f64, engines::ScanCounts), BenchError> {
    let t0 = Instant::now();
    let store = S::open(dir, opts)?;
    let open = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let counts = store.scan(sessions)?;
    Ok((open, t1.elapsed().as_secs_f64(), counts))
}
