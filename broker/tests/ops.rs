//! Operating the real `tern` binary started with a config file: the HTTP
//! endpoints (`/healthz`, `/readyz`, `/metrics`, `/admin/reload`), the
//! `$SYS` topics as Mosquitto's `mosquitto_sub` sees them (Debian package
//! `mosquitto-clients`; the test fails naming it when it is missing), and
//! reloading the configuration with SIGHUP while 100 clients stay connected,
//! and the admin endpoint's bearer token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn config(admin: bool, log_level: &str, max_connections: usize) -> String {
    format!(
        "bind = [\"127.0.0.1:0\"]\nworkers = 2\nlog_level = \"{log_level}\"\n\
         metrics_bind = \"127.0.0.1:0\"\nsys_interval = 1\nadmin_endpoint = {admin}\n\
         admin_token = \"{ADMIN_TOKEN}\"\n\
         [limits]\nmax_connections = {max_connections}\n"
    )
}

/// Asserts that the broker closes a new connection without a CONNACK (a
/// connection over `max_connections` is closed right after accept).
fn expect_refused(addr: SocketAddr) {
    let mut c = Client::tcp(addr);
    let _ = c.send_lossy(&Connect::v311(&client_id()).bytes());
    c.closed_silently_within(WAIT)
        .unwrap_or_else(|e| panic!("a connection over the limit was served: {e}"));
}

/// Fails, naming the package, when `tool` is missing.
fn require(tool: &str, package: &str) {
    if let Err(e) = Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("`{tool}` cannot be run ({e}): install the Debian package `{package}`");
    }
}

