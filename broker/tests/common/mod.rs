//! Shared helpers of the black-box test binaries: a guard that spawns the
//! `tern` binary (or points at an already running broker named by
//! `TERN_TEST_BROKER=host:port`), a blocking raw MQTT client over
//! `std::net::TcpStream`, and byte-level builders for every packet the tests
//! send. Nothing here uses the broker's own codec: the tests must not share
//! its bugs.
#![allow(dead_code)]

mod client;
mod daemon;
mod wire;

#[allow(unused_imports)] // each test binary uses a different part
pub use self::client::*;
#[allow(unused_imports)]
pub use self::daemon::*;
#[allow(unused_imports)]
pub use self::wire::*;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest any single wait of a test may last.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long a test waits to be reasonably sure that something does NOT happen.
pub const QUIET: Duration = Duration::from_millis(400);

/// How long the guard waits for `tern: listening on …`.
const STARTUP: Duration = Duration::from_secs(10);

/// Log lines kept per broker, printed when a test fails.
const LOG_TAIL: usize = 200;

/// A running broker under test. Dropping it terminates a broker it spawned
/// (SIGTERM, then SIGKILL after 2 s); an external broker is left alone.
#[derive(Debug)]
pub struct Broker {
    /// Where the broker listens.
    pub addr: SocketAddr,
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Broker {
    /// The broker named by `TERN_TEST_BROKER`, or a freshly spawned
    /// `tern --bind 127.0.0.1:0 --workers 2 --no-metrics --log-level debug`.
    pub fn start() -> Self {
        if let Some(addr) = external() {
            return Self {
                addr,
                child: None,
                log: Arc::default(),
            };
        }
        Self::spawn(&["--workers", "2"])
    }

    /// A spawned broker with `args` added to the default flags (use it for
    /// limits such as `--max-packet-size`). Returns `None`, after printing
    /// why, when `TERN_TEST_BROKER` is set: an external broker cannot be
    /// given flags, so the calling test is skipped.
    pub fn spawn_only(args: &[&str]) -> Option<Self> {
        if let Some(addr) = external() {
            println!("SKIPPED: needs a spawned tern with {args:?}, but TERN_TEST_BROKER={addr}");
            return None;
        }
        let mut all = args.to_vec();
        if !all.contains(&"--workers") {
            all.extend(["--workers", "2"]);
        }
        Some(Self::spawn(&all))
    }

    /// True when the tests run against an external broker.
    pub fn is_external() -> bool {
        external().is_some()
    }

    fn spawn(args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_tern");
        // Metrics stay off unless the test asks for them.
        let metrics: &[&str] = if args.contains(&"--metrics-bind") {
            &[]
        } else {
            &["--no-metrics"]
        };
        let mut child = Command::new(bin)
            .args(["--bind", "127.0.0.1:0", "--log-level", "debug"])
            .args(metrics)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let log: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        drain_lines(stdout, Arc::clone(&log), Some(tx));
        drain_lines(stderr, Arc::clone(&log), None);
        let Ok(addr) = rx.recv_timeout(STARTUP) else {
            let _ = child.kill();
            let _ = child.wait();
            dump_log(&log);
            panic!("tern did not print `tern: listening on ADDR` within {STARTUP:?}");
        };
        Self {
            addr,
            child: Some(child),
            log,
        }
    }
}

impl Broker {
    /// Kills a spawned broker with SIGKILL (no shutdown of any kind) and
    /// waits for it to be gone.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            dump_log(&self.log);
        }
    }
}

/// Sends `sig` to process `pid` (a child this test spawned).
pub fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn external() -> Option<SocketAddr> {
    let value = std::env::var("TERN_TEST_BROKER").ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("TERN_TEST_BROKER={value:?} is not host:port: {e}")),
    )
}

/// The address of `child`'s first line, `tern: listening on ADDR` (its
/// stdout piped), which takes that pipe.
#[allow(dead_code)] // not every test binary starts its own tern
pub fn listening_addr(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("listening line");
    line.trim()
        .strip_prefix("tern: listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
}

/// Reads `pipe` line by line on a thread, keeping the last lines in `log`;
/// sends the address of the first `tern: listening on ADDR` line to `tx`.
fn drain_lines(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    mut tx: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("tern: listening on ") {
                if let (Some(sender), Ok(addr)) = (tx.as_ref(), rest.trim().parse()) {
                    let _ = sender.send(addr);
                    tx = None;
                }
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == LOG_TAIL {
                log.pop_front();
            }
            log.push_back(line);
        }
    });
}

fn dump_log(log: &Mutex<VecDeque<String>>) {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("---- last {} lines of the broker's output ----", log.len());
    for line in log.iter() {
        eprintln!("{line}");
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_number() -> (u32, u32, u32) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
        .unwrap_or(0);
    (std::process::id(), n, nanos)
}

/// A client identifier unique to this process and call, at most 23 bytes of
/// `[0-9a-z]` so that it is valid for every protocol level ([MQTT-3.1.3-5]).
pub fn client_id() -> String {
    let (pid, n, nanos) = unique_number();
    let id = format!("t{pid:x}x{n:x}x{nanos:08x}");
    id.chars().take(23).collect()
}

/// A topic unique to this process and call: `tern/<tag>/<unique>`. Tests
/// against a shared external broker therefore never see each other's
/// messages or retained state.
pub fn topic(tag: &str) -> String {
    let (pid, n, nanos) = unique_number();
    format!("tern/{tag}/{pid:x}-{n:x}-{nanos:08x}")
}

/// Runs `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
