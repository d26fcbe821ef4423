//! `$SYS/broker/…` topics with Mosquitto's names, published retained every
//! `sys_interval` seconds by worker 0's tick (`worker/tick.rs`) through the normal publish path
//! (so they are routed, retained and counted as sent like any message).
//!
//! Values come from what the metrics read: the workers' shared counters
//! (copied at each tick, so up to 500 ms old), the client-id registry, the
//! retained store, the workers' subscription counts and `/proc/self/statm`.
//! Clients may not publish to `$SYS` (see [`is_sys_topic`]).

use std::time::{Duration, Instant};

/// The `[MQTT-4.7.2-1]` family: topic names starting with `$` are the
/// server's. Tern keeps `$SYS` (the topic and everything under it) for
/// itself: the session's default authorizer refuses a client's PUBLISH
/// there (not routed or retained; v5 QoS 1/2: PUBACK/PUBREC 0x87 Not
/// authorized), and a will there.
pub(crate) use tern_session::is_sys_topic;

/// The moving-average windows of the load topics, in seconds.
const WINDOWS: [(f64, &str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

/// Broker-wide totals at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) connected: u64,
    pub(crate) sessions: u64,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) subscriptions: u64,
    pub(crate) retained: u64,
    /// Resident set size in bytes, where `/proc/self/statm` exists.
    pub(crate) rss: Option<u64>,
}

/// The resident set size from `/proc/self/statm` (pages) in bytes.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf takes an integer and reads no memory of ours.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0)?)
}

/// What the `$SYS` publisher remembers between updates.
#[derive(Debug, Default)]
pub(crate) struct SysState {
    pub(crate) last_publish: Option<Instant>,
    /// When and at what totals the load averages were last updated.
    last_sample: Option<(Instant, u64, u64)>,
    /// Messages per minute received and sent, per window of [`WINDOWS`].
    load_received: [f64; 3],
    load_sent: [f64; 3],
    max_connected: u64,
}

impl SysState {
    /// Whether an update is due at `now` with `interval` seconds between
    /// updates (within a quarter tick, as the tick is 500 ms).
    pub(crate) fn due(&self, now: Instant, interval: u32) -> bool {
        let every = Duration::from_secs(interval.into());
        self.last_publish
            .is_none_or(|t| now.saturating_duration_since(t) + Duration::from_millis(250) >= every)
    }

    /// Folds `t` into the maximum and the load averages (Mosquitto's: an
    /// exponentially weighted average of the per-minute rate).
    pub(crate) fn update(&mut self, now: Instant, t: &Totals) {
        self.max_connected = self.max_connected.max(t.connected);
        if let Some((then, received, sent)) = self.last_sample {
            let dt = now.saturating_duration_since(then).as_secs_f64();
            if dt > 0.0 {
                let per_min = |n: u64| n as f64 * 60.0 / dt;
                let rate_in = per_min(t.received.saturating_sub(received));
                let rate_out = per_min(t.sent.saturating_sub(sent));
                for (i, (window, _)) in WINDOWS.iter().enumerate() {
                    let e = (-dt / window).exp();
                    self.load_received[i] = self.load_received[i] * e + rate_in * (1.0 - e);
                    self.load_sent[i] = self.load_sent[i] * e + rate_out * (1.0 - e);
                }
            }
        }
        self.last_sample = Some((now, t.received, t.sent));
    }

