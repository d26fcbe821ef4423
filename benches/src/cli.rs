//! Command line → validated [`Config`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::{Parser, ValueEnum};
use thiserror::Error;

use crate::frame::{MAX_REMAINING, STAMP_LEN};

/// Which traffic pattern to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// P publishers → S subscribers, one shared topic (default 8 → 1).
    Fanin,
    /// P publishers → S subscribers, one shared topic (default 1 → 200).
    Fanout,
    /// P publisher/subscriber pairs, one topic per pair (default 100).
    Pairs,
    /// C idle connections held for --duration seconds.
    Conns,
}

/// MQTT load generator for any broker on this host (loopback only).
#[derive(Debug, Parser)]
#[command(name = "tern-bench", version, about, long_about = None)]
pub(crate) struct Args {
    /// Traffic pattern.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,
    /// Broker host; must resolve to a loopback address only.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    pub(crate) port: u16,
    /// QoS for PUBLISH and SUBSCRIBE.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub(crate) qos: u8,
    /// Protocol version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = ["3.1.1", "5"])]
    pub(crate) mqtt: String,
    /// Publishers (fanin/fanout) or pairs (pairs).
    #[arg(long)]
    pub(crate) pubs: Option<u32>,
    /// Subscribers (fanin/fanout).
    #[arg(long)]
    pub(crate) subs: Option<u32>,
    /// Idle connections (conns).
    #[arg(long, default_value_t = 1000)]
    pub(crate) conns: u32,
    /// fanout: subscribers use `<topic-prefix>/#` instead of the exact topic.
    #[arg(long)]
    pub(crate) wildcard: bool,
    /// Payload bytes per message (≥ 16: timestamp + publisher + sequence).
    #[arg(long, default_value_t = 100)]
    pub(crate) payload: usize,
    /// Seconds to publish after warm-up (conns: seconds to hold). Default 10
    /// unless --count is given.
    #[arg(long, conflicts_with = "count")]
    pub(crate) duration: Option<f64>,
    /// Messages per publisher instead of a duration.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Messages per second per publisher (default: as fast as allowed).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Max messages a publisher may have outstanding (QoS 0: sent but not yet
    /// delivered; QoS>0: not yet acknowledged). 0 = open loop.
    #[arg(long, default_value_t = 100)]
    pub(crate) window: u32,
    /// Seconds of publishing excluded from latency, rate and CPU figures.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) warmup: f64,
    /// Seconds to wait for outstanding deliveries after publishing stops; the
    /// wait restarts at every delivery or acknowledgement (--timeout caps it).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) drain: f64,
    /// Hard cap on the whole run in seconds (default: warm-up + duration + drain + 30;
    /// 300 with --count).
    #[arg(long)]
    pub(crate) timeout: Option<f64>,
    /// Broker process id, to sample its CPU time and memory from /proc.
    #[arg(long)]
    pub(crate) broker_pid: Option<u32>,
    /// Print the summary as one JSON line on stdout (instead of the table).
    #[arg(long)]
    pub(crate) json: bool,
    /// Topic prefix: topics are `<prefix>/fan` or `<prefix>/pair/<i>`.
    #[arg(long, default_value = "bench")]
    pub(crate) topic_prefix: String,
    /// MQTT keep-alive in seconds (PINGREQ is sent at half of it).
    #[arg(long, default_value_t = 60)]
    pub(crate) keep_alive: u16,
    /// Subscribers keep persistent sessions (3.1.1 Clean Session 0; v5
    /// Clean Start 0 with a Session Expiry Interval of 3600 s), so a
    /// broker with persistence stores what they get.
    #[arg(long)]
    pub(crate) persistent_subs: bool,
    /// Connections allowed in the handshake at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) connect_parallel: u32,
    /// IPv4 targets: spread connections round-robin over the source addresses
    /// 127.0.0.1 … 127.0.0.N. 1 = one address, chosen by the kernel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub(crate) source_ips: u8,
    /// No per-second progress lines on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Connect over TLS (the broker's certificate checked against --cafile).
    #[arg(long, requires = "cafile")]
    pub(crate) tls: bool,
    /// PEM file of the CA(s) that signed the broker's certificate (--tls).
    #[arg(long)]
    pub(crate) cafile: Option<std::path::PathBuf>,
    /// Name the broker's certificate must carry (--tls).
    #[arg(long, default_value = "localhost")]
    pub(crate) tls_name: String,
    /// MQTT over WebSocket: upgrade on PATH (default /mqtt) of a `ws`
    /// listener, then one binary frame per flush (not with --tls).
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/mqtt", conflicts_with = "tls")]
    pub(crate) ws: Option<String>,
}

