//! A `tern --config FILE` process for the tests that need a config file
//! (listener tables, HTTP endpoints, reloads): its MQTT listeners' and HTTP
//! addresses, its log, and plain HTTP/1.1 requests to it.

use super::{client_id, signal, wait_for, WAIT};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The admin token `Daemon::http` sends (configure it with
/// `admin_token = "…"` to use the admin endpoint).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A `tern --config FILE` process; SIGTERM then SIGKILL on drop, and the
/// file removed.
pub struct Daemon {
    pub child: Child,
    pub file: PathBuf,
    /// The first MQTT listener's address.
    pub mqtt: SocketAddr,
    /// Every MQTT listener's address, in config order.
    pub listeners: Vec<SocketAddr>,
    pub http: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Daemon {
    pub fn start(config: &str) -> Self {
        let file = std::env::temp_dir().join(format!("tern-ops-{}.toml", client_id()));
        std::fs::write(&file, config).expect("write the config file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .arg("--config")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tern");
        let log: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (pipe, tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &tx {
                        let _ = tx.send(line.clone());
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() == 5000 {
                        log.pop_front();
                    }
                    log.push_back(strip_ansi(&line));
                }
            });
        }
        // The listeners' lines come first, then the HTTP one.
        let mut listeners = Vec::new();
        let mut http = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "tern did not print its addresses: {:?}",
                    log.lock().unwrap()
                )
            });
            if let Some(a) = line.strip_prefix("tern: listening on ") {
                listeners.extend(a.trim().parse::<SocketAddr>().ok());
            } else if let Some(a) = line.strip_prefix("tern: http on ") {
                http = a.trim().parse().ok();
            }
        }
        Self {
            child,
            file,
            mqtt: *listeners.first().expect("a listener"),
            listeners,
            http: http.unwrap(),
            log,
        }
    }

    /// Replaces the config file and sends SIGHUP.
    pub fn reload_with(&self, config: &str) {
        std::fs::write(&self.file, config).expect("rewrite the config file");
        signal(self.child.id(), libc::SIGHUP);
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn log_count(&self, needle: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).count()
    }

    pub fn wait_log(&self, needle: &str) {
        wait_for(WAIT, &format!("`{needle}` in the log"), || {
            self.log_has(needle).then_some(())
        });
    }

    /// One HTTP/1.1 request carrying `Authorization: Bearer ADMIN_TOKEN`:
    /// (status, body).
    pub fn http(&self, method: &str, path: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
        let (status, _, body) = self.http_with(method, path, &auth);
        (status, body)
    }

    /// One HTTP/1.1 request with `headers` (each line ending in CRLF) added:
    /// (status, response head, body).
    pub fn http_with(&self, method: &str, path: &str, headers: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect_timeout(&self.http, WAIT).expect("connect to HTTP");
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: tern\r\nContent-Length: 0\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let (head, body) = response
            .split_once("\r\n\r\n")
            .map(|(h, b)| (h.to_string(), b.to_string()))
            .unwrap_or_default();
        (status, head, body)
    }

    /// The value of a counter or gauge sample line starting with `series`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http("GET", "/metrics");
        body.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub fn wait_ready(&self) {
        wait_for(WAIT, "/readyz to say 200", || {
            (self.http("GET", "/readyz").0 == 200).then_some(())
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            eprintln!("---- last {} lines of tern's output ----", log.len());
            for l in log
                .iter()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("{l}");
            }
        }
    }
}

/// `line` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
