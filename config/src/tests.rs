//! Loading tests: precedence, strictness, subcommands, the example file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A temporary config file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tern-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let argv = std::iter::once("tern").chain(args.iter().copied());
    match load_from(argv, &env_of(vars))? {
        Command::Run(config) => Ok(*config),
        other => panic!("expected Run, got {other:?}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn no_input_gives_defaults() {
    assert_eq!(run(&[], &[]).unwrap(), Config::default());
    let c = Config::default();
    assert_eq!(c.listeners, vec![addr("0.0.0.0:1883")]);
    assert_eq!(c.metrics_bind, Some(addr("0.0.0.0:9090")));
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_format, LogFormat::Text);
    assert!((1..=MAX_WORKERS).contains(&c.workers));
    assert_eq!(c.limits.max_packet_size, 1_048_576);
    assert_eq!(c.limits.max_inflight, 32);
    assert_eq!(c.limits.max_queued_bytes, 16 << 20);
    assert_eq!(c.limits.max_retained_bytes, 256 << 20);
    assert!(!c.limits.queue_qos0_offline);
    c.validate().unwrap();
}

#[test]
fn precedence_flag_env_file_default() {
    let file = TempFile::new(
        "workers = 3\nlog_level = \"warn\"\nlog_format = \"json\"\n\
         [limits]\nmax_inflight = 10\nmax_keep_alive = 600\nmax_topic_levels = 9\n",
    );
    let vars = [
        ("TERN_CONFIG", file.arg()),
        ("TERN_WORKERS", "5".into()),
        ("TERN_LOG_LEVEL", "debug".into()),
        ("TERN_MAX_INFLIGHT", "20".into()),
        ("TERN_MAX_KEEP_ALIVE", "300".into()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = run(&["--workers", "7", "--max-inflight", "30"], &vars).unwrap();
    assert_eq!(c.workers, 7, "flag beats env and file");
    assert_eq!(c.limits.max_inflight, 30, "flag beats env and file");
    assert_eq!(c.log_level, "debug", "env beats file");
    assert_eq!(c.limits.max_keep_alive, 300, "env beats file");
    assert_eq!(c.log_format, LogFormat::Json, "file beats default");
    assert_eq!(c.limits.max_topic_levels, 9, "file beats default");
    assert_eq!(c.limits.max_packet_size, 1_048_576, "default");

    // --config beats TERN_CONFIG.
    let other = TempFile::new("workers = 2\n");
    let c = run(&["--config", &other.arg()], &[("TERN_CONFIG", &file.arg())]).unwrap();
    assert_eq!(c.workers, 2);
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn every_limit_has_a_working_env_var() {
    for key in limits::LimitsLayer::KEYS {
        let var = env::var_name(key);
        let value = if *key == "queue_qos0_offline" {
            "true"
        } else {
            "77"
        };
        let c = run(&[], &[(&var, value)]).unwrap();
        let entries = c.limits.entries();
        let (_, got) = entries.iter().find(|(k, _)| k == key).unwrap();
        assert_eq!(got, value, "{var}");
    }
}

#[test]
fn repeated_bind_and_env_list() {
    let c = run(&["--bind", "127.0.0.1:1883", "-b", "[::1]:1884"], &[]).unwrap();
    assert_eq!(
        c.listeners,
        vec![addr("127.0.0.1:1883"), addr("[::1]:1884")]
    );

    let c = run(&[], &[("TERN_BIND", "127.0.0.1:1, 127.0.0.1:2")]).unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:1"), addr("127.0.0.1:2")]);

    // The flag list replaces the env list; it is not appended to it.
    let c = run(&["--bind", "127.0.0.1:3"], &[("TERN_BIND", "127.0.0.1:1")]).unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:3")]);

    let err = run(&["--bind", "127.0.0.1:3", "--bind", "127.0.0.1:3"], &[]).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    // Port 0 may repeat: each bind picks its own port.
    run(&["--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0"], &[]).unwrap();

    let err = run(&[], &[("TERN_BIND", "127.0.0.1")]).unwrap_err();
    assert!(err.to_string().contains("TERN_BIND"), "{err}");

    let file = TempFile::new("bind = []\n");
    let err = run(&["-c", &file.arg()], &[]).unwrap_err();
    assert!(err.to_string().contains("at least one listener"), "{err}");
}

#[test]
fn metrics_can_be_disabled_everywhere() {
    assert_eq!(run(&["--no-metrics"], &[]).unwrap().metrics_bind, None);
    assert_eq!(
        run(&[], &[("TERN_METRICS_BIND", "")]).unwrap().metrics_bind,
        None
    );
    assert_eq!(
        run(&[], &[("TERN_METRICS_BIND", "off")])
            .unwrap()
            .metrics_bind,
        None
    );
    let file = TempFile::new("metrics_bind = \"\"\n");
    assert_eq!(run(&["-c", &file.arg()], &[]).unwrap().metrics_bind, None);

    // A flag address beats a disabling env var, and --no-metrics beats an env address.
    let c = run(
        &["--metrics-bind", "127.0.0.1:9100"],
        &[("TERN_METRICS_BIND", "")],
    )
    .unwrap();
    assert_eq!(c.metrics_bind, Some(addr("127.0.0.1:9100")));
    let c = run(&["--no-metrics"], &[("TERN_METRICS_BIND", "127.0.0.1:9")]).unwrap();
    assert_eq!(c.metrics_bind, None);

    let err = run(&["--no-metrics", "--metrics-bind", "127.0.0.1:1"], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Cli(_)), "{err:?}");

    let err = run(
        &[
            "--bind",
            "127.0.0.1:9100",
            "--metrics-bind",
            "127.0.0.1:9100",
        ],
        &[],
    );
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("also an MQTT listener"));
}

#[test]
fn check_config_subcommand() {
    let cmd = load_from(["tern", "check-config", "/etc/tern.toml"], &env_of(&[])).unwrap();
    assert_eq!(
        cmd,
        Command::CheckConfig {
            path: PathBuf::from("/etc/tern.toml")
        }
    );
    // The environment plays no part in check-config.
    let cmd = load_from(
        ["tern", "check-config", "x.toml"],
        &env_of(&[("TERN_WORKERS", "999")]),
    );
    assert!(matches!(cmd, Ok(Command::CheckConfig { .. })));

    let err = load_from(["tern", "check-config"], &env_of(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Cli(_)));

    let good = TempFile::new("workers = 4\n[limits]\nmax_inflight = 8\n");
    let c = parse_file(&good.0).unwrap();
    assert_eq!((c.workers, c.limits.max_inflight), (4, 8));

    let bad = TempFile::new("[limits]\nmax_inflight = 0\n");
    let err = parse_file(&bad.0).unwrap_err();
    assert!(err.to_string().contains("limits.max_inflight"), "{err}");

    let err = parse_file(Path::new("/nonexistent/tern.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn unknown_key_is_rejected_with_its_name() {
    let file = TempFile::new("workers = 2\n[limits]\nmax_packet_sise = 10\n");
    let err = run(&["--config", &file.arg()], &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
    assert!(msg.contains("unknown field `max_packet_sise`"), "{msg}");
    assert!(msg.contains(&file.arg()), "names the file: {msg}");
    assert!(msg.contains("line 3"), "{msg}");

    let err = parse_str("threads = 4\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `threads`"), "{err}");
}

#[test]
fn bad_values_are_rejected() {
    let err = run(&["--max-inflight", "0"], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `limits.max_inflight` (--max-inflight, TERN_MAX_INFLIGHT): must be at least 1, got 0"
    );
    let err = run(&["--max-packet-size", "268435456"], &[]).unwrap_err();
    assert!(err.to_string().contains("at most 268435455"), "{err}");
    let err = run(&["--max-packet-size", "8"], &[]).unwrap_err();
    assert!(err.to_string().contains("at least 16"), "{err}");
    let err = run(&["--workers", "65"], &[]).unwrap_err();
    assert!(err.to_string().contains("`workers`"), "{err}");
    let err = run(&[], &[("TERN_WORKERS", "many")]).unwrap_err();
    assert!(err.to_string().contains("TERN_WORKERS=\"many\""), "{err}");
    let err = run(&["--max-inflight", "70000"], &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Cli(_)),
        "clap range check: {err:?}"
    );
    let err = run(&["--log-format", "xml"], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Cli(_)));
    let err = run(&[], &[("TERN_LOG_FORMAT", "xml")]).unwrap_err();
    assert!(err.to_string().contains("expected text or json"), "{err}");
    let err = parse_str("[limits]\nmax_topic_length = 70000\n").unwrap_err();
    assert!(err.to_string().contains("limits.max_topic_length"), "{err}");
    let err = parse_str("workers = -1\n").unwrap_err();
    assert!(err.to_string().contains("workers"), "{err}");
}

#[test]
fn workers_resolve() {
    assert_eq!(
        run(&["--workers", "0"], &[]).unwrap().workers,
        default_workers()
    );
    assert_eq!(run(&["--workers", "64"], &[]).unwrap().workers, 64);
    assert_eq!(run(&["-w", "1"], &[]).unwrap().workers, 1);
}

#[test]
fn log_levels() {
    for ok in [
        "info",
        "TRACE",
        "off",
        "info,tern_session=debug",
        "tern=warn",
    ] {
        run(&["--log-level", ok], &[]).unwrap();
    }
    let err = run(&["--log-level", "inof"], &[]).unwrap_err();
    assert!(err.to_string().contains("unknown level `inof`"), "{err}");
    let err = run(&["--log-level", "tern=loud"], &[]).unwrap_err();
    assert!(err.to_string().contains("`log_level`"), "{err}");
    assert!(
        run(&[], &[("TERN_LOG_LEVEL", "  ")]).is_ok(),
        "blank env is unset"
    );
}

#[test]
fn bool_limit_flag_forms() {
    assert!(
        run(&["--queue-qos0-offline"], &[])
            .unwrap()
            .limits
            .queue_qos0_offline
    );
    let file = TempFile::new("[limits]\nqueue_qos0_offline = true\n");
    let c = run(&["-c", &file.arg(), "--queue-qos0-offline=false"], &[]).unwrap();
    assert!(
        !c.limits.queue_qos0_offline,
        "a flag can turn a file's true off"
    );
}

#[test]
fn help_and_version_are_clap_errors() {
    for flag in ["--help", "-h", "--version"] {
        let err = run(&[flag], &[]).unwrap_err();
        let ConfigError::Cli(e) = err else {
            panic!("{flag}");
        };
        assert_eq!(e.exit_code(), 0, "{flag}");
    }
    let err = run(&["--frobnicate"], &[]).unwrap_err();
    let ConfigError::Cli(e) = err else {
        panic!("unknown flag");
    };
    assert_eq!(e.exit_code(), 2);
}

/// deploy/tern.toml must set every key, each at its default.
#[test]
fn deploy_example_is_every_key_at_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tern.toml");
    assert_eq!(parse_file(&path).unwrap(), Config::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let layer = Layer::from_toml(&text).unwrap();
    assert_eq!(
        layer.missing(),
        Vec::<String>::new(),
        "keys missing from {path:?}"
    );
    // `workers` is written as 0 (per core), not this machine's count.
    assert_eq!(layer.workers, Some(0));
}

#[test]
fn shutdown_grace_from_every_source_and_bounded() {
    assert_eq!(Config::default().shutdown_grace, 5);
    let file = TempFile::new("shutdown_grace = 30\n");
    let config = ["--config", &file.arg()];
    assert_eq!(run(&config, &[]).unwrap().shutdown_grace, 30);
    let env = [("TERN_SHUTDOWN_GRACE", "12")];
    assert_eq!(run(&config, &env).unwrap().shutdown_grace, 12);
    let flag = ["--config", &file.arg(), "--shutdown-grace", "0"];
    assert_eq!(run(&flag, &env).unwrap().shutdown_grace, 0);
    let err = run(&["--shutdown-grace", "3601"], &[]).unwrap_err();
    assert!(err.to_string().contains("shutdown_grace"), "{err}");
    let err = run(&[], &[("TERN_SHUTDOWN_GRACE", "soon")]).unwrap_err();
    assert!(err.to_string().contains("SHUTDOWN_GRACE"), "{err}");
}

#[test]
fn listener_tables_parse_with_defaults() {
    let file = TempFile::new(
        "[[listener]]\nbind = \"127.0.0.1:1884\"\n\
         [[listener]]\nbind = \"[::1]:1885\"\nkind = \"tcp\"\nname = \"internal\"\n",
    );
    // `tern check-config` reads the file with `parse_file`.
    let c = parse_file(&file.0).unwrap();
    assert_eq!(
        c.listeners,
        vec![
            ListenerConfig {
                name: "tcp:127.0.0.1:1884".into(),
                bind: addr("127.0.0.1:1884"),
                kind: ListenerKindConfig::Tcp,
                limits: ListenerLimits::default(),
                access: Default::default(),
                establish: EstablishConfig::default(),
                ws: WsConfig::default(),
            },
            ListenerConfig {
                name: "internal".into(),
                bind: addr("[::1]:1885"),
                kind: ListenerKindConfig::Tcp,
                limits: ListenerLimits::default(),
                access: Default::default(),
                establish: EstablishConfig::default(),
                ws: WsConfig::default(),
            },
        ]
    );
    assert_eq!(run(&["-c", &file.arg()], &[]).unwrap(), c);

    // A WebSocket listener with its settings, and one with the defaults.
    let c = parse_str(
        "[[listener]]\nbind = \"127.0.0.1:8080\"\nkind = \"ws\"\n\
         ws = { path = \"/ws\", max_frame_size = 4096 }\n\
         [[listener]]\nbind = \"127.0.0.1:8081\"\nkind = \"ws\"\n",
    )
    .unwrap();
    assert_eq!(c.listeners[0].kind, ListenerKindConfig::Ws);
    assert_eq!(c.listeners[0].name, "ws:127.0.0.1:8080");
    assert_eq!(
        c.listeners[0].ws,
        WsConfig {
            path: "/ws".into(),
            max_frame_size: 4096
        }
    );
    assert_eq!(c.listeners[1].ws, WsConfig::default());
    assert_eq!(
        c.listeners[0].to_string(),
        "{ name = \"ws:127.0.0.1:8080\", bind = \"127.0.0.1:8080\", kind = \"ws\", ws = { path = \"/ws\", max_frame_size = 4096 } }"
    );
    let err = parse_str(
        "[[listener]]\nbind = \"127.0.0.1:8080\"\nkind = \"ws\"\nws = { paht = \"/\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("paht"), "{err}");

    // The inline-array spelling of the same table array.
    let c = parse_str("listener = [{ bind = \"127.0.0.1:1884\" }]\n").unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:1884")]);
}

#[test]
fn tls_kinds_need_their_tls_table() {
    for kind in ["tls", "wss"] {
        let text = format!("[[listener]]\nbind = \"0.0.0.0:8883\"\nkind = \"{kind}\"\n");
        let err = parse_str(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid `listener.tls`: listener `{kind}:0.0.0.0:8883`: kind \"{kind}\" needs tls.certfile and tls.keyfile"
            )
        );
    }
    let err = parse_str("[[listener]]\nbind = \"0.0.0.0:1\"\nkind = \"quic\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown variant `quic`"), "{msg}");
    assert!(msg.contains("`tcp`, `tls`, `ws`, `wss`"), "{msg}");
    let err = parse_str("[[listener]]\nkind = \"tcp\"\n").unwrap_err();
    assert!(err.to_string().contains("missing field `bind`"), "{err}");
    let err = parse_str("[[listener]]\nbind = \"0.0.0.0:1\"\nport = 2\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `port`"), "{err}");
    let err = parse_str("[[listener]]\nbind = \"0.0.0.0:1\"\nname = \"\"\n").unwrap_err();
    assert!(err.to_string().contains("`listener.name`"), "{err}");
}

