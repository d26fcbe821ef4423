//! Mosquitto's password and ACL files in the real `tern` binary: a file
//! written by `mosquitto_passwd` (`$7$`) and a `$6$` line, anonymous
//! clients refused, ACL denials at PUBLISH, SUBSCRIBE, delivery and
//! retained delivery in MQTT 3.1.1 and 5.0 (byte-level for the codes, and
//! with `mosquitto_sub` / `mosquitto_pub`, Debian package
//! `mosquitto-clients`), and a SIGHUP reload of both files while a client
//! stays connected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use sha2::{Digest, Sha512};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A directory of files for one test, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("tern-access-{}", client_id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `tern --config FILE` on a free port; SIGTERM, then SIGKILL, on drop.
struct Tern {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Tern {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .arg("--config")
            .arg(config)
            .args(["--bind", "127.0.0.1:0", "--no-metrics", "--workers", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tern");
        let addr = listening_addr(&mut child);
        Self { child, addr }
    }
    fn reload(&self) {
        signal(self.child.id(), libc::SIGHUP);
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{tool} not found: install Debian's mosquitto and mosquitto-clients (scripts/install-test-deps.sh)"
    );
}

/// A password file with alice ($7$, written by mosquitto_passwd) and bob
/// ($6$, salted SHA-512 as Mosquitto 1.x wrote it).
fn password_file(dir: &Dir, alice: &str) -> PathBuf {
    require("mosquitto_passwd");
    let path = dir.path("passwd");
    let out = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(&path)
        .args(["alice", alice])
        .output()
        .unwrap();
    assert!(out.status.success(), "mosquitto_passwd: {out:?}");
    let salt = [0x5a; 12];
    let mut h = Sha512::new();
    h.update(b"bob-pw");
    h.update(salt);
    let line = format!(
        "bob:$6${}${}\n",
        STANDARD.encode(salt),
        STANDARD.encode(h.finalize())
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("alice:$7$"), "{text}");
    text.push_str(&line);
    std::fs::write(&path, text).unwrap();
    path
}

const ACL: &str = "\
# anonymous: nothing
user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret/#
user bob
topic readwrite #
pattern readwrite clients/%c/#
";

fn config(dir: &Dir, passwd: &Path, acl: &Path, anonymous: bool) -> PathBuf {
    dir.write(
        "tern.toml",
        &format!(
            "[auth]\nallow_anonymous = {anonymous}\npassword_file = {:?}\nacl_file = {:?}\n",
            passwd.display().to_string(),
            acl.display().to_string()
        ),
    )
}

fn login(version: u8, user: &str, password: &str) -> Connect {
    let mut c = Connect::new(version, &client_id());
    c.username = Some(user.into());
    c.password = Some(password.as_bytes().to_vec());
    c
}

fn connack(addr: std::net::SocketAddr, c: &Connect) -> u8 {
    Client::connect(addr, c).1.connack_code()
}

/// The reason code of the PUBACK for `pid` (v5: 0 when the packet has none).
fn puback_code(p: &RawPacket) -> u8 {
    let b = p.bytes();
    assert_eq!(b[0] >> 4, PUBACK, "{p:?}");
    b.get(4).copied().unwrap_or(0)
}

fn mosquitto(tool: &str, addr: std::net::SocketAddr, args: &[&str]) -> Output {
    require(tool);
    let port = addr.port().to_string();
    Command::new("timeout")
        .args(["10", tool, "-h", "127.0.0.1", "-p", &port])
        .args(args)
        .output()
        .unwrap()
}

// $7$ from mosquitto_passwd and $6$ both log in, in 3.1.1 and 5.0; a wrong
// password is 4 / 0x86; no user name is 5 / 0x87 while allow_anonymous is
// false, as Mosquitto answers; an unknown user is 4 / 0x86.
#[test]
fn password_file_both_formats_and_anonymous_refused() {
    let dir = Dir::new();
    let passwd = password_file(&dir, "secret");
    let acl = dir.write("acl", ACL);
    let tern = Tern::start(&config(&dir, &passwd, &acl, false));
    for (version, bad, anon) in [(V311, 4, 5), (V5, 0x86, 0x87)] {
        assert_eq!(connack(tern.addr, &login(version, "alice", "secret")), 0);
        assert_eq!(connack(tern.addr, &login(version, "bob", "bob-pw")), 0);
        // Again: now from the cache of recent successes.
        assert_eq!(connack(tern.addr, &login(version, "alice", "secret")), 0);
        assert_eq!(connack(tern.addr, &login(version, "alice", "Secret")), bad);
        assert_eq!(connack(tern.addr, &login(version, "bob", "secret")), bad);
        assert_eq!(connack(tern.addr, &login(version, "carol", "x")), bad);
        let anonymous = Connect::new(version, &client_id());
        assert_eq!(connack(tern.addr, &anonymous), anon);
    }
    // mosquitto_pub with the same file's credentials.
    let t = topic("pw");
    let ok = mosquitto(
        "mosquitto_pub",
        tern.addr,
        &[
            "-u",
            "alice",
            "-P",
            "secret",
            "-t",
            &format!("alice/{t}"),
            "-m",
            "x",
        ],
    );
    assert!(ok.status.success(), "{ok:?}");
    let refused = mosquitto(
        "mosquitto_pub",
        tern.addr,
        &["-u", "alice", "-P", "nope", "-t", "alice/x", "-m", "x"],
    );
    assert!(!refused.status.success(), "{refused:?}");
}

// SUBACK 0x87 per refused filter (v3.1.1: 0x80); PUBLISH
// outside the ACL: v5 PUBACK 0x87, v3.1.1 a plain PUBACK, and in both the
// message reaches nobody; deliveries and retained messages the client may
// not read are not sent; a pattern with %c.
#[test]
fn acl_denies_publish_subscribe_and_retained_in_both_versions() {
    let dir = Dir::new();
    let passwd = password_file(&dir, "secret");
    let acl = dir.write("acl", ACL);
    let tern = Tern::start(&config(&dir, &passwd, &acl, false));
    let (mut bob, _) = Client::accepted(tern.addr, &login(V5, "bob", "bob-pw"));
    bob.sub("#", 1);
    // Retained, before alice subscribes: one she may read, one she may not.
    bob.publish(&Message::new("shared/open/r", "open").qos(1, 1).retain(true));
    bob.publish(
        &Message::new("shared/secret/r", "hidden")
            .qos(1, 2)
            .retain(true),
    );
    for _ in 0..2 {
        bob.recv_acked();
    }
    for (version, refused) in [(V311, 0x80), (V5, 0x87)] {
        let c = login(version, "alice", "secret");
        let id = c.client_id.clone();
        let (mut alice, _) = Client::accepted(tern.addr, &c);
        let codes = alice.subscribe(&[
            ("alice/in/#", 1),
            ("other/#", 1),
            ("shared/secret/#", 0),
            ("shared/#", 1),
        ]);
        assert_eq!(codes, vec![1, refused, refused, 1], "v{version}");
        let got = alice.recv_acked();
        assert_eq!(
            (got.topic.as_str(), got.retain),
            ("shared/open/r", true),
            "only the readable retained message"
        );
        alice.expect_nothing(QUIET);

        // PUBLISH outside the ACL.
        alice.send(&Message::new("other/t", "no").qos(1, 7).encode(version));
        let ack = alice.read_until("PUBACK", |p| p.kind() == PUBACK);
        assert_eq!(ack.pid(), 7);
        let want = if version == V5 { 0x87 } else { 0 };
        assert_eq!(puback_code(&ack), want, "v{version} PUBACK");
        // Allowed: own tree, and the %c pattern.
        alice.publish(&Message::new("alice/t", "yes").qos(1, 8));
        alice.publish(&Message::new(&format!("clients/{id}/t"), "mine").qos(1, 9));
        let topics: Vec<String> = (0..2).map(|_| bob.recv_acked().topic).collect();
        assert_eq!(
            topics,
            vec!["alice/t".to_string(), format!("clients/{id}/t")]
        );
        bob.expect_nothing(QUIET);

        // Live deliveries alice may not read are dropped.
        bob.publish(&Message::new("shared/secret/live", "x").qos(1, 20));
        bob.publish(&Message::new("shared/open/live", "y").qos(1, 21));
        for _ in 0..2 {
            bob.recv_acked();
        }
        let got = alice.recv_acked();
        assert_eq!(got.topic, "shared/open/live");
        alice.expect_nothing(QUIET);
        alice.disconnect();
    }
    // mosquitto_sub sees the same: the readable retained message only.
    let out = mosquitto(
        "mosquitto_sub",
        tern.addr,
        &[
            "-u", "alice", "-P", "secret", "-t", "shared/#", "-v", "-W", "2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shared/open/r open"), "{text:?} {out:?}");
    assert!(!text.contains("hidden"), "{text:?}");
}

// SIGHUP with a connected client: a new password and a new ACL apply to
// new connections at once; the connected client stays connected and gets
// the new ACL from its next operation; a broken file keeps the one in force.
#[test]
fn reload_applies_new_files_and_keeps_connected_clients() {
    let dir = Dir::new();
    let passwd = password_file(&dir, "secret");
    let acl = dir.write("acl", ACL);
    let tern = Tern::start(&config(&dir, &passwd, &acl, false));
    let (mut alice, _) = Client::accepted(tern.addr, &login(V311, "alice", "secret"));
    alice.sub("shared/#", 0);
    let (mut bob, _) = Client::accepted(tern.addr, &login(V311, "bob", "bob-pw"));
    bob.publish0("shared/open/1", "before");
    assert_eq!(alice.recv().topic, "shared/open/1");

    // New password for alice; the ACL now denies her shared/open/#.
    password_file(&dir, "changed");
    dir.write(
        "acl",
        &ACL.replace("topic deny shared/secret/#", "topic deny shared/open/#"),
    );
    tern.reload();
    wait_for(WAIT, "the new password to apply", || {
        (connack(tern.addr, &login(V311, "alice", "changed")) == 0).then_some(())
    });
    assert_eq!(connack(tern.addr, &login(V311, "alice", "secret")), 4);
    // Still connected, with the new rules from the next delivery on.
    alice.ping();
    bob.publish0("shared/open/2", "after");
    bob.publish0("shared/other/3", "allowed");
    assert_eq!(alice.recv().topic, "shared/other/3");
    alice.expect_nothing(QUIET);

    // A password file that does not load keeps the one in force.
    dir.write("passwd", "alice:$5$not-a-format\n");
    tern.reload();
    std::thread::sleep(QUIET);
    assert_eq!(connack(tern.addr, &login(V311, "alice", "changed")), 0);
    alice.ping();
}

// A broken password or ACL file stops the start with the line named.
#[test]
fn a_bad_file_fails_the_start_naming_the_line() {
    let dir = Dir::new();
    let start = |conf: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .arg("--config")
            .arg(conf)
            .args(["--bind", "127.0.0.1:0", "--no-metrics"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let acl = dir.write("acl", ACL);
    let passwd = dir.write("passwd", "# users\nalice:$5$x$y\n");
    let out = start(&config(&dir, &passwd, &acl, true));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("password file line 2: user \"alice\": unknown hash format $5$"),
        "{err}"
    );

    let passwd = password_file(&dir, "pw");
    let acl = dir.write("acl", "topic maybe a\n");
    let out = start(&config(&dir, &passwd, &acl, true));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ACL file line 1: unknown access \"maybe\""),
        "{err}"
    );
}

// Mosquitto's per_listener_settings: each listener its own password file,
// ACL and anonymous access; keys it leaves out are the [auth] ones.
#[test]
fn each_listener_has_its_own_files() {
    let dir = Dir::new();
    let passwd = password_file(&dir, "secret");
    let acl = dir.write("acl", ACL);
    let open_acl = dir.write("open.acl", "topic readwrite open/#\n");
    let conf = dir.write(
        "tern.toml",
        &format!(
            "[auth]\nallow_anonymous = false\npassword_file = {:?}\nacl_file = {:?}\n\
             [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"strict\"\n\
             [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"open\"\n\
             [listener.access]\nallow_anonymous = true\nacl_file = {:?}\n",
            passwd.display().to_string(),
            acl.display().to_string(),
            open_acl.display().to_string()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--config")
        .arg(&conf)
        .args(["--no-metrics", "--workers", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tern");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let addr: std::net::SocketAddr = line
            .trim()
            .strip_prefix("tern: listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addrs.push(addr);
    }
    let tern = Tern {
        child,
        addr: addrs[0],
    };
    let (strict, open) = (addrs[0], addrs[1]);
    let anonymous = || Connect::new(V311, &client_id());
    assert_eq!(connack(strict, &anonymous()), 5);
    assert_eq!(connack(open, &anonymous()), 0);
    // The global password file on both.
    assert_eq!(connack(open, &login(V311, "alice", "secret")), 0);
    assert_eq!(connack(open, &login(V311, "alice", "nope")), 4);
    // The open listener's own ACL: open/# for everyone, alice/# for nobody.
    let (mut a, _) = Client::accepted(open, &anonymous());
    assert_eq!(a.subscribe(&[("open/#", 0), ("alice/#", 0)]), vec![0, 0x80]);
    let (mut b, _) = Client::accepted(strict, &login(V311, "alice", "secret"));
    assert_eq!(b.subscribe(&[("open/#", 0), ("alice/#", 0)]), vec![0x80, 0]);
    drop(tern);
}