// /healthz, /readyz and /metrics answer; /admin/reload is 404 when off; the
// $SYS topics reach `mosquitto_sub -t '$SYS/#'` within two sys_intervals
// ([MQTT-4.7.2-1]: `$SYS/#` matches them); a client's PUBLISH to $SYS is
// refused (v5 PUBACK 0x87 [MQTT5-3.4.2-1]) and not retained.
#[test]
fn endpoints_and_sys_topics() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    require("mosquitto_sub", "mosquitto-clients");
    let d = Daemon::start(&config(false, "info", 1000));
    assert_eq!(d.http("GET", "/healthz"), (200, "ok\n".into()));
    d.wait_ready();
    assert_eq!(d.http("GET", "/readyz"), (200, "ready\n".into()));
    let (status, body) = d.http("GET", "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("tern_connections_current"), "{body}");
    assert_eq!(d.http("GET", "/nope").0, 404);
    assert_eq!(d.http("POST", "/healthz").0, 405);
    assert_eq!(
        d.http("POST", "/admin/reload").0,
        404,
        "the admin endpoint is off by default"
    );
    assert!(!d.log_has("reload"), "nothing was reloaded");

    // $SYS through a real client: two sys_intervals at most, plus slack.
    let started = Instant::now();
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &d.mqtt.port().to_string()])
        .args(["-t", "$SYS/#", "-v", "-W", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto_sub");
    let (tx, rx) = mpsc::channel();
    let out = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut version, mut uptimes) = (None, Vec::new());
    while version.is_none() || uptimes.len() < 2 {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(3)) else {
            break;
        };
        if let Some(v) = line.strip_prefix("$SYS/broker/version ") {
            version = Some(v.to_string());
        } else if let Some(u) = line.strip_prefix("$SYS/broker/uptime ") {
            uptimes.push(u.to_string());
        }
    }
    let _ = sub.kill();
    let _ = sub.wait();
    assert_eq!(
        version.as_deref(),
        Some(format!("tern version {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(
        uptimes.len() >= 2 && uptimes.iter().all(|u| u.ends_with(" seconds")),
        "uptime retained, then updated every second: {uptimes:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // A v5 client may not publish to $SYS, retained or not.
    let (mut v5, _) = Client::accepted(d.mqtt, &Connect::v5(&client_id()));
    v5.send(
        &Message::new("$SYS/broker/uptime", b"hijacked")
            .qos(1, 7)
            .retain(true)
            .encode(V5),
    );
    let puback = v5.read_until("PUBACK", |p| p.kind() == PUBACK);
    assert_eq!(puback.body[..3], [0, 7, 0x87], "PUBACK 0x87 Not authorized");
    let mut reader = Client::v311(d.mqtt);
    reader.sub("$SYS/broker/uptime", 0);
    let retained = reader.recv();
    assert!(
        retained.payload.ends_with(b" seconds"),
        "the broker's value stays: {retained:?}"
    );
}

// SIGHUP re-reads the file: a lower max_connections and the log level apply
// while 100 clients stay connected; an invalid file changes nothing; the
// admin endpoint answers 200 once it is turned on.
#[test]
fn sighup_reload_keeps_clients_and_applies_limits() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    let d = Daemon::start(&config(false, "info", 1000));
    d.wait_ready();
    let mut clients: Vec<Client> = (0..100).map(|_| Client::v311(d.mqtt)).collect();
    let sys_refusal = "PUBLISH to $SYS from a client";
    clients[0].publish0("$SYS/x", b"at info");
    clients[0].ping();

    d.reload_with(&config(false, "debug", 101));
    d.wait_log("reload (SIGHUP) done");
    assert!(d.log_has("key=limits.max_connections old=1000 new=101"));
    assert!(d.log_has("key=log_level old=info new=debug"));
    assert!(!d.log_has(sys_refusal), "a debug line, not shown at info");
    clients[0].publish0("$SYS/x", b"at debug");
    clients[0].ping();
    d.wait_log(sys_refusal);

    let extra = Client::v311(d.mqtt);
    expect_refused(d.mqtt);
    for c in &mut clients {
        c.ping();
    }

    // Invalid: a higher limit, but an unknown key: rejected whole.
    let invalid = format!("{}bogus = 1\n", config(true, "info", 1000));
    d.reload_with(&invalid);
    d.wait_log("reload (SIGHUP) rejected");
    assert!(d.log_has("unknown field `bogus`"));
    expect_refused(d.mqtt);
    assert_eq!(d.http("POST", "/admin/reload").0, 404, "still off");
    clients[0].publish0("$SYS/x", b"still debug");
    clients[0].ping();
    wait_for(WAIT, "still at debug", || {
        (d.log_count(sys_refusal) == 2).then_some(())
    });
    wait_for(WAIT, "the reload counters", || {
        let ok = d.metric("tern_config_reloads_total{result=\"ok\"}")?;
        let rejected = d.metric("tern_config_reloads_total{result=\"rejected\"}")?;
        (ok == 1.0 && rejected == 1.0).then_some(())
    });

    // The admin endpoint, turned on by a reload, reloads too.
    d.reload_with(&config(true, "debug", 101));
    wait_for(WAIT, "the second SIGHUP reload", || {
        (d.log_count("reload (SIGHUP) done") == 2).then_some(())
    });
    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!((status, body.as_str()), (200, "no change\n"));
    assert_eq!(d.http("GET", "/admin/reload").0, 405);
    std::fs::write(&d.file, config(true, "info", 102)).unwrap();
    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "applied log_level: debug -> info\napplied limits.max_connections: 101 -> 102\n"
    );
    let _one_more = Client::v311(d.mqtt);
    expect_refused(d.mqtt);
    std::fs::write(&d.file, "workers = \"many\"\n").unwrap();
    let (status, body) = d.http("POST", "/admin/reload");
    assert_eq!(status, 500);
    assert!(body.starts_with("configuration rejected: "), "{body}");

    for c in &mut clients {
        c.ping();
    }
    drop(extra);
}

// POST /admin/reload needs the bearer token: 401 with `WWW-Authenticate:
// Bearer` without it or with another one, 200 with it. The token comes from
// admin_token_file, read again at a reload: a rotated token replaces the old
// one. Without any token the configuration is refused.
#[test]
fn admin_endpoint_requires_the_bearer_token() {
    let token_file = std::env::temp_dir().join(format!("tern-ops-token-{}", client_id()));
    std::fs::write(&token_file, "first-token\n").unwrap();
    let text = format!(
        "bind = [\"127.0.0.1:0\"]\nworkers = 1\nmetrics_bind = \"127.0.0.1:0\"\n\
         admin_endpoint = true\nadmin_token_file = {:?}\n",
        token_file.display().to_string()
    );
    let d = Daemon::start(&text);
    let reload = |headers: &str| d.http_with("POST", "/admin/reload", headers);
    let (status, head, _) = reload("");
    assert_eq!(status, 401, "no token");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"tern\""),
        "{head}"
    );
    let (status, head, _) = reload("Authorization: Bearer wrong-token\r\n");
    assert_eq!(status, 401, "wrong token");
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    let (status, _, _) = reload("Authorization: Basic Zmlyc3QtdG9rZW4=\r\n");
    assert_eq!(status, 401, "not a bearer token");
    let (status, _, body) = reload("Authorization: Bearer first-token\r\n");
    assert_eq!((status, body.as_str()), (200, "no change\n"));
    // The other endpoints need no token.
    assert_eq!(d.http_with("GET", "/healthz", "").0, 200);
    wait_for(WAIT, "three refusals counted", || {
        (d.metric("tern_admin_unauthorized_total") == Some(3.0)).then_some(())
    });

    // Rotate: write the file, reload with the old token.
    std::fs::write(&token_file, "second-token\n").unwrap();
    let (status, _, _) = reload("Authorization: Bearer first-token\r\n");
    assert_eq!(status, 200);
    assert_eq!(reload("Authorization: Bearer first-token\r\n").0, 401);
    assert_eq!(reload("Authorization: Bearer second-token\r\n").0, 200);

    // A token file that cannot be read rejects the reload; the token in
    // force stays.
    std::fs::remove_file(&token_file).unwrap();
    let (status, _, body) = reload("Authorization: Bearer second-token\r\n");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("cannot read admin_token_file"), "{body}");
    assert_eq!(reload("Authorization: Bearer second-token\r\n").0, 500);
    drop(d);

    // admin_endpoint without a token does not start.
    let file = std::env::temp_dir().join(format!("tern-ops-notoken-{}.toml", client_id()));
    std::fs::write(&file, "admin_endpoint = true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs admin_token or admin_token_file"),
        "{err}"
    );
}

