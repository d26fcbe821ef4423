//! `tern passwd` against the real Mosquitto (Debian package `mosquitto`):
//! a file written by `tern passwd` (`-c`, `-b`, `-I`, the password asked
//! on standard input, `-D`, `-U`) is accepted by `mosquitto` and by
//! `tern`, and a file `mosquitto_passwd` wrote is edited by `tern passwd`
//! and still read by both. Each broker runs on its own loopback port and
//! is stopped by its PID.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn tern_passwd(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A process stopped by its PID on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        signal(self.0.id(), libc::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto_binary() -> &'static str {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    "mosquitto"
}

/// `mosquitto` on a free loopback port with `passwd` and no anonymous access.
fn start_mosquitto(dir: &Path, passwd: &Path) -> (Proc, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    // `user root`: when the tests run as root, Mosquitto keeps its user
    // and can read the 0600 file (without root the line has no effect).
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nuser root\n",
            passwd.display()
        ),
    )
    .unwrap();
    let child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto not found ({e}): run scripts/install-test-deps.sh"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proc = Proc(child);
    wait_for(WAIT, "mosquitto to listen", || {
        std::net::TcpStream::connect(addr).ok().map(|_| ())
    });
    (proc, addr)
}

fn start_tern(dir: &Path, passwd: &Path) -> (Proc, SocketAddr) {
    let conf = dir.join("tern.toml");
    std::fs::write(
        &conf,
        format!(
            "[auth]\nallow_anonymous = false\npassword_file = {:?}\n",
            passwd.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--config")
        .arg(&conf)
        .args(["--bind", "127.0.0.1:0", "--no-metrics", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    (Proc(child), addr)
}

fn login(addr: SocketAddr, user: &str, password: &str) -> u8 {
    let mut c = Connect::new(V311, &client_id());
    c.username = Some(user.into());
    c.password = Some(password.as_bytes().to_vec());
    Client::connect(addr, &c).1.connack_code()
}

/// Both brokers accept exactly `good` and refuse `bad` (user, password).
fn both_brokers_agree(dir: &Path, passwd: &Path, good: &[(&str, &str)], bad: &[(&str, &str)]) {
    let (_m, mosq) = start_mosquitto(dir, passwd);
    let (_t, tern) = start_tern(dir, passwd);
    for (name, addr) in [("mosquitto", mosq), ("tern", tern)] {
        for (u, p) in good {
            assert_eq!(login(addr, u, p), 0, "{name} refused {u}:{p}");
        }
        for (u, p) in bad {
            assert_ne!(login(addr, u, p), 0, "{name} accepted {u}:{p}");
        }
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> Dir {
    let d = std::env::temp_dir().join(format!("tern-passwd-{}", client_id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

#[test]
fn files_written_by_tern_passwd_work_in_mosquitto_and_tern() {
    let d = dir();
    let file = d.0.join("passwd");
    let f = file.to_str().unwrap();
    assert!(tern_passwd(&["-c", "-b", f, "alice", "a-pw"], "").0);
    assert!(tern_passwd(&["-b", "-I", "2000", f, "bob", "b-pw"], "").0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nbob:$7$2000$"), "-I: {text}");
    // Asked twice on standard input, as mosquitto_passwd does.
    let (ok, out) = tern_passwd(&[f, "carol"], "c-pw\nc-pw\n");
    assert!(ok, "{out}");
    let (ok, out) = tern_passwd(&[f, "dave"], "one\ntwo\n");
    assert!(!ok && out.contains("do not match"), "{out}");
    // Change alice, delete bob.
    assert!(tern_passwd(&["-b", f, "alice", "a-new"], "").0);
    assert!(tern_passwd(&["-D", f, "bob"], "").0);
    let (ok, out) = tern_passwd(&["-D", f, "bob"], "");
    assert!(!ok && out.contains("not found"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("bob:") && text.contains("alice:$7$101$"),
        "{text}"
    );
    both_brokers_agree(
        &d.0,
        &file,
        &[("alice", "a-new"), ("carol", "c-pw")],
        &[("alice", "a-pw"), ("bob", "b-pw"), ("dave", "one")],
    );
}

#[test]
fn upgrade_and_edit_of_mosquitto_passwd_files() {
    let d = dir();
    // -U: plain-text passwords hashed in place.
    let plain = d.0.join("plain");
    std::fs::write(&plain, "# plain\nerin:e-pw\nfrank:f-pw\n").unwrap();
    let (ok, out) = tern_passwd(&["-U", plain.to_str().unwrap()], "");
    assert!(ok && out.contains("hashed 2"), "{out}");
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(text.starts_with("# plain\nerin:$7$101$"), "{text}");
    both_brokers_agree(
        &d.0,
        &plain,
        &[("erin", "e-pw"), ("frank", "f-pw")],
        &[("erin", "f-pw")],
    );

    // A file from mosquitto_passwd, edited by tern passwd.
    let file = d.0.join("mosq");
    let status = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(&file)
        .args(["gina", "g-pw"])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(status.success());
    assert!(tern_passwd(&["-b", file.to_str().unwrap(), "hank", "h-pw"], "").0);
    both_brokers_agree(
        &d.0,
        &file,
        &[("gina", "g-pw"), ("hank", "h-pw")],
        &[("gina", "h-pw")],
    );
}
