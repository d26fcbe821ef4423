//! The run summary: a human table, one `key=value` line and a JSON line, all
//! from the same ordered field list.

use std::fmt::Write as _;

use crate::cli::Scenario;
use crate::hist::Histogram;

/// Own CPU share (percent of one core) above which the generator, not the
/// broker, may be what limits the figures.
pub(crate) const SELF_CPU_WARN_PCT: f64 = 80.0;

/// Figures read from the broker's /proc entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokerFigures {
    /// CPU seconds over the measured window (conns: the whole run).
    pub(crate) cpu_s: f64,
    pub(crate) deliveries_per_cpu_s: Option<f64>,
    /// CPU seconds spent while connections were being set up.
    pub(crate) connect_cpu_s: f64,
    pub(crate) rss_start_kb: u64,
    pub(crate) rss_connected_kb: u64,
    pub(crate) rss_end_kb: u64,
    pub(crate) peak_rss_kb: u64,
    pub(crate) rss_per_conn_bytes: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) scenario: Scenario,
    pub(crate) mqtt: &'static str,
    pub(crate) qos: u8,
    pub(crate) pubs: u32,
    pub(crate) subs: u32,
    pub(crate) conns: u64,
    pub(crate) payload: usize,
    pub(crate) window: u32,
    pub(crate) rate: Option<f64>,
    /// ok | lost | error | timeout
    pub(crate) status: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) publish_s: f64,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) expected: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) reordered: u64,
    pub(crate) foreign: u64,
    pub(crate) window_stalls: u64,
    pub(crate) unexpected_acks: u64,
    pub(crate) ack_errors: u64,
    pub(crate) conns_lost: u64,
    pub(crate) conn_failures: u64,
    pub(crate) granted_qos: Option<u8>,
    pub(crate) publish_rate: f64,
    pub(crate) delivery_rate: f64,
    pub(crate) lat: Histogram,
    pub(crate) connect_s: f64,
    pub(crate) connect_rate: f64,
    pub(crate) conn_lat: Histogram,
    pub(crate) broker: Option<BrokerFigures>,
    pub(crate) bench_cpu_s: f64,
    pub(crate) bench_cpu_pct: f64,
}

/// One summary value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Int(u64),
    Num(f64),
    Str(String),
    Na,
}

fn us(ns: u64) -> Val {
    Val::Num(ns as f64 / 1e3)
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Val) -> Val {
    v.map_or(Val::Na, f)
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Fanin => "fanin",
        Scenario::Fanout => "fanout",
        Scenario::Pairs => "pairs",
        Scenario::Conns => "conns",
    }
}

impl Summary {
    /// Whether the generator's own CPU use makes the figures suspect.
    pub(crate) fn self_bound(&self) -> bool {
        self.bench_cpu_pct > SELF_CPU_WARN_PCT
    }

    /// Exit code: 0 when the run is clean.
    pub(crate) fn exit_code(&self) -> i32 {
        if self.status == "ok" {
            0
        } else {
            2
        }
    }

