//! TLS and PROXY protocol listeners, black-box against the `tern` binary,
//! with Mosquitto's own clients (`mosquitto_pub`, `mosquitto_sub`) over
//! TLS: server certificates of each key type, hostname verification,
//! mTLS with the certificate's name as user name, a wrong client
//! certificate, the handshake timeout, certificate reload with a client
//! connected, PROXY v1/v2 headers as hand-written bytes, and HTTPS on the
//! metrics listener (`curl --cacert`). Certificates
//! are made by the tests (rcgen; RSA by the `openssl` tool).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;
mod tls {
    mod lifecycle;
    mod metrics;
    mod proxy;
}

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---- certificates ----

/// A test CA and the directory its files go to.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn make_ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// The key types a server certificate may have.
#[derive(Clone, Copy, Debug)]
enum KeyType {
    Ecdsa,
    Ed25519,
}

impl Ca {
    /// A leaf certificate and its key (PEM) for `cn` with `sans` (DNS
    /// names or IP addresses); `client`: for client authentication.
    fn leaf(&self, cn: &str, sans: &[&str], key: KeyType, client: bool) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Tern tests");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = match key {
            KeyType::Ecdsa => rcgen::KeyPair::generate().unwrap(),
            KeyType::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        };
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A scratch directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "tern-tls-{}-{tag}-{}",
            std::process::id(),
            client_id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        // Written whole under another name, then renamed: a reader polling
        // the file never sees half of it.
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- the broker ----

/// A `tern --config FILE` with every listener's address; killed on drop.
struct Tern {
    child: Child,
    addrs: Vec<SocketAddr>,
    http: Option<SocketAddr>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Tern {
    fn start(dir: &Dir, config: &str) -> Self {
        let file = dir.write("tern.toml", config);
        let wants_http = config.contains("metrics_bind");
        let metrics: &[&str] = if wants_http { &[] } else { &["--no-metrics"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--config", &file, "--log-level", "debug", "--workers", "2"])
            .args(metrics)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tern");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let keep = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line);
            }
        });
        let listeners = config.matches("[[listener]]").count();
        let mut addrs = Vec::new();
        let mut http = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while addrs.len() < listeners || (wants_http && http.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tern did not start: {:#?}", log.lock().unwrap());
            };
            if let Some(a) = line.strip_prefix("tern: listening on ") {
                addrs.push(a.trim().parse().unwrap());
            } else if let Some(a) = line.strip_prefix("tern: http on ") {
                http = Some(a.trim().parse().unwrap());
            }
        }
        Self {
            child,
            addrs,
            http,
            log,
        }
    }

    fn port(&self, i: usize) -> String {
        self.addrs[i].port().to_string()
    }

    /// The value of one series of `/metrics` (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        let addr = self.http.expect("metrics_bind set");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (the metrics thread samples once a second) until `series`
    /// reaches `at_least`.
    fn wait_metric(&self, series: &str, at_least: f64) {
        wait_for(Duration::from_secs(5), series, || {
            (self.metric(series) >= at_least).then_some(())
        });
    }

    fn sighup(&self) {
        signal(self.child.id(), libc::SIGHUP);
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}

// ---- Mosquitto's clients ----

fn mosquitto(tool: &str, args: &[&str]) -> Output {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("`{tool}` cannot be run ({e}): apt-get install mosquitto-clients")
        });
    // Bounded: a client that hangs is killed (by its own PID).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// `mosquitto_pub` with `args`: its exit status says whether it connected
/// and published.
fn publish(port: &str, args: &[&str]) -> Output {
    let mut all = vec!["-p", port, "-t", "tern/tls", "-m", "hello", "-q", "1"];
    all.extend_from_slice(args);
    mosquitto("mosquitto_pub", &all)
}

/// A `mosquitto_sub -C 1` that waits for one message.
struct Sub(Child);

