//! End-to-end: run `tern-bench` against a Mosquitto started on a free
//! loopback port. Skipped (with a printed reason) when `mosquitto` is not on
//! PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Mosquitto child process, killed and cleaned up on drop.
struct Mosquitto {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_mosquitto(name: &str) -> Option<Mosquitto> {
    match Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("SKIPPED {name}: `mosquitto` is not on PATH");
            return None;
        }
        Err(e) => panic!("cannot run mosquitto: {e}"),
        Ok(_) => {}
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("tern-bench-it-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n\
             max_queued_messages 0\nset_tcp_nodelay true\npersistence false\n"
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Mosquitto { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(broker)
}

/// Parse `key=value key="quoted value" ...`.
fn parse_kv(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = line.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut end = 0;
            let bytes = q.as_bytes();
            while end < bytes.len()
                && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
            {
                end += 1;
            }
            value = q[..end].to_owned();
            rest = q.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = rest[end..].trim_start();
        }
        out.insert(key, value);
    }
    out
}

fn run_bench(broker: &Mosquitto, args: &[&str]) -> HashMap<String, String> {
    let port = broker.port.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tern-bench"))
        .args(args)
        .args(["--port", &port, "--quiet", "--timeout", "60"])
        .args(["--broker-pid", &broker.child.id().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success(),
        "tern-bench {args:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    parse_kv(last)
}

fn assert_lossless(kv: &HashMap<String, String>) {
    let n = |k: &str| -> u64 {
        kv[k]
            .parse()
            .unwrap_or_else(|_| panic!("{k}={} in {kv:?}", kv[k]))
    };
    assert_eq!(kv["status"], "ok", "{kv:?}");
    assert!(n("sent") > 0, "{kv:?}");
    assert!(n("received") > 0, "{kv:?}");
    assert_eq!(n("received"), n("expected"), "{kv:?}");
    assert_eq!(n("lost"), 0, "{kv:?}");
    assert_eq!(n("duplicates"), 0, "{kv:?}");
    assert!(n("lat_samples") > 0, "{kv:?}");
    assert_ne!(kv["broker_cpu_s"], "na", "{kv:?}");
}

#[test]
fn fanin_qos1_two_seconds_is_lossless() {
    let Some(broker) = start_mosquitto("fanin_qos1_two_seconds_is_lossless") else {
        return;
    };
    let kv = run_bench(&broker, &["fanin", "--qos", "1", "--duration", "2"]);
    assert_lossless(&kv);
    assert_eq!(n_of(&kv, "expected"), n_of(&kv, "sent")); // one subscriber
}

#[test]
fn pairs_qos1_two_seconds_is_lossless() {
    let Some(broker) = start_mosquitto("pairs_qos1_two_seconds_is_lossless") else {
        return;
    };
    let kv = run_bench(
        &broker,
        &["pairs", "--qos", "1", "--duration", "2", "--mqtt", "5"],
    );
    assert_lossless(&kv);
    assert_eq!(kv["conns"], "200");
}

fn n_of(kv: &HashMap<String, String>, k: &str) -> u64 {
    kv[k].parse().unwrap()
}

#[test]
fn kv_parser_handles_quotes() {
    let kv = parse_kv(r#"a=1 error="x \"y\" z" b=na"#);
    assert_eq!(kv["a"], "1");
    assert_eq!(kv["error"], r#"x \"y\" z"#);
    assert_eq!(kv["b"], "na");
}