#[test]
fn bind_and_listener_tables_are_one_setting() {
    // In one file, `bind` and `[[listener]]` add up: `bind` first.
    let file = TempFile::new(
        "bind = [\"127.0.0.1:1\"]\n\
         [[listener]]\nbind = \"127.0.0.1:2\"\nname = \"two\"\n",
    );
    let c = run(&["-c", &file.arg()], &[]).unwrap();
    let binds: Vec<SocketAddr> = c.listeners.iter().map(|l| l.bind).collect();
    assert_eq!(binds, [addr("127.0.0.1:1"), addr("127.0.0.1:2")]);
    assert_eq!(c.listeners[1].name, "two");

    // --bind and TERN_BIND replace the file's listeners, tables included.
    let c = run(&["-c", &file.arg(), "--bind", "127.0.0.1:3"], &[]).unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:3")]);
    let c = run(&["-c", &file.arg()], &[("TERN_BIND", "127.0.0.1:4")]).unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:4")]);

    // An address is listed once across both forms.
    let err =
        parse_str("bind = [\"127.0.0.1:1\"]\n[[listener]]\nbind = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(
        err.to_string().contains("127.0.0.1:1 is listed twice"),
        "{err}"
    );
    let err = parse_str(
        "[[listener]]\nbind = \"127.0.0.1:1\"\nname = \"a\"\n\
         [[listener]]\nbind = \"127.0.0.1:1\"\nname = \"b\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("127.0.0.1:1 is listed twice (listeners `a` and `b`)"),
        "{err}"
    );
    // Tables alone, with `bind = []`: the tables are the listeners.
    let c = parse_str("bind = []\n[[listener]]\nbind = \"127.0.0.1:5\"\n").unwrap();
    assert_eq!(c.listeners, vec![addr("127.0.0.1:5")]);
    // The metrics address may not be a listener's, whichever form names it.
    let err = parse_str("metrics_bind = \"127.0.0.1:6\"\n[[listener]]\nbind = \"127.0.0.1:6\"\n")
        .unwrap_err();
    assert!(err.to_string().contains("also an MQTT listener"), "{err}");
}

