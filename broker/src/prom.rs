//! Prometheus metrics. Workers count in plain cells on their own threads and
//! copy them to shared atomics twice a second (see `stats`); this thread turns
//! those into Prometheus series once a second, so recording adds no lock and
//! no allocation to the message path. Labels are bounded: worker index, QoS,
//! reason, session state — never client ids or topics. `http` serves the
//! rendering, with [`render_direct`] appending the histograms, the
//! fractional counters the `metrics` recorder cannot hold, and the retained
//! store's gauges read at the scrape (exact, not a second old).

use crate::shared::Shared;
use crate::stats::{SharedHistogram, SharedWorkerStats};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Installs the process's metrics recorder and starts the thread that feeds
/// it; the handle renders the text format.
pub(crate) fn start(shared: Arc<Shared>) -> Result<PrometheusHandle, crate::error::BrokerError> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| crate::error::BrokerError::Metrics(e.to_string()))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("tern-metrics".into())
        .spawn(move || loop {
            record(&shared);
            upkeep.run_upkeep();
            std::thread::sleep(Duration::from_secs(1));
        })?;
    Ok(handle)
}

/// One worker value under its Prometheus name and labels; false for a
/// counter no metric exports.
fn record_worker_value(worker: &str, name: &'static str, value: u64) -> bool {
    let w = worker.to_string();
    if let Some(reason) = name.strip_prefix("rejected_") {
        counter!("tern_connections_rejected_total", "worker" => w, "reason" => reason)
            .absolute(value);
        return true;
    }
    if let Some(reason) = name.strip_prefix("handshake_failed_") {
        counter!("tern_handshake_failures_total", "worker" => w, "reason" => reason)
            .absolute(value);
        return true;
    }
    if let Some(reason) = name.strip_prefix("malformed_") {
        counter!("tern_malformed_packets_total", "worker" => w, "reason" => reason).absolute(value);
        return true;
    }
    if let Some(reason) = name.strip_prefix("ws_upgrade_failed_") {
        counter!("tern_ws_upgrade_failures_total", "worker" => w, "reason" => reason)
            .absolute(value);
        return true;
    }
    if let Some(reason) = name.strip_prefix("dropped_") {
        counter!("tern_messages_dropped_total", "worker" => w, "reason" => reason).absolute(value);
        return true;
    }
    if let Some(kind) = name.strip_prefix("packets_in_") {
        let kind = kind.to_ascii_uppercase();
        counter!("tern_packets_received_total", "worker" => w, "type" => kind).absolute(value);
        return true;
    }
    if let Some(kind) = name.strip_prefix("packets_out_") {
        let kind = kind.to_ascii_uppercase();
        counter!("tern_packets_sent_total", "worker" => w, "type" => kind).absolute(value);
        return true;
    }
    if let Some(qos) = name.strip_prefix("publish_in_qos") {
        counter!("tern_messages_received_total", "worker" => w, "qos" => qos).absolute(value);
        return true;
    }
    if let Some(qos) = name.strip_prefix("publish_out_qos") {
        counter!("tern_messages_sent_total", "worker" => w, "qos" => qos).absolute(value);
        return true;
    }
    match name {
        "connections_current" => {
            gauge!("tern_connections_current", "worker" => w).set(value as f64)
        }
        "connections_accepted" => {
            counter!("tern_connections_accepted_total", "worker" => w).absolute(value)
        }
        "auth_failures" => counter!("tern_auth_failures_total", "worker" => w).absolute(value),
        "events" => counter!("tern_worker_events_total", "worker" => w).absolute(value),
        "bytes_in" => counter!("tern_bytes_received_total", "worker" => w).absolute(value),
        "bytes_out" => counter!("tern_bytes_sent_total", "worker" => w).absolute(value),
        "queued_offline" => {
            counter!("tern_messages_queued_offline_total", "worker" => w).absolute(value)
        }
        "shared_deliveries" => {
            counter!("tern_shared_deliveries_total", "worker" => w).absolute(value)
        }
        "shared_redeliveries" => {
            counter!("tern_shared_redeliveries_total", "worker" => w).absolute(value)
        }
        "shared_passed_on" => {
            counter!("tern_shared_passed_on_total", "worker" => w).absolute(value)
        }
        "protocol_errors" => counter!("tern_protocol_errors_total", "worker" => w).absolute(value),
        "worker_queue_waits" => {
            counter!("tern_worker_queue_waits_total", "worker" => w).absolute(value)
        }
        "publisher_pauses" => {
            counter!("tern_publisher_pauses_total", "worker" => w).absolute(value)
        }
        "slow_subscribers" => {
            counter!("tern_slow_subscribers_total", "worker" => w).absolute(value)
        }
        "sessions_expired" => {
            counter!("tern_sessions_expired_total", "worker" => w).absolute(value)
        }
        "retained_rejected" => {
            counter!("tern_retained_rejected_total", "worker" => w).absolute(value)
        }
        "retained_replayed" => {
            counter!("tern_retained_replayed_total", "worker" => w).absolute(value)
        }
        "retained_superseded" => {
            counter!("tern_retained_superseded_total", "worker" => w).absolute(value)
        }
        "replay_unordered" => {
            counter!("tern_retained_replay_unordered_total", "worker" => w).absolute(value)
        }
        "sessions_online" => {
            gauge!("tern_sessions", "worker" => w, "state" => "online").set(value as f64)
        }
        "sessions_offline" => {
            gauge!("tern_sessions", "worker" => w, "state" => "offline").set(value as f64)
        }
        "inflight" => gauge!("tern_inflight_messages", "worker" => w).set(value as f64),
        // Seconds with a fraction: written by `render_direct`.
        "busy_nanos" => {}
        _ => return false,
    }
    true
}

