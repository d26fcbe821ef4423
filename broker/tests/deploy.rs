//! The deployment artifacts in `deploy/` stay usable: every JSON and YAML
//! file parses, the Kubernetes ConfigMap carries `deploy/tern.toml`
//! verbatim, the manifests agree on port names, every metric the Grafana
//! dashboard queries is exported by the real `tern` binary, and the systemd
//! unit passes `systemd-analyze verify` (when systemd-analyze is installed).
//!
//! JSON is parsed with python3's `json` module (serde_json is not a
//! dev-dependency of tern-broker). YAML always gets a line-based sanity check
//! here, and a full parse with PyYAML when `python3 -c 'import yaml'` works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_debug_implementations
)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Files under `deploy/` whose name ends with one of `exts`, sorted.
fn files_with(exts: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read deploy dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, exts, out);
            } else if exts
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&deploy_dir(), exts, &mut out);
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs `python3 -c script args…`; panics with its stderr unless it exits 0.
fn python(script: &str, args: &[&Path]) -> String {
    let out: Output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("python3 is needed by the test suite (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "python3 check failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn has_pyyaml() -> bool {
    Command::new("python3")
        .args(["-c", "import yaml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---- JSON -------------------------------------------------------------------

/// Parses every JSON file; for Grafana dashboards also checks the schema
/// version and the datasource variable, and prints each PromQL expression as
/// `expr<TAB>…` and each `label_values(METRIC, …)` variable as `metric<TAB>…`.
const JSON_CHECK: &str = r#"
import json, re, sys
for path in sys.argv[1:]:
    with open(path) as f:
        doc = json.load(f)
    if "panels" not in doc:
        continue
    assert doc.get("schemaVersion", 0) >= 36, path + ": schemaVersion < 36"
    variables = doc["templating"]["list"]
    ds = [v["name"] for v in variables if v["type"] == "datasource" and v["query"] == "prometheus"]
    assert ds, path + ": no prometheus datasource variable"
    want = "${" + ds[0] + "}"
    def walk(node, where):
        if isinstance(node, dict):
            d = node.get("datasource")
            if isinstance(d, dict):
                assert d.get("uid") == want, where + ": datasource is not " + want
            if isinstance(node.get("expr"), str):
                print("expr\t" + node["expr"].replace("\n", " "))
            for k, v in node.items():
                walk(v, where + "." + k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, where + "[" + str(i) + "]")
    walk(doc["panels"], path + ":panels")
    for v in variables:
        if v["type"] != "query":
            continue
        walk(v, path + ":templating." + v["name"])
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)\s*", q)
        assert m, path + ": unsupported variable query " + q
        print("metric\t" + m.group(1))
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), path + ": duplicate panel ids"
"#;

/// The PromQL expressions and template-variable metrics of the dashboards.
fn dashboard_queries() -> (Vec<String>, BTreeSet<String>) {
    let files = files_with(&["json"]);
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("grafana/tern-dashboard.json")),
        "deploy/grafana/tern-dashboard.json is missing: {files:?}"
    );
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = python(JSON_CHECK, &refs);
    let mut exprs = Vec::new();
    let mut metrics = BTreeSet::new();
    for line in out.lines() {
        match line.split_once('\t') {
            Some(("expr", e)) => exprs.push(e.to_string()),
            Some(("metric", m)) => {
                metrics.insert(m.to_string());
            }
            _ => panic!("unexpected line from the JSON check: {line:?}"),
        }
    }
    (exprs, metrics)
}

// ---- PromQL -----------------------------------------------------------------

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &["bool", "offset", "and", "or", "unless", "atan2"];

/// Skips from the opening `open` at `i` to just past its matching `close`,
/// stepping over quoted strings.
fn skip_group(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => i = skip_string(b, i, q) - 1,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unbalanced {:?} in {:?}",
        open as char,
        String::from_utf8_lossy(b)
    );
}