    fn fields(&self) -> Vec<(&'static str, Val)> {
        use Val::*;
        let b = self.broker;
        let l = &self.lat;
        let has_lat = l.count() > 0;
        let q = |x: f64| if has_lat { us(l.quantile(x)) } else { Na };
        let c = &self.conn_lat;
        vec![
            ("scenario", Str(scenario_name(self.scenario).to_owned())),
            ("status", Str(self.status.to_owned())),
            ("mqtt", Str(self.mqtt.to_owned())),
            ("qos", Int(u64::from(self.qos))),
            ("pubs", Int(u64::from(self.pubs))),
            ("subs", Int(u64::from(self.subs))),
            ("conns", Int(self.conns)),
            ("payload", Int(self.payload as u64)),
            ("window", Int(u64::from(self.window))),
            ("rate", opt(self.rate, Num)),
            ("publish_s", Num(self.publish_s)),
            ("sent", Int(self.sent)),
            ("received", Int(self.received)),
            ("expected", Int(self.expected)),
            ("lost", Int(self.lost)),
            ("duplicates", Int(self.duplicates)),
            ("reordered", Int(self.reordered)),
            ("foreign", Int(self.foreign)),
            ("window_stalls", Int(self.window_stalls)),
            ("unexpected_acks", Int(self.unexpected_acks)),
            ("ack_errors", Int(self.ack_errors)),
            ("granted_qos", opt(self.granted_qos, |g| Int(u64::from(g)))),
            ("publish_rate", Num(self.publish_rate)),
            ("delivery_rate", Num(self.delivery_rate)),
            ("lat_samples", Int(l.count())),
            ("lat_p50_us", q(0.5)),
            ("lat_p90_us", q(0.9)),
            ("lat_p99_us", q(0.99)),
            ("lat_p999_us", q(0.999)),
            ("lat_min_us", if has_lat { us(l.min()) } else { Na }),
            ("lat_max_us", if has_lat { us(l.max()) } else { Na }),
            ("lat_mean_us", if has_lat { us(l.mean()) } else { Na }),
            ("connect_s", Num(self.connect_s)),
            ("connect_rate", Num(self.connect_rate)),
            (
                "connect_p50_us",
                if c.count() > 0 {
                    us(c.quantile(0.5))
                } else {
                    Na
                },
            ),
            (
                "connect_p99_us",
                if c.count() > 0 {
                    us(c.quantile(0.99))
                } else {
                    Na
                },
            ),
            ("conn_failures", Int(self.conn_failures)),
            ("conns_lost", Int(self.conns_lost)),
            ("broker_cpu_s", opt(b, |b| Num(b.cpu_s))),
            (
                "deliveries_per_broker_cpu_s",
                opt(b.and_then(|b| b.deliveries_per_cpu_s), Num),
            ),
            ("broker_connect_cpu_s", opt(b, |b| Num(b.connect_cpu_s))),
            ("broker_rss_start_kb", opt(b, |b| Int(b.rss_start_kb))),
            (
                "broker_rss_connected_kb",
                opt(b, |b| Int(b.rss_connected_kb)),
            ),
            ("broker_rss_end_kb", opt(b, |b| Int(b.rss_end_kb))),
            ("broker_peak_rss_kb", opt(b, |b| Int(b.peak_rss_kb))),
            (
                "broker_rss_per_conn_bytes",
                opt(b, |b| Num(b.rss_per_conn_bytes)),
            ),
            ("bench_cpu_s", Num(self.bench_cpu_s)),
            ("bench_cpu_pct", Num(self.bench_cpu_pct)),
            ("self_bound", Bool(self.self_bound())),
            ("error", opt(self.error.clone(), Str)),
        ]
    }

    /// `key=value` pairs on one line; strings with spaces are double-quoted,
    /// unavailable values are `na`.
    pub(crate) fn kv_line(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.fields() {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = match v {
                Val::Bool(b) => write!(out, "{k}={b}"),
                Val::Int(i) => write!(out, "{k}={i}"),
                Val::Num(n) => write!(out, "{k}={n:.3}"),
                Val::Str(s) if s.contains([' ', '"', '=']) => write!(out, "{k}={s:?}"),
                Val::Str(s) => write!(out, "{k}={s}"),
                Val::Na => write!(out, "{k}=na"),
            };
        }
        out
    }