#[test]
fn listeners_in_entries_are_written_as_in_the_file() {
    let c = parse_str(
        "bind = [\"127.0.0.1:1\"]\n[[listener]]\nbind = \"127.0.0.1:2\"\nname = \"two\"\n",
    )
    .unwrap();
    let entries = c.entries();
    let (_, bind) = entries.iter().find(|(k, _)| k == "bind").unwrap();
    assert_eq!(
        bind,
        "127.0.0.1:1,{ name = \"two\", bind = \"127.0.0.1:2\", kind = \"tcp\" }"
    );
    // A changed name is a change of `bind` (which needs a restart).
    let renamed = parse_str(
        "bind = [\"127.0.0.1:1\"]\n[[listener]]\nbind = \"127.0.0.1:2\"\nname = \"deux\"\n",
    )
    .unwrap();
    let keys: Vec<String> = c.changes(&renamed).into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["bind"]);
}

/// The commented `[[listener]]` example of deploy/tern.toml parses.
#[test]
fn deploy_example_listener_table_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tern.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let example: String = text
        .lines()
        .skip_while(|l| *l != "#   [[listener]]")
        .map_while(|l| l.strip_prefix("#   "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.starts_with("[[listener]]\n"), "{example}");
    let c = parse_str(&example).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].name, "internal");
}