/// Invalid options.
#[derive(Debug, Error, PartialEq)]
pub(crate) enum ConfigError {
    #[error(
        "--payload must be at least {STAMP_LEN} bytes (timestamp + publisher + sequence), got {0}"
    )]
    PayloadTooSmall(usize),
    #[error("--payload {0} does not fit in one MQTT packet")]
    PayloadTooLarge(usize),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--{0} must be a finite number > 0")]
    NotPositive(&'static str),
    #[error("--{0} must be a finite number >= 0")]
    Negative(&'static str),
    #[error("--wildcard only applies to the fanout scenario")]
    WildcardNotFanout,
    #[error("--topic-prefix must be non-empty and contain no '+', '#' or NUL")]
    BadTopicPrefix,
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("refusing {host}: it resolves to {addr}, which is not a loopback address (tern-bench only targets 127.0.0.0/8 or ::1)")]
    NotLoopback { host: String, addr: IpAddr },
    #[error("--tls: {0}")]
    Tls(String),
}

/// Everything the engine needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) scenario: Scenario,
    pub(crate) addr: SocketAddr,
    pub(crate) qos: u8,
    pub(crate) v5: bool,
    pub(crate) pubs: u32,
    pub(crate) subs: u32,
    pub(crate) conns: u32,
    pub(crate) wildcard: bool,
    pub(crate) payload: usize,
    /// Nanoseconds of publishing after warm-up (duration mode).
    pub(crate) duration_ns: Option<u64>,
    pub(crate) count: Option<u64>,
    pub(crate) rate: Option<f64>,
    pub(crate) window: u32,
    pub(crate) warmup_ns: u64,
    pub(crate) drain_ns: u64,
    pub(crate) timeout_ns: u64,
    pub(crate) broker_pid: Option<u32>,
    pub(crate) json: bool,
    pub(crate) topic_prefix: String,
    pub(crate) keep_alive: u16,
    pub(crate) persistent_subs: bool,
    pub(crate) connect_parallel: u32,
    pub(crate) source_ips: u8,
    pub(crate) quiet: bool,
    /// TLS client settings and the server name to verify (--tls).
    pub(crate) tls: Option<crate::conn::TlsClient>,
    /// `--ws PATH`.
    pub(crate) ws: Option<String>,
}

impl Config {
    /// Total connections the scenario opens.
    pub(crate) fn total_conns(&self) -> u32 {
        match self.scenario {
            Scenario::Conns => self.conns,
            _ => self.pubs + self.subs,
        }
    }

    /// Human name of the protocol version.
    pub(crate) fn mqtt_name(&self) -> &'static str {
        if self.v5 {
            "5"
        } else {
            "3.1.1"
        }
    }
}

fn secs(v: f64, name: &'static str, allow_zero: bool) -> Result<u64, ConfigError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::Negative(name));
    }
    if !allow_zero && v == 0.0 {
        return Err(ConfigError::NotPositive(name));
    }
    Ok((v * 1e9) as u64)
}