fn record(shared: &Shared) {
    for (i, ws) in shared.worker_stats.iter().enumerate() {
        let worker = i.to_string();
        let (mut publish_in, mut publish_out) = (0, 0);
        for (name, value) in ws.values() {
            if !record_worker_value(&worker, name, value) {
                tracing::error!(counter = name, "worker counter without a metric");
            }
            if name.starts_with("publish_in_qos") {
                publish_in += value;
            } else if name.starts_with("publish_out_qos") {
                publish_out += value;
            }
        }
        // PUBLISH packets are the messages, counted by QoS above.
        counter!("tern_packets_received_total", "worker" => worker.clone(), "type" => "PUBLISH")
            .absolute(publish_in);
        counter!("tern_packets_sent_total", "worker" => worker, "type" => "PUBLISH")
            .absolute(publish_out);
    }
    // Refused by the acceptor (max_connections, max_connections_per_ip; a
    // listener's own max_connections; connect rate; flapping ban), before
    // any worker sees the connection.
    let acceptor = [
        ("limit", &shared.rejected_limit),
        ("listener_limit", &shared.rejected_listener_limit),
        ("rate", &shared.rejected_rate),
        ("banned", &shared.rejected_banned),
    ];
    for (reason, count) in acceptor {
        counter!("tern_connections_rejected_total", "worker" => "acceptor", "reason" => reason)
            .absolute(count.load(Relaxed));
    }
    let rate = shared.rate.stats(std::time::Instant::now());
    counter!("tern_connect_bans_total").absolute(rate.bans);
    gauge!("tern_connect_banned_addresses").set(rate.banned as f64);
    gauge!("tern_connect_tracked_addresses").set(rate.tracked as f64);
    counter!("tern_connect_tracked_evictions_total").absolute(rate.evicted);
    counter!("tern_connect_untracked_total").absolute(rate.untracked);
    gauge!("tern_route_snapshot_version").set(shared.routes.load().version() as f64);
    gauge!("tern_route_filters").set(shared.routes.load().filter_count() as f64);
    for (i, subs) in shared.health.subscriptions.iter().enumerate() {
        gauge!("tern_subscriptions", "worker" => i.to_string()).set(subs.load(Relaxed) as f64);
    }
    let health = &shared.health;
    counter!("tern_config_reloads_total", "result" => "ok")
        .absolute(health.reloads_ok.load(Relaxed));
    counter!("tern_config_reloads_total", "result" => "rejected")
        .absolute(health.reloads_failed.load(Relaxed));
    counter!("tern_admin_unauthorized_total").absolute(health.admin_unauthorized.load(Relaxed));
    let access = &shared.access.counters;
    for (reason, n) in access.denials() {
        counter!("tern_access_denials_total", "reason" => reason).absolute(n);
    }
    counter!("tern_access_reload_failures_total").absolute(access.reload_failures.load(Relaxed));
    counter!("tern_password_checks_total", "result" => "cached")
        .absolute(access.cache_hits.load(Relaxed));
    counter!("tern_password_checks_total", "result" => "verified")
        .absolute(access.verifications.load(Relaxed));
    let certs = &shared.certs;
    counter!("tern_tls_certificate_reloads_total", "result" => "ok")
        .absolute(certs.reloads_ok.load(Relaxed));
    counter!("tern_tls_certificate_reloads_total", "result" => "rejected")
        .absolute(certs.reloads_failed.load(Relaxed));
    let rs = &shared.route_stats;
    counter!("tern_route_rebuilds_total").absolute(rs.rebuilds.load(Relaxed));
    gauge!("tern_route_last_rebuild_seconds")
        .set(rs.last_rebuild_micros.load(Relaxed) as f64 / 1e6);
}