#[test]
fn listener_limits_parse_in_both_spellings() {
    let c = parse_str(
        "[[listener]]\nbind = \"127.0.0.1:1884\"\nlimits = { max_connections = 3 }\n\
         [[listener]]\nbind = \"127.0.0.1:1885\"\n[listener.limits]\nconnect_timeout = 2\n\
         [[listener]]\nbind = \"127.0.0.1:1886\"\n",
    )
    .unwrap();
    let limits: Vec<ListenerLimits> = c.listeners.iter().map(|l| l.limits).collect();
    assert_eq!(
        limits,
        [
            ListenerLimits {
                max_connections: 3,
                connect_timeout: None
            },
            ListenerLimits {
                max_connections: 0,
                connect_timeout: Some(2)
            },
            ListenerLimits::default(),
        ]
    );
    assert_ne!(
        c.listeners[0],
        addr("127.0.0.1:1884"),
        "no shorthand with limits"
    );
    assert_eq!(c.listeners[2], addr("127.0.0.1:1886"));
    let err = parse_str(
        "[[listener]]\nbind = \"127.0.0.1:1884\"\nname = \"x\"\nlimits = { connect_timeout = 4000 }\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `listener.limits.connect_timeout`: listener `x`: must be at most 3600, got 4000"
    );
}