// The broker's own `$SYS` retained topics do not count against
// `max_retained_messages`: with the cap at N and `$SYS` retained, all N
// client messages are stored (a `mosquitto_sub` gets every one back), the
// next new topic is refused, and `tern_retained_messages` reads exactly the
// clients' count right after each PUBACK, not a second later.
#[test]
fn sys_topics_leave_the_retained_cap_to_clients() {
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern");
        return;
    }
    require("mosquitto_sub", "mosquitto-clients");
    const N: usize = 300;
    let d = Daemon::start(&format!(
        "{}max_retained_messages = {N}\n",
        config(false, "info", 1000)
    ));
    d.wait_ready();
    // The `$SYS` topics are retained by now: a new subscriber gets one.
    let mut reader = Client::v311(d.mqtt);
    reader.sub("$SYS/broker/uptime", 0);
    assert!(reader.recv().payload.ends_with(b" seconds"));
    assert_eq!(
        d.metric("tern_retained_messages "),
        Some(0.0),
        "$SYS not counted"
    );

    let mut publisher = Client::v311(d.mqtt);
    for i in 0..N {
        let pid = publisher.next_pid();
        publisher.publish(
            &Message::new(&format!("cap/{i}"), b"kept")
                .qos(1, pid)
                .retain(true),
        );
        if i % 50 == 0 {
            // Exact at any moment: the PUBACK follows the store.
            assert_eq!(d.metric("tern_retained_messages "), Some((i + 1) as f64));
        }
    }
    assert_eq!(d.metric("tern_retained_messages "), Some(N as f64));
    assert_eq!(
        d.metric("tern_retained_bytes "),
        Some((N * 4 + (0..N).map(|i| format!("cap/{i}").len()).sum::<usize>()) as f64)
    );
    let rejected = |d: &Daemon| {
        let (_, body) = d.http("GET", "/metrics");
        body.lines()
            .filter(|l| l.starts_with("tern_retained_rejected_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // The counters reach /metrics within about a second; give them two.
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(rejected(&d), 0.0, "no client message refused");

    // The store is full for clients: one more new topic is refused, and
    // counted; the `$SYS` updates go on being stored.
    let pid = publisher.next_pid();
    publisher.publish(
        &Message::new("cap/over", b"refused")
            .qos(1, pid)
            .retain(true),
    );
    wait_for(WAIT, "the refusal to be counted", || {
        (rejected(&d) == 1.0).then_some(())
    });
    assert_eq!(d.metric("tern_retained_messages "), Some(N as f64));
    let mut late = Client::v311(d.mqtt);
    late.sub("$SYS/broker/uptime", 0);
    assert!(late.recv().payload.ends_with(b" seconds"));

    // A real client gets every stored one back, and not the refused one.
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &d.mqtt.port().to_string()])
        .args(["-t", "cap/#", "-v", "-W", "3"])
        .stderr(Stdio::null())
        .output()
        .expect("run mosquitto_sub");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut topics: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    topics.sort_unstable();
    topics.dedup();
    assert_eq!(topics.len(), N, "every stored message sent: {text}");
    assert!(!topics.contains(&"cap/over"));
}