/// Resolve `host:port` and insist every address is loopback.
pub(crate) fn resolve_loopback(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ConfigError::Resolve(host.to_owned(), e.to_string()))?
        .collect();
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(ConfigError::NotLoopback {
            host: host.to_owned(),
            addr: bad.ip(),
        });
    }
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| ConfigError::Resolve(host.to_owned(), "no addresses".to_owned()))
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        if a.payload < STAMP_LEN {
            return Err(ConfigError::PayloadTooSmall(a.payload));
        }
        if a.payload > MAX_REMAINING - 1024 {
            return Err(ConfigError::PayloadTooLarge(a.payload));
        }
        if a.wildcard && a.scenario != Scenario::Fanout {
            return Err(ConfigError::WildcardNotFanout);
        }
        let p = &a.topic_prefix;
        if p.is_empty() || p.len() > 1024 || p.contains(['+', '#', '\0']) {
            return Err(ConfigError::BadTopicPrefix);
        }
        let (pubs, subs) = match a.scenario {
            Scenario::Fanin => (a.pubs.unwrap_or(8), a.subs.unwrap_or(1)),
            Scenario::Fanout => (a.pubs.unwrap_or(1), a.subs.unwrap_or(200)),
            Scenario::Pairs => {
                let n = a.pubs.unwrap_or(100);
                (n, n)
            }
            Scenario::Conns => (0, 0),
        };
        if a.scenario == Scenario::Conns {
            if a.conns == 0 {
                return Err(ConfigError::Zero("conns"));
            }
        } else if pubs == 0 {
            return Err(ConfigError::Zero("pubs"));
        } else if subs == 0 {
            return Err(ConfigError::Zero("subs"));
        }
        if a.count == Some(0) {
            return Err(ConfigError::Zero("count"));
        }
        if a.connect_parallel == 0 {
            return Err(ConfigError::Zero("connect-parallel"));
        }
        if let Some(r) = a.rate {
            if !r.is_finite() || r <= 0.0 {
                return Err(ConfigError::NotPositive("rate"));
            }
        }
        let duration_ns = match (a.duration, a.count) {
            (Some(d), _) => Some(secs(d, "duration", false)?),
            (None, None) => Some(10_000_000_000),
            (None, Some(_)) => None,
        };
        let warmup_ns = secs(a.warmup, "warmup", true)?;
        let drain_ns = secs(a.drain, "drain", true)?;
        let timeout_ns = match a.timeout {
            Some(t) => secs(t, "timeout", false)?,
            None => match duration_ns {
                Some(d) => warmup_ns + d + drain_ns + 30_000_000_000,
                None => 300_000_000_000,
            },
        };
        let addr = resolve_loopback(&a.host, a.port)?;
        let tls = match (&a.cafile, a.tls) {
            (Some(ca), true) => {
                Some(crate::conn::TlsClient::new(ca, &a.tls_name).map_err(ConfigError::Tls)?)
            }
            _ => None,
        };
        Ok(Self {
            scenario: a.scenario,
            addr,
            qos: a.qos,
            v5: a.mqtt == "5",
            pubs,
            subs,
            conns: a.conns,
            wildcard: a.wildcard,
            payload: a.payload,
            duration_ns,
            count: a.count,
            rate: a.rate,
            window: a.window,
            warmup_ns,
            drain_ns,
            timeout_ns,
            broker_pid: a.broker_pid,
            json: a.json,
            topic_prefix: a.topic_prefix,
            keep_alive: a.keep_alive,
            persistent_subs: a.persistent_subs,
            connect_parallel: a.connect_parallel,
            source_ips: a.source_ips,
            quiet: a.quiet,
            tls,
            ws: a.ws,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(argv: &[&str]) -> Result<Config, ConfigError> {
        let mut full = vec!["tern-bench"];
        full.extend_from_slice(argv);
        Config::try_from(Args::try_parse_from(full).unwrap())
    }

    #[test]
    fn loopback_hosts_accepted() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] {
            let a = resolve_loopback(host, 1883).unwrap();
            assert!(a.ip().is_loopback() && a.port() == 1883, "{host}");
        }
    }

    #[test]
    fn non_loopback_hosts_refused() {
        for host in ["10.1.2.3", "192.168.0.1", "8.8.8.8", "::2", "0.0.0.0"] {
            let err = resolve_loopback(host, 1883).unwrap_err();
            assert!(
                matches!(err, ConfigError::NotLoopback { .. }),
                "{host}: {err}"
            );
            assert!(err.to_string().contains("not a loopback address"));
        }
    }

    #[test]
    fn scenario_defaults() {
        let c = cfg(&["fanin"]).unwrap();
        assert_eq!((c.pubs, c.subs, c.total_conns()), (8, 1, 9));
        let c = cfg(&["fanout", "--wildcard"]).unwrap();
        assert_eq!((c.pubs, c.subs, c.wildcard), (1, 200, true));
        let c = cfg(&["pairs", "--pubs", "5"]).unwrap();
        assert_eq!((c.pubs, c.subs), (5, 5));
        let c = cfg(&["conns"]).unwrap();
        assert_eq!(c.total_conns(), 1000);
        assert_eq!(c.duration_ns, Some(10_000_000_000));
        assert_eq!(
            c.timeout_ns,
            10_000_000_000 + 2_000_000_000 + 30_000_000_000
        );
        let c = cfg(&["fanin", "--count", "10", "--mqtt", "5"]).unwrap();
        assert_eq!((c.duration_ns, c.count, c.v5), (None, Some(10), true));
        assert_eq!(c.source_ips, 16);
        assert_eq!(cfg(&["conns", "--source-ips", "1"]).unwrap().source_ips, 1);
        assert_eq!(
            cfg(&["conns", "--source-ips", "254"]).unwrap().source_ips,
            254
        );
    }

    #[test]
    fn invalid_options_rejected() {
        assert_eq!(
            cfg(&["fanin", "--payload", "15"]).unwrap_err(),
            ConfigError::PayloadTooSmall(15)
        );
        assert_eq!(
            cfg(&["pairs", "--wildcard"]).unwrap_err(),
            ConfigError::WildcardNotFanout
        );
        assert_eq!(
            cfg(&["fanin", "--subs", "0"]).unwrap_err(),
            ConfigError::Zero("subs")
        );
        assert_eq!(
            cfg(&["fanin", "--rate", "0"]).unwrap_err(),
            ConfigError::NotPositive("rate")
        );
        assert_eq!(
            cfg(&["fanin", "--duration=-1"]).unwrap_err(),
            ConfigError::Negative("duration")
        );
        assert_eq!(
            cfg(&["fanin", "--topic-prefix", "a/#"]).unwrap_err(),
            ConfigError::BadTopicPrefix
        );
        let parse = |v: &[&str]| Args::try_parse_from([&["tern-bench"], v].concat());
        assert!(parse(&["fanin", "--qos", "3"]).is_err());
        assert!(parse(&["fanin", "--mqtt", "4"]).is_err());
        assert!(parse(&["fanin", "--count", "5", "--duration", "1"]).is_err());
        assert!(parse(&["nosuch"]).is_err());
        assert!(parse(&["conns", "--source-ips", "0"]).is_err());
        assert!(parse(&["conns", "--source-ips", "255"]).is_err());
    }
}