fn skip_string(b: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// Metric names referenced by a PromQL expression: identifiers that are not
/// functions, aggregations, keywords, label matchers, durations, strings or
/// Grafana `$variables`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => i = skip_group(b, i, b'{', b'}'),
            b'[' => i = skip_group(b, i, b'[', b']'),
            q @ (b'"' | b'\'' | b'`') => i = skip_string(b, i, q),
            b'$' => {
                i += 1;
                if b.get(i) == Some(&b'{') {
                    i = skip_group(b, i, b'{', b'}');
                }
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                if GROUPING.contains(&word) {
                    if b.get(next) == Some(&b'(') {
                        i = skip_group(b, next, b'(', b')');
                    }
                } else if b.get(next) == Some(&b'(')
                    || AGGREGATIONS.contains(&word)
                    || KEYWORDS.contains(&word)
                {
                    // a function call, an aggregation or an operator
                } else {
                    names.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_metric_names_are_extracted() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"sum by (qos) (rate(tern_messages_received_total{instance=~"$instance"}[$__rate_interval]))"#,
            &["tern_messages_received_total"],
        ),
        (
            r#"sum(rate(a_total{reason!="x}y"}[5m])) / on (worker) group_left b_total * 2.5e3"#,
            &["a_total", "b_total"],
        ),
        (
            "max without (worker) (tern_sessions offset 5m) > bool 0 or up",
            &["tern_sessions", "up"],
        ),
        ("histogram_quantile(0.9, ${x}) + 1", &[]),
    ];
    for (expr, want) in cases {
        let got: Vec<String> = metric_names(expr).into_iter().collect();
        assert_eq!(got, *want, "metric names of {expr}");
    }
}

// ---- YAML -------------------------------------------------------------------

/// Line-based sanity check of a YAML file that needs no YAML library: no
/// tabs, even indentation outside block scalars, no trailing spaces, and
/// for Kubernetes manifests `apiVersion`, `kind` and `metadata.name` in every
/// document.
fn yaml_sanity(path: &Path, text: &str) {
    let name = path.display();
    let mut in_block: Option<usize> = None;
    let mut docs = vec![Vec::new()];
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        assert!(!line.contains('\t'), "{name}:{n}: tab character");
        assert!(!line.ends_with(' '), "{name}:{n}: trailing space");
        let indent = line.len() - line.trim_start().len();
        if let Some(block) = in_block {
            if line.trim().is_empty() || indent > block {
                continue;
            }
            in_block = None;
        }
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line == "---" {
            docs.push(Vec::new());
            continue;
        }
        assert_eq!(indent % 2, 0, "{name}:{n}: odd indentation");
        let body = line.trim_start().trim_start_matches("- ");
        assert!(
            body.contains(": ") || body.ends_with(':') || line.trim_start().starts_with("- "),
            "{name}:{n}: neither `key: value`, `key:` nor a list item: {line:?}"
        );
        if body.ends_with(": |") || body.ends_with(": >") || body.ends_with(": |-") {
            in_block = Some(indent);
        }
        if let Some(doc) = docs.last_mut() {
            doc.push(line);
        }
    }
    if path.components().any(|c| c.as_os_str() == "kubernetes") {
        for doc in docs.iter().filter(|d| !d.is_empty()) {
            for key in ["apiVersion: ", "kind: "] {
                assert!(
                    doc.iter().any(|l| l.starts_with(key)),
                    "{name}: a document without `{key}`"
                );
            }
            let is_kustomization = doc.contains(&"kind: Kustomization");
            let named = doc
                .windows(2)
                .any(|w| w[0] == "metadata:" && w[1].starts_with("  name: "));
            assert!(
                is_kustomization || named,
                "{name}: a document without metadata.name"
            );
        }
    }
}

/// The `key: |` block scalar of `text`, its indentation removed (line-based).
fn block_scalar(text: &str, key: &str) -> String {
    let mut lines = text.lines();
    let header = format!("{key}: |");
    let start = lines
        .by_ref()
        .find(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no `{header}` block"));
    let outer = start.len() - start.trim_start().len();
    let mut out = String::new();
    let mut indent = None;
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let this = line.len() - line.trim_start().len();
        if this <= outer {
            break;
        }
        let strip = *indent.get_or_insert(this);
        out.push_str(&line[strip.min(this)..]);
        out.push('\n');
    }
    format!("{}\n", out.trim_end_matches('\n'))
}

/// Parses every YAML file with PyYAML and prints, per Kubernetes document,
/// `kind<TAB>name<TAB>json`, so the Rust side can cross-check the manifests.
const YAML_CHECK: &str = r#"
import json, sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, path + ": empty"
    for d in docs:
        assert isinstance(d, dict), path + ": a document is not a mapping"
        if "/kubernetes/" in path:
            print(d["kind"] + "\t" + d.get("metadata", {}).get("name", "") + "\t" + json.dumps(d))
        elif path.endswith("prometheus.yml"):
            for job in d["scrape_configs"]:
                print("ScrapeJob\t" + job["job_name"] + "\t" + json.dumps(job))
"#;