    /// Every `$SYS` topic and its payload.
    pub(crate) fn topics(&self, uptime: Duration, t: &Totals) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "version".to_string(),
                format!("tern version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime".into(), format!("{} seconds", uptime.as_secs())),
            ("clients/connected".into(), t.connected.to_string()),
            ("clients/total".into(), t.sessions.to_string()),
            ("clients/maximum".into(), self.max_connected.to_string()),
            ("messages/received".into(), t.received.to_string()),
            ("messages/sent".into(), t.sent.to_string()),
            ("bytes/received".into(), t.bytes_received.to_string()),
            ("bytes/sent".into(), t.bytes_sent.to_string()),
        ];
        for (dir, loads) in [("received", &self.load_received), ("sent", &self.load_sent)] {
            for (i, (_, name)) in WINDOWS.iter().enumerate() {
                out.push((
                    format!("load/messages/{dir}/{name}"),
                    format!("{:.2}", loads[i]),
                ));
            }
        }
        out.push(("subscriptions/count".into(), t.subscriptions.to_string()));
        out.push(("retained messages/count".into(), t.retained.to_string()));
        if let Some(rss) = t.rss {
            out.push(("heap/current".into(), rss.to_string()));
        }
        for (topic, _) in &mut out {
            topic.insert_str(0, "$SYS/broker/");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_topic_names() {
        for (topic, sys) in [
            ("$SYS", true),
            ("$SYS/broker/uptime", true),
            ("$SYS/", true),
            ("$SYSTEM/x", false),
            ("$sys/x", false),
            ("a/$SYS/x", false),
            ("$share/g/x", false),
        ] {
            assert_eq!(is_sys_topic(topic), sys, "{topic}");
        }
    }

    #[test]
    fn topics_and_payloads() {
        let mut state = SysState::default();
        let t = Totals {
            connected: 3,
            sessions: 5,
            received: 10,
            sent: 20,
            bytes_received: 300,
            bytes_sent: 400,
            subscriptions: 7,
            retained: 2,
            rss: Some(4096),
        };
        let t0 = Instant::now();
        state.update(t0, &t);
        let topics = state.topics(Duration::from_millis(61_900), &t);
        let get = |name: &str| {
            topics
                .iter()
                .find(|(k, _)| k == &format!("$SYS/broker/{name}"))
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} in {topics:?}"))
        };
        assert_eq!(
            get("version"),
            format!("tern version {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(get("uptime"), "61 seconds");
        assert_eq!(get("clients/connected"), "3");
        assert_eq!(get("clients/total"), "5");
        assert_eq!(get("clients/maximum"), "3");
        assert_eq!(get("messages/received"), "10");
        assert_eq!(get("messages/sent"), "20");
        assert_eq!(get("bytes/received"), "300");
        assert_eq!(get("bytes/sent"), "400");
        assert_eq!(get("subscriptions/count"), "7");
        assert_eq!(get("retained messages/count"), "2");
        assert_eq!(get("heap/current"), "4096");
        assert_eq!(get("load/messages/received/1min"), "0.00");
        assert_eq!(topics.len(), 18);
        let without_rss = state.topics(Duration::ZERO, &Totals { rss: None, ..t });
        assert_eq!(without_rss.len(), 17, "no heap topic without /proc");
    }

    #[test]
    fn load_averages_and_maximum() {
        let mut state = SysState::default();
        let t0 = Instant::now();
        let mut t = Totals {
            connected: 4,
            ..Totals::default()
        };
        state.update(t0, &t);
        // 600 messages in 60 s: 600 a minute, of which a 1-minute average
        // takes 1 - 1/e after one minute.
        t.received = 600;
        t.sent = 60;
        t.connected = 1;
        state.update(t0 + Duration::from_secs(60), &t);
        let topics = state.topics(Duration::ZERO, &t);
        let get = |name: &str| {
            topics
                .iter()
                .find(|(k, _)| k.ends_with(name))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let one = 600.0 * (1.0 - (-1.0f64).exp());
        assert_eq!(get("received/1min"), format!("{one:.2}"));
        let five = 600.0 * (1.0 - (-60.0f64 / 300.0).exp());
        assert_eq!(get("received/5min"), format!("{five:.2}"));
        let sent15 = 60.0 * (1.0 - (-60.0f64 / 900.0).exp());
        assert_eq!(get("sent/15min"), format!("{sent15:.2}"));
        assert_eq!(get("clients/maximum"), "4", "the maximum stays");
        assert_eq!(get("clients/connected"), "1");
    }

    #[test]
    fn due_every_interval_within_a_quarter_tick() {
        let mut state = SysState::default();
        let t0 = Instant::now();
        assert!(state.due(t0, 10), "the first tick publishes");
        state.last_publish = Some(t0);
        assert!(!state.due(t0 + Duration::from_millis(9_500), 10));
        assert!(state.due(t0 + Duration::from_millis(9_800), 10));
        assert!(state.due(t0 + Duration::from_secs(11), 10));
    }

    #[test]
    fn resident_size_is_read() {
        let rss = resident_bytes().expect("/proc/self/statm on Linux");
        assert!(rss > 1024 * 1024, "{rss} bytes");
    }
}