#[test]
fn admin_token_sources() {
    let file = TempFile::new("admin_endpoint = true\nadmin_token = \"abc\"\n");
    let c = run(&["-c", &file.arg()], &[]).unwrap();
    assert_eq!(c.admin_token, Some(Secret::new("abc")));
    assert!(!format!("{c:?}").contains("abc"), "Debug hides the token");
    let env = [("TERN_ADMIN_TOKEN", "fromenv")];
    let c = run(&["-c", &file.arg()], &env).unwrap();
    assert_eq!(c.admin_token, Some(Secret::new("fromenv")));
    // "" is none: the endpoint then refuses to start.
    let file =
        TempFile::new("admin_endpoint = true\nadmin_token = \"\"\nadmin_token_file = \"\"\n");
    let err = run(&["-c", &file.arg()], &[]).unwrap_err().to_string();
    assert!(
        err.contains("needs admin_token or admin_token_file"),
        "{err}"
    );
    let c = run(&["-c", &file.arg(), "--admin-token-file", "/run/t"], &[]).unwrap();
    assert_eq!(c.admin_token_file, Some(PathBuf::from("/run/t")));
    assert_eq!(c.admin_token, None);
}

#[test]
fn metrics_tls_files_come_in_pairs() {
    let file = TempFile::new(
        "metrics_tls_certfile = \"/etc/tern/http.pem\"\nmetrics_tls_keyfile = \"/etc/tern/http.key\"\n",
    );
    let c = run(&["-c", &file.arg()], &[]).unwrap();
    assert_eq!(
        c.metrics_tls_certfile,
        Some(PathBuf::from("/etc/tern/http.pem"))
    );
    assert_eq!(
        c.metrics_tls_keyfile,
        Some(PathBuf::from("/etc/tern/http.key"))
    );
    // The environment and the flags override the file, one key each.
    let env = [("TERN_METRICS_TLS_KEYFILE", "/env/k")];
    let c = run(
        &["-c", &file.arg(), "--metrics-tls-certfile", "/flag/c"],
        &env,
    )
    .unwrap();
    assert_eq!(c.metrics_tls_certfile, Some(PathBuf::from("/flag/c")));
    assert_eq!(c.metrics_tls_keyfile, Some(PathBuf::from("/env/k")));
    // One without the other is refused, naming the key given.
    let err = run(&["--metrics-tls-certfile", "/c"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metrics_tls_certfile") && err.contains("needs metrics_tls_keyfile"),
        "{err}"
    );
    let err = run(&[], &[("TERN_METRICS_TLS_KEYFILE", "/k")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs metrics_tls_certfile"), "{err}");
    // "" is none, and none is the default.
    let file = TempFile::new("metrics_tls_certfile = \"\"\nmetrics_tls_keyfile = \"\"\n");
    let c = run(&["-c", &file.arg()], &[]).unwrap();
    assert_eq!(
        (c.metrics_tls_certfile, c.metrics_tls_keyfile),
        (None, None)
    );
    let c = run(&[], &[]).unwrap();
    assert_eq!(
        (c.metrics_tls_certfile, c.metrics_tls_keyfile),
        (None, None)
    );
}

#[test]
fn access_files_global_and_per_listener() {
    let file = TempFile::new(
        "[auth]\npassword_file = \"/etc/tern/passwd\"\nacl_file = \"\"\n\
         [[listener]]\nbind = \"127.0.0.1:1884\"\n\
         [listener.access]\nacl_file = \"/etc/tern/acl\"\nallow_anonymous = false\n",
    );
    let c = run(&["-c", &file.arg()], &[]).unwrap();
    assert_eq!(
        c.auth.password_file.as_deref(),
        Some(Path::new("/etc/tern/passwd"))
    );
    assert_eq!(c.auth.acl_file, None, "\"\" is none");
    let access = &c.listeners[0].access;
    assert_eq!(access.acl_file.as_deref(), Some(Path::new("/etc/tern/acl")));
    assert_eq!(access.password_file, None);
    assert_eq!(access.allow_anonymous, Some(false));
    assert!(c.listeners[0]
        .to_string()
        .contains("allow_anonymous = false"));
    // Flags and variables name the global files.
    let c = run(
        &["-c", &file.arg(), "--acl-file", "/a"],
        &[("TERN_PASSWORD_FILE", "/p")],
    )
    .unwrap();
    assert_eq!(c.auth.acl_file.as_deref(), Some(Path::new("/a")));
    assert_eq!(c.auth.password_file.as_deref(), Some(Path::new("/p")));
    let bad =
        TempFile::new("[[listener]]\nbind = \"127.0.0.1:1\"\n[listener.access]\nacl = \"x\"\n");
    assert!(run(&["-c", &bad.arg()], &[]).is_err());
}

#[test]
fn passwd_subcommand_takes_mosquitto_passwd_flags() {
    let parse = |args: &[&str]| {
        let argv = std::iter::once("tern").chain(args.iter().copied());
        load_from(argv, &|_| None)
    };
    let set = |user: &str, password: Option<&str>, create| PasswdAction::Set {
        user: user.into(),
        password: password.map(Into::into),
        create,
    };
    let cases: [(&[&str], PasswdAction, Option<u32>); 5] = [
        (
            &["passwd", "-c", "f", "alice"],
            set("alice", None, true),
            None,
        ),
        (
            &["passwd", "-b", "-I", "1000", "f", "bob", "pw"],
            set("bob", Some("pw"), false),
            Some(1000),
        ),
        (
            &["passwd", "-c", "-b", "f", "bob", "pw"],
            set("bob", Some("pw"), true),
            None,
        ),
        (
            &["passwd", "-D", "f", "bob"],
            PasswdAction::Delete { user: "bob".into() },
            None,
        ),
        (&["passwd", "-U", "f"], PasswdAction::Upgrade, None),
    ];
    for (args, action, iterations) in cases {
        assert_eq!(
            parse(args).unwrap(),
            Command::Passwd(PasswdArgs {
                file: "f".into(),
                action,
                iterations
            }),
            "{args:?}"
        );
    }
    for bad in [
        &["passwd", "f"][..],
        &["passwd", "-b", "f", "u"],
        &["passwd", "f", "u", "pw"],
        &["passwd", "-D", "-U", "f"],
        &["passwd", "-c", "-D", "f", "u"],
        &["passwd", "-I", "0", "f", "u"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn tls_listener_tables() {
    let text = "[[listener]]\nbind = \"127.0.0.1:8883\"\nkind = \"tls\"\nproxy_protocol = true\nhandshake_timeout = 5\ntls.certfile = \"s.pem\"\ntls.keyfile = \"s.key\"\ntls.cafile = \"ca.pem\"\ntls.require_certificate = true\ntls.use_identity_as_username = true\ntls.min_version = \"1.3\"\n";
    let c = parse_str(text).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.kind, ListenerKindConfig::Tls);
    assert!(l.establish.proxy_protocol);
    assert_eq!(l.establish.handshake_timeout, 5);
    let tls = l.establish.tls.as_ref().unwrap();
    assert_eq!(tls.certfile, Path::new("s.pem"));
    assert_eq!(tls.cafile.as_deref(), Some(Path::new("ca.pem")));
    assert!(tls.require_certificate && tls.use_identity_as_username);
    assert_eq!(tls.min_version, TlsMinVersion::Tls13);
    assert_eq!(
        l.to_string(),
        "{ name = \"tls:127.0.0.1:8883\", bind = \"127.0.0.1:8883\", kind = \"tls\", proxy_protocol = true, handshake_timeout = 5, tls = { certfile = \"s.pem\", keyfile = \"s.key\", cafile = \"ca.pem\", require_certificate = true, use_identity_as_username = true, min_version = \"1.3\" } }"
    );
    // A proxied tcp listener is no shorthand; tls keys are checked strictly.
    let c = parse_str("[[listener]]\nbind = \"127.0.0.1:1\"\nproxy_protocol = true\n").unwrap();
    assert!(c.listeners[0].establish.proxy_protocol);
    assert_ne!(c.listeners[0], addr("127.0.0.1:1"));
    let err = parse_str("[[listener]]\nbind = \"127.0.0.1:1\"\nkind = \"tls\"\ntls.certfile = \"a\"\ntls.keyfile = \"b\"\ntls.ca = \"c\"\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `ca`"), "{err}");
    let err = parse_str("[[listener]]\nbind = \"127.0.0.1:1\"\nkind = \"tls\"\ntls.certfile = \"a\"\ntls.keyfile = \"b\"\ntls.min_version = \"1.1\"\n").unwrap_err();
    assert!(err.to_string().contains("1.1"), "{err}");
}