impl Sub {
    fn start(port: &str, topic: &str, args: &[&str]) -> Self {
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-d",
                "-p",
                port,
                "-t",
                topic,
                "-q",
                "1",
                "-C",
                "1",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        // Wait for its SUBACK in the debug output.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("SUBACK") => break,
                Ok(_) => {}
                Err(_) => panic!("mosquitto_sub did not subscribe within {WAIT:?}"),
            }
        }
        let mut sub = Self(child);
        sub.0.stdout = None;
        std::thread::spawn(move || {
            for line in rx {
                let _ = line;
            }
        });
        sub
    }

    /// True when it received its message and exited with success.
    fn received(mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_client` against `port` with `args`: true when the handshake
/// succeeded.
fn s_client(port: &str, args: &[&str]) -> bool {
    let connect = format!("127.0.0.1:{port}");
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-brief"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (apt-get install openssl)");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("CONNECTION ESTABLISHED")
}

fn tls_listener(dir: &Dir, extra: &str) -> String {
    format!(
        "bind = []\n[[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"tls\"\ntls.certfile = \"{}\"\ntls.keyfile = \"{}\"\n{extra}",
        dir.path("server.pem"),
        dir.path("server.key"),
    )
}

// ---- tests ----

// A TLS listener serves Mosquitto's clients with `--cafile` for server
// certificates of each key type (ECDSA P-256, Ed25519, RSA); the name is
// checked against the certificate (a mismatch is refused unless
// `--insecure`); a plain MQTT client on the TLS port gets nothing.
#[test]
fn mosquitto_clients_over_tls() {
    let dir = Dir::new("basic");
    let ca = make_ca("basic");
    let cafile = dir.write("ca.pem", &ca.pem);
    for key in [KeyType::Ecdsa, KeyType::Ed25519] {
        let (cert, k) = ca.leaf("localhost", &["localhost", "127.0.0.1"], key, false);
        dir.write("server.pem", &cert);
        dir.write("server.key", &k);
        let tern = Tern::start(&dir, &tls_listener(&dir, ""));
        let port = tern.port(0);
        let sub = Sub::start(&port, "tern/tls", &["-h", "localhost", "--cafile", &cafile]);
        let out = publish(&port, &["-h", "localhost", "--cafile", &cafile]);
        assert!(out.status.success(), "{key:?}: {out:?}");
        assert!(sub.received(), "{key:?}: the subscriber got the message");
        // Over TLS by IP address too (the certificate names 127.0.0.1).
        let out = publish(&port, &["-h", "127.0.0.1", "--cafile", &cafile]);
        assert!(out.status.success(), "{key:?}: {out:?}");
        // Plain MQTT on the TLS port: no CONNACK.
        let mut plain = TcpStream::connect(tern.addrs[0]).unwrap();
        plain.set_read_timeout(Some(WAIT)).unwrap();
        plain
            .write_all(&[
                0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x',
            ])
            .unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = plain.read(&mut buf) {
            assert!(
                n == 0 || buf[0] != 0x20,
                "no CONNACK over plain TCP: {:?}",
                &buf[..n]
            );
        }
    }

    // RSA, from the openssl tool (rcgen with ring cannot make RSA keys).
    let key = dir.path("server.key");
    let csr = dir.path("server.csr");
    let ca_key = dir.write("ca.key", &ca.issuer.key().serialize_pem());
    let ext = dir.write(
        "ext.cnf",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let ok = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    ok(&["genrsa", "-out", &key, "2048"]);
    ok(&[
        "req",
        "-new",
        "-key",
        &key,
        "-subj",
        "/CN=localhost",
        "-out",
        &csr,
    ]);
    ok(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &cafile,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &dir.path("server.pem"),
    ]);
    let tern = Tern::start(&dir, &tls_listener(&dir, ""));
    let out = publish(&tern.port(0), &["-h", "localhost", "--cafile", &cafile]);
    assert!(out.status.success(), "RSA: {out:?}");

    // A certificate for another name: refused, unless --insecure.
    let (cert, k) = ca.leaf("broker.example", &["broker.example"], KeyType::Ecdsa, false);
    dir.write("server.pem", &cert);
    dir.write("server.key", &k);
    let tern = Tern::start(&dir, &tls_listener(&dir, ""));
    let port = tern.port(0);
    let out = publish(&port, &["-h", "127.0.0.1", "--cafile", &cafile]);
    assert!(
        !out.status.success(),
        "a hostname mismatch must be refused: {out:?}"
    );
    let out = publish(
        &port,
        &["-h", "127.0.0.1", "--cafile", &cafile, "--insecure"],
    );
    assert!(
        out.status.success(),
        "--insecure skips the name check: {out:?}"
    );
    // TLS 1.2 and 1.3 both.
    for v in ["-tls1_2", "-tls1_3"] {
        assert!(s_client(&port, &[v, "-CAfile", &cafile]), "{v}");
    }
}

// mTLS: a listener that requires a client certificate from its CA and
// takes the certificate's CN as the user name (`use_identity_as_username`,
// the certificate standing for the password while anonymous access is
// off): a good certificate connects without a password; no certificate,
// a certificate from another CA, and `tls.min_version = "1.3"` against a
// TLS 1.2 client are refused and counted as TLS handshake failures.
#[test]
fn mtls_with_the_certificate_as_user_name() {
    let dir = Dir::new("mtls");
    let ca = make_ca("mtls");
    let other = make_ca("other");
    let cafile = dir.write("ca.pem", &ca.pem);
    let (cert, key) = ca.leaf("localhost", &["localhost"], KeyType::Ecdsa, false);
    dir.write("server.pem", &cert);
    dir.write("server.key", &key);
    let (cert, key) = ca.leaf("alice", &[], KeyType::Ecdsa, true);
    let alice = (dir.write("alice.pem", &cert), dir.write("alice.key", &key));
    let (cert, key) = other.leaf("mallory", &[], KeyType::Ecdsa, true);
    let mallory = (
        dir.write("mallory.pem", &cert),
        dir.write("mallory.key", &key),
    );
    let config = tls_listener(
        &dir,
        &format!(
            "tls.cafile = \"{cafile}\"\ntls.require_certificate = true\ntls.use_identity_as_username = true\ntls.min_version = \"1.3\"\nmetrics_bind = \"127.0.0.1:0\"\n[auth]\nallow_anonymous = false\nusers = [{{ username = \"bob\", password = \"secret\" }}]\n"
        ),
    );
    // `metrics_bind` must be a top-level key: put it before the tables.
    let config = format!(
        "metrics_bind = \"127.0.0.1:0\"\n{}",
        config.replace("metrics_bind = \"127.0.0.1:0\"\n", "")
    );
    let tern = Tern::start(&dir, &config);
    let port = tern.port(0);
    let base = ["-h", "localhost", "--cafile", cafile.as_str()];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        publish(&port, &a)
    };
    let out = with(&["--cert", &alice.0, "--key", &alice.1]);
    assert!(
        out.status.success(),
        "alice's certificate is her login: {out:?}"
    );
    // The CONNECT's own user name is replaced by the certificate's.
    let out = with(&[
        "--cert", &alice.0, "--key", &alice.1, "-u", "bob", "-P", "wrong",
    ]);
    assert!(out.status.success(), "{out:?}");
    tern.wait_metric(
        "tern_handshake_failures_total{worker=\"0\",reason=\"tls\"}",
        0.0,
    );
    let out = with(&[]);
    assert!(
        !out.status.success(),
        "no client certificate: refused: {out:?}"
    );
    let out = with(&["--cert", &mallory.0, "--key", &mallory.1]);
    assert!(
        !out.status.success(),
        "a certificate from another CA: refused: {out:?}"
    );
    let tls12 = [
        "-tls1_2",
        "-CAfile",
        cafile.as_str(),
        "-cert",
        &alice.0,
        "-key",
        &alice.1,
    ];
    assert!(
        !s_client(&port, &tls12),
        "TLS 1.2 below min_version: refused"
    );
    let tls13 = [
        "-tls1_3",
        "-CAfile",
        cafile.as_str(),
        "-cert",
        &alice.0,
        "-key",
        &alice.1,
    ];
    assert!(s_client(&port, &tls13), "TLS 1.3 with alice's certificate");
    wait_for(
        Duration::from_secs(5),
        "three TLS handshake failures counted",
        || {
            let total: f64 = (0..2)
                .map(|w| {
                    tern.metric(&format!(
                        "tern_handshake_failures_total{{worker=\"{w}\",reason=\"tls\"}}"
                    ))
                })
                .sum();
            (total >= 3.0).then_some(())
        },
    );
}