#[test]
fn yaml_manifests_parse_and_agree() {
    let files = files_with(&["yaml", "yml"]);
    for want in [
        "prometheus.yml",
        "kubernetes/configmap.yaml",
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/servicemonitor.yaml",
        "kubernetes/kustomization.yaml",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(want)),
            "deploy/{want} is missing"
        );
    }
    for f in &files {
        yaml_sanity(f, &read(f));
    }
    println!("YAML: line-based sanity check of {} files", files.len());

    let toml = read(&deploy_dir().join("tern.toml"));
    let configmap = read(&deploy_dir().join("kubernetes/configmap.yaml"));
    assert_eq!(
        block_scalar(&configmap, "tern.toml"),
        format!("{}\n", toml.trim_end_matches('\n')),
        "kubernetes/configmap.yaml must carry deploy/tern.toml verbatim (scripts/sync-configmap.py copies it)"
    );

    if !has_pyyaml() {
        println!("YAML: PyYAML not installed (python3 -c 'import yaml'), full parse skipped");
        return;
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = python(YAML_CHECK, &refs);
    println!("YAML: parsed {} files with PyYAML", files.len());
    let doc = |kind: &str| -> String {
        out.lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, '\t');
                (parts.next() == Some(kind)).then(|| parts.nth(1).unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("no {kind} document"))
    };
    let deployment = doc("Deployment");
    for needle in [
        r#""replicas": 1"#,
        r#""type": "Recreate""#,
        r#""runAsNonRoot": true"#,
        r#""readOnlyRootFilesystem": true"#,
        r#""drop": ["ALL"]"#,
        r#""readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}"#,
        r#""livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}"#,
        r#""name": "mqtt", "containerPort": 1883"#,
        r#""name": "metrics", "containerPort": 9090"#,
        r#""mountPath": "/etc/tern""#,
        r#""name": "tern-config""#,
    ] {
        assert!(deployment.contains(needle), "Deployment lacks {needle}");
    }
    let service = doc("Service");
    for needle in [
        r#""name": "mqtt", "port": 1883, "targetPort": "mqtt""#,
        r#""name": "metrics", "port": 9090, "targetPort": "metrics""#,
    ] {
        assert!(service.contains(needle), "Service lacks {needle}");
    }
    let monitor = doc("ServiceMonitor");
    assert!(
        monitor.contains(r#""port": "metrics", "path": "/metrics""#),
        "ServiceMonitor does not scrape /metrics on the `metrics` port"
    );
    // PyYAML's reading of the block scalar, not only the line-based one.
    let configmap = doc("ConfigMap");
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json,sys; sys.stdout.write(json.load(sys.stdin)['data']['tern.toml'])",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(configmap.as_bytes())
        .expect("write the ConfigMap to python3");
    let parsed = child.wait_with_output().expect("python3 output");
    assert!(
        parsed.status.success(),
        "python3 could not read the ConfigMap"
    );
    assert_eq!(String::from_utf8_lossy(&parsed.stdout), toml);
    let job = doc("ScrapeJob");
    assert!(job.contains(r#""metrics_path": "/metrics""#), "scrape path");
    assert!(
        job.contains(":9090\""),
        "the tern scrape job targets port 9090"
    );
}

// ---- the dashboard against the real binary ------------------------------------

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn scrape(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// Names of the samples in a Prometheus text exposition.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.starts_with("HTTP/"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| n.starts_with("tern_"))
        .map(str::to_string)
        .collect()
}

/// The broker process of one test; SIGTERM then SIGKILL on drop.
struct Tern(std::process::Child);

impl Drop for Tern {
    fn drop(&mut self) {
        signal(self.0.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_dashboard_metric_is_exported() {
    let (exprs, mut wanted) = dashboard_queries();
    assert!(
        exprs.len() >= 10,
        "only {} expressions found in the dashboard",
        exprs.len()
    );
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric in dashboard expression {e}");
        wanted.extend(names);
    }
    if Broker::is_external() {
        println!("SKIPPED: spawns its own tern (TERN_TEST_BROKER is set)");
        return;
    }
    let metrics_port = free_port();
    // The store is on: its panels' series exist only then.
    let data_dir = std::env::temp_dir().join(format!("tern-deploy-store-{}", client_id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--bind", "127.0.0.1:0", "--workers", "2"])
        .args(["--log-level", "warn"])
        .args(["--persistence", "on", "--data-dir"])
        .arg(&data_dir)
        // No $SYS topics: the retained count below is the test's message alone.
        .args(["--sys-interval", "0"])
        .args(["--metrics-bind", &format!("127.0.0.1:{metrics_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tern");
    let addr = listening_addr(&mut child);
    let tern = Tern(child);

    // A little of everything the dashboard shows: connections, a
    // subscription, QoS 0 and 1 traffic, a retained message, a drop (no
    // subscribers).
    let topic = topic("deploy");
    let mut sub = Client::v311(addr);
    sub.sub(&topic, 1);
    let mut publisher = Client::v311(addr);
    publisher.publish(&Message::new(&topic, b"q1").qos(1, 1));
    sub.recv_acked();
    publisher.publish0(&topic, b"q0");
    sub.recv();
    publisher.publish(&Message::new(&format!("{topic}/r"), b"kept").retain(true));
    publisher.publish0(&format!("{topic}/nobody"), b"lost");
    publisher.ping();

    let scrape = wait_for(
        Duration::from_secs(10),
        "metrics to show the traffic",
        || {
            let s = scrape(metrics_port);
            let received = s
                .lines()
                .filter(|l| l.starts_with("tern_messages_received_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            (received >= 4.0 && s.contains("tern_retained_messages 1")).then_some(s)
        },
    );
    let exported = exported_names(&scrape);
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics tern does not export: {missing:?}\nexported: {exported:?}"
    );
    println!(
        "{} dashboard expressions use {} metrics, all exported",
        exprs.len(),
        wanted.len()
    );
    drop(tern);
    let _ = std::fs::remove_dir_all(&data_dir);
}

// ---- systemd and the container --------------------------------------------------

#[test]
fn systemd_unit_verifies() {
    let unit = read(&deploy_dir().join("tern.service"));
    for want in [
        "\nType=simple\n",
        "\nExecStart=/usr/local/bin/tern --config /etc/tern/tern.toml\n",
        "\nExecReload=/bin/kill -HUP $MAINPID\n",
        "\nRestart=on-failure\n",
        "\nLimitNOFILE=1048576\n",
        "\nTimeoutStopSec=20\n",
        "\nCapabilityBoundingSet=\n",
        "\nNoNewPrivileges=yes\n",
        "\nProtectSystem=strict\n",
        "\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
        "\nSystemCallFilter=@system-service\n",
        "\nMemoryDenyWriteExecute=yes\n",
    ] {
        assert!(unit.contains(want), "tern.service lacks {:?}", want.trim());
    }
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
        return;
    };
    println!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );
    // The unit names /usr/local/bin/tern, which a test machine lacks: verify a
    // copy that runs the binary under test instead.
    let dir = std::env::temp_dir().join(format!("tern-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("tern.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tern", env!("CARGO_BIN_EXE_tern")),
    )
    .expect("write the unit copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("SYSTEMD_LOG_COLOR", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown or misspelt directives are only warnings (status 0), so look
    // at what it says about the unit as well as at the status.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tern.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify tern.service ({}):\n{stderr}",
        out.status
    );
}

#[test]
fn containerfile_copies_what_exists() {
    let root = deploy_dir().join("..");
    let file = read(&deploy_dir().join("Containerfile"));
    let instructions: Vec<&str> = file
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let stages = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "a multi-stage build");
    assert!(file.contains("cargo build --release --locked -p tern-broker"));
    assert!(instructions.contains(&"EXPOSE 1883 9090"));
    assert!(instructions
        .iter()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(instructions
        .contains(&r#"ENTRYPOINT ["/usr/local/bin/tern", "--config", "/etc/tern/tern.toml"]"#));
    // Every COPY from the build context names a file of the repository.
    for l in instructions.iter().filter(|l| l.starts_with("COPY ")) {
        if l.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root.join(src).exists(), "{l}: {src} does not exist");
        }
    }
    assert!(
        instructions.contains(&"COPY deploy/tern.toml /etc/tern/tern.toml"),
        "the image carries the example configuration"
    );
}

// The TLS overlay (deploy/kubernetes/tls): its tern.toml passes `tern
// check-config`, names the certificate files where the overlay mounts its
// Secret, and the overlay serves the listener's port.
#[test]
fn kubernetes_tls_overlay_agrees_with_its_config() {
    let dir = deploy_dir().join("kubernetes/tls");
    let toml = dir.join("tern.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("check-config")
        .arg(&toml)
        .output()
        .expect("run tern check-config");
    assert!(out.status.success(), "{out:?}");
    let config = read(&toml);
    let kustomization = read(&dir.join("kustomization.yaml"));
    for file in ["server.pem", "server.key"] {
        assert!(
            config.contains(&format!("\"/etc/tern-certs/{file}\"")),
            "{file}"
        );
        assert!(kustomization.contains(&format!("- {file}")), "{file}");
    }
    for needle in [
        "mountPath: /etc/tern-certs",
        "secretName: tern-tls",
        "containerPort: 8883",
        "disableNameSuffixHash: true",
    ] {
        assert!(kustomization.contains(needle), "{needle}");
    }
    assert!(config.contains("bind = \"0.0.0.0:8883\""));
}