/// Appends to a rendering what the `metrics` recorder cannot hold: the
/// histograms (from per-worker bucket counts), the worker busy time in
/// seconds, and the retained store's gauges, exact at the scrape. Read from
/// the workers' shared slots and the store at scrape time.
pub(crate) fn render_direct(shared: &Shared, out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let retained = shared
        .retained
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .usage();
    let _ = writeln!(
        out,
        "# HELP tern_retained_messages Retained messages of clients' topics, what limits.max_retained_messages caps (the broker's own $SYS topics are not counted), read at the scrape.\n\
         # TYPE tern_retained_messages gauge\n\
         tern_retained_messages {}\n\
         # HELP tern_retained_bytes Topic plus payload bytes of those messages, what limits.max_retained_bytes caps, read at the scrape.\n\
         # TYPE tern_retained_bytes gauge\n\
         tern_retained_bytes {}",
        retained.messages, retained.bytes
    );
    let workers = &shared.worker_stats;
    let _ = writeln!(
        out,
        "# HELP tern_worker_busy_seconds_total CPU time of the worker thread.\n\
         # TYPE tern_worker_busy_seconds_total counter"
    );
    for (i, ws) in workers.iter().enumerate() {
        let secs = ws.busy_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "tern_worker_busy_seconds_total{{worker=\"{i}\"}} {secs}"
        );
    }
    histogram(
        out,
        workers,
        "tern_delivery_latency_seconds",
        "Time from a PUBLISH's receipt by the broker to its delivery into a subscriber's writer.",
        |ws| &ws.delivery_latency,
    );
    histogram(
        out,
        workers,
        "tern_session_queue_depth",
        "Messages queued per session, sampled every second (a distribution of the current sessions, not cumulative).",
        |ws| &ws.queue_depth,
    );
    shared.store.render_metrics(out);
}

/// One histogram family, a series set per worker, in the text format.
fn histogram(
    out: &mut String,
    workers: &[SharedWorkerStats],
    name: &str,
    help: &str,
    of: impl Fn(&SharedWorkerStats) -> &SharedHistogram,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (i, ws) in workers.iter().enumerate() {
        let h = of(ws);
        let (counts, sum) = h.snapshot();
        let per_unit = h.buckets.per_unit;
        let mut cumulative = 0u64;
        for (bound, count) in h.buckets.bounds.iter().zip(&counts) {
            cumulative += count;
            let le = *bound as f64 / per_unit;
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{i}\",le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += counts.last().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{name}_bucket{{worker=\"{i}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{worker=\"{i}\"}} {}",
            sum as f64 / per_unit
        );
        let _ = writeln!(out, "{name}_count{{worker=\"{i}\"}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::WorkerStats;

    #[test]
    fn every_worker_counter_has_a_metric() {
        for (name, _) in SharedWorkerStats::default().values() {
            assert!(record_worker_value("0", name, 0), "{name}");
        }
        assert!(!record_worker_value("0", "no_such_counter", 0));
    }

    #[test]
    fn histograms_render_cumulative_buckets_per_worker() {
        let workers = [SharedWorkerStats::default(), SharedWorkerStats::default()];
        let stats = WorkerStats::default();
        for depth in [0, 0, 5, 20_000] {
            stats.queue_depth.record(depth);
        }
        stats.publish_to(&workers[1]);
        let mut out = String::new();
        histogram(&mut out, &workers, "q", "help text", |ws| &ws.queue_depth);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "# HELP q help text");
        assert_eq!(lines[1], "# TYPE q histogram");
        let worker1: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("worker=\"1\""))
            .collect();
        assert_eq!(
            worker1,
            [
                "q_bucket{worker=\"1\",le=\"0\"} 2",
                "q_bucket{worker=\"1\",le=\"1\"} 2",
                "q_bucket{worker=\"1\",le=\"10\"} 3",
                "q_bucket{worker=\"1\",le=\"100\"} 3",
                "q_bucket{worker=\"1\",le=\"1000\"} 3",
                "q_bucket{worker=\"1\",le=\"10000\"} 3",
                "q_bucket{worker=\"1\",le=\"+Inf\"} 4",
                "q_sum{worker=\"1\"} 20005",
                "q_count{worker=\"1\"} 4",
            ]
        );
        assert!(out.contains("q_count{worker=\"0\"} 0\n"));

        // Latency bounds are written in seconds.
        let mut out = String::new();
        stats.delivered_after(Duration::from_micros(75));
        stats.publish_to(&workers[0]);
        histogram(&mut out, &workers, "l", "h", |ws| &ws.delivery_latency);
        assert!(
            out.contains("l_bucket{worker=\"0\",le=\"0.00005\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("l_bucket{worker=\"0\",le=\"0.0001\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("l_bucket{worker=\"0\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("l_sum{worker=\"0\"} 0.000075\n"), "{out}");
    }
}