    /// One JSON object on one line; unavailable values are `null`.
    pub(crate) fn json_line(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.fields().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{k}\":");
            let _ = match v {
                Val::Bool(b) => write!(out, "{b}"),
                Val::Int(n) => write!(out, "{n}"),
                Val::Num(n) if n.is_finite() => write!(out, "{n:.3}"),
                Val::Num(_) | Val::Na => write!(out, "null"),
                Val::Str(s) => write!(out, "{}", json_str(&s)),
            };
        }
        out.push('}');
        out
    }

    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let mut o = String::new();
        let s = self;
        let what = if s.scenario == Scenario::Conns {
            String::new()
        } else {
            format!(", QoS {}, {} byte payload", s.qos, s.payload)
        };
        let _ = writeln!(
            o,
            "tern-bench {} — MQTT {}{what}, status {}",
            scenario_name(s.scenario),
            s.mqtt,
            s.status.to_uppercase()
        );
        if let Some(e) = &s.error {
            let _ = writeln!(o, "  first error       {e}");
        }
        let _ = writeln!(
            o,
            "  connections       {} in {:.3}s ({:.0}/s, connect p50 {:.0}µs p99 {:.0}µs), {} failed, {} lost",
            s.conns,
            s.connect_s,
            s.connect_rate,
            s.conn_lat.quantile(0.5) as f64 / 1e3,
            s.conn_lat.quantile(0.99) as f64 / 1e3,
            s.conn_failures,
            s.conns_lost
        );
        if s.scenario != Scenario::Conns {
            let _ = writeln!(
                o,
                "  clients           {} publishers → {} subscribers, window {}, rate {}",
                s.pubs,
                s.subs,
                if s.window == 0 {
                    "open loop".to_owned()
                } else {
                    s.window.to_string()
                },
                s.rate
                    .map_or("unlimited".to_owned(), |r| format!("{r}/s per publisher"))
            );
            let _ = writeln!(
                o,
                "  sent              {} ({:.0}/s over {:.2}s)",
                s.sent, s.publish_rate, s.publish_s
            );
            let _ = writeln!(
                o,
                "  received          {} of {} expected ({:.0} deliveries/s)",
                s.received, s.expected, s.delivery_rate
            );
            let _ = writeln!(
                o,
                "  lost / dup / ooo  {} / {} / {}   (foreign {}, window stalls {}, unexpected acks {}, ack errors {})",
                s.lost, s.duplicates, s.reordered, s.foreign, s.window_stalls, s.unexpected_acks, s.ack_errors
            );
            let l = &s.lat;
            if l.count() > 0 {
                let f = |ns: u64| ns as f64 / 1e3;
                let _ = writeln!(
                    o,
                    "  latency µs        p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} samples)",
                    f(l.quantile(0.5)),
                    f(l.quantile(0.9)),
                    f(l.quantile(0.99)),
                    f(l.quantile(0.999)),
                    f(l.max()),
                    l.count()
                );
            } else {
                let _ = writeln!(o, "  latency µs        no samples");
            }
        }
        match &s.broker {
            Some(b) => {
                let per = b
                    .deliveries_per_cpu_s
                    .map_or("n/a".to_owned(), |d| format!("{d:.0}"));
                let _ = writeln!(o, "  broker CPU        {:.2}s measured, {:.2}s during connect; {} deliveries per CPU-second", b.cpu_s, b.connect_cpu_s, per);
                let _ = writeln!(
                    o,
                    "  broker RSS KiB    start {}, connected {}, end {}, peak {} ({:.0} bytes per connection)",
                    b.rss_start_kb, b.rss_connected_kb, b.rss_end_kb, b.peak_rss_kb, b.rss_per_conn_bytes
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  broker            (pass --broker-pid for CPU and memory)"
                );
            }
        }
        let _ = writeln!(
            o,
            "  tern-bench CPU    {:.2}s ({:.0}% of one core)",
            s.bench_cpu_s, s.bench_cpu_pct
        );
        if s.self_bound() {
            let _ = writeln!(o, "  WARNING: tern-bench used more than {SELF_CPU_WARN_PCT:.0}% of a core: the generator may be the bottleneck");
        }
        o
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut lat = Histogram::new();
        for v in [10_000, 20_000, 30_000] {
            lat.record(v);
        }
        Summary {
            scenario: Scenario::Fanin,
            mqtt: "3.1.1",
            qos: 1,
            pubs: 8,
            subs: 1,
            conns: 9,
            payload: 100,
            window: 100,
            rate: None,
            status: "ok",
            error: Some("a \"quoted\" thing".to_owned()),
            publish_s: 2.0,
            sent: 10,
            received: 10,
            expected: 10,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
            window_stalls: 0,
            unexpected_acks: 0,
            ack_errors: 0,
            conns_lost: 0,
            conn_failures: 0,
            granted_qos: Some(1),
            publish_rate: 5.0,
            delivery_rate: 5.0,
            lat,
            connect_s: 0.01,
            connect_rate: 900.0,
            conn_lat: Histogram::new(),
            broker: None,
            bench_cpu_s: 1.9,
            bench_cpu_pct: 95.0,
        }
    }

    #[test]
    fn kv_line_is_parsable() {
        let line = sample().kv_line();
        assert!(
            line.starts_with("scenario=fanin status=ok mqtt=3.1.1 qos=1 "),
            "{line}"
        );
        assert!(line.contains(" lost=0 ") && line.contains(" lat_p50_us=20.223 "));
        assert!(line.contains(" broker_cpu_s=na ") && line.contains(" self_bound=true "));
        assert!(line.contains("error=\"a \\\"quoted\\\" thing\""));
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_line_is_valid_shape() {
        let j = sample().json_line();
        assert!(
            j.starts_with("{\"scenario\":\"fanin\",\"status\":\"ok\""),
            "{j}"
        );
        assert!(j.contains("\"broker_cpu_s\":null") && j.contains("\"received\":10"));
        assert!(j.contains("\"error\":\"a \\\"quoted\\\" thing\""));
        assert!(j.contains("\"self_bound\":true,"));
        assert!(j.ends_with('}') && !j.contains('\n'));
        assert_eq!(json_str("a\nb"), "\"a\\u000ab\"");
    }

    #[test]
    fn table_warns_when_generator_is_bound() {
        let s = sample();
        assert!(s.self_bound());
        let t = s.table();
        assert!(t.contains("generator may be the bottleneck"), "{t}");
        assert!(t.contains("p50 20.2"));
        assert_eq!(s.exit_code(), 0);
        let mut quiet = sample();
        quiet.bench_cpu_pct = 10.0;
        quiet.status = "lost";
        assert!(!quiet.table().contains("bottleneck"));
        assert_eq!(quiet.exit_code(), 2);
    }
}
